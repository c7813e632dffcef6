"""Scheduled jobs of the marketing plugin: the nightly ABC/XYZ recomputation."""

from __future__ import annotations

from typing import Any

from tessera.scheduler import JobSpec


async def classes_job(ctx: Any) -> dict[str, int]:
    from tessera_marketing import classes

    return await classes.recompute(ctx.now.date())


async def purge_rate_buckets(ctx: Any) -> int:
    """Drop web-form rate counters of past hours."""
    import datetime as dt

    from tessera_marketing.tables import RateBucket

    cutoff = ctx.now - dt.timedelta(hours=2)
    gone = await RateBucket.delete().where(RateBucket.window_start < cutoff).returning(RateBucket.id)
    return len(gone)


JOBS = [
    JobSpec(
        "marketing.purge_rate_buckets",
        purge_rate_buckets,
        cron="17 * * * *",
        description="Drop the web-form rate counters of past hours",
    ),
    JobSpec(
        "marketing.classes",
        classes_job,
        cron="30 2 * * *",
        description="Classify clients ABC/XYZ by the revenue of the last 12 months",
    ),
]
