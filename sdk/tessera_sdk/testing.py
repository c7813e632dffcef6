"""pytest plugin for Tessera and its plugins (registered through the ``pytest11`` entry point).

Fixtures:

* ``backend`` — ``"sqlite"`` and ``"postgres"``: every test that uses ``crm`` runs on both.
  PostgreSQL comes from ``CRM_TEST_POSTGRES`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``);
  without it PostgreSQL tests are skipped, and the end of the run says how many
  (``PostgreSQL: N tests skipped ...``; with it: ``PostgreSQL: N tests ran on URL``); with it
  and no server answering, the run stops.
* ``crm`` — a booted kernel on an empty, migrated database with the plugins named by
  ``@pytest.mark.plugins("sales", ...)`` (none by default), an HTTP client, and helpers to
  create users and sign in as them.
* ``frozen_clock`` — the kernel clock stopped at a fixed moment; ``frozen_clock.advance(days=1)``.

Each test gets its own database: SQLite files and PostgreSQL databases are copied from a
template migrated once per plugin set, so a test costs milliseconds, not a migration.
A test's PostgreSQL database commits asynchronously (``synchronous_commit = off``: it is
thrown away, no test kills the PostgreSQL server) and is dropped by a background thread after
the test: PostgreSQL 15 runs a checkpoint for every ``DROP DATABASE``, which took two seconds
of every PostgreSQL test's teardown on a busy machine (docs/performance.md, "Test suite speed").
"""

from __future__ import annotations

import asyncio
import io
import os
import queue
import re
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tessera.db import database_url_for, execute_on_server

POSTGRES_ENV = "CRM_TEST_POSTGRES"
POSTGRES_SKIP_REASON = f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://user@host:port/db"
DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
#: The password of every user ``crm.user()`` creates unless the test names another.
PASSWORD = "correct-horse-battery"
#: The argon2id cost of the tests' password hashes (``Settings.argon2_*``): the lowest argon2
#: takes. The product's cost (64 MiB, 3 passes, 4 lanes) spent 0.19 s of CPU on every sign-in
#: and every user created: 150 s of the whole suite's CPU in the test processes alone. The
#: hashing is the same code; the cost is a setting, and a test that is about it sets its own.
TEST_PASSWORD_COST = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def pytest_sessionstart(session: pytest.Session) -> None:
    """With CRM_TEST_POSTGRES set, a silent PostgreSQL fails the run instead of skipping."""
    url = postgres_url()
    if not url:
        return
    try:
        asyncio.run(_pg_admin(url, "SELECT 1"))
    except Exception as exc:
        raise pytest.UsageError(
            f"{POSTGRES_ENV}={url} is set but PostgreSQL does not answer: {exc!r}"
        ) from exc


def pytest_configure(config: pytest.Config) -> None:
    # The processes tests start (``tessera`` commands, live servers, nested pytest runs) read
    # the cost from the environment; an explicit value wins.
    for name, value in TEST_PASSWORD_COST.items():
        os.environ.setdefault(f"TESSERA_{name.upper()}", str(value))
    config.addinivalue_line("markers", "plugins(*names): enable these plugins for the crm fixture")
    config.addinivalue_line("markers", "sqlite_only: storage behaviour that exists only on SQLite")
    config.addinivalue_line("markers", "postgres_only: storage behaviour that exists only on PostgreSQL")
    config.addinivalue_line(
        "markers", "search_backend(name): 'whoosh' (default) or 'postgres' (PostgreSQL databases only)"
    )


_ON_POSTGRES = re.compile(r"[\[-]postgres[\]-]")


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly whether the PostgreSQL half of the suite ran: without ``CRM_TEST_POSTGRES``
    every ``[postgres]`` test is skipped, and the summary line alone does not tell why."""
    if terminalreporter.config.option.collectonly:
        return
    url = postgres_url()
    if url:
        ran = sum(
            1
            for outcome in ("passed", "failed", "error")
            for report in terminalreporter.stats.get(outcome, [])
            if getattr(report, "when", "call") == "call" and _ON_POSTGRES.search(report.nodeid)
        )
        terminalreporter.write_line(f"PostgreSQL: {ran} tests ran on {_safe_url(url)}")
        return
    skipped = sum(
        1
        for report in terminalreporter.stats.get("skipped", [])
        if POSTGRES_SKIP_REASON in _skip_reason(report)
    )
    if skipped:
        terminalreporter.write_line(
            f"PostgreSQL: {skipped} tests skipped, they ran on SQLite only; set "
            f"{POSTGRES_ENV}=postgresql://user@host:port/db to run them",
            yellow=True,
            bold=True,
        )


def _safe_url(url: str) -> str:
    """``url`` without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        user, host = rest.rsplit("@", 1)
        return f"{scheme}://{user.split(':', 1)[0]}@{host}"
    return url


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


# The kernel's helpers, under the names tests and the SDK's fixtures import.
_db_url = database_url_for
_pg_admin = execute_on_server


class _Dropper:
    """Drops test databases in a background thread, so no test waits for the checkpoint of a
    ``DROP DATABASE``; the drops waiting in the queue go together, on separate connections
    (drops that wait at the same time share one checkpoint); ``drain()`` waits for all."""

    #: Drops at once (each holds a connection while it waits for the checkpoint); more at the
    #: end of the session, when nothing else of this process needs a connection.
    BATCH = 4
    DRAIN_BATCH = 12

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._draining = False

    def drop(self, base: str, name: str) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="tessera-pg-dropper", daemon=True)
                self._thread.start()
        self._queue.put((base, name))

    def _work(self) -> None:
        done = False
        while not done:
            batch = [self._queue.get()]
            while len(batch) < (self.DRAIN_BATCH if self._draining else self.BATCH):
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            drops = [item for item in batch if item is not None]
            if drops:
                asyncio.run(self._drop_all(drops))

    @staticmethod
    async def _drop_all(drops: list[tuple[str, str]]) -> None:
        async def one(base: str, name: str) -> None:
            try:
                await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # best effort, like the templates' drop at the end
                pass

        await asyncio.gather(*(one(base, name) for base, name in drops))

    def drain(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._draining = True
            self._queue.put(None)
            thread.join()
            self._draining = False


_DROPPER = _Dropper()


def drop_test_database(name: str) -> None:
    """Drop the PostgreSQL test database ``name`` soon, in the background (see ``_Dropper``);
    every drop is done by the end of the session."""
    base = postgres_url()
    if base:
        _DROPPER.drop(base, name)


#: Statements that make a throwaway PostgreSQL test database cheaper to write to: commits do
#: not wait for the WAL to reach the disk. (Only a crash of the PostgreSQL server could lose
#: the last commits; no test crashes it. The server killed by tests/test_durability.py is
#: Tessera's, which still only answers after PostgreSQL acknowledged the commit.)
def fast_commit_statements(name: str) -> list[str]:
    return [f'ALTER DATABASE "{name}" SET synchronous_commit = off']


@dataclass
class _Snapshot:
    """A PostgreSQL template as migrated: its tables, a fingerprint of its schema (``_SCHEMA``),
    the rows of the tables that have any (binary COPY) and every sequence's position."""

    tables: tuple[str, ...]
    schema: str
    rows: dict[str, bytes]
    sequences: dict[str, int | None]


_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
#: What a test could have changed in the schema (a migration row, a dropped index, a renamed
#: table, a trigger): a database whose answer differs from its template's is dropped.
_SCHEMA = (
    "SELECT (SELECT COUNT(*) FROM migration)::text || '/' "
    "|| (SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
    "WHERE schemaname = 'public') || '/' "
    "|| (SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = 'public')::text || '/' "
    "|| (SELECT COUNT(*) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public')::text || '/' "
    "|| (SELECT COUNT(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname = 'public')::text"
)


class _Reuse:
    """PostgreSQL test databases emptied and used again instead of dropped and created anew.

    A ``CREATE DATABASE`` from a template and the ``DROP DATABASE`` after the test cost the
    server about 60 and 110 ms of CPU (the drop forces a checkpoint and unlinks some 500 files)
    for each of the suite's ~800 PostgreSQL tests. After a test its database is brought back to
    the template's state instead — every table emptied and the template's rows copied back,
    sequences set back, in one transaction with triggers and foreign-key checks off — and the
    next test of the same plugin set takes it. A database whose schema changed (a test that
    migrated it, dropped an index, renamed a table) is dropped instead. Needs a superuser
    (``session_replication_role``); otherwise, or with ``TESSERA_TEST_PG_REUSE=0``, every test
    gets a fresh copy as before."""

    def __init__(self) -> None:
        self.free: dict[str, list[str]] = {}
        self.snapshots: dict[str, _Snapshot | None] = {}

    @staticmethod
    def wanted() -> bool:
        return os.environ.get("TESSERA_TEST_PG_REUSE", "1") != "0"

    def acquire(self, template: str) -> str | None:
        free = self.free.get(template)
        return free.pop() if free else None

    async def release(self, base: str | None, template: str, name: str) -> None:
        if base and self.wanted():
            if template not in self.snapshots:
                self.snapshots[template] = await _snapshot(_db_url(base, template))
            snapshot = self.snapshots[template]
            if snapshot is not None and await _reset(_db_url(base, name), snapshot):
                self.free.setdefault(template, []).append(name)
                return
        drop_test_database(name)

    def drop_all(self) -> None:
        for names in self.free.values():
            for name in names:
                drop_test_database(name)
        self.free.clear()


async def _snapshot(url: str) -> _Snapshot | None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            return None
        tables = tuple(r["tablename"] for r in await conn.fetch(_TABLES))
        rows: dict[str, bytes] = {}
        for table in tables:
            if table != "migration" and await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):
                buffer = io.BytesIO()
                await conn.copy_from_table(table, output=buffer, format="binary")
                rows[table] = buffer.getvalue()
        sequences = {
            r["name"]: r["last_value"]
            for r in await conn.fetch(
                "SELECT quote_ident(sequencename) AS name, last_value FROM pg_sequences "
                "WHERE schemaname = 'public'"
            )
        }
        return _Snapshot(tables, await conn.fetchval(_SCHEMA), rows, sequences)
    finally:
        await conn.close()


async def _reset(url: str, snapshot: _Snapshot) -> bool:
    """Bring a used test database back to its template's state; False when it cannot be (the
    caller drops it)."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url)
    except Exception:
        return False
    try:
        # A connection the test left open (a server it started, a leaked pool) would hold locks.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        tables = tuple(r["tablename"] for r in await conn.fetch(_TABLES))
        if tables != snapshot.tables or await conn.fetchval(_SCHEMA) != snapshot.schema:
            return False
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(";".join(f'DELETE FROM "{t}"' for t in tables if t != "migration"))
            for table, data in snapshot.rows.items():
                await conn.copy_to_table(table, source=io.BytesIO(data), format="binary")
            if snapshot.sequences:
                await conn.execute(
                    "SELECT "
                    + ", ".join(
                        f"setval('{name}', {value}, true)"
                        if value is not None
                        else f"setval('{name}', 1, false)"
                        for name, value in snapshot.sequences.items()
                    )
                )
        return True
    except Exception:
        return False
    finally:
        await conn.close()


_REUSE = _Reuse()


@dataclass
class _Templates:
    """Migrated template databases, one per (backend, plugin set)."""

    root: Path
    made: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    pg_databases: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def _tessera_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    templates = _Templates(root=tmp_path_factory.mktemp("tessera-templates"))
    yield templates
    _REUSE.drop_all()
    _DROPPER.drain()  # the tests' databases first: a template cannot go while a copy is made
    base = postgres_url()
    if base and templates.pg_databases:
        drops = [f'DROP DATABASE IF EXISTS "{name}"' for name in templates.pg_databases]
        try:
            asyncio.run(_pg_admin(base, *drops))
        except Exception:  # best effort: the server may be gone at exit
            pass


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("SQLite-only behaviour")
    if name == "sqlite" and request.node.get_closest_marker("postgres_only"):
        pytest.skip("PostgreSQL-only behaviour")
    if name == "sqlite" and _search_backend(request) == "postgres":
        pytest.skip("the PostgreSQL search backend needs a PostgreSQL database")
    if name == "postgres" and not postgres_url():
        pytest.skip(POSTGRES_SKIP_REASON)
    return name


def _search_backend(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("search_backend")
    return str(marker.args[0]) if marker else "whoosh"


def _wanted_plugins(request: pytest.FixtureRequest) -> tuple[str, ...]:
    names: list[str] = []
    for marker in request.node.iter_markers("plugins"):
        names.extend(marker.args)
    return tuple(sorted(set(names)))


_HASHES: dict[str, str] = {}
#: One Litestar app per plugin set, reused across tests (see the ``crm`` fixture).
_APPS: dict[tuple[str, ...], Any] = {}


def _password_hash(password: str) -> str:
    """argon2 is slow on purpose; tests create many users with the same password, so the
    (salted, valid) hash is computed once per password and reused."""
    if password not in _HASHES:
        from tessera import auth

        _HASHES[password] = auth.hash_password(password)
    return _HASHES[password]


@dataclass
class CRM:
    """A booted kernel for one test."""

    app: Any
    client: Any
    settings: Any
    pm: Any
    backend: str
    _counter: int = 0

    async def user(
        self,
        role: str = "manager",
        team_id: int | None = None,
        name: str | None = None,
        password: str = PASSWORD,
    ) -> dict[str, Any]:
        """Create a user with a role; returns the user row plus ``token`` (an API token)."""
        from tessera import auth
        from tessera.entities import admin, service
        from tessera.permissions import Principal

        self._counter += 1
        system = Principal(
            user_id=0, name="system", email="", permissions=frozenset({"*"}), scope="all", user_ids=None
        )
        row = await service.create(
            admin.USER,
            system,
            {
                "email": f"user{self._counter}-{uuid.uuid4().hex[:6]}@example.com",
                "name": name or f"User {self._counter}",
                "password_hash": _password_hash(password),
                "roles": [role],
                "team_id": team_id,
            },
        )
        _, token = await auth.create_token(row["id"], "test")
        row["token"] = token
        row["headers"] = {"Authorization": f"Bearer {token}"}
        return row

    async def team(self, name: str | None = None) -> dict[str, Any]:
        from tessera.entities import admin, service

        self._counter += 1
        return await service.create(admin.TEAM, self.system, {"name": name or f"Team {self._counter}"})

    @property
    def system(self) -> Any:
        from tessera.demo import system_principal

        return system_principal()

    async def principal(self, user: dict[str, Any]) -> Any:
        from tessera.permissions import build_principal

        return await build_principal(user["id"])

    async def sign_in(
        self, user: dict[str, Any], *, password: str = PASSWORD, language: str | None = "en"
    ) -> str:
        """Sign ``user`` in on the web client as a browser would (a fresh cookie jar; pages in
        ``language``, or the server's default for None); returns the session's CSRF token, which
        every form a test posts must carry."""
        self.client.cookies.clear()
        if language is None:
            self.client.headers.pop("Accept-Language", None)
        else:
            self.client.headers["Accept-Language"] = language
        r = await self.client.post("/login", data={"email": user["email"], "password": password})
        assert r.status_code == 303, r.text
        return self.csrf(await self.page("/app"))

    async def page(self, url: str, status: int = 200) -> str:
        """The signed-in user's page at ``url`` as text with HTML entities decoded; asserts its
        status (200 unless told)."""
        import html

        r = await self.client.get(url)
        assert r.status_code == status, (url, r.status_code, r.text[:800])
        return html.unescape(r.text)

    @staticmethod
    def csrf(text: str) -> str:
        """The CSRF token of the first form on a page."""
        match = _CSRF.search(text)
        assert match, text[:500]
        return match.group(1)

    async def call(self, method: str, url: str, user: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if user is not None:
            headers.update(user["headers"])
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, user: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self.call("GET", url, user, **kwargs)

    async def post(self, url: str, user: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self.call("POST", url, user, **kwargs)

    async def patch(self, url: str, user: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self.call("PATCH", url, user, **kwargs)

    async def put(self, url: str, user: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self.call("PUT", url, user, **kwargs)

    async def delete(self, url: str, user: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self.call("DELETE", url, user, **kwargs)


async def _migrated_template(
    templates: _Templates, backend: str, plugins: tuple[str, ...], settings_base: Any
) -> str:
    """Path (SQLite) or database name (PostgreSQL) of a template migrated for this plugin set."""
    key = (backend, plugins)
    if key in templates.made:
        return templates.made[key]
    from tessera import db, migrations
    from tessera.app import boot
    from tessera.permissions import ensure_default_roles

    tag = uuid.uuid4().hex[:8]
    if backend == "sqlite":
        path = templates.root / f"template-{tag}.sqlite3"
        settings = settings_base.with_(database_url=f"sqlite:///{path}")
        target = str(path)
    else:
        base = postgres_url()
        assert base
        target = f"tessera_tpl_{tag}"
        # Every migration commits: like the tests' copies, the template need not wait for each
        # commit to reach the disk (the copies are made after the migration, whose commits every
        # later session sees). ALTER DATABASE settings are not copied with a template.
        await _pg_admin(base, f'CREATE DATABASE "{target}"', *fast_commit_statements(target))
        templates.pg_databases.append(target)
        settings = settings_base.with_(database_url=_db_url(base, target))
    boot(settings)
    await db.start()
    try:
        await migrations.migrate()
        await ensure_default_roles()
    finally:
        await db.stop()
    templates.made[key] = target
    return target


@asynccontextmanager
async def booted_crm(
    templates: _Templates,
    backend: str,
    plugins: tuple[str, ...],
    tmp_path: Path,
    search_backend: str = "whoosh",
) -> AsyncIterator[CRM]:
    """A kernel with ``plugins`` on a fresh database of ``backend``, copied from a migrated
    template; serves both ``crm`` and the plugin author's ``tessera_app``."""
    import httpx
    from tessera import clock, db
    from tessera.app import boot, create_app, startup
    from tessera.config import Settings

    base_settings = Settings(
        data_dir=tmp_path / "data",
        plugins=plugins,
        secure_cookies=False,
        search_backend=search_backend,
        **TEST_PASSWORD_COST,
    )
    template = await _migrated_template(templates, backend, plugins, base_settings)
    if backend == "sqlite":
        path = tmp_path / "crm.sqlite3"
        shutil.copyfile(template, path)
        settings = base_settings.with_(database_url=f"sqlite:///{path}")
        pg_name = None
    else:
        base = postgres_url()
        assert base
        pg_name = _REUSE.acquire(template)
        if pg_name is None:
            pg_name = f"tessera_t_{uuid.uuid4().hex[:10]}"
            await _pg_admin(
                base, f'CREATE DATABASE "{pg_name}" TEMPLATE "{template}"', *fast_commit_statements(pg_name)
            )
        settings = base_settings.with_(database_url=_db_url(base, pg_name))
    app = _APPS.get(plugins)
    if app is None:
        app = _APPS[plugins] = create_app(settings)
    else:
        # Building a Litestar app with every route costs most of a second; routes depend only
        # on the plugin set, so the app is reused and pointed at this test's database and data.
        app.state.pm = boot(settings)
        app.state.settings = settings
        # As create_app does: this plugin set's catalogues (an app of another plugin set built
        # in between left only its own, and pages came out in English).
        from tessera import i18n
        from tessera.web.plugin_pages import catalogue_dirs

        i18n.configure(settings.default_locale, catalogue_dirs(app.state.pm))
    # The app runs in the test's own event loop (Litestar's AsyncTestClient would run it in a
    # second thread, where a PostgreSQL pool opened by the test cannot be used).
    await startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield CRM(app=app, client=client, settings=settings, pm=app.state.pm, backend=backend)
    finally:
        clock.set_clock(None)
        await db.stop()
        if pg_name:
            await _REUSE.release(postgres_url(), template, pg_name)


@pytest.fixture
async def crm(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, _tessera_templates: _Templates
) -> AsyncIterator[CRM]:
    """A kernel with the marked plugins on a fresh database of ``backend``."""
    plugins = _wanted_plugins(request)
    async with booted_crm(_tessera_templates, backend, plugins, tmp_path, _search_backend(request)) as booted:
        yield booted


@pytest.fixture
def frozen_clock() -> Iterator[Any]:
    """The kernel clock, stopped at Monday 2026-03-02 09:00 UTC until the test moves it."""
    from tessera import clock

    frozen = clock.FrozenClock(DEFAULT_START)
    clock.set_clock(frozen)
    yield frozen
    clock.set_clock(None)
