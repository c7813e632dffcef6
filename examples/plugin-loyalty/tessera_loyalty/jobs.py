"""Scheduled jobs of the plugin."""

from __future__ import annotations

from tessera.scheduler import JobContext

from tessera_loyalty import services


async def expire_points(ctx: JobContext) -> None:
    """Expire points awarded more than a year ago."""
    await services.expire_due(ctx.now)
