"""Receivables benchmark: ageing and the overdue scan over many invoices.

    .venv/bin/python bench/receivables.py --size 20000                    # SQLite in a temp dir
    .venv/bin/python bench/receivables.py --size 1000000 --pg postgresql://postgres@127.0.0.1:5432/test

Invoices are bulk-inserted straight into ``receivables_invoice`` (1,000 clients of 10
managers, due days spread over the last year and the next two months, a tenth partly paid,
two currencies), as ``services`` would have stored them (on PostgreSQL by ``generate_series``,
100,000 rows per statement). Printed, each as the median of 5 runs
after a warm-up, next to the raw SQL it is built on:

* ``ageing (company)``: ``ageing.ageing`` as of today for a user who sees everything, grouped
  by bucket and currency; raw SQL: the same ``GROUP BY`` over ``receivables_invoice`` alone
  (no visibility, no payments after the day, no labels);
* ``ageing (own scope)``: per client, for one manager (a tenth of the clients);
* ``overdue scan (first)``: marking every overdue invoice once, with its audit entry and event,
  and opening one case per client (run once); ``overdue scan (idle)``: the next runs, which
  find nothing; raw SQL: the candidate ``SELECT``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
TODAY = NOW.date()
BATCH = 1000
CLIENTS = 1000
MANAGERS = 10


async def measure(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    await fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def seed(size: int, parties: list[int]) -> None:
    from tessera_receivables.tables import Invoice

    rnd = random.Random(1)
    for start in range(0, size, BATCH):
        rows = []
        for i in range(start, min(size, start + BATCH)):
            due = TODAY + timedelta(days=rnd.randint(-365, 60))
            amount = Decimal(rnd.randint(1_000, 500_000)) / 100
            balance = amount if rnd.random() > 0.1 else (amount / 2).quantize(Decimal("0.01"))
            rows.append(
                Invoice(
                    party_id=parties[i % len(parties)],
                    number=f"B-{i + 1:07d}",
                    issue_date=due - timedelta(days=14),
                    due_date=due,
                    currency="RUB" if i % 7 else "EUR",
                    amount=amount,
                    balance=balance,
                    status="open",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        await Invoice.insert(*rows)


async def seed_pg(size: int, parties: list[int]) -> None:
    """The same shape of data in set-based SQL (``generate_series``), 100,000 rows per
    statement: a million invoices through the ORM takes most of an hour on a busy machine.
    Due days, amounts and the partly paid tenth come from fixed multiplicative hashes of the
    row number instead of ``random``."""
    from tessera import db

    assert parties == list(range(parties[0], parties[0] + len(parties))), "client ids are contiguous"
    today = TODAY.isoformat()
    for start in range(1, size + 1, 100_000):
        end = min(size, start + 99_999)
        await db.raw(
            "INSERT INTO receivables_invoice (party_id, number, issue_date, due_date, currency, amount, "
            "balance, status, overdue_at, external_id, source, deal_id, notes, created_by, created_at, "
            "updated_at, version) "
            f"SELECT {parties[0]} + (g - 1) % {len(parties)}, 'B-' || lpad(g::text, 7, '0'), x.due - 14, "
            "x.due, CASE WHEN (g - 1) % 7 = 0 THEN 'EUR' ELSE 'RUB' END, x.amount, "
            "CASE WHEN g % 10 = 3 THEN round(x.amount / 2, 2) ELSE x.amount END, 'open', NULL, '', 'api', "
            "NULL, '', NULL, {}, {}, 1 "
            f"FROM generate_series({start}::bigint, {end}) g CROSS JOIN LATERAL (SELECT "
            f"DATE '{today}' + ((g * 7919) % 426 - 365)::int AS due, "
            "(((g * 104729) % 499001) + 1000) / 100.0 AS amount) x",
            NOW,
            NOW,
        )


async def main(args: argparse.Namespace) -> int:
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, service
    from tessera.permissions import build_principal, ensure_default_roles

    scratch = tempfile.mkdtemp(prefix="tessera-bench-receivables-")
    name = f"bench_receivables_{args.size}"
    if args.pg:
        url = db.database_url_for(args.pg, name)
        await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await db.execute_on_server(args.pg, f'CREATE DATABASE "{name}"')
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(database_url=url, data_dir=Path(scratch) / "data", plugins=("receivables",))
    boot(settings)
    await db.start()
    clock.set_clock(clock.FrozenClock(NOW))
    try:
        from tessera.entities.tables import Party
        from tessera_receivables import ageing, jobs

        await migrations.migrate()
        await ensure_default_roles()
        system = system_principal()
        team = await service.create(admin.TEAM, system, {"name": "Sales"})
        managers = []
        for i in range(MANAGERS):
            row = await service.create(
                admin.USER,
                system,
                {"email": f"m{i}@bench.example", "name": f"Manager {i}", "roles": ["head"], "team_id": None},
            )
            managers.append(row["id"])
        await Party.insert(
            *(
                Party(
                    name=f"Client {i}",
                    owner_id=managers[i % MANAGERS],
                    team_id=team["id"],
                    relations=[],
                    tags=[],
                )
                for i in range(CLIENTS)
            )
        )
        parties = [r["id"] for r in await Party.select(Party.id).order_by(Party.id)]
        started = time.perf_counter()
        await (seed_pg if args.pg else seed)(args.size, parties)
        await db.raw("ANALYZE")
        print(
            f"Receivables benchmark on {backend}: {args.size:,} invoices "
            f"seeded in {time.perf_counter() - started:.1f}s"
        )

        days = ageing.days_sql(TODAY, "i.due_date")
        raw_sql = (
            f"SELECT i.currency, {ageing.bucket_sql(days, ageing.DEFAULT_LIMITS)} AS bucket, "
            f"SUM({ageing.cents_sql('i.balance')}) FROM receivables_invoice i WHERE i.balance > 0 "
            f"GROUP BY i.currency, {ageing.bucket_sql(days, ageing.DEFAULT_LIMITS)}"
        )
        company = await measure(lambda: ageing.ageing(system, TODAY, "company"))
        raw = await measure(lambda: db.raw(raw_sql))
        print(
            f"  ageing (company)         {company * 1000:8.1f} ms   raw SQL {raw * 1000:8.1f} ms   "
            f"ratio {company / raw:.2f}"
        )
        own = await build_principal(managers[0])
        own = own.__class__(
            **{**own.__dict__, "scope": "own", "user_ids": frozenset({managers[0]}), "team_ids": frozenset()}
        )
        mine = await measure(lambda: ageing.ageing(own, TODAY, "client"))
        print(f"  ageing (own scope)       {mine * 1000:8.1f} ms   ({CLIENTS // MANAGERS} clients)")

        candidate = (
            "SELECT id FROM receivables_invoice WHERE balance > 0 AND status = 'open' "
            f"AND overdue_at IS NULL AND due_date < {ageing.day_sql(TODAY)}"
        )
        started = time.perf_counter()
        counts = await jobs.overdue_scan(NOW)
        first = time.perf_counter() - started
        print(
            f"  overdue scan (first)     {first * 1000:8.1f} ms   marked {counts['overdue']:,}, "
            f"cases {counts['cases_opened']:,}"
        )
        idle = await measure(lambda: jobs.overdue_scan(NOW))
        raw = await measure(lambda: db.raw(candidate))
        print(f"  overdue scan (idle)      {idle * 1000:8.1f} ms   raw SQL {raw * 1000:8.1f} ms")
    finally:
        clock.set_clock(None)
        await db.stop()
        if args.pg:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", type=int, default=20_000, help="invoices (default 20000; 1000000 for the target)"
    )
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL; database bench_receivables_<size>")
    sys.exit(asyncio.run(main(parser.parse_args())))
