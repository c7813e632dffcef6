"""Marketing benchmark: a dynamic segment count and the ABC/XYZ recomputation over many parties.

    .venv/bin/python bench/marketing.py --size 100000
    .venv/bin/python bench/marketing.py --size 1000000 --pg postgresql://postgres@127.0.0.1:5432/test

Parties are bulk-inserted straight into ``party`` (statuses, tags, an ``industry`` custom field,
owners across 10 managers of two teams); ``--revenue-share`` of them get a won deal in each of
the last 12 months (``sales_deal``). Printed, each as the median of 5 runs after a warm-up:

* ``segment count (all)``: ``POST /api/marketing/segments/preview``'s service call for an
  administrator (3 rules: status, tag, custom field), next to the same count in hand-written SQL;
* ``segment count (team)``: the same for a head of team (the party visibility condition added);
* ``abc/xyz recompute``: ``classes.recompute`` (first run: every class new), next to the
  classification query alone.
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
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
BATCH = 1000
RULES = {
    "all": [
        {"field": "status", "op": "eq", "value": "current"},
        {"field": "tag", "op": "has", "value": "vip"},
        {"field": "custom.industry", "op": "in", "value": ["retail", "horeca"]},
    ]
}


async def measure(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    await fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def seed(size: int, owners: list[tuple[int, int]], share: float) -> int:
    from tessera.entities.tables import Party
    from tessera_sales.tables import Deal

    rnd = random.Random(1)
    deals = 0
    for start in range(0, size, BATCH):
        rows = []
        for i in range(start, min(size, start + BATCH)):
            owner, team = owners[i % len(owners)]
            tags = [t for t in ("vip", "north", "b2b") if rnd.random() < 0.3]
            rows.append(
                Party(
                    name=f"Bench party {i}",
                    status=rnd.choice(("potential", "current", "current", "former")),
                    relations=["client"],
                    tags=tags,
                    owner_id=owner,
                    team_id=team,
                    custom={"industry": rnd.choice(("retail", "horeca", "it", "industry"))},
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        inserted = await Party.insert(*rows).returning(Party.id)
        revenue = []
        for row in inserted:
            if rnd.random() >= share:
                continue
            base = rnd.randint(100, 100000)
            for month in range(12):
                index = NOW.year * 12 + NOW.month - 1 - 12 + month
                revenue.append(
                    Deal(
                        title="bench",
                        party_id=row["id"],
                        amount=Decimal(base + rnd.randint(0, base)),
                        currency="RUB",
                        pipeline="sales.b2b",
                        status="won",
                        closed_at=datetime(index // 12, index % 12 + 1, 10, tzinfo=UTC),
                    )
                )
        for chunk in range(0, len(revenue), BATCH):
            await Deal.insert(*revenue[chunk : chunk + BATCH])
        deals += len(revenue)
    return deals


async def main(args: argparse.Namespace) -> int:
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.auth import hash_password
    from tessera.config import Settings
    from tessera.demo import system_principal
    from tessera.entities import admin, service
    from tessera.permissions import build_principal, ensure_default_roles

    scratch = tempfile.mkdtemp(prefix="tessera-bench-marketing-")
    if args.pg:
        name = f"bench_marketing_{args.size}"
        url = db.database_url_for(args.pg, name)
        await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await db.execute_on_server(args.pg, f'CREATE DATABASE "{name}"')
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(
        database_url=url,
        data_dir=Path(scratch) / "data",
        plugins=("sales", "marketing"),
        secure_cookies=False,
    )
    boot(settings)
    await db.start()
    clock.set_clock(clock.FrozenClock(NOW))
    try:
        from tessera_marketing import classes, revenue, services

        await migrations.migrate()
        await ensure_default_roles()
        system = system_principal()
        from tessera.customfields import set_admin_properties

        await set_admin_properties(
            service.plugin_manager(), "party", {"industry": {"type": "string"}}, [], None
        )
        owners: list[tuple[int, int]] = []
        heads: list[int] = []
        for t in range(2):
            team = await service.create(admin.TEAM, system, {"name": f"Team {t}"})
            for i in range(6):
                row = await service.create(
                    admin.USER,
                    system,
                    {
                        "email": f"u{t}-{i}@bench.example",
                        "name": f"User {t}-{i}",
                        "password_hash": hash_password("bench-password-1"),
                        "roles": ["head" if i == 0 else "manager"],
                        "team_id": team["id"],
                    },
                )
                if i == 0:
                    heads.append(row["id"])
                else:
                    owners.append((row["id"], team["id"]))
        started = time.perf_counter()
        deals = await seed(args.size, owners, args.revenue_share)
        await db.raw("ANALYZE")
        print(
            f"Marketing benchmark on {backend}: {args.size:,} parties, {deals:,} won deals "
            f"seeded in {time.perf_counter() - started:.1f}s"
        )
        head = await build_principal(heads[0])
        pg = db.is_postgres()
        vip = "'vip' = ANY(tags)" if pg else "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = 'vip')"
        industry = "custom->>'industry'" if pg else "json_extract(custom, '$.industry')"
        raw_sql = (
            f"SELECT COUNT(*) AS n FROM party WHERE status = 'current' AND {vip} "
            f"AND {industry} IN ('retail', 'horeca')"
        )
        counted = await services.count_rules(system, RULES)
        raw_count = (await db.raw(raw_sql))[0]["n"]
        assert counted == raw_count, (counted, raw_count)
        dyn = await measure(lambda: services.count_rules(system, RULES))
        raw = await measure(lambda: db.raw(raw_sql))
        print(
            f"  segment count (all)      {dyn * 1000:8.1f} ms   raw SQL {raw * 1000:8.1f} ms   "
            f"ratio {dyn / raw if raw else 0:.2f}   ({counted:,} parties)"
        )
        team_count = await measure(lambda: services.count_rules(head, RULES))
        print(f"  segment count (team)     {team_count * 1000:8.1f} ms")

        started = time.perf_counter()
        result = await classes.recompute(NOW.date())
        first = time.perf_counter() - started
        conf = await classes.settings()
        start, end = classes.window(NOW.date())
        args_sql = [start, end, 0.8, 0.95, 0.01, 0.0625]
        if pg:
            args_sql = [start, end, *(Decimal(str(v)) for v in args_sql[2:])]
        union = revenue.union_sql(conf["sources"] or None) or "SELECT 0 AS party_id, '' AS month, 0 AS amount"
        query = f"SELECT COUNT(*) AS n FROM ({classes._classified_sql(union)}) c"
        alone = await measure(lambda: db.raw(query, *args_sql), runs=3)
        print(
            f"  abc/xyz recompute        {first:8.2f} s    classification query {alone:.2f} s   "
            f"({result['classified']:,} classified)"
        )
        started = time.perf_counter()
        again = await classes.recompute(NOW.date())
        print(
            f"  abc/xyz again (no change){time.perf_counter() - started:8.2f} s    changed {again['changed']}"
        )
    finally:
        clock.set_clock(None)
        await db.stop()
        if args.pg:
            await db.execute_on_server(
                args.pg, f'DROP DATABASE IF EXISTS "bench_marketing_{args.size}" WITH (FORCE)'
            )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000, help="parties (default 100000)")
    parser.add_argument("--revenue-share", type=float, default=0.2, help="share of parties with revenue")
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL; database bench_marketing_<size>")
    sys.exit(asyncio.run(main(parser.parse_args())))
