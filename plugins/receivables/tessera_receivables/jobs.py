"""The overdue scan (``receivables.overdue_scan``) and what the plugin takes from other
plugins' events (sales invoices, service tickets).

The scan marks each open invoice past its due date overdue once, set-based, a chunk at a time
(``BATCH``): one conditional ``UPDATE ... SET overdue_at = now WHERE id IN (the next
candidates) AND overdue_at IS NULL RETURNING ...`` claims the chunk, and in the same
transaction the chunk's audit entries (``audit.entries``: one entry built once for all ids)
and ``receivables.invoice.overdue`` events are written by the kernel's multi-row inserts
(``events`` writes them in as few statements as ``db.MAX_ARGS`` bound values allow), and the
chunk's clients get their collection cases from one multi-row insert that the unique index
"one open case per client" turns into a no-op for a client whose case another worker (or an
earlier run) opened. A second worker claiming the same candidates waits for the first's
commit and then finds ``overdue_at`` set: each invoice is marked, audited and announced once.
(A case's dunning process starts at the case's first dunning run, right after the scan in the
same job: starting a thousand processes inside the scan was most of a first scan's time.)
Running twice, or on two workers, changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import audit, clock, db, events
from tessera.scheduler import JobSpec

from tessera_receivables.tables import CollectionCase

#: The entity of ``receivables.invoice.overdue`` events (``entity_id`` is the invoice's id).
OVERDUE_ENTITY = "receivables.overdue"
#: Invoices claimed per transaction: on PostgreSQL larger chunks save round trips and commits;
#: on SQLite a chunk holds the database's one write lock, so it stays short.
BATCH = {"postgres": 5000, "sqlite": 1000}

_CLAIM = db.Statement(
    "UPDATE receivables_invoice SET overdue_at = {} WHERE id IN ("
    "SELECT id FROM receivables_invoice WHERE balance > 0 AND status = 'open' AND overdue_at IS NULL "
    "AND due_date < {} AND id > {} ORDER BY id LIMIT {}) AND overdue_at IS NULL "
    "RETURNING id, party_id, currency, balance, due_date"
)


async def overdue_scan(now: dt.datetime | None = None, batch: int | None = None) -> dict[str, int]:
    """One pass; returns how many invoices became overdue and how many cases were opened."""
    now = now or clock.now()
    batch = batch or BATCH["postgres" if db.is_postgres() else "sqlite"]
    counts = {"overdue": 0, "cases_opened": 0}
    last_id: int | None = 0
    while last_id is not None:
        marked, opened, last_id = await _claim(last_id, now, batch)
        counts["overdue"] += marked
        counts["cases_opened"] += opened
    return counts


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


async def _claim(after_id: int, now: dt.datetime, batch: int) -> tuple[int, int, int | None]:
    """Mark the next chunk of candidates (ids after ``after_id``) in one statement, with
    their events and audit entries and the clients' new cases; the last id claimed, or
    ``None`` when there was nothing left."""
    today = now.date()
    # A date argument as each engine compares it with the ``due_date`` column.
    today_arg = today if db.is_postgres() else today.isoformat()
    async with events.unit_of_work():
        # Another worker's claim of the same rows makes them drop out here (``overdue_at``).
        claimed = await _CLAIM.rows(now, today_arg, after_id, batch)
        if not claimed:
            return 0, 0, None
        claimed.sort(key=lambda r: r["id"])
        items: list[tuple[str, str, int | None, dict[str, Any] | None]] = []
        first_due: dict[int, dt.date] = {}
        for r in claimed:
            due = _date(r["due_date"])
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
                        "balance": str(Decimal(str(r["balance"])).quantize(Decimal("0.01"))),
                        "due_date": due.isoformat(),
                        "days_overdue": (today - due).days,
                    },
                )
            )
        entries: list[events.LogRow] = list(
            audit.entries(
                "overdue", "receivables.invoice", [r["id"] for r in claimed], {"overdue_at": [None, now]}
            )
        )
        # Clients with a case already (one query; the insert below stays guarded by the unique
        # index for a case another worker opens meanwhile).
        has_case = {
            r["party_id"]
            for r in await CollectionCase.select(CollectionCase.party_id).where(
                CollectionCase.party_id.is_in(list(first_due)), CollectionCase.status != "closed"
            )
        }
        # A new case counts from the client's oldest overdue invoice, which may be in another
        # chunk (chunks go by id, not by due day): one grouped query for the chunk's new clients.
        opening = [p for p in first_due if p not in has_case]
        for chunk in db.chunks(opening, 1, 5000):
            marks = ", ".join("{}" for _ in chunk)
            for r in await db.raw(
                f"SELECT party_id, MIN(due_date) AS due FROM receivables_invoice WHERE party_id IN ({marks}) "
                "AND balance > 0 AND status = 'open' AND due_date < {} GROUP BY party_id",
                *chunk,
                today_arg,
            ):
                first_due[r["party_id"]] = min(first_due[r["party_id"]], _date(r["due"]))
        new_cases = [
            CollectionCase(
                party_id=party_id,
                status="active",
                opened_at=now,
                overdue_since=first_due[party_id] + dt.timedelta(days=1),
                created_at=now,
                updated_at=now,
            )
            for party_id in opening
        ]
        # One statement for the chunk's clients.
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
    return len(claimed), len(rows), claimed[-1]["id"]


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
