"""The overdue scan (``receivables.overdue_scan``) and what the plugin takes from other
plugins' events (sales invoices, service tickets).

The scan marks each open invoice past its due date overdue once: a thousand at a time, the
invoices are claimed by one conditional ``UPDATE ... WHERE id IN (next candidates) AND
overdue_at IS NULL`` in the same transaction as their audit entries and
``receivables.invoice.overdue`` events, and the batch's clients get their collection cases from
one multi-row insert that the unique index "one open case per client" turns into a no-op for a
client whose case another worker (or an earlier run) opened. (A case's dunning process starts
at the case's first dunning run, right after the scan in the same job: starting a thousand
processes inside the scan was most of a first scan's time.) Running twice, or on two workers,
changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import audit, clock, events
from tessera.scheduler import JobSpec

from tessera_receivables.tables import CollectionCase, Invoice

#: The entity of ``receivables.invoice.overdue`` events (``entity_id`` is the invoice's id).
OVERDUE_ENTITY = "receivables.overdue"
#: Invoices claimed per transaction.
BATCH = 1000


async def overdue_scan(now: dt.datetime | None = None) -> dict[str, int]:
    """One pass; returns how many invoices became overdue and how many cases were opened."""
    now = now or clock.now()
    counts = {"overdue": 0, "cases_opened": 0}
    last_id: int | None = 0
    while last_id is not None:
        marked, opened, last_id = await _claim(last_id, now)
        counts["overdue"] += marked
        counts["cases_opened"] += opened
    return counts


async def _claim(after_id: int, now: dt.datetime) -> tuple[int, int, int | None]:
    """Mark the next batch of candidates (ids after ``after_id``) in one statement, with
    their events and audit entries and the clients' new cases; the last id claimed, or
    ``None`` when there was nothing left."""
    today = now.date()
    candidates = (
        Invoice.select(Invoice.id)
        .where(
            Invoice.balance > 0,
            Invoice.status == "open",
            Invoice.overdue_at.is_null(),
            Invoice.due_date < today,
            Invoice.id > after_id,
        )
        .order_by(Invoice.id)
        .limit(BATCH)
    )
    async with events.unit_of_work():
        # Another worker's claim of the same rows makes them drop out here (``overdue_at``).
        claimed = (
            await Invoice.update({Invoice.overdue_at: now})
            .where(Invoice.id.is_in(candidates), Invoice.overdue_at.is_null())
            .returning(Invoice.id, Invoice.party_id, Invoice.currency, Invoice.balance, Invoice.due_date)
        )
        if not claimed:
            return 0, 0, None
        items: list[tuple[str, str, int | None, dict[str, Any] | None]] = []
        entries = []
        first_due: dict[int, dt.date] = {}
        for r in claimed:
            due = r["due_date"]
            first_due[r["party_id"]] = min(first_due.get(r["party_id"], due), due)
            items.append(
                (
                    "receivables.invoice.overdue",
                    # Not "receivables.invoice": the mark changes nothing search indexes, and
                    # the kernel re-indexes every record an event names (100,000s at a first scan).
                    OVERDUE_ENTITY,
                    r["id"],
                    {
                        "id": r["id"],
                        "party_id": r["party_id"],
                        "currency": r["currency"],
                        "balance": str(Decimal(r["balance"]).quantize(Decimal("0.01"))),
                        "due_date": due.isoformat(),
                        "days_overdue": (today - due).days,
                    },
                )
            )
            entries.append(
                audit.entry("overdue", "receivables.invoice", r["id"], {"overdue_at": [None, now]})
            )
        # Clients with a case already (one query; the insert below stays guarded by the unique
        # index for a case another worker opens meanwhile).
        has_case = {
            r["party_id"]
            for r in await CollectionCase.select(CollectionCase.party_id).where(
                CollectionCase.party_id.is_in(list(first_due)), CollectionCase.status != "closed"
            )
        }
        new_cases = [
            CollectionCase(
                party_id=party_id,
                status="active",
                opened_at=now,
                overdue_since=due + dt.timedelta(days=1),
                created_at=now,
                updated_at=now,
            )
            for party_id, due in first_due.items()
            if party_id not in has_case
        ]
        # One statement for the batch's clients.
        rows = (
            await CollectionCase.insert(*new_cases)
            .on_conflict(action="DO NOTHING")
            .returning(*CollectionCase._meta.columns)
            if new_cases
            else []
        )
        for case in rows:
            since = case["overdue_since"]
            items.append(
                (
                    "receivables.case.opened",
                    "receivables.case",
                    case["id"],
                    {"id": case["id"], "party_id": case["party_id"], "overdue_since": since.isoformat()},
                )
            )
            entries.append(
                audit.entry("create", "receivables.case", case["id"], {"party_id": [None, case["party_id"]]})
            )
        await events.emit_all(items, also=entries)
    return len(claimed), len(rows), max(r["id"] for r in claimed)


async def overdue_scan_job(ctx: Any) -> dict[str, int]:
    counts = await overdue_scan(ctx.now)
    from tessera_receivables import dunning

    counts.update(await dunning.run(ctx.now))
    return counts


JOBS = [
    JobSpec(
        "receivables.overdue_scan",
        overdue_scan_job,
        cron="0 * * * *",
        description="Mark invoices past their due date overdue, open collection cases, "
        "take the due dunning steps",
    ),
]
