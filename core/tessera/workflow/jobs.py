"""The workflow's scheduled jobs (listed in ``tessera.scheduler.KERNEL_JOBS``)."""

from __future__ import annotations

from typing import Any

from tessera.workflow import deviations, engine, templates


async def scan_deviations(ctx: Any) -> dict[str, int]:
    """Escalate instances past their stage norm or missing required actions."""
    return await deviations.scan(ctx.now)


async def run_due_actions(ctx: Any) -> int:
    """Execute delayed stage actions whose time has come ("plan a call 7 days after close")."""
    if ctx.pm is not None:
        await templates.sync_plugin_templates(ctx.pm)
    return await engine.run_due_actions(ctx.pm, ctx.now)
