"""Report benchmark: a group-by report over many activities by manager and month, next to the
raw SQL it is built on, and the KPI panel for every manager.

    .venv/bin/python bench/reports.py                          # 200,000 activities, SQLite
    .venv/bin/python bench/reports.py --size 5000000 --pg postgresql://postgres@127.0.0.1:5432/test

Activities are seeded with one set-based ``INSERT ... SELECT`` (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL) spread over a year, ``--managers`` managers and four types;
the summary triggers are lifted for the seed and the summary is then rebuilt by
``tessera.reports.summary.rebuild`` (timed: it is the nightly job), then the triggers are put
back. Printed (median of 3 runs after a warm-up; the full scans once when above 1,000,000):

* ``activities by manager x month``: ``tessera.reports.run_report`` for an administrator —
  read from the activity summary — next to the same report over the activities
  (``use_summary=False``) and the raw ``GROUP BY`` of each; for a team head (visibility in the
  SQL: the activities);
* ``kpi panel``: ``tessera.reports.kpis.panel`` for the company and for every manager.
* sizes: the database, the activities and the summary rows.
Targets from issue 21: < 2 s on PostgreSQL and < 5 s on SQLite at 5,000,000 activities.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")

START = datetime(2025, 3, 1, tzinfo=UTC)
MINUTES = 365 * 24 * 60


async def measure(fn: Callable[[], Awaitable[Any]], runs: int = 3, warm: bool = True) -> float:
    if warm:
        await fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def seed(
    size: int, first_manager: int, managers: int, first_team: int, teams: int, party_id: int
) -> None:
    """``size`` activities in one statement: activity ``i`` has manager ``i*2654435761 mod
    managers`` (the manager's team), type ``(i div 7) mod 4``, a minute of the year ``i*40503 mod
    525600``, done, 15 minutes."""
    from tessera import db

    k = f"((i * 2654435761) % {managers})"
    kind = "CASE (i / 7) % 4 WHEN 0 THEN 'call' WHEN 1 THEN 'meeting' WHEN 2 THEN 'email' ELSE 'letter' END"
    minute = f"((i * 40503) % {MINUTES})"
    columns = (
        "type, status, subject, party_id, owner_id, team_id, starts_at, duration_minutes, custom, "
        "direction, outcome, agreements, description, created_at, updated_at, version"
    )
    if db.is_postgres():
        when = f"(TIMESTAMPTZ '2025-03-01 00:00:00+00' + make_interval(mins => {minute}::int))"
        source = f"generate_series(1::bigint, {size}) AS s(i)"
        prefix = ""
    else:
        when = f"(datetime('2025-03-01 00:00:00', '+' || {minute} || ' minutes') || '+00:00')"
        source = "n"
        prefix = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {size}) "
    sql = (
        f"{prefix}INSERT INTO activity ({columns}) SELECT {kind}, 'done', 'Bench', {party_id}, "
        f"{first_manager} + {k}, {first_team} + ({k} % {teams}), {when}, 15, '{{{{}}}}', '', '', '', '', "
        f"{when}, {when}, 1 FROM {source}"
    )
    await db.raw(sql)


async def main(args: argparse.Namespace) -> int:
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, parties, service
    from tessera.permissions import build_principal, ensure_default_roles
    from tessera.reports import catalog, framework, kpis, summary

    scratch = tempfile.mkdtemp(prefix="tessera-bench-reports-")
    name = f"bench_reports_{args.size}"
    if args.pg:
        url = db.database_url_for(args.pg, name)
        await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await db.execute_on_server(args.pg, f'CREATE DATABASE "{name}"')
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(database_url=url, data_dir=Path(scratch) / "data", plugins=(), secure_cookies=False)
    pm = boot(settings)
    await db.start()
    clock.set_clock(clock.FrozenClock(START + timedelta(days=366)))
    try:
        await migrations.migrate()
        await ensure_default_roles()
        system = system_principal()
        teams = [(await service.create(admin.TEAM, system, {"name": f"Team {i}"}))["id"] for i in range(10)]
        managers, team_of = [], {}
        head = None
        for i in range(args.managers):
            team = teams[i % len(teams)]
            row = await service.create(
                admin.USER,
                system,
                {
                    "email": f"m{i}@bench.example",
                    "name": f"Manager {i:03d}",
                    "roles": ["manager"],
                    "team_id": team,
                },
            )
            managers.append(row["id"])
            team_of[row["id"]] = team
        head = await service.create(
            admin.USER,
            system,
            {"email": "head@bench.example", "name": "Head", "roles": ["head"], "team_id": teams[0]},
        )
        party = await service.create(parties.PARTY, system, {"name": "Bench client", "owner_id": managers[0]})
        assert managers == list(range(managers[0], managers[0] + len(managers)))
        assert teams == list(range(teams[0], teams[0] + len(teams)))
        assert all(team_of[m] == teams[(m - managers[0]) % len(teams)] for m in managers)
        postgres = db.is_postgres()
        started = time.perf_counter()
        for statement in summary.uninstall_sql(postgres):
            await db.raw(statement)
        await seed(args.size, managers[0], len(managers), teams[0], len(teams), party["id"])
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        summary_rows = await summary.rebuild()
        rebuilt = time.perf_counter() - started
        for statement in summary.install_sql(postgres):
            await db.raw(statement)
        await db.raw("ANALYZE")
        print(
            f"Report benchmark on {backend}: {args.size:,} activities, {len(managers)} managers; "
            f"seeded in {seeded:.1f}s, summary rebuilt in {rebuilt:.1f}s ({summary_rows:,} rows)"
        )
        big = args.size > 1_000_000
        full_runs = {"runs": 1, "warm": False} if big else {}
        report = catalog.registry(pm)["activities"]
        figures = ["activities", "done", "minutes", "done_share"]
        params = {"group_by": ["owner", "period"], "period": "month", "measures": figures}
        head_principal = await build_principal(head["id"])
        month = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM')" if postgres else "strftime('%Y-%m', {})"
        raw_sql = (
            f"SELECT owner_id, {month.format('starts_at')} AS m, COUNT(*) FROM activity "
            f"GROUP BY owner_id, {month.format('starts_at')}"
        )
        raw_summary_sql = (
            f"SELECT owner_id, {month.format('day')} AS m, SUM(n) FROM activity_summary "
            f"GROUP BY owner_id, {month.format('day')}"
        )
        ours = await measure(lambda: framework.run_report(report, system, params))
        raw_summary = await measure(lambda: db.raw(raw_summary_sql))
        full = await measure(
            lambda: framework.run_report(report, system, params, use_summary=False), **full_runs
        )
        raw = await measure(lambda: db.raw(raw_sql), **full_runs)
        scoped = await measure(lambda: framework.run_report(report, head_principal, params), **full_runs)
        result = await framework.run_report(report, system, params)
        same = result == await framework.run_report(report, system, params, use_summary=False)
        total = result["totals"]["activities"]
        print(
            f"  activities by manager x month (all, summary)     {ours * 1000:9.1f} ms   "
            f"raw SQL on the summary {raw_summary * 1000:9.1f} ms   rows {len(result['rows']):,}   "
            f"total {total:,}   equal to the full report: {same}"
        )
        print(
            f"  activities by manager x month (all, activities)  {full * 1000:9.1f} ms   "
            f"raw SQL on the activities {raw * 1000:9.1f} ms   ratio {full / raw if raw else 0:.2f}"
        )
        print(f"  activities by manager x month (team head)        {scoped * 1000:9.1f} ms")
        await kpis.create(
            pm,
            system,
            {
                "name": "Calls",
                "report_key": "activities",
                "measure": "activities",
                "params": {"filters": {"type": "call"}},
            },
        )
        period = (START + timedelta(days=200)).strftime("%Y-%m")
        panel = await measure(lambda: kpis.panel(pm, system, period=period, history=6), runs=1)

        async def every_manager() -> None:
            for m in managers:
                await kpis.panel(pm, system, period=period, user_id=m, history=6)

        per_person = await measure(every_manager, runs=1, warm=False)
        print(f"  kpi panel (company, 6 months)                    {panel * 1000:9.1f} ms")
        print(
            f"  kpi panel x {len(managers)} managers (6 months each)       {per_person * 1000:9.1f} ms   "
            f"({per_person / len(managers) * 1000:.1f} ms a manager)"
        )
        if postgres:
            size = (await db.raw("SELECT pg_database_size(current_database()) AS n"))[0]["n"]
        else:
            size = os.path.getsize(url.removeprefix("sqlite:///"))  # noqa: ASYNC240 (once, after timing)
        print(
            f"  sizes: database {size / 2**20:,.0f} MiB, {args.size:,} activities, "
            f"{summary_rows:,} summary rows"
        )
        target = 2.0 if args.pg else 5.0
        verdict = "PASS" if ours < target else "FAIL"
        if args.size < 5_000_000:
            verdict = f"not judged (size {args.size:,} < 5,000,000)"
        print(f"  target < {target:.0f} s at 5,000,000 activities: {verdict}")
    finally:
        clock.set_clock(None)
        await db.stop()
        if args.pg:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)  # a 5,000,000 SQLite file is a gigabyte
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200_000, help="activities (default 200000)")
    parser.add_argument("--managers", type=int, default=200, help="managers (default 200)")
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL; database bench_reports_<size>")
    sys.exit(asyncio.run(main(parser.parse_args())))
