"""Report benchmark: a group-by report over many activities by manager and month, next to the
raw SQL it is built on, and the KPI panel for many managers.

    .venv/bin/python bench/reports.py                          # 200,000 activities, SQLite
    .venv/bin/python bench/reports.py --size 5000000 --pg postgresql://postgres@127.0.0.1:5432/test

Activities are bulk-inserted straight into ``activity`` (spread over a year and ``--managers``
managers). Printed, each as the median of 3 runs after a warm-up:

* ``activities by manager x month``: ``tessera.reports.run_report`` for an administrator
  (visibility: all) and for a team head (visibility: the team's owners in the SQL), next to the
  raw ``GROUP BY`` the framework builds on;
* ``kpi panel``: ``tessera.reports.kpis.panel`` for the company with one KPI.
Targets from issue 21: < 2 s on PostgreSQL and < 5 s on SQLite at 5,000,000 activities.
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
from pathlib import Path
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")

START = datetime(2025, 3, 1, tzinfo=UTC)
BATCH = 2000
TYPES = ("call", "meeting", "email", "letter")


async def measure(fn: Callable[[], Awaitable[Any]], runs: int = 3) -> float:
    await fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def seed(size: int, managers: list[int], team_ids: dict[int, int], party_id: int) -> None:
    from tessera import db

    rnd = random.Random(1)
    columns = (
        "type, status, subject, party_id, owner_id, team_id, starts_at, duration_minutes, custom, "
        "direction, outcome, agreements, description, created_at, updated_at, version"
    )
    for start in range(0, size, BATCH):
        values = []
        args: list[Any] = []
        for _ in range(start, min(size, start + BATCH)):
            owner = managers[rnd.randrange(len(managers))]
            when = START + timedelta(minutes=rnd.randrange(365 * 24 * 60))
            values.append("({}, {}, {}, {}, {}, {}, {}, {}, {}, '', '', '', '', {}, {}, 1)")
            args += [
                rnd.choice(TYPES),
                "done",
                "Bench",
                party_id,
                owner,
                team_ids[owner],
                when,
                15,
                "{}",
                when,
                when,
            ]
        await db.raw(f"INSERT INTO activity ({columns}) VALUES " + ", ".join(values), *args)


async def main(args: argparse.Namespace) -> int:
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, parties, service
    from tessera.permissions import build_principal, ensure_default_roles
    from tessera.reports import catalog, framework, kpis

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
        started = time.perf_counter()
        await seed(args.size, managers, team_of, party["id"])
        await db.raw("ANALYZE")
        print(
            f"Report benchmark on {backend}: {args.size:,} activities, {len(managers)} managers, "
            f"seeded in {time.perf_counter() - started:.1f}s"
        )
        report = catalog.registry(pm)["activities"]
        params = {"group_by": ["owner", "period"], "period": "month"}
        head_principal = await build_principal(head["id"])
        month = (
            "strftime('%Y-%m', starts_at)"
            if not db.is_postgres()
            else "to_char(starts_at AT TIME ZONE 'UTC', 'YYYY-MM')"
        )
        raw_sql = f"SELECT owner_id, {month} AS m, COUNT(*) FROM activity GROUP BY owner_id, {month}"
        ours = await measure(lambda: framework.run_report(report, system, params))
        raw = await measure(lambda: db.raw(raw_sql))
        scoped = await measure(lambda: framework.run_report(report, head_principal, params))
        result = await framework.run_report(report, system, params)
        print(
            f"  activities by manager x month (all)   {ours * 1000:9.1f} ms   raw SQL {raw * 1000:9.1f} ms   "
            f"ratio {ours / raw if raw else 0:.2f}   rows {len(result['rows']):,}"
        )
        print(f"  activities by manager x month (team)  {scoped * 1000:9.1f} ms")
        kpi = await kpis.create(
            pm,
            system,
            {
                "name": "Calls",
                "report_key": "activities",
                "measure": "activities",
                "params": {"filters": {"type": "call"}},
            },
        )
        del kpi
        period = (START + timedelta(days=200)).strftime("%Y-%m")
        panel = await measure(lambda: kpis.panel(pm, system, period=period, history=1), runs=1)
        per_person = await measure(
            lambda: asyncio.gather(
                *[kpis.panel(pm, system, period=period, user_id=m, history=1) for m in managers[:50]]
            ),
            runs=1,
        )
        print(f"  kpi panel (company)                   {panel * 1000:9.1f} ms")
        print(f"  kpi panel x {min(50, len(managers))} managers               {per_person * 1000:9.1f} ms")
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
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200_000, help="activities (default 200000)")
    parser.add_argument("--managers", type=int, default=200, help="managers (default 200)")
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL; database bench_reports_<size>")
    sys.exit(asyncio.run(main(parser.parse_args())))
