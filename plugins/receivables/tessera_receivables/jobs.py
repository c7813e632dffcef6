"""The overdue scan (``receivables.overdue_scan``) and what the plugin takes from other
plugins' events (sales invoices, service tickets).

The scan marks each open invoice past its due date overdue once: the invoices are claimed by a
conditional ``UPDATE ... WHERE overdue_at IS NULL`` in the same transaction as their audit
entries and ``receivables.invoice.overdue`` events, and a collection case is opened per client
by an insert that the unique index "one open case per client" turns into a no-op when another
worker (or an earlier run) opened it. Running twice, or on two workers, changes nothing the
second time.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import audit, clock, events
from tessera.scheduler import JobSpec

from tessera_receivables.tables import CollectionCase, Invoice, PartyProfile

#: The entity of ``receivables.invoice.overdue`` events (``entity_id`` is the invoice's id).
OVERDUE_ENTITY = "receivables.overdue"
#: Invoices claimed per transaction.
BATCH = 1000


async def overdue_scan(now: dt.datetime | None = None) -> dict[str, int]:
    """One pass; returns how many invoices became overdue and how many cases were opened."""
    now = now or clock.now()
    today = now.date()
    counts = {"overdue": 0, "cases_opened": 0}
    last_id = 0
    while True:
        ids = [
            r["id"]
            for r in await Invoice.select(Invoice.id)
            .where(
                Invoice.balance > 0,
                Invoice.status == "open",
                Invoice.overdue_at.is_null(),
                Invoice.due_date < today,
                Invoice.id > last_id,
            )
            .order_by(Invoice.id)
            .limit(BATCH)
        ]
        if not ids:
            break
        last_id = ids[-1]
        marked, opened = await _claim(ids, now)
        counts["overdue"] += marked
        counts["cases_opened"] += opened
    return counts


async def _claim(ids: list[int], now: dt.datetime) -> tuple[int, int]:
    today = now.date()
    async with events.unit_of_work():
        claimed = (
            await Invoice.update({Invoice.overdue_at: now})
            .where(Invoice.id.is_in(ids), Invoice.overdue_at.is_null(), Invoice.balance > 0)
            .returning(Invoice.id, Invoice.party_id, Invoice.currency, Invoice.balance, Invoice.due_date)
        )
        if not claimed:
            return 0, 0
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
        await _start_processes(rows)
        await events.emit_all(items, also=entries)
    return len(claimed), len(rows)


async def _start_processes(cases: list[dict[str, Any]]) -> None:
    """Each new case's run of its dunning process, in the transaction that opened it."""
    if not cases:
        return
    from tessera.entities.tables import Party

    from tessera_receivables import dunning

    party_ids = [c["party_id"] for c in cases]
    parties = {
        p["id"]: p
        for p in await Party.select(Party.id, Party.name, Party.owner_id, Party.custom)
        .where(Party.id.is_in(party_ids))
        .output(load_json=True)
    }
    profiles = {
        p["party_id"]: p
        for p in await PartyProfile.select()
        .where(PartyProfile.party_id.is_in(party_ids))
        .output(load_json=True)
    }
    for case in cases:
        party = parties.get(case["party_id"])
        if party is not None:
            prof = profiles.get(case["party_id"]) or {"reliability": dunning.DEFAULT_RELIABILITY}
            await dunning.start_process(case, party, prof)


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
