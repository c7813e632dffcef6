"""Service benchmark: the SLA/escalation scan and the ticket queue page over many open tickets.

    .venv/bin/python bench/service.py --size 100000                      # SQLite in a temp dir
    .venv/bin/python bench/service.py --size 100000 --pg postgresql://postgres@127.0.0.1:5432/test

Tickets are bulk-inserted straight into ``service_ticket`` (open, assigned across 10 agents of
one queue, due times spread over the next weeks in business hours, as ``services`` would have
stored them). Printed, each as the median of 5 runs after a warm-up:

* ``sla_scan (nothing due)``: ``jobs.scan`` on the steady state (every ticket within target),
  next to the raw SQL it is built on (the three candidate ``SELECT``s, ids only);
* ``sla_scan (1 % due)``: the first scan after 1 % of the tickets passed their warning point,
  claiming and notifying each once (run once: the second run has nothing to do);
* ``queue page p95``: ``GET /service/tickets?open_only=true`` for the head of the queue's team
  (50 most urgent of what they may see, with the total), p95 of 20 requests.
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

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
BATCH = 500
RAW = [
    "SELECT id FROM service_ticket WHERE status IN ('new', 'in_progress') AND paused_since IS NULL "
    "AND warned_at IS NULL AND warn_due <= {}",
    "SELECT id FROM service_ticket WHERE status IN ('new', 'in_progress') AND paused_since IS NULL "
    "AND escalation_level = 0 AND (resolution_due <= {} OR (first_responded_at IS NULL "
    "AND first_response_due <= {}))",
    "SELECT id FROM service_ticket WHERE status IN ('new', 'in_progress') AND paused_since IS NULL "
    "AND escalation_level = 1 AND next_escalation_at <= {}",
]


async def measure(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    await fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def seed(
    size: int, agents: list[int], team_id: int, queue_id: int, policy_id: int, party_id: int
) -> None:
    from tessera_service.tables import Ticket

    rnd = random.Random(1)
    for start in range(0, size, BATCH):
        rows = []
        for i in range(start, min(size, start + BATCH)):
            created = NOW - timedelta(minutes=rnd.randint(1, 60 * 24 * 14))
            due = NOW + timedelta(hours=rnd.randint(2, 24 * 21))
            rows.append(
                Ticket(
                    number=f"T-{i + 1:06d}",
                    party_id=party_id,
                    subject=f"Bench ticket {i}",
                    priority=rnd.choice(("p1", "p2", "p3", "p4")),
                    status=rnd.choice(("new", "in_progress", "in_progress", "waiting")),
                    queue_id=queue_id,
                    team_id=team_id,
                    assignee_id=agents[i % len(agents)],
                    policy_id=policy_id,
                    first_response_due=due,
                    first_responded_at=created + timedelta(minutes=30),
                    resolution_due=due,
                    warn_due=due - timedelta(hours=1),
                    created_at=created,
                    updated_at=created,
                )
            )
        await Ticket.insert(*rows)


async def main(args: argparse.Namespace) -> int:
    import logging

    import httpx
    from tessera import clock, db, migrations
    from tessera.app import boot, create_app
    from tessera.auth import hash_password
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, parties, service
    from tessera.permissions import ensure_default_roles

    logging.getLogger("httpx").setLevel(logging.WARNING)
    scratch = tempfile.mkdtemp(prefix="tessera-bench-service-")
    if args.pg:
        name = f"bench_service_{args.size}"
        url = db.database_url_for(args.pg, name)
        await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await db.execute_on_server(args.pg, f'CREATE DATABASE "{name}"')
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(
        database_url=url, data_dir=Path(scratch) / "data", plugins=("service",), secure_cookies=False
    )
    boot(settings)
    await db.start()
    frozen = clock.FrozenClock(NOW)
    clock.set_clock(frozen)
    try:
        from tessera_service import jobs, services
        from tessera_service.tables import Ticket

        await migrations.migrate()
        await ensure_default_roles()
        system = system_principal()
        team = await service.create(admin.TEAM, system, {"name": "Support"})
        agents = []
        for i in range(11):
            row = await service.create(
                admin.USER,
                system,
                {
                    "email": f"a{i}@bench.example",
                    "name": f"Agent {i}",
                    "password_hash": hash_password("bench-password-1"),
                    "roles": ["head" if i == 0 else "manager"],
                    "team_id": team["id"],
                },
            )
            agents.append(row["id"])
        party = await service.create(parties.PARTY, system, {"name": "Bench client", "owner_id": agents[1]})
        queue = await service.create(
            services.QUEUE, system, {"name": "Support", "team_id": team["id"], "lead_id": agents[0]}
        )
        policy = await service.create(
            services.POLICY,
            system,
            {"name": "Default", "first_response_hours": 4, "resolution_hours": 40, "is_default": True},
        )
        started = time.perf_counter()
        await seed(args.size, agents[1:], team["id"], queue["id"], policy["id"], party["id"])
        await db.raw("ANALYZE")
        print(
            f"Service benchmark on {backend}: {args.size:,} tickets "
            f"seeded in {time.perf_counter() - started:.1f}s"
        )

        async def raw() -> None:
            await db.raw(RAW[0], NOW)
            await db.raw(RAW[1], NOW, NOW)
            await db.raw(RAW[2], NOW)

        idle_scan = await measure(lambda: jobs.scan(NOW))
        idle_raw = await measure(raw)
        print(f"  sla_scan (nothing due)   {idle_scan * 1000:8.1f} ms   raw SQL {idle_raw * 1000:8.1f} ms")

        due = max(1, args.size // 100)
        ids = [r["id"] for r in await Ticket.select(Ticket.id).where(Ticket.status != "waiting").limit(due)]
        await Ticket.update({Ticket.warn_due: NOW - timedelta(minutes=1)}).where(Ticket.id.is_in(ids))
        started = time.perf_counter()
        counts = await jobs.scan(NOW)
        busy = time.perf_counter() - started
        print(f"  sla_scan ({len(ids):,} due)      {busy * 1000:8.1f} ms   warned {counts['warned']:,}")

        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            r = await client.post(
                "/login", data={"email": "a0@bench.example", "password": "bench-password-1"}
            )
            assert r.status_code == 303, r.text[:300]
            times = []
            for _ in range(21):
                started = time.perf_counter()
                r = await client.get("/service/tickets?open_only=true")
                times.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text[:300]
            times = sorted(times[1:])
            p95 = times[int(len(times) * 0.95) - 1]
            print(
                f"  queue page p95           {p95 * 1000:8.1f} ms   "
                f"(median {statistics.median(times) * 1000:.1f} ms)"
            )
    finally:
        clock.set_clock(None)
        await db.stop()
        if args.pg:
            await db.execute_on_server(
                args.pg, f'DROP DATABASE IF EXISTS "bench_service_{args.size}" WITH (FORCE)'
            )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000, help="open tickets (default 100000)")
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL; database bench_service_<size>")
    sys.exit(asyncio.run(main(parser.parse_args())))
