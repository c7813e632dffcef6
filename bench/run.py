"""The product benchmark: the API through the real HTTP server, next to two baselines.

    .venv/bin/python bench/run.py                                   # 1M parties, SQLite and PostgreSQL
    .venv/bin/python bench/run.py --size 10000 --sqlite-only        # a quick look
    .venv/bin/python bench/run.py --size 200 --sqlite-only --quick  # the CI smoke run
    ./run bench run --pg postgresql://postgres@127.0.0.1:5432/test --size 100000

For each engine it builds a data set through the real schema (``tessera migrate``, then bulk
inserts: ``executemany`` in large transactions on SQLite, ``COPY`` on PostgreSQL): ``--size``
parties over 200 managers in 20 teams, 5 activities per party, and as many deals as parties
when the sales plugin is installed; the first ``--search-docs`` parties go into the search
index (whoosh on SQLite, PostgreSQL full-text on PostgreSQL). Then three servers are started
one after the other, each alone in a uvicorn process on a loopback port:

* **ours**: the product app (``tessera serve``: every enabled plugin, API-token auth, record
  visibility, audit, events, search indexing after commit), called with managers' tokens;
* **bare**: a Litestar app with one route per measure running the equivalent raw SQL on the
  same tables (aiosqlite / asyncpg, no auth, no ORM);
* **crud**: piccolo-api's ``PiccoloCRUD`` on the same Piccolo tables, in a Starlette app.

A load generator in another process (an async httpx client) times, on each server: the party
list with filters (status + part of the name, as a manager who sees only their own clients),
the client card, search, creating a party (p50/p95 over sequential requests on one
keep-alive connection), and requests/s with ``--concurrency`` clients for list and create.
Every figure is printed next to the baselines with the ratio ours/baseline, checked against
the targets, and written to ``--out`` (``bench/results/latest.json``) with a description of
the machine. PostgreSQL comes from ``--pg`` or ``CRM_TEST_POSTGRES``; the database
``--pg-db`` (default ``bench_run``) is dropped and recreated there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")

MANAGERS = 200
TEAMS = 20
TOKENS = 10  # managers whose tokens the load generator rotates through
ACTIVITIES_PER_PARTY = 5
STATUSES = ("potential", "current", "former")
FORMS = ("ООО", "АО", "ИП", "Ltd", "LLC", "GmbH", "ТОВ")
COMPANIES = (
    "Ромашка Вектор Гелиос Квазар Орбита Полюс Меридиан Сириус Альфа Дельта Восток Север Уралтех "
    "Стройресурс Техноком Acme Globex Initech Umbrella Stark Wayne Wonka Tyrell Cyberdyne Soylent "
    "Hooli Vandelay Oscorp"
).split()
SURNAMES = (
    "Иванов Петров Сидоров Смирнов Кузнецов Попов Васильев Петренко Шевченко Коваленко Бондаренко "
    "Smith Johnson Brown Taylor Miller"
).split()
TAGS = ("vip", "b2b", "retail", "opt", "export", "gov", "new", "sleeping")
ACTIVITY_TYPES = ("call", "meeting", "email", "letter", "note")
WORDS = (
    "договор поставка оплата счёт скидка встреча звонок условия сроки доставка оборудование склад "
    "contract delivery payment invoice discount meeting call terms deadline shipment warehouse order"
).split()
#: Queries (parts of party names) for the list filter and search.
QUERIES = ("Ромашка", "Вектор", "Гелиос", "Acme", "Globex", "Сириус", "Initech", "Орбита")
TARGETS = {"party_list_p95_ms": 30.0, "throughput_pct_of_bare": 60.0, "import_rows_per_s": 20_000.0}
#: The size each target is stated for (parties; CSV rows for the import). A smaller run prints
#: its figures but does not judge them: a 30 ms list of 200 parties says nothing of 1M.
TARGET_SIZES = {
    "party_list_p95_ms": 1_000_000,
    "throughput_pct_of_bare": 1_000_000,
    "import_rows_per_s": 100_000,
}
START = datetime(2021, 1, 1, tzinfo=UTC)


# =========================================================================== data generation


def party_rows(
    size: int, managers: list[int], team_of: dict[int, int], seed: int = 1
) -> Iterator[dict[str, Any]]:
    rnd = random.Random(seed)
    for pid in range(1, size + 1):
        owner = managers[rnd.randrange(len(managers))]
        company = rnd.choice(COMPANIES)
        person = rnd.random() < 0.2
        name = (
            f"{rnd.choice(SURNAMES)} {company}"
            if person
            else f"{rnd.choice(FORMS)} {company} {rnd.choice(SURNAMES)} {pid}"
        )
        digits = f"9{rnd.randint(10, 99)}{rnd.randint(1000000, 9999999)}"
        email = f"office{pid}@{company.lower()}.example" if company.isascii() else f"office{pid}@firm.example"
        created = START + timedelta(seconds=pid * 90)
        yield {
            "id": pid,
            "kind": "person" if person else "organisation",
            "name": name,
            "relations": ["client"] if rnd.random() < 0.85 else ["client", "partner"],
            "status": STATUSES[rnd.randrange(3)],
            "status_changed_at": created,
            "owner_id": owner,
            "team_id": team_of[owner],
            "tax_id": str(rnd.randint(10**9, 10**10 - 1)),
            "website": "",
            "addresses": json.dumps(
                [
                    {
                        "text": f"г. Москва, ул. {rnd.choice(SURNAMES)}а, д. {pid % 200 + 1}",
                        "type": "legal",
                        "city": "Москва",
                        "country": "RU",
                        "postcode": "",
                    }
                ],
                ensure_ascii=False,
            ),
            "phones": json.dumps([{"number": f"+7{digits}", "type": "work"}]),
            "emails": json.dumps([{"address": email, "type": "work"}]),
            "tags": rnd.sample(TAGS, rnd.randint(0, 2)),
            "contact_index": f"{digits} 7{digits} 8{digits} {email}",
            "custom": "{}",
            "created_at": created,
            "updated_at": created,
            "version": 1,
        }


def activity_rows(
    parties: int, owner_of: list[int], team_of: dict[int, int], now: datetime, seed: int = 2
) -> Iterator[dict[str, Any]]:
    rnd = random.Random(seed)
    subjects = [
        " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 5))).capitalize() for _ in range(997)
    ]
    texts = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 25))) for _ in range(1009)]
    aid = 0
    for pid in range(1, parties + 1):
        owner = owner_of[pid]
        for _ in range(ACTIVITIES_PER_PARTY):
            aid += 1
            starts = now - timedelta(days=rnd.uniform(-30, 700))
            done = starts < now
            yield {
                "id": aid,
                "type": ACTIVITY_TYPES[rnd.randrange(len(ACTIVITY_TYPES))],
                "status": "done" if done else "planned",
                "subject": subjects[aid % 997],
                "description": texts[aid % 1009],
                "party_id": pid,
                "contact_id": None,
                "owner_id": owner,
                "team_id": team_of[owner],
                "direction": "out",
                "starts_at": starts,
                "duration_minutes": rnd.choice((5, 15, 30, 60)),
                "outcome": "Договорились о встрече" if done and rnd.random() < 0.5 else "",
                "agreements": "",
                "custom": "{}",
                "created_at": min(starts, now),
                "updated_at": min(starts, now),
                "version": 1,
            }


def deal_rows(
    parties: int, owner_of: list[int], team_of: dict[int, int], now: datetime, seed: int = 3
) -> Iterator[dict[str, Any]]:
    rnd = random.Random(seed)
    stages = ("qualification", "needs", "proposal", "negotiation")
    for did in range(1, parties + 1):
        pid = rnd.randint(1, parties)
        owner = owner_of[pid]
        opened = now - timedelta(days=rnd.uniform(0, 365))
        r = rnd.random()
        status = "won" if r < 0.15 else "lost" if r < 0.3 else "open"
        stage = status if status != "open" else rnd.choice(stages)
        yield {
            "id": did,
            "title": f"Сделка {did}",
            "party_id": pid,
            "contact_id": None,
            "owner_id": owner,
            "team_id": team_of[owner],
            "amount": Decimal(rnd.randint(10, 5000) * 1000),
            "currency": "RUB",
            "expected_close": (opened + timedelta(days=rnd.randint(20, 120))).date(),
            "source": "web",
            "campaign_id": None,
            "pipeline": "sales.b2b",
            "instance_id": None,
            "stage": stage,
            "stage_entered_at": opened,
            "stage_due_at": opened + timedelta(days=7) if status == "open" else None,
            "probability": {"won": 100, "lost": 0}.get(status, 25),
            "status": status,
            "loss_reason_id": None,
            "loss_comment": "",
            "closed_at": opened + timedelta(days=30) if status != "open" else None,
            "custom": "{}",
            "created_at": opened,
            "updated_at": opened,
            "version": 1,
        }


def sqlite_form(value: Any) -> Any:
    """How Piccolo stores a value of this type in SQLite (what its global sqlite3 adapters
    write), as a fast function; None when sqlite3 takes the value as it is."""
    if isinstance(value, datetime):
        return str  # UTC-aware datetimes: '2021-01-01 00:01:30+00:00', as Piccolo writes them
    if isinstance(value, list):
        return json.dumps
    if isinstance(value, Decimal):
        return float
    if isinstance(value, date):
        return date.isoformat
    return None


def table_columns(table: Any) -> list[str]:
    return [c._meta.db_column_name for c in table._meta.columns]


class Loader:
    """Bulk inserts outside the ORM: executemany in large transactions on SQLite, COPY on
    PostgreSQL. Values are what Piccolo itself stores (its SQLite adapters are global)."""

    CHUNK = 50_000

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = url.startswith(("postgres://", "postgresql://"))
        self.conn: Any = None

    async def __aenter__(self) -> Loader:
        if self.pg:
            import asyncpg

            self.conn = await asyncpg.connect(self.url)
        else:
            import piccolo.engine.sqlite  # noqa: F401  (registers the adapters Piccolo writes with)

            self.conn = sqlite3.connect(self.url[len("sqlite:///") :], isolation_level=None)
            self.conn.execute("PRAGMA synchronous=OFF")  # this connection only: the bulk load
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.pg:
            await self.conn.close()
        else:
            self.conn.close()

    async def load(
        self, table: str, columns: list[str], rows: Iterator[dict[str, Any]], progress: Any, task: Any
    ) -> int:
        total = 0
        batch: list[Any] = []
        convert: list[tuple[int, Any]] | None = None  # (column index, SQLite storage form)

        async def flush() -> None:
            if self.pg:
                await self.conn.copy_records_to_table(table, records=batch, columns=columns)
            else:
                marks = ", ".join("?" for _ in columns)
                names = ", ".join(f'"{c}"' for c in columns)
                self.conn.execute("BEGIN")
                self.conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', batch)
                self.conn.execute("COMMIT")
            progress.update(task, advance=len(batch))

        for row in rows:
            values = [row[c] for c in columns]
            if not self.pg:
                if convert is None:
                    convert = [(i, f) for i, v in enumerate(values) if (f := sqlite_form(v)) is not None]
                for i, f in convert:
                    if values[i] is not None:
                        values[i] = f(values[i])
            batch.append(values)
            if len(batch) >= self.CHUNK:
                await flush()
                total += len(batch)
                batch = []
        if batch:
            await flush()
            total += len(batch)
        return total

    async def finish(self, tables: list[str]) -> None:
        if self.pg:
            for t in tables:
                await self.conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM \"{t}\"))"
                )
            await self.conn.execute("ANALYZE")
        else:
            self.conn.execute("ANALYZE")


async def seed(
    url: str, data_dir: Path, size: int, search_docs: int, plugins: tuple[str, ...]
) -> dict[str, Any]:
    """Migrate, create users and tokens, bulk-load the data set, build the search index."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from tessera import auth, cli_kernel, db
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.entities.tables import Activity, CrmUser, Party, Role, Team, UserRole
    from tessera.search import service as search_service

    settings = Settings(
        database_url=url,
        data_dir=data_dir,
        plugins=plugins,
        search_backend="postgres" if url.startswith("postgres") else "whoosh",
        secure_cookies=False,
    )
    pm = boot(settings)
    await db.start()
    info: dict[str, Any] = {"built_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        t0 = time.perf_counter()
        await cli_kernel.migrate_all(pm)  # what `tessera migrate` runs
        if "sales" in plugins:
            from tessera_sales import services as sales_services

            await sales_services.pipeline("sales.b2b")
            await sales_services.ensure_loss_reasons()
        info["migrate_s"] = round(time.perf_counter() - t0, 2)
        now = datetime.now(UTC)
        await Team.insert(*[Team(name=f"Team {t}") for t in range(TEAMS)])
        team_ids = [r["id"] for r in await Team.select(Team.id).order_by(Team.id)]
        await CrmUser.insert(
            *[
                CrmUser(email=f"m{i}@bench.example", name=f"Manager {i}", team_id=team_ids[i % TEAMS])
                for i in range(MANAGERS)
            ],
            CrmUser(email="admin@bench.example", name="Admin"),
        )
        users = {r["email"]: r for r in await CrmUser.select(CrmUser.id, CrmUser.email, CrmUser.team_id)}
        managers = [users[f"m{i}@bench.example"]["id"] for i in range(MANAGERS)]
        team_of = {
            users[f"m{i}@bench.example"]["id"]: users[f"m{i}@bench.example"]["team_id"]
            for i in range(MANAGERS)
        }
        admin_id = users["admin@bench.example"]["id"]
        roles = {r["name"]: r["id"] for r in await Role.select(Role.id, Role.name)}
        await UserRole.insert(
            *[UserRole(user_id=m, role_id=roles["manager"]) for m in managers],
            UserRole(user_id=admin_id, role_id=roles["admin"]),
        )
        info["managers"] = [
            {"id": m, "token": (await auth.create_token(m, "bench"))[1]} for m in managers[:TOKENS]
        ]
        info["admin"] = {"id": admin_id, "token": (await auth.create_token(admin_id, "bench"))[1]}
        info["creator"] = managers[-1]  # the owner of every party a create measure adds

        # owner of each party, known up front so activities and deals follow it
        owner_of = [0] * (size + 1)
        parties_gen = party_rows(size, managers, team_of)

        def remember() -> Iterator[dict[str, Any]]:
            for row in parties_gen:
                owner_of[row["id"]] = row["owner_id"]
                yield row

        counts = {"parties": size, "activities": size * ACTIVITIES_PER_PARTY}
        if "sales" in plugins:
            counts["deals"] = size
        columns = [
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        ]
        t0 = time.perf_counter()
        loaded = 0
        async with Loader(url) as loader:
            with Progress(*columns, disable=size < 5000) as progress:
                jobs: list[tuple[str, Any, Iterator[dict[str, Any]], int]] = [
                    ("party", Party, remember(), counts["parties"]),
                    ("activity", Activity, activity_rows(size, owner_of, team_of, now), counts["activities"]),
                ]
                if "sales" in plugins:
                    from tessera_sales.tables import Deal

                    jobs.append(
                        ("sales_deal", Deal, deal_rows(size, owner_of, team_of, now), counts["deals"])
                    )
                for name, table, rows, total in jobs:
                    task = progress.add_task(name, total=total, rate="")
                    started = time.perf_counter()
                    cols = [c for c in table_columns(table)]
                    n = await loader.load(name, cols, rows, progress, task)
                    loaded += n
                    progress.update(task, rate=f"{n / (time.perf_counter() - started):,.0f} rows/s")
            await loader.finish([name for name, *_ in jobs])
        seconds = time.perf_counter() - t0
        info["seed"] = {"rows": loaded, "seconds": round(seconds, 1), "rows_per_s": round(loaded / seconds)}
        info["counts"] = counts
        print(
            f"  seeded {loaded:,} rows in {seconds:.1f} s "
            f"({loaded / seconds:,.0f} rows/s, bulk insert + ANALYZE)"
        )

        # search index: the first ``search_docs`` parties, then marked built so the server
        # does not rebuild it at start-up
        t0 = time.perf_counter()
        searcher = search_service.searcher()
        await searcher.open()
        n_docs = min(search_docs, size)
        stamp = time.time()
        with Progress(*columns, disable=n_docs < 5000) as progress:
            task = progress.add_task("search index", total=n_docs, rate="")
            last = 0
            while last < n_docs:
                records = list(
                    await Party.select()
                    .where(Party.id > last, Party.id <= n_docs)
                    .order_by(Party.id)
                    .limit(5000)
                    .output(load_json=True)
                )
                if not records:
                    break
                last = records[-1]["id"]
                docs = await search_service.build_documents("party", records)
                for doc in docs:
                    doc.source = f"party:{doc.id}"
                await searcher.replace([f"party:{r['id']}" for r in records], docs, stamp)
                progress.update(task, advance=len(records))
        await searcher.mark_built()
        await searcher.close()
        info["search"] = {
            "docs": n_docs,
            "backend": settings.search_backend,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        info["manager_parties"] = {}
        for m in info["managers"]:
            ids = await Party.select(Party.id).where(Party.owner_id == m["id"], Party.id <= n_docs).limit(50)
            info["manager_parties"][str(m["id"])] = [r["id"] for r in ids]
    finally:
        await db.stop()
    return info


# =========================================================================== servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _glob_ignoring_case(text: str) -> str:
    return (
        "*" + "".join(f"[{ch.upper()}{ch.lower()}]" if ch.upper() != ch.lower() else ch for ch in text) + "*"
    )


#: The bare baseline's pools, the product's sizes: SQLite keeps up to 32 connections
#: (``TesseraSQLiteEngine.MAX_IDLE``), PostgreSQL's pool holds up to 20 (``tessera.db.start``).
SQLITE_POOL = 32
PG_POOL = 20


def bare_app(url: str) -> Any:
    """One Litestar route per measure, each the raw SQL our API runs (no auth, no ORM), on a
    connection pool as large as the product's."""
    from litestar import Litestar, get, post
    from tessera.db import MMAP_SIZE, TesseraSQLiteEngine

    assert TesseraSQLiteEngine.MAX_IDLE == SQLITE_POOL, "the baseline's pool follows the product's"

    pg = url.startswith("postgres")
    state: dict[str, Any] = {}

    def sql(text: str) -> str:
        if not pg:
            return text
        parts = text.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))

    @contextlib.asynccontextmanager
    async def sqlite_connection() -> Any:
        """A connection of the SQLite pool: as many as the product keeps
        (``TesseraSQLiteEngine.MAX_IDLE``), opened on demand, each with aiosqlite's thread;
        a request waits for one when all are busy."""
        import aiosqlite

        pool: asyncio.Queue[Any] = state["idle"]
        if pool.empty() and state["opened"] < SQLITE_POOL:
            state["opened"] += 1
            conn = await aiosqlite.connect(url[len("sqlite:///") :])
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA busy_timeout=30000")
            await conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")  # as the product's connections
            state["all"].append(conn)
        else:
            conn = await pool.get()
        try:
            yield conn
        finally:
            pool.put_nowait(conn)

    async def fetch(text: str, *args: Any) -> list[dict[str, Any]]:
        if pg:
            async with state["pool"].acquire() as conn:
                return [dict(r) for r in await conn.fetch(sql(text), *args)]
        async with sqlite_connection() as conn, conn.execute(text, args) as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    async def startup() -> None:
        if pg:
            import asyncpg

            state["pool"] = await asyncpg.create_pool(url, min_size=1, max_size=PG_POOL)
        else:
            import piccolo.engine.sqlite  # noqa: F401  (the adapters Piccolo writes with)

            state["idle"], state["opened"], state["all"] = asyncio.Queue(), 0, []
            # SQLite has one writer: writes queue here (as the product's writer queue) instead of
            # spinning on the busy timeout.
            state["write_lock"] = asyncio.Lock()

    async def shutdown() -> None:
        if pg:
            await state["pool"].close()
        else:
            for conn in state["all"]:
                await conn.close()

    def contains(column: str) -> str:
        return f"{column} ILIKE ?" if pg else f"{column} GLOB ?"

    def pattern(q: str) -> str:
        return f"%{q}%" if pg else _glob_ignoring_case(q)

    @get("/parties")
    async def parties(owner_id: int, status: str, q: str, limit: int = 50) -> list[dict[str, Any]]:
        return await fetch(
            f"SELECT * FROM party WHERE owner_id = ? AND status = ? AND {contains('name')} "
            "ORDER BY id LIMIT ?",
            owner_id,
            status,
            pattern(q),
            limit + 1,
        )

    @get("/parties/{party_id:int}/card")
    async def card(party_id: int) -> dict[str, Any]:
        out: dict[str, Any] = {"party": (await fetch("SELECT * FROM party WHERE id = ?", party_id))[0]}
        for name, text in (
            ("contacts", "SELECT * FROM contact WHERE party_id = ? ORDER BY id"),
            ("activities", "SELECT * FROM activity WHERE party_id = ? ORDER BY starts_at DESC"),
            ("tasks", "SELECT * FROM task WHERE party_id = ? ORDER BY id"),
            ("notes", "SELECT * FROM note WHERE party_id = ? ORDER BY id"),
            ("attachments", "SELECT * FROM attachment WHERE party_id = ? ORDER BY id"),
            ("status", "SELECT * FROM party_status_change WHERE party_id = ? ORDER BY changed_at"),
        ):
            out[name] = await fetch(text, party_id)
        if state.get("sales"):
            out["deals"] = await fetch("SELECT * FROM sales_deal WHERE party_id = ?", party_id)
        return out

    @get("/search")
    async def search(owner_id: int, q: str) -> list[dict[str, Any]]:
        return await fetch(
            f"SELECT id, name FROM party WHERE owner_id = ? AND {contains('name')} ORDER BY id LIMIT 20",
            owner_id,
            pattern(q),
        )

    @post("/parties")
    async def create(data: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        values = (
            "organisation",
            data["name"],
            ["client"] if pg else '["client"]',
            "potential",
            now,
            data["owner_id"],
            None,
            "",
            "",
            "[]",
            "[]",
            "[]",
            [] if pg else "[]",
            "",
            "{}",
            now,
            now,
            1,
        )
        text = (
            "INSERT INTO party (kind, name, relations, status, status_changed_at, owner_id, team_id, "
            "tax_id, website, addresses, phones, emails, tags, contact_index, custom, created_at, "
            "updated_at, version) "
            f"VALUES ({', '.join('?' for _ in values)}) RETURNING id"
        )
        if pg:
            async with state["pool"].acquire() as conn:
                row = await conn.fetchrow(sql(text), *values)
        else:
            async with state["write_lock"], sqlite_connection() as conn:  # one writer at a time
                async with conn.execute(text, values) as cursor:
                    row = await cursor.fetchone()
                await conn.commit()
        return {"id": row["id"], "name": data["name"]}

    state["sales"] = os.environ.get("BENCH_SALES") == "1"
    return Litestar(
        route_handlers=[parties, card, search, create],
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=None,
        debug=False,
    )


def crud_app(url: str) -> Any:
    """piccolo-api's PiccoloCRUD on the same tables (no auth), in a Starlette app."""
    from contextlib import asynccontextmanager

    from piccolo_api.crud.endpoints import PiccoloCRUD
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from tessera import db
    from tessera.entities.tables import Activity, Contact, Party

    engine = db.make_engine(url)
    db.use_engine(engine)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await db.start(engine)
        yield
        await db.stop(engine)

    def crud(table: Any) -> Any:
        return PiccoloCRUD(table, read_only=False, page_size=50)

    return Starlette(
        routes=[
            Mount("/party", crud(Party)),
            Mount("/activity", crud(Activity)),
            Mount("/contact", crud(Contact)),
        ],
        lifespan=lifespan,
    )


def ours_app(url: str, data_dir: str, plugins: tuple[str, ...]) -> Any:
    from tessera.app import create_app
    from tessera.config import Settings

    return create_app(
        Settings(
            database_url=url,
            data_dir=Path(data_dir),
            plugins=plugins,
            search_backend="postgres" if url.startswith("postgres") else "whoosh",
            secure_cookies=False,
        )
    )


def serve_main(argv: list[str]) -> None:
    """``run.py _serve KIND PORT URL DATA_DIR PLUGINS``: one server in this process."""
    import uvicorn

    kind, port, url, data_dir, plugins = argv
    names = tuple(p for p in plugins.split(",") if p)
    app = {
        "ours": lambda: ours_app(url, data_dir, names),
        "bare": lambda: bare_app(url),
        "crud": lambda: crud_app(url),
    }[kind]()
    if kind == "ours":
        # As `tessera serve`: pending migrations first (the tree may have gained one since the
        # data set was built).
        from tessera import cli_kernel, db

        async def migrate() -> None:
            await db.start()
            try:
                await cli_kernel.migrate_all(app.state.pm)
            finally:
                await db.stop()

        asyncio.run(migrate())
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False, lifespan="on")


@contextlib.contextmanager
def server(kind: str, url: str, data_dir: Path, plugins: tuple[str, ...]) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, BENCH_SALES="1" if "sales" in plugins else "0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.Popen(
        [sys.executable, __file__, "_serve", kind, str(port), url, str(data_dir), ",".join(plugins)],
        env=env,
        cwd=str(data_dir),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the {kind} server exited with {proc.returncode} at start-up")
            try:
                httpx.get(base + "/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {kind} server did not answer within 120 s") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# =========================================================================== load generator


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def load_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run each measure of ``spec`` against ``spec['base']``; a sample is a list of requests
    timed together (the CRUD baseline needs three requests for one card)."""
    import httpx

    counter = 0
    results: dict[str, Any] = {}

    def materialise(req: dict[str, Any]) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        out = dict(req)
        if "json" in req:
            out["json"] = {
                k: v.replace("{n}", f"{os.getpid()}-{counter}") if isinstance(v, str) else v
                for k, v in req["json"].items()
            }
        return out

    async def send(client: httpx.AsyncClient, sample: list[dict[str, Any]]) -> str | None:
        for req in sample:
            r = materialise(req)
            try:
                resp = await client.request(
                    r["method"], r["path"], headers=r.get("headers"), json=r.get("json")
                )
            except httpx.HTTPError as exc:  # a timeout is a failed request, not a failed benchmark
                return f"{r['method']} {r['path']} -> {type(exc).__name__}"
            if resp.status_code >= 400:
                return f"{r['method']} {r['path']} -> {resp.status_code} {resp.text[:300]}"
        return None

    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=spec["base"], timeout=60, limits=limits) as client:
        for name, m in spec["measures"].items():
            samples = m["samples"]
            errors: list[str] = []
            if m["mode"] == "latency":
                for i in range(min(5, len(samples))):  # warm-up
                    await send(client, samples[i])
                times: list[float] = []
                for i in range(m["n"]):
                    t0 = time.perf_counter()
                    err = await send(client, samples[i % len(samples)])
                    if err:  # a failed request is not a latency sample (an error page is quick)
                        errors.append(err)
                    else:
                        times.append((time.perf_counter() - t0) * 1000)
                results[name] = {
                    "p50_ms": round(pct(times, 50), 2) if times else None,
                    "p95_ms": round(pct(times, 95), 2) if times else None,
                    "n": len(times),
                    "errors": len(errors),
                }
            else:
                done = 0
                next_i = 0

                async def worker(samples: list[Any], deadline: float, errors: list[str]) -> None:
                    nonlocal done, next_i
                    while time.perf_counter() < deadline:
                        sample = samples[next_i % len(samples)]
                        next_i += 1
                        err = await send(client, sample)
                        if err:
                            errors.append(err)
                        else:
                            done += 1

                t0 = time.perf_counter()
                deadline = t0 + m["duration"]
                await asyncio.gather(*[worker(samples, deadline, errors) for _ in range(m["concurrency"])])
                elapsed = time.perf_counter() - t0
                results[name] = {
                    "rps": round(done / elapsed, 1),
                    "concurrency": m["concurrency"],
                    "seconds": round(elapsed, 2),
                    "errors": len(errors),
                }
            if errors:
                results[name]["first_error"] = errors[0]
    return results


def run_load(base: str, measures: dict[str, Any], workdir: Path) -> dict[str, Any]:
    spec_path = workdir / f"load-{time.monotonic_ns()}.json"
    spec_path.write_text(json.dumps({"base": base, "measures": measures}))
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, __file__, "_load", str(spec_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


# =========================================================================== measures per server


def measures_for(
    kind: str, info: dict[str, Any], opts: argparse.Namespace, rnd: random.Random
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(read measures, write measures) for one server: the same questions, each server's way."""
    read: dict[str, Any] = {}
    write: dict[str, Any] = {}
    managers = info["managers"]
    creator = info["creator"]

    def auth(m: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {m['token']}"} if kind == "ours" else {}

    lists, cards, searches = [], [], []
    for i in range(64):
        m = managers[i % len(managers)]
        q = QUERIES[i % len(QUERIES)]
        status = STATUSES[i % 3]
        qq = quote(q)
        if kind == "ours":
            lists.append(
                [
                    {
                        "method": "GET",
                        "path": f"/api/parties?status={status}&q={qq}&limit=50",
                        "headers": auth(m),
                    }
                ]
            )
            searches.append([{"method": "GET", "path": f"/api/search?q={qq}&limit=20", "headers": auth(m)}])
        elif kind == "bare":
            lists.append([{"method": "GET", "path": f"/parties?owner_id={m['id']}&status={status}&q={qq}"}])
            searches.append([{"method": "GET", "path": f"/search?owner_id={m['id']}&q={qq}"}])
        else:
            lists.append(
                [
                    {
                        "method": "GET",
                        "path": f"/party/?owner_id={m['id']}&status={status}&name={qq}"
                        "&name__match=contains&__order=id&__page_size=50",
                    }
                ]
            )
            searches.append(
                [
                    {
                        "method": "GET",
                        "path": f"/party/?owner_id={m['id']}&name={qq}"
                        "&name__match=contains&__order=id&__page_size=20",
                    }
                ]
            )
        ids = info["manager_parties"][str(m["id"])]
        if ids:
            pid = ids[rnd.randrange(len(ids))]
            if kind == "ours":
                cards.append([{"method": "GET", "path": f"/api/parties/{pid}/card", "headers": auth(m)}])
            elif kind == "bare":
                cards.append([{"method": "GET", "path": f"/parties/{pid}/card"}])
            else:
                cards.append(
                    [
                        {"method": "GET", "path": f"/party/{pid}/"},
                        {"method": "GET", "path": f"/contact/?party_id={pid}&__page_size=500"},
                        {
                            "method": "GET",
                            "path": f"/activity/?party_id={pid}&__order=-starts_at&__page_size=500",
                        },
                    ]
                )
    creator_token = info["creator_token"]
    if kind == "ours":
        create = [
            {
                "method": "POST",
                "path": "/api/parties",
                "headers": {"Authorization": f"Bearer {creator_token}"},
                "json": {"name": "Bench new {n}", "phones": [{"number": "+7 495 123-45-67"}]},
            }
        ]
    elif kind == "bare":
        create = [
            {"method": "POST", "path": "/parties", "json": {"name": "Bench new {n}", "owner_id": creator}}
        ]
    else:
        create = [
            {
                "method": "POST",
                "path": "/party/",
                "json": {
                    "name": "Bench new {n}",
                    "kind": "organisation",
                    "relations": ["client"],
                    "status": "potential",
                    "owner_id": creator,
                    "team_id": None,
                    "tax_id": "",
                    "website": "",
                    "addresses": "[]",
                    "phones": '[{"number": "+74951234567", "type": "work"}]',
                    "emails": "[]",
                    "tags": [],
                    "contact_index": "74951234567",
                    "custom": "{}",
                    "version": 1,
                    # PiccoloCRUD does not apply the columns' Python defaults (now) itself
                    "status_changed_at": "2026-01-01T00:00:00+00:00",
                    "created_at": "2026-01-01T00:00:00+00:00",
                    "updated_at": "2026-01-01T00:00:00+00:00",
                },
            }
        ]
    n, dur, conc = opts.requests, opts.duration, opts.concurrency
    read["party_list"] = {"mode": "latency", "samples": lists, "n": n}
    read["client_card"] = {"mode": "latency", "samples": cards, "n": n}
    read["search"] = {"mode": "latency", "samples": searches, "n": n}
    read["party_list_rps"] = {"mode": "throughput", "samples": lists, "duration": dur, "concurrency": conc}
    write["create_party"] = {"mode": "latency", "samples": [create], "n": n}
    write["create_party_rps"] = {
        "mode": "throughput",
        "samples": [create],
        "duration": dur,
        "concurrency": conc,
    }
    return read, write


def bench_engine(
    label: str, url: str, opts: argparse.Namespace, plugins: tuple[str, ...], workdir: Path
) -> dict[str, Any]:
    data_dir = workdir / f"data-{label}"
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"\n== {label}: {opts.size:,} parties ({url.split('@')[-1]})", flush=True)
    saved = workdir / f"seed-{label}.json"
    reused: dict[str, Any] | None = None
    if opts.reuse and saved.is_file():
        info = json.loads(saved.read_text())
        built = info.get("built_at") or datetime.fromtimestamp(saved.stat().st_mtime, UTC).isoformat(
            timespec="seconds"
        )
        reused = {"built_at": built, "from": str(saved), "figures": ["seed", "migrate_s", "search_index"]}
        print(f"  reusing the data set built {built} ({saved}): its load timings are that run's")
    else:
        info = asyncio.run(seed(url, data_dir, opts.size, opts.search_docs, plugins))
        info["creator_token"] = asyncio.run(_token_for(url, data_dir, plugins, info["creator"]))
        saved.write_text(json.dumps(info, default=str))
    # What the database holds now (a reused one also has the parties earlier create measures
    # added): the figures below, and the verdicts, are for these counts.
    counts = asyncio.run(count_rows(url))
    if counts != info["counts"]:
        print(f"  the database holds {counts} (built as {info['counts']})")
    results: dict[str, dict[str, Any]] = {}
    for kind in ("ours", "bare", "crud"):
        rnd = random.Random(5)
        read, write = measures_for(kind, info, opts, rnd)
        with server(kind, url, data_dir, plugins) as base:
            res = run_load(base, read, workdir)
            res.update(run_load(base, write, workdir))
        results[kind] = res
        for name, r in res.items():
            if r.get("errors"):
                print(f"  ! {kind} {name}: {r['errors']} errors, first: {r.get('first_error')}", flush=True)
    out: dict[str, Any] = {
        "url": url.split("@")[-1],
        "counts": counts,
        "counts_when_built": info["counts"],
        "seed": info["seed"],
        "migrate_s": info["migrate_s"],
        "search_index": info["search"],
        "reused": reused,
        "measures": {},
    }
    for name in ("party_list", "client_card", "search", "create_party"):
        ours, bare, crud = (results[k][name] for k in ("ours", "bare", "crud"))
        out["measures"][name] = {
            "ours": ours,
            "bare": bare,
            "crud": crud,
            "ratio_p50_vs_bare": ratio(ours["p50_ms"], bare["p50_ms"]),
            "ratio_p95_vs_bare": ratio(ours["p95_ms"], bare["p95_ms"]),
            "ratio_p50_vs_crud": ratio(ours["p50_ms"], crud["p50_ms"]),
            "ratio_p95_vs_crud": ratio(ours["p95_ms"], crud["p95_ms"]),
        }
    for name in ("party_list_rps", "create_party_rps"):
        ours, bare, crud = (results[k][name] for k in ("ours", "bare", "crud"))
        out["measures"][name] = {
            "ours": ours,
            "bare": bare,
            "crud": crud,
            "pct_of_bare": round(100 * ours["rps"] / bare["rps"], 1) if bare["rps"] else None,
            "pct_of_crud": round(100 * ours["rps"] / crud["rps"], 1) if crud["rps"] else None,
        }
    m = out["measures"]
    parties = counts["parties"]
    list_p95 = m["party_list"]["ours"]["p95_ms"]
    out["targets"] = {
        "party_list_p95_ms": judge(
            f"< {TARGETS['party_list_p95_ms']:g} ms at 1M parties",
            list_p95,
            list_p95 is not None and list_p95 < TARGETS["party_list_p95_ms"],
            size=parties,
            stated_size=TARGET_SIZES["party_list_p95_ms"],
            errors=m["party_list"]["ours"]["errors"],
        ),
    }
    for name, measure in (("list", "party_list_rps"), ("create", "create_party_rps")):
        pct_of_bare = m[measure]["pct_of_bare"]
        out["targets"][f"{name}_throughput_pct_of_bare"] = judge(
            f">= {TARGETS['throughput_pct_of_bare']:g} % at 1M parties",
            pct_of_bare,
            (pct_of_bare or 0) >= TARGETS["throughput_pct_of_bare"],
            size=parties,
            stated_size=TARGET_SIZES["throughput_pct_of_bare"],
            # a failed request of either side skews the ratio
            errors=m[measure]["ours"]["errors"] + m[measure]["bare"]["errors"],
        )
    print_engine(label, out)
    return out


def ratio(ours: float | None, base: float | None) -> float | None:
    return round(ours / base, 2) if ours is not None and base else None


def judge(target: str, value: Any, met: bool, *, size: int, stated_size: int, errors: int) -> dict[str, Any]:
    """A target's verdict: judged only at the size it is stated for, and only with every
    request of its measures answered (a failed request is no evidence of speed)."""
    if size < stated_size:
        verdict, shown = "not judged", f"not judged (size {size:,} < {stated_size:,})"
    elif errors:
        verdict, shown = "fail", f"FAIL ({errors:,} failed requests)"
    else:
        verdict, shown = ("pass", "PASS") if met else ("fail", "FAIL")
    return {
        "target": target,
        "value": value,
        "size": size,
        "stated_size": stated_size,
        "errors": errors,
        "verdict": verdict,
        "shown": shown,
        "pass": verdict == "pass",
    }


def shown_verdict(t: dict[str, Any]) -> str:
    """The printed verdict (results files of earlier versions have only ``pass``)."""
    return str(t.get("shown") or ("PASS" if t["pass"] else "FAIL"))


async def count_rows(url: str) -> dict[str, int]:
    """Parties, activities and deals in the database now."""
    tables = {"parties": "party", "activities": "activity", "deals": "sales_deal"}
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            present = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
            return {
                k: int(await conn.fetchval(f"SELECT COUNT(*) FROM {t}"))
                for k, t in tables.items()
                if t in present
            }
        finally:
            await conn.close()
    con = sqlite3.connect(url[len("sqlite:///") :])
    try:
        present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {
            k: int(con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for k, t in tables.items()
            if t in present
        }
    finally:
        con.close()


async def _token_for(url: str, data_dir: Path, plugins: tuple[str, ...], user_id: int) -> str:
    from tessera import auth, db
    from tessera.app import boot
    from tessera.config import Settings

    boot(Settings(database_url=url, data_dir=data_dir, plugins=plugins))
    await db.start()
    try:
        return (await auth.create_token(user_id, "bench-create"))[1]
    finally:
        await db.stop()


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def ms(x: dict[str, Any]) -> str:
    """p50 / p95 of a latency measure (``-`` when every request failed)."""
    if x["p50_ms"] is None:
        return "- / -"
    return f"{x['p50_ms']:.1f} / {x['p95_ms']:.1f}"


def print_engine(label: str, out: dict[str, Any]) -> None:
    m = out["measures"]
    print(
        f"\n  {label}: {out['counts']}  search index: {out['search_index']['docs']:,} parties "
        f"({out['search_index']['backend']})"
    )
    if out.get("reused"):
        print(
            f"  seed, migration and search index figures are REUSED from the run of "
            f"{out['reused']['built_at']}, not measured now"
        )
    head = f"  {'measure':<16} {'ours p50/p95 ms':>18} {'bare p50/p95 ms':>18} {'crud p50/p95 ms':>18} {'ours/bare p50,p95':>18} {'ours/crud p50,p95':>18}"  # noqa: E501
    print(head)
    for name in ("party_list", "client_card", "search", "create_party"):
        r = m[name]

        print(
            f"  {name:<16} {ms(r['ours']):>18} {ms(r['bare']):>18} {ms(r['crud']):>18} "
            f"{num(r['ratio_p50_vs_bare']):>8}, {num(r['ratio_p95_vs_bare']):<8} "
            f"{num(r['ratio_p50_vs_crud']):>8}, {num(r['ratio_p95_vs_crud']):<8}"
        )
    print(
        f"  {'throughput':<16} {'ours req/s':>18} {'bare req/s':>18} {'crud req/s':>18} "
        f"{'ours % of bare':>18} {'ours % of crud':>18}"
    )
    for name in ("party_list_rps", "create_party_rps"):
        r = m[name]
        print(
            f"  {name:<16} {r['ours']['rps']:>18,.1f} {r['bare']['rps']:>18,.1f} {r['crud']['rps']:>18,.1f} "
            f"{r['pct_of_bare']!s:>17}% {r['pct_of_crud']!s:>17}%"
        )
    for name, t in out["targets"].items():
        print(f"  target {name}: {t['value']} ({t['target']}) -> {shown_verdict(t)}")


# =========================================================================== import


def bench_import(rows: int, workdir: Path, plugins: tuple[str, ...]) -> dict[str, Any]:
    """Time ``tessera import parties FILE.csv`` (``tessera.importer``) into a fresh SQLite file."""
    if importlib.util.find_spec("tessera.importer") is None:
        print("\nimport: not available (tessera.importer is missing)")
        return {"available": False}
    path = workdir / "import.csv"
    rnd = random.Random(9)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "kind", "status", "phones", "emails", "tags"])
        for i in range(rows):
            company = rnd.choice(COMPANIES)
            w.writerow(
                [
                    f"{rnd.choice(FORMS)} {company} {rnd.choice(SURNAMES)} {i}",
                    "organisation",
                    rnd.choice(STATUSES),
                    # unique per row (random ones collide at 100k rows: the import refuses duplicates)
                    f"+7 9{i // 1_000_000 % 90 + 10:02d} {i // 10_000 % 100 + 100:03d}-{i // 100 % 100:02d}-"
                    f"{i % 100:02d}",
                    f"import{i}@example.com",
                    rnd.choice(TAGS),
                ]
            )
    data_dir = workdir / "data-import"
    shutil.rmtree(data_dir, ignore_errors=True)  # a fresh database (--reuse keeps the work dir)
    env = dict(os.environ, TESSERA_DATA_DIR=str(data_dir), TESSERA_PLUGINS=",".join(plugins) or "none")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("TESSERA_DATABASE_URL", None)
    tessera = str(Path(sys.executable).with_name("tessera"))
    subprocess.run([tessera, "migrate"], env=env, check=True, capture_output=True, cwd=str(workdir))
    t0 = time.perf_counter()
    # --no-index: the import's own speed; the search index is then brought up to date by the
    # worker (whoosh takes ~1 ms per party, see docs/import.md), as a big import would be run.
    out = subprocess.run(
        [tessera, "import", "parties", str(path), "--no-index"],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        cwd=str(workdir),
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        print(f"\nimport: failed ({out.returncode}): {(out.stderr or out.stdout)[-1000:]}")
        return {"available": True, "error": (out.stderr or out.stdout)[-1000:]}
    con = sqlite3.connect(data_dir / "tessera.sqlite3")
    imported = con.execute("SELECT COUNT(*) FROM party").fetchone()[0]
    con.close()
    # The command's own timer: from opening the file to the commit.
    found = re.search(r"rows in ([0-9.]+) s", out.stdout)
    seconds = float(found.group(1)) if found else wall
    rate = imported / seconds
    result = {
        "available": True,
        "engine": "sqlite",
        "rows": imported,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rate),
        "wall_seconds_with_process_start": round(wall, 2),
        "rows_per_s_with_process_start": round(imported / wall),
        "search_indexing": "left to the worker (--no-index)",
    }
    result.update(
        judge(
            f">= {TARGETS['import_rows_per_s']:,.0f} rows/s at {TARGET_SIZES['import_rows_per_s']:,} rows",
            round(rate),
            rate >= TARGETS["import_rows_per_s"],
            size=imported,
            stated_size=TARGET_SIZES["import_rows_per_s"],
            errors=max(rows - imported, 0),  # rows the import did not take
        )
    )
    print(
        f"\nimport: {imported:,} parties from CSV into SQLite in {seconds:.1f} s = {rate:,.0f} rows/s "
        f"(target {result['target']}) -> {shown_verdict(result)}; "
        f"{wall:.1f} s = {imported / wall:,.0f} rows/s with process start"
    )
    return result


# =========================================================================== summary


def markdown_verdict(t: dict[str, Any]) -> str:
    shown = shown_verdict(t)
    return "pass" if shown == "PASS" else f"**{shown.lower()}**" if shown.startswith("FAIL") else shown


def summary_markdown(result: dict[str, Any]) -> str:
    """The results as the Markdown tables of docs/performance.md."""
    m = result["machine"]
    size = result["size"]
    lines = [
        f"Run {result['generated_at']}: `{result['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}, PostgreSQL {m['postgresql'] or '-'}. Data: {size['parties']:,} parties, "
        f"{size['activities']:,} activities, {size['deals']:,} deals, {size['managers']} managers in "
        f"{size['teams']} teams; {size['search_docs']:,} parties in the search index. Latency: "
        f"{result['settings']['requests']} sequential requests on one keep-alive connection; throughput: "
        f"{result['settings']['concurrency']} concurrent clients for {result['settings']['duration_s']:g} s.",
    ]
    labels = {
        "party_list": "party list (status + name filter, manager)",
        "client_card": "client card",
        "search": "search",
        "create_party": "create party",
    }
    for engine, e in result["engines"].items():
        lines += [
            "",
            f"### {'SQLite' if engine == 'sqlite' else 'PostgreSQL'}",
            "",
            (
                f"Reused data set, built {e['reused']['built_at']} (these load figures are that run's): "
                if e.get("reused")
                else ""
            )
            + f"Bulk load {e['seed']['rows']:,} rows in {e['seed']['seconds']:g} s "
            f"({e['seed']['rows_per_s']:,} rows/s); search index of {e['search_index']['docs']:,} parties "
            f"({e['search_index']['backend']}) in {e['search_index']['seconds'] or '?'} s."
            + (
                f" Measured on {', '.join(f'{v:,} {k}' for k, v in e['counts'].items())}."
                if "counts_when_built" in e
                else ""
            ),
            "",
            "| measure | ours p50 / p95 ms | bare Litestar + SQL p50 / p95 ms | PiccoloCRUD p50 / p95 ms "
            "| ours / bare (p50, p95) | ours / PiccoloCRUD (p50, p95) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, label in labels.items():
            r = e["measures"][name]
            lines.append(
                f"| {label} | {ms(r['ours'])} | {ms(r['bare'])} | {ms(r['crud'])} | "
                f"{num(r['ratio_p50_vs_bare'])}, {num(r['ratio_p95_vs_bare'])} | "
                f"{num(r['ratio_p50_vs_crud'])}, {num(r['ratio_p95_vs_crud'])} |"
            )
        lines += [
            "",
            "| throughput | ours req/s | bare req/s | PiccoloCRUD req/s | ours % of bare "
            "| ours % of PiccoloCRUD |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, label in (("party_list_rps", "party list"), ("create_party_rps", "create party")):
            r = e["measures"][name]
            lines.append(
                f"| {label} | {r['ours']['rps']:,.1f} | {r['bare']['rps']:,.1f} | {r['crud']['rps']:,.1f} | "
                f"{r['pct_of_bare']} % | {r['pct_of_crud']} % |"
            )
        lines += ["", "| target | value | result |", "| --- | --- | --- |"]
        for name, t in e["targets"].items():
            lines.append(f"| {name} {t['target']} | {t['value']} | {markdown_verdict(t)} |")
    imp = result.get("import", {})
    lines.append("")
    if imp.get("available") and "rows_per_s" in imp:
        if "wall_seconds_with_process_start" in imp:
            verdict = markdown_verdict(imp)
            lines.append(
                f"Import (`tessera import parties FILE.csv --no-index` into SQLite, the command's own "
                f"timer from opening the file to the commit): {imp['rows']:,} rows in {imp['seconds']:g} s = "
                f"{imp['rows_per_s']:,} rows/s (target {imp['target']}: {verdict}); "
                f"with process start {imp['wall_seconds_with_process_start']:g} s = "
                f"{imp['rows_per_s_with_process_start']:,} rows/s. Search indexing is left to the worker."
            )
        else:  # results of an earlier version of this script
            lines.append(
                f"Import (`tessera import parties FILE.csv` into SQLite, process start included): "
                f"{imp['rows']:,} rows in {imp['seconds']:g} s = {imp['rows_per_s']:,} rows/s "
                f"(target {imp['target']}: {'pass' if imp['pass'] else '**fail**'})."
            )
    elif imp.get("available"):
        lines.append(f"Import: failed ({imp.get('error', '')[-200:]!r}).")
    else:
        lines.append("Import: not available (no `tessera.importer` when this run was made).")
    return "\n".join(lines) + "\n"


# =========================================================================== machine, main


def machine(pg_url: str | None) -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    pg_version = None
    if pg_url:

        async def version() -> str:
            import asyncpg

            conn = await asyncpg.connect(pg_url)
            try:
                return str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()

        with contextlib.suppress(Exception):
            pg_version = asyncio.run(version())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram,
        "os": os_name,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "load_generator": "httpx.AsyncClient in a separate process",
        "server": "uvicorn, one process per server, on 127.0.0.1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", default=os.environ.get("CRM_TEST_POSTGRES", ""), help="PostgreSQL server URL")
    parser.add_argument(
        "--pg-db", default="bench_run", help="database created (dropped first) on that server"
    )
    parser.add_argument("--size", type=int, default=1_000_000, help="parties (activities: 5x, deals: 1x)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--pg-only", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument("--quick", action="store_true", help="few requests, short throughput runs (CI smoke)")
    parser.add_argument(
        "--requests", type=int, default=None, help="requests per latency measure (default 200)"
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per throughput run (default 10)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="clients in throughput runs (default 16)"
    )
    parser.add_argument("--search-docs", type=int, default=100_000, help="parties put into the search index")
    parser.add_argument(
        "--import-rows", type=int, default=None, help="CSV rows for the import measure (100000)"
    )
    parser.add_argument("--workdir", default=None, help="where the SQLite file and data dirs go (a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and the PostgreSQL database")
    parser.add_argument(
        "--reuse", action="store_true", help="measure on the data sets a --keep run left in --workdir"
    )
    parser.add_argument("--summary", metavar="JSON", help="only print the Markdown tables of a results file")
    opts = parser.parse_args()
    if opts.summary:
        print(summary_markdown(json.loads(Path(opts.summary).read_text())), end="")
        return
    opts.requests = opts.requests or (20 if opts.quick else 200)
    opts.duration = opts.duration or (1.5 if opts.quick else 10.0)
    opts.concurrency = opts.concurrency or (4 if opts.quick else 16)
    opts.import_rows = opts.import_rows or (1000 if opts.quick else 100_000)

    plugins: tuple[str, ...] = ("sales",) if importlib.util.find_spec("tessera_sales") else ()
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="tessera-bench-run-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    pg_url = None if opts.sqlite_only else (opts.pg or None)
    if opts.pg_only and not pg_url:
        parser.error("--pg-only needs --pg URL or CRM_TEST_POSTGRES")
    info = machine(pg_url)
    print(
        f"Tessera benchmark: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB, {info['os']}, "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {info['postgresql'] or '-'}; "
        f"plugins: {', '.join(plugins) or 'none'}"
    )
    result: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "machine": info,
        "size": {
            "parties": opts.size,
            "activities": opts.size * ACTIVITIES_PER_PARTY,
            "deals": opts.size if plugins else 0,
            "search_docs": min(opts.search_docs, opts.size),
            "managers": MANAGERS,
            "teams": TEAMS,
        },
        "plugins": list(plugins),
        "settings": {"requests": opts.requests, "duration_s": opts.duration, "concurrency": opts.concurrency},
        "targets": TARGETS,
        "engines": {},
    }
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")

    try:
        if not opts.pg_only:
            sqlite_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
            result["engines"]["sqlite"] = bench_engine("SQLite", sqlite_url, opts, plugins, workdir)
            write()  # what is measured survives a failure further on
        if pg_url:
            from tessera import db

            name = opts.pg_db
            if not (opts.reuse and (workdir / "seed-PostgreSQL.json").is_file()):
                asyncio.run(
                    db.execute_on_server(
                        pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
                    )
                )
            try:
                result["engines"]["postgresql"] = bench_engine(
                    "PostgreSQL", db.database_url_for(pg_url, name), opts, plugins, workdir
                )
            finally:
                if not opts.keep:
                    asyncio.run(
                        db.execute_on_server(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    )
        result["import"] = bench_import(opts.import_rows, workdir, plugins)
    finally:
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    write()
    print(f"\nwritten {out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_load":
        spec = json.loads(Path(sys.argv[2]).read_text())
        print(json.dumps(asyncio.run(load_main(spec))))
    else:
        main()
