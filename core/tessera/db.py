"""Engine selection (SQLite by default, PostgreSQL by URL) and the kernel's transaction helper.

Piccolo caches an engine on every table class (``Table._meta.db``). ``use_engine`` installs one
engine for the whole process and points every table class at it, so the API, CLI, worker and
tests all talk to the same database, and a test can switch from SQLite to PostgreSQL in-process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse, urlunparse

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType
from piccolo.table import Table

_engine: Engine | None = None
#: Bytes of the database file SQLite reads through a memory map (see ``_connect_daemon``).
MMAP_SIZE = 2**31


class TesseraSQLiteEngine(SQLiteEngine):
    """SQLite with a busy timeout, so concurrent writers wait instead of failing at once.

    WAL mode is persistent in the file and set by ``prepare_sqlite_file``; ``synchronous`` keeps
    SQLite's default FULL so a commit survives power loss.

    Between ``start()`` and ``stop()`` queries and transactions reuse idle connections:
    Piccolo opens a connection (and aiosqlite a thread) per query and per transaction, which
    costs ~2 ms, ten times the query itself, and a request runs several (bench/run.py).
    """

    #: Idle connections kept for queries outside transactions.
    MAX_IDLE = 32

    def __init__(self, path: str) -> None:
        super().__init__(path=path, timeout=30)
        self._idle: list[Any] = []
        self._reuse = False
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def writer_lock(self) -> asyncio.Lock:
        """This event loop's queue for write transactions (see ``_PooledTransaction``)."""
        loop = asyncio.get_running_loop()
        lock = self._writers.get(loop)
        if lock is None:
            lock = self._writers[loop] = asyncio.Lock()
        return lock

    async def _connect_daemon(self) -> Any:
        import aiosqlite
        from piccolo.engine.sqlite import dict_factory

        pending = aiosqlite.connect(**self.connection_kwargs)
        thread = getattr(pending, "_thread", None)
        if thread is not None:  # an idle connection must not keep the process alive at exit
            thread.daemon = True
        connection = await pending
        connection.row_factory = dict_factory
        await connection.execute("PRAGMA foreign_keys = 1")
        # Read through a memory map: a list of a manager's parties touches ~1,600 scattered
        # pages of a big base, and a read() per page (SQLite's cache is 2 MB per connection)
        # cost a third of the query (bench/run.py). Capped by SQLite at build time (2 GB).
        await connection.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
        return connection

    async def _run_in_new_connection(
        self, query: str, args: list[Any] | None = None, query_type: str = "generic", table: Any = None
    ) -> Any:
        if not self._reuse or (query_type == "insert" and sqlite3.sqlite_version_info < (3, 35)):
            # (without RETURNING, Piccolo reads the new id back on the same cursor)
            return await super()._run_in_new_connection(query, args, query_type, table)
        connection = await self.take_connection()
        try:
            async with connection.execute(query, args or []) as cursor:
                await connection.commit()
                rows = await cursor.fetchall()
        except BaseException:
            await connection.close()  # its state is unknown (a failed write may leave a transaction)
            raise
        await self.give_back(connection)
        return rows

    async def take_connection(self) -> Any:
        return self._idle.pop() if self._idle else await self._connect_daemon()

    async def give_back(self, connection: Any) -> None:
        """Keep a connection that finished cleanly (no open transaction) for the next use."""
        if self._reuse and len(self._idle) < self.MAX_IDLE:
            self._idle.append(connection)
        else:
            await connection.close()

    def transaction(
        self, transaction_type: TransactionType = TransactionType.deferred, allow_nested: bool = True
    ) -> SQLiteTransaction:
        if not self._reuse:
            return super().transaction(transaction_type, allow_nested)
        return _PooledTransaction(engine=self, transaction_type=transaction_type, allow_nested=allow_nested)

    def reuse_connections(self) -> None:
        self._reuse = True

    async def close_idle(self) -> None:
        self._reuse = False
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


class _PooledTransaction(SQLiteTransaction):
    """A transaction on a reused connection, given back after COMMIT/ROLLBACK succeeded (closed
    when either failed: its state is unknown)."""

    engine: TesseraSQLiteEngine
    _writer: asyncio.Lock | None = None

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None:
            return self._parent
        if self.transaction_type != TransactionType.deferred:
            # One writer of this process at a time asks SQLite for its write lock: the others
            # queue here instead of in SQLite's busy handler, which sleeps 1, 2, 5 ... 100 ms
            # between tries (16 concurrent creates spent most of their time asleep).
            self._writer = self.engine.writer_lock()
            await self._writer.acquire()
        try:
            self.connection = await self.engine.take_connection()
            try:
                await self.begin()
            except BaseException:  # e.g. another process kept the write lock past the timeout
                await self.connection.close()
                raise
        except BaseException:
            self._release_writer()
            raise
        self.context = self.engine.current_transaction.set(self)
        return self

    def _release_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent:
            return exception is None
        clean = False
        try:
            if exception:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
            clean = True
        finally:
            try:
                if clean and not self.connection.in_transaction:
                    await self.engine.give_back(self.connection)
                else:
                    await self.connection.close()
            finally:
                self._release_writer()
                self.engine.current_transaction.reset(self.context)
        return exception is None


def make_engine(url: str) -> Engine:
    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql"):
        return PostgresEngine(
            config={
                "host": parsed.hostname or "127.0.0.1",
                "port": parsed.port or 5432,
                "user": unquote(parsed.username or "postgres"),
                "password": unquote(parsed.password or "") or None,
                "database": parsed.path.lstrip("/") or "postgres",
            }
        )
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parsed.path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        prepare_sqlite_file(path)
        return TesseraSQLiteEngine(path=path)
    raise ValueError(f"Unsupported database URL {url!r}: use sqlite:///path or postgresql://host/db")


def prepare_sqlite_file(path: str) -> None:
    """Switch the file to WAL once; the mode is stored in the file, so it holds for every connection."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _all_table_classes() -> list[type[Table]]:
    found: list[type[Table]] = []
    stack: list[type[Table]] = list(Table.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def use_engine(engine: Engine) -> None:
    """Make ``engine`` the process-wide database for every table class (kernel and plugins)."""
    global _engine
    _engine = engine
    for table in _all_table_classes():
        table._meta.db = engine


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("No database configured: call tessera.db.use_engine() first")
    return _engine


def is_postgres(engine: Engine | None = None) -> bool:
    return (engine or get_engine()).engine_type == "postgres"


async def start(engine: Engine | None = None) -> None:
    engine = engine or get_engine()
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(min_size=1, max_size=20, reset=_keep_session)
    elif isinstance(engine, TesseraSQLiteEngine):
        engine.reuse_connections()


async def _keep_session(connection: Any) -> None:
    """Pool release without asyncpg's default reset query (RESET ALL, UNLISTEN *, CLOSE ALL,
    advisory unlock): a round trip for every pooled query, and the kernel keeps no session
    state (only SET LOCAL and transaction-level advisory locks). asyncpg still rolls back a
    transaction left open before this is called."""


async def stop(engine: Engine | None = None) -> None:
    engine = engine or get_engine()
    if isinstance(engine, PostgresEngine):
        await engine.close_connection_pool()
    elif isinstance(engine, TesseraSQLiteEngine):
        await engine.close_idle()


def transaction() -> Any:
    """A write transaction: ``async with transaction(): ...``.

    On SQLite it starts with BEGIN IMMEDIATE so a read-then-write transaction waits for the
    write lock instead of failing with SQLITE_BUSY half-way. Nested use joins the outer one.
    """
    engine = get_engine()
    if isinstance(engine, SQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate)
    return engine.transaction()


async def raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run SQL with ``{}`` placeholders (Piccolo's style) on the current engine, inside the
    current transaction if there is one."""
    from piccolo.querystring import QueryString

    rows = await get_engine().run_querystring(QueryString(sql, *args), in_pool=True)
    return [dict(row) for row in rows or []]


def database_url_for(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the same PostgreSQL server as ``server_url``."""
    return urlunparse(urlparse(server_url)._replace(path=f"/{name}"))


async def execute_on_server(server_url: str, *statements: str) -> None:
    """Run statements on a separate connection, outside the app's engine and transactions:
    CREATE/DROP DATABASE for tests, benchmarks and contract checks."""
    import asyncpg

    parsed = urlparse(server_url)
    conn = await asyncpg.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=unquote(parsed.username or "postgres"),
        password=unquote(parsed.password or "") or None,
        database=parsed.path.lstrip("/") or "postgres",
        timeout=10,
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
