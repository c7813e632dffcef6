"""Sales benchmark: funnel report and forecast over many deals.

    flock /tmp/tessera-bench.lock .venv/bin/python bench/sales.py --size 1000000 \\
        --pg postgresql://postgres@127.0.0.1:5432/test --keep
    .venv/bin/python bench/sales.py --size 200000                 # SQLite in a temp dir

With ``--pg`` the deals go into the database ``bench_sales_<size>`` on that server (dropped
afterwards unless ``--keep``; a kept, fully seeded database is reused by the next run). Deals,
their stage stays and the report summary are bulk-loaded (PostgreSQL ``COPY``, SQLite
``executemany``) straight into ``sales_deal``, ``sales_stage_visit`` and ``sales_stat``; the
summary rows are computed with the plugin's own ``stats.contributions`` so they are what the
plugin's write paths would have maintained (workflow instances are not created: no report
reads them). The data: deals opened over the past year across 10 managers in 2 teams, each gone
through 1-5 stages of the B2B pipeline; most deals older than three months are closed (won or
lost with a reason), younger ones mostly open; 80 % RUB, 15 % USD, 5 % EUR, with monthly rates.

Each report is run 5 times after a warm-up; the median is printed next to baselines measured in
the same run on the same rows: the bare aggregate a report would need without the summary
(``GROUP BY`` over the raw stays and deals), without visibility, names or grouping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
STAGES = [("qualification", 3, 10), ("needs", 5, 25), ("proposal", 7, 50), ("negotiation", 10, 75)]
CHUNK = 20_000  # deals generated and written per batch
DEAL_COLUMNS = [
    "id",
    "title",
    "party_id",
    "contact_id",
    "owner_id",
    "team_id",
    "amount",
    "currency",
    "expected_close",
    "source",
    "campaign_id",
    "pipeline",
    "instance_id",
    "stage",
    "stage_entered_at",
    "stage_due_at",
    "probability",
    "status",
    "loss_reason_id",
    "loss_comment",
    "closed_at",
    "custom",
    "created_at",
    "updated_at",
    "version",
]
VISIT_COLUMNS = [
    "deal_id",
    "pipeline",
    "stage",
    "seq",
    "entered_at",
    "left_at",
    "seconds",
    "norm_seconds",
    "owner_id",
    "team_id",
]
RATES = {"USD": Decimal("90.000000"), "EUR": Decimal("98.000000")}


def generate(
    size: int, users: list[int], team_of: dict[int, int], party_id: int, reason_id: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[Any, Any]]]:
    """Batches of (deal rows, stay rows, summary contributions)."""
    from tessera_sales import stats

    rnd = random.Random(7)
    deals: list[tuple[Any, ...]] = []
    visits: list[tuple[Any, ...]] = []
    summary: dict[Any, Any] = {}
    for i in range(size):
        deal_id = i + 1
        owner = users[i % len(users)]
        team = team_of[owner]
        opened = NOW - timedelta(days=rnd.uniform(0, 365))
        depth = rnd.choices([1, 2, 3, 4, 5], weights=[25, 20, 20, 15, 20])[0]
        at = opened
        stays = []
        for stage, norm, _ in STAGES[: min(depth, 4)]:
            spent = timedelta(days=rnd.uniform(0.2, norm * 1.5))
            stays.append((stage, at, norm, spent))
            at = at + spent
        old = (NOW - opened).days > 90
        status, stage, closed_at = "open", stays[-1][0], None
        if at < NOW:
            if depth == 5:
                status, stage, closed_at = "won", "won", at
            elif rnd.random() < (0.9 if old else 0.25):
                status, stage, closed_at = "lost", "lost", at
        prob = {"won": 100, "lost": 0, **{s: p for s, _, p in STAGES}}[stage]
        last_entered = stays[-1][1] if status == "open" else at
        currency = rnd.choices(["RUB", "USD", "EUR"], weights=[80, 15, 5])[0]
        amount = (
            Decimal(rnd.randint(10, 5000) * 1000) if currency == "RUB" else Decimal(rnd.randint(1, 500) * 100)
        )
        due = last_entered + timedelta(days=dict((s, n) for s, n, _ in STAGES).get(stage, 0))
        row = {
            "id": deal_id,
            "title": f"Deal {deal_id}",
            "party_id": party_id,
            "contact_id": None,
            "owner_id": owner,
            "team_id": team,
            "amount": amount,
            "currency": currency,
            "expected_close": (opened + timedelta(days=rnd.randint(20, 120))).date(),
            "source": "web",
            "campaign_id": None,
            "pipeline": "sales.b2b",
            "instance_id": None,
            "stage": stage,
            "stage_entered_at": last_entered,
            "stage_due_at": due if status == "open" else None,
            "probability": prob,
            "status": status,
            "loss_reason_id": reason_id if status == "lost" else None,
            "loss_comment": "",
            "closed_at": closed_at,
            "custom": "{}",
            "created_at": opened,
            "updated_at": opened,
            "version": 1,
        }
        deals.append(tuple(row[c] for c in DEAL_COLUMNS))
        deal_visits = []
        for n, (name, entered, norm, spent) in enumerate(stays):
            running = status == "open" and n == len(stays) - 1
            deal_visits.append(
                {
                    "stage": name,
                    "seq": n + 1,
                    "entered_at": entered,
                    "left_at": None if running else entered + spent,
                    "seconds": None if running else int(spent.total_seconds()),
                    "norm_seconds": norm * 86400,
                }
            )
        if status != "open":
            deal_visits.append(
                {
                    "stage": status,
                    "seq": len(stays) + 1,
                    "entered_at": at,
                    "left_at": None,
                    "seconds": None,
                    "norm_seconds": None,
                }
            )
        for v in deal_visits:
            visits.append(
                (
                    deal_id,
                    "sales.b2b",
                    v["stage"],
                    v["seq"],
                    v["entered_at"],
                    v["left_at"],
                    v["seconds"],
                    v["norm_seconds"],
                    owner,
                    team,
                )
            )
        stats.add_into(summary, stats.contributions(row, deal_visits))
        if len(deals) >= CHUNK:
            yield deals, visits, summary
            deals, visits, summary = [], [], {}
    if deals:
        yield deals, visits, summary


async def seed(
    url: str, size: int, users: list[int], team_of: dict[int, int], party: int, reason: int
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from tessera import db
    from tessera_sales import stats

    summary: dict[Any, Any] = {}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns) as progress:
        task = progress.add_task("deals", total=size)
        if db.is_postgres():
            import asyncpg

            conn = await asyncpg.connect(url)
            try:
                for deals, visits, part in generate(size, users, team_of, party, reason):
                    await conn.copy_records_to_table("sales_deal", records=deals, columns=DEAL_COLUMNS)
                    await conn.copy_records_to_table(
                        "sales_stage_visit", records=visits, columns=VISIT_COLUMNS
                    )
                    stats.add_into(summary, part)
                    progress.update(task, advance=len(deals))
            finally:
                await conn.close()
        else:
            import sqlite3

            import piccolo.engine.sqlite  # noqa: F401  (registers the adapters Piccolo stores values with)

            conn = sqlite3.connect(url[len("sqlite:///") :])
            deal_sql = (
                f"INSERT INTO sales_deal ({', '.join(DEAL_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(DEAL_COLUMNS))})"
            )
            visit_sql = (
                f"INSERT INTO sales_stage_visit ({', '.join(VISIT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(VISIT_COLUMNS))})"
            )
            try:
                for deals, visits, part in generate(size, users, team_of, party, reason):
                    with conn:
                        conn.executemany(deal_sql, deals)
                        conn.executemany(visit_sql, visits)
                    stats.add_into(summary, part)
                    progress.update(task, advance=len(deals))
            finally:
                conn.close()
    async with db.transaction():
        await stats.apply(summary)


async def measure(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> tuple[float, float]:
    """(first run, median of ``runs`` more) in seconds."""
    started = time.perf_counter()
    await fn()
    first = time.perf_counter() - started
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return first, statistics.median(times)


async def main(args: argparse.Namespace) -> None:
    from tessera import clock, db
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.permissions import build_principal

    scratch = tempfile.mkdtemp(prefix="tessera-bench-")
    pg_name = None
    reuse = False
    if args.pg:
        pg_name = f"bench_sales_{args.size}"
        url = db.database_url_for(args.pg, pg_name)
        try:
            await db.execute_on_server(args.pg, f'CREATE DATABASE "{pg_name}"')
        except Exception:  # exists: reuse it when a previous --keep run seeded it fully
            reuse = True
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(database_url=url, data_dir=Path(scratch) / "data", plugins=("sales",))
    boot(settings)
    await db.start()
    clock.set_clock(clock.FrozenClock(NOW))
    try:
        from tessera_sales import rates, reports, services
        from tessera_sales.tables import Deal, ExchangeRate, LossReason

        if reuse and await Deal.table_exists() and await Deal.count() == args.size:
            print(f"Sales benchmark on {backend}: reusing {pg_name} with {args.size:,} deals")
            head = (await db.raw("SELECT id FROM crm_user WHERE email = 'm0@bench.example'"))[0]["id"]
            if args.rebuild:
                from tessera_sales import stats

                started = time.perf_counter()
                summary_rows = await stats.rebuild()
                await db.raw("VACUUM ANALYZE sales_stat")
                print(
                    f"  summary rebuilt from the deals in {time.perf_counter() - started:.1f}s "
                    f"({summary_rows:,} rows; what the migration does on an existing database)"
                )
        else:
            if reuse:
                await db.stop()
                await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
                await db.execute_on_server(args.pg, f'CREATE DATABASE "{pg_name}"')
                await db.start()
            head = await prepare(args, url)
        system = system_principal()
        await services.pipeline("sales.b2b")
        head_principal = await build_principal(head)
        period = {"date_from": date(2025, 3, 1), "date_to": date(2026, 3, 31)}
        forecast_period = {"date_from": date(2026, 3, 1), "date_to": date(2026, 8, 31)}
        start = datetime(2025, 3, 1, tzinfo=UTC)
        end = datetime(2026, 4, 1, tzinfo=UTC)
        counts = await db.raw(
            "SELECT (SELECT COUNT(*) FROM sales_deal) AS deals, "
            "(SELECT COUNT(*) FROM sales_stage_visit) AS stays, "
            "(SELECT COUNT(*) FROM sales_stat) AS summary, "
            "(SELECT COUNT(*) FROM sales_deal WHERE status = 'open') AS open"
        )
        c = counts[0]
        print(
            f"  {int(c['deals']):,} deals ({int(c['open']):,} open), {int(c['stays']):,} stage stays, "
            f"{int(c['summary']):,} summary rows; base currency {await rates.base_currency()}"
        )
        rows: list[tuple[str, tuple[float, float]]] = []
        rows.append(
            ("funnel report, whole company (admin)", await measure(lambda: reports.funnel(system, **period)))
        )
        rows.append(
            (
                "funnel report, one team by manager (head)",
                await measure(lambda: reports.funnel(head_principal, **period, group_by="owner")),
            )
        )
        base_funnel = await measure(
            lambda: db.raw(
                "SELECT v.stage, COUNT(*) FROM sales_stage_visit v JOIN sales_deal d ON d.id = v.deal_id "
                "WHERE d.pipeline = 'sales.b2b' AND d.created_at >= {} AND d.created_at < {} "
                "GROUP BY v.stage",
                start,
                end,
            )
        )
        rows.append(("  baseline: bare COUNT per stage over the raw stays (join)", base_funnel))
        base_group = await measure(
            lambda: db.raw("SELECT stage, COUNT(*) FROM sales_stage_visit GROUP BY stage")
        )
        rows.append(("  baseline: bare GROUP BY stage of the stays, no join", base_group))
        rows.append(
            (
                "forecast (weighted + historical), whole company",
                await measure(lambda: reports.forecast(system, **forecast_period)),
            )
        )
        rows.append(
            (
                "forecast, one team (head)",
                await measure(lambda: reports.forecast(head_principal, **forecast_period)),
            )
        )
        base_f = await measure(
            lambda: db.raw(
                "SELECT currency, SUM(amount * probability) FROM sales_deal WHERE status = 'open' "
                "GROUP BY currency"
            )
        )
        rows.append(("  baseline: bare SUM(amount*probability) of open deals", base_f))
        base_h = await measure(
            lambda: db.raw(
                "SELECT v.stage, COUNT(*) FROM sales_stage_visit v JOIN sales_deal d ON d.id = v.deal_id "
                "WHERE d.status IN ('won', 'lost') GROUP BY v.stage"
            )
        )
        rows.append(("  baseline: bare closed-deal stage counts (historical)", base_h))
        rows.append(
            ("stuck deals (first 1000 of the company's)", await measure(lambda: reports.stuck_deals(system)))
        )
        print()
        print(f"  {'measure':60} {'first ms':>9} {'median ms':>10}")
        for label, (first, median) in rows:
            print(f"  {label:60} {first * 1000:9.1f} {median * 1000:10.1f}")
        funnel_s, forecast_s = rows[0][1][1], rows[4][1][1]
        print(
            f"  ratio funnel/bare join baseline: {funnel_s / base_funnel[1]:.2f}; "
            f"forecast/bare baselines: {forecast_s / (base_f[1] + base_h[1]):.2f}"
        )
        if args.explain and db.is_postgres():
            for label, sql, params in explain_queries(start, end):
                plan = await db.raw("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)
                print(f"\n  EXPLAIN ANALYZE {label}:")
                for line in plan:
                    print("    " + next(iter(line.values())))
        _ = (ExchangeRate, LossReason)
    finally:
        clock.set_clock(None)
        await db.stop()
        if pg_name and not args.keep:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)  # the SQLite file and data dir


def explain_queries(start: datetime, end: datetime) -> list[tuple[str, str, list[Any]]]:
    return [
        (
            "funnel stays (summary)",
            "SELECT d.stage, SUM(d.n), SUM(d.seconds), SUM(d.n2), SUM(d.n3) FROM sales_stat d "
            "WHERE d.kind = 'stage' "
            "AND d.pipeline = 'sales.b2b' AND d.day >= {} AND d.day <= {} GROUP BY d.stage",
            [start.date(), end.date()],
        ),
        (
            "funnel stuck (open deals)",
            "SELECT d.stage, COUNT(*) FROM sales_deal d WHERE d.status = 'open' AND d.pipeline = 'sales.b2b' "
            "AND d.stage_due_at < {} AND d.created_at >= {} AND d.created_at < {} GROUP BY d.stage",
            [NOW, start, end],
        ),
        (
            "forecast weighted (summary)",
            "SELECT d.currency, d.day, SUM(d.amount) FROM sales_stat d WHERE d.kind = 'open_close' "
            "AND d.day >= {} AND d.day < {} AND d.pipeline = 'sales.b2b' GROUP BY d.currency, d.day",
            [date(2026, 3, 1), date(2026, 9, 1)],
        ),
        (
            "forecast by stage (summary)",
            "SELECT d.stage, d.currency, d.day, SUM(d.amount) FROM sales_stat d "
            "WHERE d.kind = 'open_stage' AND d.pipeline = 'sales.b2b' GROUP BY d.stage, d.currency, d.day",
            [],
        ),
        (
            "forecast history (summary)",
            "SELECT d.stage, SUM(d.n), SUM(d.n2), SUM(d.seconds) FROM sales_stat d "
            "WHERE d.kind = 'history' AND d.pipeline = 'sales.b2b' GROUP BY d.stage",
            [],
        ),
    ]


async def prepare(args: argparse.Namespace, url: str) -> int:
    """Migrate, create users, a client, rates; bulk-load the deals. Returns the head's id."""
    from tessera import db, migrations
    from tessera.demo import system_principal
    from tessera.entities import admin, parties, service
    from tessera.permissions import ensure_default_roles
    from tessera_sales import services
    from tessera_sales.tables import ExchangeRate, LossReason

    await migrations.migrate()
    await ensure_default_roles()
    await services.pipeline("sales.b2b")  # publishes the shipped pipelines
    await services.ensure_loss_reasons()
    system = system_principal()
    teams = [await service.create(admin.TEAM, system, {"name": f"Team {t}"}) for t in range(2)]
    users: list[int] = []
    team_of: dict[int, int] = {}
    for i in range(11):
        team = teams[i % 2]["id"]
        row = await service.create(
            admin.USER,
            system,
            {
                "email": f"m{i}@bench.example",
                "name": f"Manager {i}",
                "password": "bench-password-1",
                "roles": ["head" if i == 0 else "manager"],
                "team_id": team,
            },
        )
        users.append(row["id"])
        team_of[row["id"]] = team
    party = await service.create(parties.PARTY, system, {"name": "Bench client", "owner_id": users[1]})
    reason = await LossReason.select(LossReason.id).first()
    assert reason is not None
    day = date(2025, 1, 1)
    rate_rows = []
    while day <= date(2026, 12, 1):
        for currency, rate in RATES.items():
            rate_rows.append(
                ExchangeRate(base="RUB", currency=currency, valid_from=day, rate=rate + day.month)
            )
        day = (day + timedelta(days=32)).replace(day=1)
    await ExchangeRate.insert(*rate_rows)
    backend = "PostgreSQL" if db.is_postgres() else "SQLite"
    print(f"Sales benchmark on {backend}: {args.size:,} deals, 10 managers")
    started = time.perf_counter()
    await seed(url, args.size, users[1:], team_of, party["id"], reason["id"])
    if db.is_postgres():
        await db.raw("SELECT setval(pg_get_serial_sequence('sales_deal', 'id'), {})", args.size)
        await db.raw("VACUUM ANALYZE sales_deal")
        await db.raw("VACUUM ANALYZE sales_stage_visit")
        await db.raw("VACUUM ANALYZE sales_stat")
    else:
        await db.raw("ANALYZE")
    print(f"  seeded in {time.perf_counter() - started:.1f}s (bulk insert + indexes + analyze)")
    _ = json
    return users[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000, help="deals (default 100000)")
    parser.add_argument(
        "--pg", default=None, help="PostgreSQL server URL; the database bench_sales_<size> is used"
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database for the next run")
    parser.add_argument(
        "--rebuild", action="store_true", help="with a reused database: rebuild the summary first (timed)"
    )
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the report queries")
    sys.exit(asyncio.run(main(parser.parse_args())))
