"""Scheduled jobs of the sales plugin (declared in ``plugin.tessera_jobs``; idempotent)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera import clock, db
from tessera.entities.tables import Notification
from tessera.i18n import N_
from tessera.scheduler import JobSpec

from tessera_sales import cadence, reports
from tessera_sales.pipelines import DEFAULT_PIPELINE
from tessera_sales.tables import Deal


async def notify_stuck_deals(now: dt.datetime | None = None) -> int:
    """Tell each stuck deal's owner (once per stage stay) that the deal is past its stage norm."""
    now = now or clock.now()
    rows = await Deal.select(Deal.id, Deal.title, Deal.stage, Deal.owner_id, Deal.stage_entered_at).where(
        Deal.status == "open", Deal.stage_due_at < now, Deal.owner_id.is_not_null()
    )
    sent = 0
    for row in rows:
        # One notice per deal and stage stay: the stay is identified by when it began.
        ref = f"sales_deal:{row['id']}:{int(row['stage_entered_at'].timestamp())}"
        if await Notification.exists().where(
            Notification.ref == ref, Notification.kind == "sales.deal_stuck"
        ):
            continue
        async with db.transaction():
            await Notification.insert(
                Notification(
                    user_id=row["owner_id"],
                    kind="sales.deal_stuck",
                    # The page says what happened in the reader's language (the kind's label,
                    # sales/labels.py) and names the deal; no stored English or stage key.
                    title=row["title"][:500],
                    body="",
                    ref=ref,
                    created_at=now,
                )
            )
        sent += 1
    return sent


async def stuck_deals_job(ctx: Any) -> int:
    return await notify_stuck_deals(ctx.now)


async def cadence_job(ctx: Any) -> dict[str, int]:
    return await cadence.evaluate(ctx.now)


async def forecast_snapshot_job(ctx: Any) -> int:
    """On the first of a month: snapshot the forecast of this and the next two months."""
    today = ctx.now.date()
    first = today.replace(day=1)
    last = (first + dt.timedelta(days=95)).replace(day=1) - dt.timedelta(days=1)
    return await reports.snapshot_forecast(DEFAULT_PIPELINE, first, last)


#: The descriptions are msgids of the plugin's catalogue: the jobs page shows them translated.
JOBS = [
    JobSpec(
        "sales.stuck_deals",
        stuck_deals_job,
        cron="*/15 * * * *",
        description=N_("Notify owners of deals past their stage norm"),
    ),
    JobSpec(
        "sales.cadence",
        cadence_job,
        cron="0 5 * * *",
        description=N_("Contact-cadence compliance per manager"),
    ),
    JobSpec(
        "sales.forecast_snapshot",
        forecast_snapshot_job,
        cron="0 3 1 * *",
        description=N_("Keep the month's forecast to report its accuracy"),
    ),
]
