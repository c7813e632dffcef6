"""Workflow benchmark: one deviation scan over many running instances, and transitions/s.

    .venv/bin/python bench/workflow.py --size 100000 --pg postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/workflow.py --size 10000              # SQLite only, in a temp dir

Runs on SQLite, and with ``--pg`` on PostgreSQL too (``--pg-only`` skips SQLite): a scratch
database is created on that server and dropped afterwards. The instances are bulk-inserted
(as if they had been started over the past weeks): 1% of them have just passed their stage
norm (the scan must escalate them), 20% were escalated before, the rest are within their
norm. Each figure is printed next to a baseline measured in the same run: the raw SQL the scan
is built on; for starts a bare INSERT of the instance and of its transition row; for
transitions the same work done bare: the rows a transition writes (instance, stage task done,
next task with its hand-off and notification, transition row, audit entries, events) in
hand-written SQL compiled once, one transaction each. The rows each side wrote per transition
are counted and printed one above the other, so the baseline cannot do less than the engine.
The bare baselines run before and after the engine's figures and their mean is the reference
(the machine may be shared). The issue's own baseline, a bare UPDATE + INSERT per transition,
is printed too, and the verdict needs both ratios at the target: the issue states it against
UPDATE + INSERT, which writes two of the transition's ~12 rows and so is the stricter one. CPU time per
transition (this process) is printed as well: it does not swing with the disk's fsync time
or other processes the way the rates do.

Target (issue 13.13): transitions/s at least 30 % of the bare baseline on each engine, judged
only at ``--size 100000`` (the size the target is stated for) and only when no start or
transition failed; the last lines print PASS or FAIL per engine.
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
from statistics import mean
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")
os.environ.setdefault("TESSERA_DISABLE_PLUGIN_AUTOLOAD", "1")

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday noon
#: Transitions must reach this share of the bare baseline (issue 13.13) ...
TARGET_RATIO = 0.30
#: ... at this many running instances.
TARGET_SIZE = 100_000


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


class RoundTrips:
    """Counts statements sent to PostgreSQL (asyncpg calls, BEGIN/COMMIT included): the
    deterministic part of a transition's cost when the machine is noisy. Bench only: patches
    asyncpg's Connection methods at runtime."""

    METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")

    def __init__(self) -> None:
        self.count = 0
        #: With ``--trace``: the statements sent (first 160 characters each).
        self.log: list[str] | None = None

    def install(self) -> None:
        import functools

        from asyncpg.connection import Connection

        for name in self.METHODS:
            original = getattr(Connection, name)
            if getattr(original, "_bench_counted", False):
                continue

            def make(original: Any) -> Any:
                @functools.wraps(original)
                async def counted(conn: Any, *args: Any, **kwargs: Any) -> Any:
                    # These call asyncpg's internals, never each other: one call, one count.
                    self.count += 1
                    if self.log is not None:
                        self.log.append(" ".join(str(args[0] if args else "").split())[:160])
                    return await original(conn, *args, **kwargs)

                counted._bench_counted = True  # type: ignore[attr-defined]
                return counted

            setattr(Connection, name, make(original))


ROUND_TRIPS = RoundTrips()


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


async def run_engine(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """Seed, scan and walk transitions on one engine; returns its figures."""
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, service
    from tessera.permissions import ensure_default_roles
    from tessera.workflow import deviations, engine, templates

    scratch = tempfile.mkdtemp(prefix="tessera-bench-")
    pg_name = None
    if backend == "PostgreSQL":
        pg_name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
        await db.execute_on_server(args.pg, f'CREATE DATABASE "{pg_name}"')
        url = db.database_url_for(args.pg, pg_name)
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
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

        # -- starts and transitions -------------------------------------------------------------
        from tessera import events
        from tessera.workflow.tables import WorkflowInstance as WI
        from tessera.workflow.tables import WorkflowTransition

        k = args.transitions
        principal = engine.engine_principal(users[0])
        errors: list[str] = []

        async def bare_starts(n: int) -> float:
            """INSERT the instance and its first transition row, one transaction each."""
            started = time.perf_counter()
            for i in range(n):
                async with db.transaction():
                    rows = await WI.insert(
                        WI(
                            template_id=template_row["id"],
                            template_key=template_row["key"],
                            template_version=template_row["version"],
                            subject_entity="ticket",
                            subject_id=20_000_000 + i,
                            title="Bare",
                            status="stopped",
                            current_stage="register",
                            owner_id=users[2],
                            started_by=users[0],
                            started_at=NOW,
                            updated_at=NOW,
                            params={},
                            results={},
                            checklist={},
                        )
                    ).returning(WI.id)
                    await WorkflowTransition.insert(
                        WorkflowTransition(
                            instance_id=rows[0]["id"], kind="start", to_stage="register", at=NOW
                        )
                    )
            return n / (time.perf_counter() - started)

        async def bare_moves(ids: list[int], n: int) -> float:
            """The issue's first baseline: a bare UPDATE + INSERT per transition, one
            transaction each (ORM-built, as before; the issue's own baseline, judged as well)."""
            started = time.perf_counter()
            for i in range(n):
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
            return n / (time.perf_counter() - started)

        async def bare_same_work(ids: list[int], n: int) -> float:
            """The judged baseline: the rows a transition writes, in hand-written SQL compiled
            once (the cheapest way to write them), one transaction each: the instance's stage
            columns, the stage task done, the next stage's task with its hand-off link and the
            assignee's notification (or, entering the final stage, its delayed action), the
            transition row, the audit entries and the events (one multi-row INSERT each, as the
            engine writes them). Walks the stages as the engine does: two moves to a working
            stage, then one to the final one. The rows it writes per transition are counted
            and printed next to the engine's."""
            started = time.perf_counter()
            for i in range(n):
                instance_id = ids[(i // 3) % len(ids)]
                final = i % 3 == 2
                async with db.transaction():
                    await BARE_TASK_DONE.rows("done", "Stage completed", NOW, NOW, task_ids[instance_id])
                    task_id = None
                    if not final:
                        task_id = (
                            await BARE_TASK_INSERT.rows(
                                "Bench request: Resolve — Ticket",
                                "",
                                users[0],
                                users[1],
                                None,
                                team["id"],
                                NOW + timedelta(days=1),
                                "normal",
                                "open",
                                "",
                                f"workflow:{instance_id}",
                                "{}",
                                NOW,
                                NOW,
                                1,
                            )
                        )[0]["id"]
                        await BARE_HANDOFF.rows(task_id, users[0], users[1], NOW, "")
                        await BARE_NOTIFICATION.rows(
                            users[1], "task.assigned", "New task", "", f"task:{task_id}", NOW
                        )
                    else:
                        await BARE_ACTION.rows(
                            instance_id,
                            "closed",
                            4,
                            "enter",
                            '{"type": "create_activity"}',
                            NOW + timedelta(days=7),
                            "pending",
                            NOW,
                        )
                    await BARE_TRANSITION.rows(
                        instance_id,
                        "advance",
                        "register",
                        "resolve",
                        2,
                        users[0],
                        NOW,
                        "",
                        users[1],
                        task_id,
                        "{}",
                    )
                    await BARE_STAGE.rows(
                        "resolve",
                        NOW,
                        NOW + timedelta(days=1),
                        None,
                        NOW + timedelta(days=1),
                        "",
                        users[1],
                        None,
                        team["id"],
                        task_id,
                        60,
                        NOW,
                        instance_id,
                    )
                    audit_rows = [
                        (
                            NOW,
                            users[0],
                            "update",
                            "task",
                            task_ids[instance_id],
                            '{"status": ["open", "done"]}',
                            "",
                        ),
                        *(
                            [(NOW, users[0], "create", "task", task_id, '{"title": [null, "x"]}', "")]
                            if not final
                            else []
                        ),
                        (
                            NOW,
                            users[0],
                            "advance",
                            "workflow_instance",
                            instance_id,
                            '{"stage": ["a", "b"]}',
                            "",
                        ),
                    ]
                    await BARE_AUDIT[len(audit_rows)].rows(*(v for row in audit_rows for v in row))
                    event_names = [
                        "task.completed",
                        "task.updated",
                        "task.created",
                        "workflow.stage_completed",
                        "workflow.stage_entered",
                    ]
                    if final:
                        event_names = [*event_names[:2], *event_names[3:], "workflow.completed"]
                    await BARE_EVENTS.rows(
                        *(
                            v
                            for name in event_names
                            for v in (
                                name,
                                "task",
                                instance_id,
                                '{"id": 1, "stage": "resolve"}',
                                users[0],
                                NOW,
                            )
                        )
                    )
            return n / (time.perf_counter() - started)

        BARE_TASK_DONE = db.Statement(
            'UPDATE "task" SET "status" = {}, "result" = {}, "completed_at" = {}, "updated_at" = {}, '
            '"version" = "version" + 1 WHERE "id" = {}'
        )
        BARE_TASK_INSERT = db.Statement(
            'INSERT INTO "task" ("title", "description", "author_id", "assignee_id", "controller_id", '
            '"team_id", "deadline", "priority", "status", "result", "source", "custom", "created_at", '
            '"updated_at", "version") VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) '
            'RETURNING "id"'
        )
        BARE_HANDOFF = db.Statement(
            'INSERT INTO "task_handoff" ("task_id", "from_user_id", "to_user_id", "at", "comment") '
            "VALUES ({}, {}, {}, {}, {})"
        )
        BARE_NOTIFICATION = db.Statement(
            'INSERT INTO "notification" ("user_id", "kind", "title", "body", "ref", "created_at") '
            "VALUES ({}, {}, {}, {}, {}, {})"
        )
        BARE_ACTION = db.Statement(
            'INSERT INTO "workflow_scheduled_action" ("instance_id", "stage", "stage_seq", "trigger", '
            '"action", "due_at", "status", "created_at") VALUES ({}, {}, {}, {}, {}, {}, {}, {})'
        )
        BARE_TRANSITION = db.Statement(
            'INSERT INTO "workflow_transition" ("instance_id", "kind", "from_stage", "to_stage", '
            '"stage_seq", "user_id", "at", "comment", "responsible_id", "task_id", "detail") '
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})"
        )
        BARE_STAGE = db.Statement(
            'UPDATE "workflow_instance" SET "current_stage" = {}, "stage_seq" = "stage_seq" + 1, '
            '"stage_entered_at" = {}, "stage_due_at" = {}, "actions_due_at" = {}, "next_check_at" = {}, '
            '"escalated" = {}, "responsible_id" = {}, "controller_id" = {}, "team_id" = {}, '
            '"current_task_id" = {}, "probability" = {}, "updated_at" = {}, "version" = "version" + 1 '
            'WHERE "id" = {}'
        )
        BARE_AUDIT = {
            n: db.Statement(
                'INSERT INTO "audit_log" ("at", "user_id", "action", "entity", "entity_id", "changes", '
                '"detail") VALUES ' + ", ".join(["({}, {}, {}, {}, {}, {}, {})"] * n)
            )
            for n in (2, 3)
        }
        BARE_EVENTS = db.Statement(
            'INSERT INTO "domain_event" ("name", "entity", "entity_id", "payload", "user_id", '
            '"occurred_at") VALUES ' + ", ".join(["({}, {}, {}, {}, {}, {})"] * 5) + ' RETURNING "id"'
        )
        COUNTED = (
            "task",
            "task_handoff",
            "notification",
            "workflow_transition",
            "workflow_scheduled_action",
            "audit_log",
            "domain_event",
        )

        async def row_counts() -> dict[str, int]:
            return {t: (await db.raw(f'SELECT count(*) AS n FROM "{t}"'))[0]["n"] for t in COUNTED}

        def rows_per(before: dict[str, int], after: dict[str, int], n: int) -> str:
            return " ".join(f"{t} {(after[t] - before[t]) / n:.2f}" for t in COUNTED)

        trips: dict[str, float] = {}

        def per(key: str, since: int, n: int) -> None:
            trips[key] = (ROUND_TRIPS.count - since) / n if n else 0.0

        mark = ROUND_TRIPS.count
        bare_start_rates = [await bare_starts(k)]
        per("bare_start", mark, k)
        await events.settle()
        mark = ROUND_TRIPS.count
        started = time.perf_counter()
        ids = []
        for i in range(k):
            try:
                row = await engine.start(
                    principal,
                    pm,
                    "bench.request",
                    subject_entity="ticket",
                    subject_id=10_000_000 + i,
                    owner_id=users[2],
                )
                ids.append(row["id"])
            except Exception as exc:  # counted: a failing start fails the target
                errors.append(f"start: {exc!r}")
        start_rate = k / (time.perf_counter() - started)
        await events.settle()
        per("start", mark, k)
        bare_start_rates.append(await bare_starts(k))
        for instance_id in ids:
            await engine.tick_checklist(principal, instance_id, "checked")
        await events.settle()

        moves = 3 * len(ids)  # register -> resolve -> confirm -> closed
        # The bare baseline works on instances and tasks of its own (the seeded instances, tasks
        # made here): the engine's instances must still be where their stages left them.
        bare_ids = [r["id"] for r in await WI.select(WI.id).where(WI.subject_id <= k).order_by(WI.id)]
        task_ids = {}
        for instance_id in bare_ids:
            async with db.transaction():
                task_ids[instance_id] = (
                    await BARE_TASK_INSERT.rows(
                        "Bare",
                        "",
                        users[0],
                        users[1],
                        None,
                        team["id"],
                        None,
                        "normal",
                        "open",
                        "",
                        "bench",
                        "{}",
                        NOW,
                        NOW,
                        1,
                    )
                )[0]["id"]
        old_bare_rates = [await bare_moves(ids, moves)] if ids else []
        counted = await row_counts()
        mark = ROUND_TRIPS.count
        cpu = time.process_time()
        bare_move_rates = [await bare_same_work(bare_ids, moves)] if ids else []
        bare_cpu = [(time.process_time() - cpu) / moves if moves else 0.0]
        per("bare_transition", mark, moves)
        bare_rows = rows_per(counted, await row_counts(), moves)
        await events.settle()
        counted = await row_counts()
        mark = ROUND_TRIPS.count
        started = time.perf_counter()
        cpu = time.process_time()
        if args.trace and db.is_postgres() and ids:
            ROUND_TRIPS.log = []
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        for _ in range(3):
            for instance_id in ids:
                try:
                    await engine.advance(principal, pm, instance_id)
                except Exception as exc:
                    errors.append(f"advance {instance_id}: {exc!r}")
                if ROUND_TRIPS.log is not None:  # one transition traced, then the rest untraced
                    await events.settle()
                    print("  statements of one transition:")
                    for line in ROUND_TRIPS.log:
                        print(f"    {line}")
                    ROUND_TRIPS.log = None
        await events.settle()  # the deliveries' background part (search indexing) counts too
        advance_s = time.perf_counter() - started
        move_cpu = (time.process_time() - cpu) / moves if moves else 0.0
        engine_rows = rows_per(counted, await row_counts(), moves)
        if profiler is not None:
            import pstats

            profiler.disable()
            print(f"  profile of the transitions on {backend} (by cumulative time):")
            stats = pstats.Stats(profiler)
            stats.dump_stats(f"/tmp/wf-{backend}.prof")
            stats.sort_stats(args.profile).print_stats(45)
        per("transition", mark, moves)
        if ids:
            cpu = time.process_time()
            bare_move_rates.append(await bare_same_work(bare_ids, moves))
            bare_cpu.append((time.process_time() - cpu) / moves)
            old_bare_rates.append(await bare_moves(ids, moves))
        old_bare = sum(old_bare_rates) / len(old_bare_rates) if old_bare_rates else 0.0
        move_rate = moves / advance_s if advance_s else 0.0
        bare_start = sum(bare_start_rates) / len(bare_start_rates)
        bare_move = sum(bare_move_rates) / len(bare_move_rates) if bare_move_rates else 0.0
        figures = {
            "engine": backend,
            "size": args.size,
            "starts": k,
            "start_rate": start_rate,
            "bare_start_rate": bare_start,
            "start_ratio": start_rate / bare_start if bare_start else 0.0,
            "transitions": moves,
            "transition_rate": move_rate,
            "bare_transition_rate": bare_move,
            "transition_ratio": move_rate / bare_move if bare_move else 0.0,
            "update_insert_rate": old_bare,
            "update_insert_ratio": move_rate / old_bare if old_bare else 0.0,
            "errors": errors,
            "round_trips": trips,
        }
        print()
        print(f"  {'measure':58} {'per second':>10}  {'bare/s':>8}  {'ratio':>6}")
        print(
            f"  {f'starts ({k}, each with a stage task)':58} {start_rate:10.1f}  {bare_start:8.1f}  "
            f"{figures['start_ratio']:6.2f}"
        )
        print(
            f"  {f'transitions ({moves}: task done, next task, audit, events)':58} {move_rate:10.1f}  "
            f"{bare_move:8.1f}  {figures['transition_ratio']:6.2f}"
        )
        print(
            f"  {'  vs the bare UPDATE + INSERT per transition (judged too)':58} {'':10}  "
            f"{old_bare:8.1f}  {figures['update_insert_ratio']:6.2f}"
        )
        print(
            "    bare: INSERT instance + INSERT transition per start; per transition the rows a "
            "transition writes, in SQL compiled once"
        )
        print(f"    rows written per transition, engine: {engine_rows}")
        print(f"    rows written per transition, bare:   {bare_rows}")
        print(
            f"    CPU per transition {move_cpu * 1000:.2f} ms (bare {mean(bare_cpu) * 1000:.2f} ms; "
            "this process only: steadier than the rates on a busy machine)"
        )
        if db.is_postgres():
            print(
                f"  round trips per start {trips['start']:.1f} (bare {trips['bare_start']:.1f}), "
                f"per transition {trips['transition']:.1f} (bare {trips['bare_transition']:.1f}); "
                "BEGIN/COMMIT and background work (search indexing, delivered marks) included"
            )
        print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
        return figures
    finally:
        clock.set_clock(None)
        await db.stop()
        if pg_name:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def verdict(figures: dict[str, Any]) -> str:
    """PASS/FAIL against the 30 % target, or why it is not judged."""
    if figures["errors"]:
        return f"FAIL ({len(figures['errors'])} errors)"
    if figures["size"] != TARGET_SIZE:
        return f"not judged (the target is stated for --size {TARGET_SIZE})"
    # Judged against the baseline the issue states (a bare UPDATE + INSERT per transition), the
    # stricter of the two: the same-work baseline writes ~12 rows and so is slower.
    ratio = figures["update_insert_ratio"]
    ok = ratio >= TARGET_RATIO and figures["transition_ratio"] >= TARGET_RATIO
    return (
        f"{'PASS' if ok else 'FAIL'} ({ratio:.1%} of bare UPDATE + INSERT, "
        f"{figures['transition_ratio']:.1%} of the same work bare; target {TARGET_RATIO:.0%} of both)"
    )


async def main(args: argparse.Namespace) -> int:
    engines = [] if args.pg_only else ["SQLite"]
    ROUND_TRIPS.install()
    if args.pg:
        engines.append("PostgreSQL")
    results = []
    for backend in engines:
        results.append(await run_engine(args, backend))
        print()
    print(f"Summary at {args.size:,} running instances (transitions/s and starts/s vs the bare baseline):")
    print(
        f"  {'engine':12} {'transitions/s':>13} {'bare/s':>8} {'ratio':>6}"
        f" {'starts/s':>9} {'bare/s':>8} {'ratio':>6}"
    )
    for f in results:
        print(
            f"  {f['engine']:12} {f['transition_rate']:13.1f} {f['bare_transition_rate']:8.1f} "
            f"{f['transition_ratio']:6.2f} {f['start_rate']:9.1f} {f['bare_start_rate']:8.1f}"
            f" {f['start_ratio']:6.2f}"
        )
    for f in results:
        print(f"  target transitions >= {TARGET_RATIO:.0%} of bare on {f['engine']}: {verdict(f)}")
    return 1 if any(f["errors"] for f in results) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=TARGET_SIZE, help="running instances (default 100000)")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL; a scratch database is made there")
    parser.add_argument("--pg-only", action="store_true", help="with --pg: skip SQLite")
    parser.add_argument("--trace", action="store_true", help="print the statements of one transition (PG)")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="cumulative",
        default=None,
        help="cProfile the transitions; optional sort key (cumulative, tottime)",
    )
    parser.add_argument("--transitions", type=int, default=200, help="instances walked through 3 transitions")
    sys.exit(asyncio.run(main(parser.parse_args())))
