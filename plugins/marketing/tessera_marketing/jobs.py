"""Scheduled jobs of the marketing plugin: the nightly ABC/XYZ recomputation."""

from __future__ import annotations

from typing import Any

from tessera.scheduler import JobSpec


async def classes_job(ctx: Any) -> dict[str, int]:
    from tessera_marketing import classes

    return await classes.recompute(ctx.now.date())


JOBS = [
    JobSpec(
        "marketing.classes",
        classes_job,
        cron="30 2 * * *",
        description="Classify clients ABC/XYZ by the revenue of the last 12 months",
    ),
]
