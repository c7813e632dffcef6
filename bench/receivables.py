"""Receivables benchmark: ageing and the overdue scan over many invoices.

    .venv/bin/python bench/receivables.py --size 20000                    # SQLite in a temp dir
    .venv/bin/python bench/receivables.py --size 1000000 --pg postgresql://postgres@127.0.0.1:5432/postgres \
        --db bench_recv --keep                # seed once and keep the database
    .venv/bin/python bench/receivables.py --size 1000000 --pg postgresql://postgres@127.0.0.1:5432/postgres \
        --db bench_recv --keep --reuse --explain /tmp/plans.txt   # measure again on it

Invoices are bulk-inserted straight into ``receivables_invoice`` (1,000 clients of 10
managers, due days spread over the last year and the next two months, a tenth partly paid,
two currencies, none paid in full: the worst case for ageing), as ``services`` would have
stored them (on PostgreSQL by ``generate_series``, 100,000 rows per statement; then ``VACUUM
ANALYZE``, as autovacuum leaves a table that stopped changing). ``--reuse`` seeds nothing: it
says so with the day the database was seeded, counts the invoices afresh and undoes the
overdue scan's marks, cases, events and audit entries first. Printed, each as the median of 5
runs after a warm-up, with this process's CPU time and the load average, next to the raw SQL
it is built on:

* ``ageing (company)``: ``ageing.ageing`` as of today for a user who sees everything, grouped
  by bucket and currency; raw SQL (``ageing.raw_ageing_sql``): the same two-step ``GROUP BY``
  over ``receivables_invoice`` alone (no visibility, no check for later payments, no labels),
  with the same planner setting; also the earlier baseline (``ageing.naive_ageing_sql``: a
  bucket per invoice) and, on PostgreSQL, both raw statements' ``EXPLAIN ANALYZE`` times;
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


async def measure(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (the client side: the
    database server's CPU is not in it), of ``runs`` runs after a warm-up."""
    await fn()
    times, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        await fn()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(times), statistics.median(cpu)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


async def explain(sql: str, *args: Any) -> str:
    """The execution time PostgreSQL reports for one run (``EXPLAIN (ANALYZE, BUFFERS)``), and
    the plan's top node; the full plan goes to the file named by ``--explain``."""
    from tessera import db

    rows = await db.raw(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    lines = [r["QUERY PLAN"] for r in rows]
    if EXPLAIN_FILE:
        _append(EXPLAIN_FILE, sql + "\n" + "\n".join(lines) + "\n\n")
    took = next((line for line in lines if line.startswith("Execution Time")), "?")
    return took.replace("Execution Time: ", "").replace(" ms", "") + " ms"


EXPLAIN_FILE = ""


def _append(path: str, text: str) -> None:
    with Path(path).open("a") as out:
        out.write(text)


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

    global EXPLAIN_FILE
    EXPLAIN_FILE = args.explain or ""
    scratch = tempfile.mkdtemp(prefix="tessera-bench-receivables-")
    name = args.db or f"bench_receivables_{args.size}"
    if args.pg:
        url = db.database_url_for(args.pg, name)
        if not args.reuse:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await db.execute_on_server(args.pg, f'CREATE DATABASE "{name}"')
        else:
            import asyncpg

            try:
                await db.execute_on_server(args.pg, f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(database_url=url, data_dir=Path(scratch) / "data", plugins=("receivables",))
    boot(settings)
    await db.start()
    clock.set_clock(clock.FrozenClock(NOW))
    try:
        from tessera.entities.tables import CrmUser, Party

        await migrations.migrate()
        await ensure_default_roles()
        system = system_principal()
        managers = [
            r["id"]
            for r in await CrmUser.select(CrmUser.id)
            .where(CrmUser.email.like("m%@bench.example"))
            .order_by(CrmUser.id)
        ]
        seeded_note = ""
        if args.reuse and managers:
            # A database an earlier --keep run seeded: no seeding; the overdue scan's marks,
            # cases, events and audit entries are undone so that the first scan is a first
            # scan again (not timed), and the counts printed are counted now.
            comment = await db.raw(
                "SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database "
                "WHERE datname = current_database()"
            )
            seeded_note = f"REUSED, {comment[0]['c'] or 'seeded by an earlier run'}"
            started = time.perf_counter()
            await db.raw("UPDATE receivables_invoice SET overdue_at = NULL WHERE overdue_at IS NOT NULL")
            await db.raw("DELETE FROM receivables_case")
            await db.raw(
                "DELETE FROM domain_event WHERE name IN "
                "('receivables.invoice.overdue', 'receivables.case.opened')"
            )
            await db.raw(
                "DELETE FROM audit_log WHERE (entity = 'receivables.invoice' AND action = 'overdue') "
                "OR (entity = 'receivables.case' AND action = 'create')"
            )
            await db.raw("VACUUM ANALYZE")
            seeded_note += f"; scan state reset in {time.perf_counter() - started:.1f}s"
        else:
            team = await service.create(admin.TEAM, system, {"name": "Sales"})
            for i in range(MANAGERS):
                row = await service.create(
                    admin.USER,
                    system,
                    {
                        "email": f"m{i}@bench.example",
                        "name": f"Manager {i}",
                        "roles": ["head"],
                        "team_id": None,
                    },
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
        if not seeded_note:
            started = time.perf_counter()
            await (seed_pg if args.pg else seed)(args.size, parties)
            # As autovacuum leaves a table that stopped changing: statistics and the visibility
            # map (which lets an index-only scan skip the table) are up to date.
            await db.raw("VACUUM ANALYZE" if args.pg else "ANALYZE")
            seeded_note = f"seeded in {time.perf_counter() - started:.1f}s"
            if args.pg:
                stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
                await db.raw(f"COMMENT ON DATABASE \"{name}\" IS 'seeded {stamp} with {args.size} invoices'")
        count = (await db.raw("SELECT COUNT(*) AS n FROM receivables_invoice"))[0]["n"]
        print(
            f"Receivables benchmark on {backend}{f' (database {name})' if args.pg else ''}: "
            f"{count:,} invoices (counted now), {seeded_note}; {load()}"
        )
        await body(args, system, managers, build_principal)
    finally:
        clock.set_clock(None)
        await db.stop()
        if args.pg and not args.keep:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


async def body(args: argparse.Namespace, system: Any, managers: list[int], build_principal: Any) -> None:
    from tessera import db
    from tessera_receivables import ageing, jobs

    pg = db.is_postgres()
    raw_sql = ageing.raw_ageing_sql(TODAY)
    naive_sql = ageing.naive_ageing_sql(TODAY)

    async def raw_run(sql: str, explained: bool = False) -> Any:
        """The raw statement as the product runs it: on PostgreSQL in a transaction with the
        same planner setting (``ageing.INDEX_PAGE_COST``)."""
        if not pg:
            return await db.raw(sql)
        async with db.get_engine().transaction():
            await db.raw(f"SET LOCAL random_page_cost = {ageing.INDEX_PAGE_COST}")
            return await (explain(sql) if explained else db.raw(sql))

    company, company_cpu = await measure(lambda: ageing.ageing(system, TODAY, "company"))
    raw, raw_cpu = await measure(lambda: raw_run(raw_sql))
    naive, _naive_cpu = await measure(lambda: db.raw(naive_sql))
    print(
        f"  ageing (company)         {company * 1000:8.1f} ms (CPU {company_cpu * 1000:6.1f})   "
        f"raw SQL {raw * 1000:8.1f} ms (CPU {raw_cpu * 1000:6.1f})   ratio {company / raw:.2f}   "
        f"earlier raw SQL (per-invoice buckets) {naive * 1000:8.1f} ms; {load()}"
    )
    if pg:
        print(
            f"    EXPLAIN ANALYZE: raw SQL {await raw_run(raw_sql, True)}, "
            f"earlier raw SQL {await explain(naive_sql)}; {load()}"
        )
    own = await build_principal(managers[0])
    own = own.__class__(
        **{**own.__dict__, "scope": "own", "user_ids": frozenset({managers[0]}), "team_ids": frozenset()}
    )
    mine, mine_cpu = await measure(lambda: ageing.ageing(own, TODAY, "client"))
    print(
        f"  ageing (own scope)       {mine * 1000:8.1f} ms (CPU {mine_cpu * 1000:6.1f})   "
        f"({CLIENTS // MANAGERS} clients); {load()}"
    )
    if args.no_scan:
        return
    candidate = (
        "SELECT id FROM receivables_invoice WHERE balance > 0 AND status = 'open' "
        f"AND overdue_at IS NULL AND due_date < {ageing.day_sql(TODAY)}"
    )
    raw, raw_cpu = await measure(lambda: db.raw(candidate))
    started, started_cpu = time.perf_counter(), time.process_time()
    counts = await jobs.overdue_scan(NOW)
    first, first_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(
        f"  overdue scan (first)     {first * 1000:8.1f} ms (CPU {first_cpu * 1000:8.1f})   marked "
        f"{counts['overdue']:,}, cases {counts['cases_opened']:,}   raw candidate SELECT "
        f"{raw * 1000:8.1f} ms (CPU {raw_cpu * 1000:6.1f})   ratio {first / raw:.1f}; {load()}"
    )
    idle, idle_cpu = await measure(lambda: jobs.overdue_scan(NOW))
    raw, raw_cpu = await measure(lambda: db.raw(candidate))
    print(
        f"  overdue scan (idle)      {idle * 1000:8.1f} ms (CPU {idle_cpu * 1000:6.1f})   "
        f"raw SQL {raw * 1000:8.1f} ms (CPU {raw_cpu * 1000:6.1f}); {load()}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", type=int, default=20_000, help="invoices (default 20000; 1000000 for the target)"
    )
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL")
    parser.add_argument("--db", default=None, help="PostgreSQL database (default bench_receivables_<size>)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure on the database a --keep run left (no seeding; the scan's marks are undone first)",
    )
    parser.add_argument("--explain", default=None, help="append EXPLAIN (ANALYZE, BUFFERS) plans here")
    parser.add_argument("--no-scan", action="store_true", help="ageing only (no overdue scan)")
    sys.exit(asyncio.run(main(parser.parse_args())))
