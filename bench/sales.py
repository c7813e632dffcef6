"""Sales benchmark: funnel report and forecast over many deals.

    .venv/bin/python bench/sales.py --size 1000000 --pg postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/sales.py --size 20000                  # SQLite in a temp dir

With ``--pg`` a scratch database is created on that server and dropped afterwards. Deals and
their stage stays are bulk-inserted straight into ``sales_deal`` and ``sales_stage_visit`` (the
tables the reports read; workflow instances are not created: the reports never touch them):
deals opened over the past year across 10 managers in 2 teams, each gone through 1-5 stages
of the B2B pipeline, a third of them closed (won or lost with a reason). Each report time is
printed next to a baseline measured in the same run on the same rows: the bare SQL aggregate
it is built on, without visibility, names or grouping.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
STAGES = [("qualification", 3), ("needs", 5), ("proposal", 7), ("negotiation", 10)]
CHUNK = 1000  # rows per INSERT (PostgreSQL allows 32767 parameters per statement)


async def timed(coro: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await coro
    return time.perf_counter() - started, result


async def seed(size: int, users: list[int], team_of: dict[int, int], party_id: int, reason_id: int) -> None:
    from rich.progress import Progress
    from tessera_sales.tables import Deal, StageVisit

    rnd = random.Random(7)
    deals: list[Any] = []
    visits: list[Any] = []
    with Progress() as progress:
        task = progress.add_task("deals", total=size)
        for i in range(size):
            owner = users[i % len(users)]
            opened = NOW - timedelta(days=rnd.uniform(0, 365))
            depth = rnd.choices([1, 2, 3, 4, 5], weights=[25, 20, 20, 15, 20])[0]
            at = opened
            stays = []
            for stage, norm in STAGES[: min(depth, 4)]:
                spent = timedelta(days=rnd.uniform(0.2, norm * 1.5))
                stays.append((stage, at, norm, spent))
                at = at + spent
            closing = rnd.random()
            status, stage, closed_at, prob = "open", stays[-1][0], None, 10
            if depth == 5 and at < NOW:
                status, stage, closed_at, prob = "won", "won", at, 100
            elif closing < 0.25 and at < NOW:
                status, stage, closed_at, prob = "lost", "lost", at, 0
            else:
                prob = {"qualification": 10, "needs": 25, "proposal": 50, "negotiation": 75}[stage]
            last_entered = stays[-1][1] if status == "open" else at
            deal_id = i + 1
            deals.append(
                Deal(
                    id=deal_id,
                    title=f"Deal {deal_id}",
                    party_id=party_id,
                    owner_id=owner,
                    team_id=team_of[owner],
                    amount=Decimal(rnd.randint(10, 5000) * 1000),
                    currency="RUB",
                    expected_close=(opened + timedelta(days=rnd.randint(20, 120))).date(),
                    source="web",
                    pipeline="sales.b2b",
                    stage=stage,
                    stage_entered_at=last_entered,
                    stage_due_at=last_entered + timedelta(days=dict(STAGES).get(stage, 0))
                    if status == "open"
                    else None,
                    probability=prob,
                    status=status,
                    loss_reason_id=reason_id if status == "lost" else None,
                    closed_at=closed_at,
                    created_at=opened,
                    updated_at=opened,
                )
            )
            for n, (name, entered, norm, spent) in enumerate(stays):
                is_last_open = status == "open" and n == len(stays) - 1
                visits.append(
                    StageVisit(
                        deal_id=deal_id,
                        pipeline="sales.b2b",
                        stage=name,
                        seq=n + 1,
                        entered_at=entered,
                        left_at=None if is_last_open else entered + spent,
                        seconds=None if is_last_open else int(spent.total_seconds()),
                        norm_seconds=norm * 86400,
                        owner_id=owner,
                        team_id=team_of[owner],
                    )
                )
            if status != "open":
                visits.append(
                    StageVisit(
                        deal_id=deal_id,
                        pipeline="sales.b2b",
                        stage=status,
                        seq=len(stays) + 1,
                        entered_at=at,
                        owner_id=owner,
                        team_id=team_of[owner],
                    )
                )
            if len(deals) >= CHUNK // 4:  # deals first: their stays refer to them
                await Deal.insert(*deals)
                deals = []
            while len(visits) >= CHUNK and not deals:
                await StageVisit.insert(*visits[:CHUNK])
                visits = visits[CHUNK:]
            if i % 1000 == 999:
                progress.update(task, advance=1000)
        if deals:
            await Deal.insert(*deals)
        if visits:
            await StageVisit.insert(*visits)
        progress.update(task, completed=size)


async def main(args: argparse.Namespace) -> None:
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, parties, service
    from tessera.permissions import build_principal, ensure_default_roles

    scratch = tempfile.mkdtemp(prefix="tessera-bench-")
    pg_name = None
    if args.pg:
        pg_name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
        await db.execute_on_server(args.pg, f'CREATE DATABASE "{pg_name}"')
        url = db.database_url_for(args.pg, pg_name)
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(database_url=url, data_dir=Path(scratch) / "data", plugins=("sales",))
    boot(settings)
    await db.start()
    clock.set_clock(clock.FrozenClock(NOW))
    try:
        await migrations.migrate()
        await ensure_default_roles()
        from tessera_sales import reports, services

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
        head, managers = users[0], users[1:]
        party = await service.create(parties.PARTY, system, {"name": "Bench client", "owner_id": managers[0]})
        from tessera_sales.tables import LossReason

        reason = await LossReason.select(LossReason.id).first()
        print(f"Sales benchmark on {backend}: {args.size:,} deals, 10 managers")
        seed_s, _ = await timed(seed(args.size, managers, team_of, party["id"], reason["id"]))
        if db.is_postgres():
            await db.raw("SELECT setval(pg_get_serial_sequence('sales_deal', 'id'), {})", args.size)
            await db.raw("ANALYZE")
        print(f"  seeded in {seed_s:.1f}s (bulk insert)")

        admin_principal = system
        head_principal = await build_principal(head)
        period = {"date_from": date(2025, 3, 1), "date_to": date(2026, 3, 31)}
        # Warm the caches once (templates, plans), as a running server would have.
        await reports.funnel(admin_principal, **period)

        rows = []
        base_sql = (
            "SELECT v.stage, COUNT(*) FROM sales_stage_visit v JOIN sales_deal d ON d.id = v.deal_id "
            "WHERE d.pipeline = 'sales.b2b' AND d.created_at >= {} AND d.created_at < {} GROUP BY v.stage"
        )
        start = datetime(2025, 3, 1, tzinfo=UTC)
        end = datetime(2026, 4, 1, tzinfo=UTC)
        t, _ = await timed(db.raw(base_sql, start, end))
        funnel_s, _ = await timed(reports.funnel(admin_principal, **period))
        team_s, _ = await timed(reports.funnel(head_principal, **period, group_by="owner"))
        rows.append(("funnel report, whole company (admin)", funnel_s))
        rows.append(("funnel report, one team by manager (head)", team_s))
        rows.append(("  baseline: bare COUNT per stage, same join", t))
        forecast_s, _ = await timed(
            reports.forecast(admin_principal, date_from=date(2026, 3, 1), date_to=date(2026, 8, 31))
        )
        base_f, _ = await timed(
            db.raw("SELECT SUM(amount * probability / 100) FROM sales_deal WHERE status = 'open'")
        )
        base_h, _ = await timed(
            db.raw(
                "SELECT v.stage, COUNT(*) FROM sales_stage_visit v JOIN sales_deal d ON d.id = v.deal_id "
                "WHERE d.status IN ('won', 'lost') GROUP BY v.stage"
            )
        )
        rows.append(("forecast (weighted + historical), whole company", forecast_s))
        rows.append(("  baseline: bare SUM(amount*probability) of open deals", base_f))
        rows.append(("  baseline: bare closed-deal stage counts (historical)", base_h))
        stuck_s, _ = await timed(reports.stuck_deals(admin_principal))
        rows.append(("stuck deals (first 1000 of the company's)", stuck_s))
        print()
        print(f"  {'measure':58} {'ms':>9}")
        for label, seconds in rows:
            print(f"  {label:58} {seconds * 1000:9.1f}")
        print(
            f"  ratio funnel/baseline: {funnel_s / t:.2f}; "
            f"forecast/baselines: {forecast_s / (base_f + base_h):.2f}"
        )
    finally:
        clock.set_clock(None)
        await db.stop()
        if pg_name:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000, help="deals (default 100000)")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL; a scratch database is made there")
    sys.exit(asyncio.run(main(parser.parse_args())))
