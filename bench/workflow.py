"""Workflow benchmark: one deviation scan over many running instances, and transitions/s.

    .venv/bin/python bench/workflow.py --size 100000 --pg postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/workflow.py --size 10000              # SQLite in a temp dir

With ``--pg`` a scratch database is created on that server and dropped afterwards. The
instances are bulk-inserted (as if they had been started over the past weeks): 1% of them
have just passed their stage norm (the scan must escalate them), 20% were escalated before,
the rest are within their norm. Each figure is printed next to a baseline measured in the
same run: the raw SQL the scan is built on, and a bare UPDATE+INSERT per transition.
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
from datetime import UTC, datetime, timedelta
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")
os.environ.setdefault("TESSERA_DISABLE_PLUGIN_AUTOLOAD", "1")

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday noon


def template(engineer_id: int) -> dict[str, Any]:
    return {
        "key": "bench.request",
        "name": "Bench request",
        "business_hours": {"timezone": "UTC", "start": "09:00", "end": "18:00"},
        "stages": [
            {
                "key": "register",
                "name": "Register",
                "responsible": {"owner": True},
                "controller": {"role": "head"},
                "norm": {"hours": 4},
                "required": [{"key": "checked", "kind": "checklist"}],
                "probability": 20,
            },
            {
                "key": "resolve",
                "name": "Resolve",
                "responsible": {"user": engineer_id},
                "norm": {"days": 1, "calendar": "calendar"},
                "probability": 60,
            },
            {"key": "confirm", "name": "Confirm", "responsible": {"owner": True}, "norm": {"hours": 8}},
            {
                "key": "closed",
                "name": "Closed",
                "final": True,
                "on_enter": [
                    {
                        "type": "create_activity",
                        "activity_type": "call",
                        "delay": {"days": 7},
                        "subject": "How are things?",
                    }
                ],
            },
        ],
    }


async def timed(label: str, coro: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await coro
    return time.perf_counter() - started, result


async def seed(
    size: int, users: list[int], team_of: dict[int, int | None], template_row: dict[str, Any]
) -> None:
    from tessera.workflow.tables import WorkflowInstance as WI

    rnd = random.Random(7)
    chunk: list[Any] = []
    for i in range(size):
        owner = users[i % len(users)]
        bucket = rnd.random()
        if bucket < 0.01:  # just passed its norm: to escalate now
            due = NOW - timedelta(minutes=rnd.randint(1, 30))
            next_check, escalated = due, ""
        elif bucket < 0.21:  # escalated earlier
            due = NOW - timedelta(hours=rnd.randint(2, 200))
            next_check, escalated = None, "stage_overdue"
        else:  # within its norm
            due = NOW + timedelta(minutes=rnd.randint(1, 60 * 24 * 5))
            next_check, escalated = due, ""
        chunk.append(
            WI(
                template_id=template_row["id"],
                template_key=template_row["key"],
                template_version=template_row["version"],
                subject_entity="ticket",
                subject_id=i + 1,
                title=f"Ticket {i + 1}",
                status="running",
                current_stage="register",
                stage_seq=1,
                stage_entered_at=due - timedelta(hours=4),
                stage_due_at=due,
                next_check_at=next_check,
                escalated=escalated,
                responsible_id=owner,
                owner_id=owner,
                team_id=team_of[owner],
                started_by=owner,
                started_at=due - timedelta(hours=4),
                updated_at=due - timedelta(hours=4),
                params={},
                results={},
                checklist={"register": ["checked"]},
            )
        )
        if len(chunk) == 1000:  # PostgreSQL allows 32767 parameters per statement
            await WI.insert(*chunk)
            chunk = []
    if chunk:
        await WI.insert(*chunk)


async def main(args: argparse.Namespace) -> None:
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, service
    from tessera.permissions import ensure_default_roles
    from tessera.workflow import deviations, engine, templates

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
    settings = Settings(database_url=url, data_dir=__import__("pathlib").Path(scratch) / "data", plugins=())
    pm = boot(settings)
    await db.start()
    frozen = clock.FrozenClock(NOW)
    clock.set_clock(frozen)
    try:
        await migrations.migrate()
        await ensure_default_roles()
        system = system_principal()
        team = await service.create(admin.TEAM, system, {"name": "Bench team"})
        users: list[int] = []
        for i in range(20):
            row = await service.create(
                admin.USER,
                system,
                {
                    "email": f"m{i}@bench.example",
                    "name": f"Manager {i}",
                    "password": "bench-password-1",
                    "roles": ["head" if i == 0 else "manager"],
                    "team_id": team["id"],
                },
            )
            users.append(row["id"])
        team_of = {u: team["id"] for u in users}
        template_row, _ = await templates.publish(template(users[1]), user_id=users[0])

        print(f"Workflow benchmark on {backend}: {args.size:,} running instances")
        seed_s, _ = await timed("seed", seed(args.size, users, team_of, template_row))
        if db.is_postgres():
            await db.raw("ANALYZE")
        print(f"  seeded in {seed_s:.1f}s (bulk insert)")

        # -- deviation scan ----------------------------------------------------------------
        baseline_sql = (
            "SELECT id, stage_due_at FROM workflow_instance WHERE next_check_at <= {} "
            "AND status = 'running' ORDER BY next_check_at LIMIT 2000"
        )
        base_s, base_rows = await timed("baseline", db.raw(baseline_sql, NOW))
        naive_sql = "SELECT id FROM workflow_instance WHERE status = 'running' AND stage_due_at < {}"
        naive_s, naive_rows = await timed("naive", db.raw(naive_sql, NOW))
        scan_s, counts = await timed("scan", deviations.scan(NOW))
        idle_s, idle_counts = await timed("scan again", deviations.scan(NOW))
        count_s, deviating = await timed("count", deviations.count_deviating(NOW))
        admin_principal = engine.engine_principal(users[0])
        page_s, page = await timed("list", deviations.list_deviations(admin_principal, limit=50))
        print()
        print(f"  {'measure':58} {'seconds':>9}  rows")
        print(f"  {'deviation scan: escalate new deviations (job run)':58} {scan_s:9.3f}  {counts}")
        print(f"  {'  baseline: its candidate query, raw SQL':58} {base_s:9.3f}  {len(base_rows)}")
        print(f"  {'deviation scan again, nothing new (steady state)':58} {idle_s:9.3f}  {idle_counts}")
        print(f"  {'  baseline: raw SQL, every overdue instance':58} {naive_s:9.3f}  {len(naive_rows)}")
        print(f"  {'count of deviating instances (live, with task join)':58} {count_s:9.3f}  {deviating}")
        print(f"  {'GET /deviations first page (50, service call)':58} {page_s:9.3f}  {len(page['items'])}")

        # -- transitions ---------------------------------------------------------------------
        k = args.transitions
        principal = engine.engine_principal(users[0])
        started = time.perf_counter()
        ids = []
        for i in range(k):
            row = await engine.start(
                principal,
                pm,
                "bench.request",
                subject_entity="ticket",
                subject_id=10_000_000 + i,
                owner_id=users[2],
            )
            ids.append(row["id"])
        start_s = time.perf_counter() - started
        for instance_id in ids:
            await engine.tick_checklist(principal, instance_id, "checked")
        started = time.perf_counter()
        moves = 0
        for _ in range(3):  # register -> resolve -> confirm -> closed
            for instance_id in ids:
                await engine.advance(principal, pm, instance_id)
                moves += 1
        advance_s = time.perf_counter() - started

        from tessera.workflow.tables import WorkflowInstance as WI
        from tessera.workflow.tables import WorkflowTransition

        started = time.perf_counter()
        for i in range(moves):
            instance_id = ids[i % len(ids)]
            async with db.transaction():
                await WI.update({WI.stage_seq: WI.stage_seq + 1, WI.updated_at: NOW}).where(
                    WI.id == instance_id
                )
                await WorkflowTransition.insert(
                    WorkflowTransition(
                        instance_id=instance_id, kind="bench", from_stage="a", to_stage="b", at=NOW
                    )
                )
        bare_s = time.perf_counter() - started
        print()
        print(f"  {'measure':58} {'per second':>10}")
        print(f"  {f'starts ({k}, each with a stage task)':58} {k / start_s:10.1f}")
        print(
            f"  {f'transitions ({moves}: task done, next task, audit, events)':58} {moves / advance_s:10.1f}"
        )
        print(f"  {'  baseline: bare UPDATE + INSERT per transition':58} {moves / bare_s:10.1f}")
        print(f"  ratio transitions/baseline: {(moves / advance_s) / (moves / bare_s):.2f}")
    finally:
        clock.set_clock(None)
        await db.stop()
        if pg_name:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000, help="running instances (default 100000)")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL; a scratch database is made there")
    parser.add_argument("--transitions", type=int, default=200, help="instances walked through 3 transitions")
    sys.exit(asyncio.run(main(parser.parse_args())))
