"""Engine selection (SQLite by default, PostgreSQL by URL) and the kernel's transaction helper.

Piccolo caches an engine on every table class (``Table._meta.db``). ``use_engine`` installs one
engine for the whole process and points every table class at it, so the API, CLI, worker and
tests all talk to the same database, and a test can switch from SQLite to PostgreSQL in-process.
"""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse, urlunparse

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType
from piccolo.table import Table

_engine: Engine | None = None


# Piccolo's SQLite converters for the commonest declared types, without their per-value
# wrapper (``decode_to_string``: sqlite3 always hands a converter bytes) and, for INTEGER,
# without a ``Decimal`` per value: a transition reads ~50 such values back (bench/workflow.py).
# The results are the same: a non-integral value stored in an INTEGER column still goes
# through ``Decimal`` as Piccolo does it.
def _int_out(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return int(Decimal(value.decode("utf8")))


def _timestamptz_out(value: bytes) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.decode("utf8")).replace(tzinfo=datetime.UTC)


def _boolean_out(value: bytes) -> bool:
    return value == b"1"


sqlite3.register_converter("INTEGER", _int_out)
sqlite3.register_converter("TIMESTAMPTZ", _timestamptz_out)
sqlite3.register_converter("BOOLEAN", _boolean_out)
#: Bytes of the database file SQLite reads through a memory map (see ``_connect_daemon``).
MMAP_SIZE = 2**31


#: How long a write transaction waits for another process's write lock before it fails.
WRITE_LOCK_WAIT_S = 30.0
#: SQLite's own busy wait for a statement of a running inline transaction (milliseconds): it
#: holds the write lock already, so only rare cases (WAL recovery) wait, and they block the loop.
INLINE_BUSY_MS = 200
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")
#: An inline transaction lets the event loop run other requests once it has held the thread
#: this long (a long job's transaction must not freeze the server; short ones never yield).
INLINE_SLICE_S = 0.02


class _InlineCursor:
    """A finished statement's rows, with the async surface of an aiosqlite cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def execute(self, sql: str, params: Any = ()) -> _InlineCursor:
        self._cursor.execute(sql, params)
        return self

    async def close(self) -> None:
        self._cursor.close()

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description


class _InlineStatement:
    """What ``execute`` returns: awaited it gives the cursor, ``async with`` closes it after."""

    def __init__(self, connection: _InlineConnection, sql: str, params: Any) -> None:
        self._connection, self._sql, self._params = connection, sql, params
        self._cursor: _InlineCursor | None = None

    async def _run(self) -> _InlineCursor:
        cursor = _InlineCursor(self._connection.raw.execute(self._sql, self._params))
        await self._connection.take_turns()
        return cursor

    def __await__(self) -> Any:
        return self._run().__await__()

    async def __aenter__(self) -> _InlineCursor:
        self._cursor = await self._run()
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class _InlineConnection:
    """A sqlite3 connection whose statements run on the event loop's own thread, with the part
    of aiosqlite's interface Piccolo's transactions and the importer use.

    Write transactions run on it. They are serialised (one write lock per database), and with
    a worker thread each of their statements waited for a turn of the event loop to come back:
    with 16 concurrent creates the lock was held ~7 ms for ~0.3 ms of SQLite work, which capped
    creates at ~140/s (bench/run.py). A statement of a short transaction costs microseconds,
    less than the thread hop; long bulk writes ask for a thread (``transaction(bulk=True)``).
    """

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self._slice_started = time.monotonic()

    async def take_turns(self) -> None:
        """Let other tasks run if this connection has held the thread for ``INLINE_SLICE_S``."""
        now = time.monotonic()
        if now - self._slice_started > INLINE_SLICE_S:
            await asyncio.sleep(0)
            self._slice_started = time.monotonic()

    @property
    def row_factory(self) -> Any:
        return self.raw.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self.raw.row_factory = factory

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def execute(self, sql: str, params: Any = ()) -> _InlineStatement:
        return _InlineStatement(self, sql, params)

    async def executemany(self, sql: str, rows: Any) -> _InlineCursor:
        cursor = _InlineCursor(self.raw.executemany(sql, rows))
        await self.take_turns()
        return cursor

    async def execute_fetchall(self, sql: str, params: Any = ()) -> list[Any]:
        rows = self.raw.execute(sql, params).fetchall()
        await self.take_turns()
        return rows

    async def commit(self) -> None:
        self.raw.commit()

    async def rollback(self) -> None:
        self.raw.rollback()

    async def close(self) -> None:
        self.raw.close()

    async def begin_immediate(self) -> None:
        """BEGIN IMMEDIATE without blocking the event loop while another process writes: SQLite
        is asked not to wait, and the wait happens here, asleep, up to ``WRITE_LOCK_WAIT_S``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_LOCK_WAIT_S
        delay = 0.001
        self.raw.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.raw.execute("BEGIN IMMEDIATE")
                    self._slice_started = time.monotonic()
                    return
                except sqlite3.OperationalError as exc:
                    busy = "locked" in str(exc) or "busy" in str(exc)
                    if not busy or loop.time() > deadline:
                        raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        finally:
            self.raw.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_MS}")


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
        self._idle_inline: list[_InlineConnection] = []
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

    def _connect_inline(self) -> _InlineConnection:
        from piccolo.engine.sqlite import dict_factory

        raw = sqlite3.connect(**self.connection_kwargs, check_same_thread=False)
        raw.row_factory = dict_factory
        raw.execute("PRAGMA foreign_keys = 1")
        raw.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
        raw.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_MS}")
        return _InlineConnection(raw)

    async def _run_in_existing_connection(
        self,
        connection: Any,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        if query_type == "insert" and sqlite3.sqlite_version_info < (3, 35):
            return await super()._run_in_existing_connection(connection, query, args, query_type, table)
        # Piccolo re-sends PRAGMA foreign_keys before every statement of a transaction (one more
        # round trip each); every connection here has it on from the start.
        async with connection.execute(query, args or []) as cursor:
            return await cursor.fetchall()

    async def _run_in_new_connection(
        self, query: str, args: list[Any] | None = None, query_type: str = "generic", table: Any = None
    ) -> Any:
        if not self._reuse or (query_type == "insert" and sqlite3.sqlite_version_info < (3, 35)):
            # (without RETURNING, Piccolo reads the new id back on the same cursor)
            return await super()._run_in_new_connection(query, args, query_type, table)
        if query.lstrip()[:7].upper().startswith(_WRITE_VERBS):
            # A write outside a transaction queues with the write transactions (see
            # ``_PooledTransaction``) instead of racing them for SQLite's lock.
            async with self.transaction(TransactionType.immediate) as tx:
                return await self._run_in_existing_connection(tx.connection, query, args, query_type, table)
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

    def take_inline(self) -> _InlineConnection:
        return self._idle_inline.pop() if self._idle_inline else self._connect_inline()

    async def give_back(self, connection: Any) -> None:
        """Keep a connection that finished cleanly (no open transaction) for the next use."""
        idle: list[Any] = self._idle_inline if isinstance(connection, _InlineConnection) else self._idle
        if self._reuse and len(idle) < self.MAX_IDLE:
            idle.append(connection)
        else:
            await connection.close()

    def transaction(
        self,
        transaction_type: TransactionType = TransactionType.deferred,
        allow_nested: bool = True,
        bulk: bool = False,
    ) -> SQLiteTransaction:
        if not self._reuse:
            return super().transaction(transaction_type, allow_nested)
        tx = _PooledTransaction(engine=self, transaction_type=transaction_type, allow_nested=allow_nested)
        tx.inline = transaction_type != TransactionType.deferred and not bulk
        return tx

    def reuse_connections(self) -> None:
        self._reuse = True

    async def close_idle(self) -> None:
        self._reuse = False
        idle, self._idle = [*self._idle, *self._idle_inline], []
        self._idle_inline = []
        for connection in idle:
            await connection.close()


class _PooledTransaction(SQLiteTransaction):
    """A transaction on a reused connection, given back after COMMIT/ROLLBACK succeeded (closed
    when either failed: its state is unknown)."""

    engine: TesseraSQLiteEngine
    _writer: asyncio.Lock | None = None
    #: A write transaction on an ``_InlineConnection`` (else an aiosqlite one).
    inline: bool = False

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
            if self.inline:
                self.connection = self.engine.take_inline()
            else:
                self.connection = await self.engine.take_connection()
            try:
                if self.inline:
                    await self.connection.begin_immediate()
                else:
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


_before_stop: list[Callable[[], Awaitable[None]]] = []


def before_stop(callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` when ``stop`` is called, before connections close (work a write left
    to finish in the background: event deliveries)."""
    _before_stop.append(callback)


async def stop(engine: Engine | None = None) -> None:
    for callback in _before_stop:
        await callback()
    engine = engine or get_engine()
    if isinstance(engine, PostgresEngine):
        await engine.close_connection_pool()
    elif isinstance(engine, TesseraSQLiteEngine):
        await engine.close_idle()


def transaction(bulk: bool = False) -> Any:
    """A write transaction: ``async with transaction(): ...``.

    On SQLite it starts with BEGIN IMMEDIATE so a read-then-write transaction waits for the
    write lock instead of failing with SQLITE_BUSY half-way, and its statements run on the
    event loop's thread (``_InlineConnection``); ``bulk=True`` (imports: statements of many
    milliseconds) runs them in a connection thread instead, so the server keeps answering.
    Nested use joins the outer one.
    """
    engine = get_engine()
    if isinstance(engine, TesseraSQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate, bulk=bulk)
    if isinstance(engine, SQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate)
    return engine.transaction()


async def raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run SQL with ``{}`` placeholders (Piccolo's style) on the current engine, inside the
    current transaction if there is one."""
    from piccolo.querystring import QueryString

    rows = await get_engine().run_querystring(QueryString(sql, *args), in_pool=True)
    return [dict(row) for row in rows or []]


#: Values one statement may bind: PostgreSQL's protocol (asyncpg) takes at most 32,767 and
#: SQLite (3.32 and later) 32,766 — the smaller for both.
MAX_ARGS = 32_766

_T = TypeVar("_T")


def chunks(items: Sequence[_T], per_item: int = 1, limit: int = MAX_ARGS) -> Iterator[Sequence[_T]]:
    """``items`` in consecutive slices small enough that a statement binding ``per_item``
    values for each item of a slice binds at most ``limit`` (and never more than ``MAX_ARGS``):
    multi-row inserts (``per_item`` = the columns written) and ``IN (...)`` lists (1)."""
    size = max(1, min(limit, MAX_ARGS) // max(1, per_item))
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Statement:
    """SQL written once with ``{}`` placeholders (as ``raw``), compiled once per engine type
    (``?`` for SQLite, ``$1 .. $n`` for PostgreSQL) and run with its arguments straight on the
    connection: no query objects built and compiled per call (an ORM ``select()`` of a wide
    table costs more Python than SQLite takes to run it). On PostgreSQL asyncpg prepares the
    same text once per connection. Arguments go to the driver as they are: JSON as text
    (``dump_json``), times as aware datetimes (SQLite's adapters, registered by Piccolo,
    store them as Piccolo does). Rows come back as dicts, JSON columns as text."""

    __slots__ = ("_compiled", "sql")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._compiled: dict[str, str] = {}

    def text(self, engine_type: str) -> str:
        compiled = self._compiled.get(engine_type)
        if compiled is None:
            parts = self.sql.split("{}")
            if engine_type == "postgres":
                marks = [f"${i}" for i in range(1, len(parts))]
            else:
                marks = ["?"] * (len(parts) - 1)
            compiled = parts[0] + "".join(m + p for m, p in zip(marks, parts[1:], strict=True))
            self._compiled[engine_type] = compiled
        return compiled

    async def rows(self, *args: Any) -> list[dict[str, Any]]:
        """Run it (inside the current transaction if there is one) and return its rows."""
        engine = get_engine()
        transaction = engine.current_transaction.get()
        if transaction is not None and type(connection := transaction.connection) is _InlineConnection:
            # A statement of an SQLite write transaction, straight on its connection: the
            # generic path below costs more Python than the statement (~10 per transition).
            compiled = self._compiled.get("sqlite")
            cursor = connection.raw.execute(compiled or self.text("sqlite"), args)
            try:
                rows = cursor.fetchall()
            finally:
                cursor.close()
            await connection.take_turns()
            return rows  # type: ignore[no-any-return]
        sql = self.text(engine.engine_type)
        if isinstance(engine, PostgresEngine):
            if transaction is not None:
                records = await transaction.connection.fetch(sql, *args)
            elif engine.pool is not None:
                records = await engine._run_in_pool(sql, args)
            else:
                records = await engine._run_in_new_connection(sql, args)
            return [dict(record) for record in records]
        if transaction is not None:
            return await engine._run_in_existing_connection(transaction.connection, sql, list(args))  # type: ignore[no-any-return,attr-defined]
        return await engine._run_in_new_connection(sql, list(args))  # type: ignore[no-any-return,attr-defined]


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
