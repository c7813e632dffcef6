"""Domain events through a transactional outbox.

``async with unit_of_work(): ...`` opens the write transaction; ``emit(...)`` inside it writes
the event to ``domain_event`` in that same transaction. After commit the events are delivered
to every ``tessera_on_event`` implementation and to kernel listeners (the search indexer).
An event whose delivery did not finish (crash, failing listener) stays undelivered and is
delivered again by ``redeliver_pending`` (run by the worker and at start-up): at-least-once.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import pluggy
from piccolo.query.base import Query
from piccolo.querystring import QueryString
from piccolo.utils.encoding import dump_json

from tessera import clock, db, prepared
from tessera.entities.tables import DomainEvent as DomainEventRow
from tessera.plugins import await_me_maybe

log = logging.getLogger(__name__)
_first = itemgetter(0)

try:  # what ``dump_json`` wrote, read back as ``json.loads`` reads it (faster when there)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


@dataclass(frozen=True)
class DomainEvent:
    id: int
    name: str
    entity: str
    entity_id: int | None
    payload: dict[str, Any]
    user_id: int | None
    occurred_at: datetime


Listener = Callable[[DomainEvent], Awaitable[None]]
#: Receives every event of one delivery batch at once (the search indexer: one index commit
#: per batch instead of one per event). It may return an awaitable for work it finishes in the
#: background: the events count as delivered once that completes, and a failure there leaves
#: them for redelivery, like a failing listener.
BatchListener = Callable[[list[DomainEvent]], Awaitable[Awaitable[None] | None]]


@dataclass
class _Dispatcher:
    pm: pluggy.PluginManager | None = None
    listeners: list[Listener] = field(default_factory=list)
    batch_listeners: list[BatchListener] = field(default_factory=list)


_dispatcher = _Dispatcher()


@dataclass(frozen=True)
class LogRow:
    """A row of an append-only log table (the audit log, a task's hand-off links, the inbox,
    a process's transitions) that nothing reads back inside the transaction that writes it.
    Handed to ``emit(..., also=[...])`` it is not written at once but with the unit of work's
    events, at the unit's end (still before commit): one multi-row statement for every log row
    and event of the change (on PostgreSQL), built without the ORM's per-row objects
    (``tessera.audit.entry`` returns one). Awaited, it is written at once."""

    table: str
    #: column -> value, every column but the id; JSON columns as text, times as aware datetimes.
    values: tuple[tuple[str, Any], ...]

    def __await__(self) -> Generator[Any, None, Any]:
        columns = tuple(map(_first, self.values))
        return prepared.Bound(_insert(self.table, columns, 1, False), [v for _, v in self.values]).__await__()


@dataclass
class _Unit:
    """What the outermost unit of work writes at its end and delivers after commit."""

    #: (name, entity, entity_id, payload as stored JSON, user_id, occurred_at, payload as text)
    events: list[tuple[str, str, int | None, dict[str, Any], int | None, datetime, str]] = field(
        default_factory=list
    )
    log_rows: list[LogRow] = field(default_factory=list)


_pending: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar(
    "tessera_pending_events", default=None
)
_actor: contextvars.ContextVar[int | None] = contextvars.ContextVar("tessera_actor", default=None)


def configure(
    pm: pluggy.PluginManager | None,
    listeners: list[Listener] | None = None,
    batch_listeners: list[BatchListener] | None = None,
) -> None:
    """Install the plugin manager and kernel listeners events are delivered to."""
    _dispatcher.pm = pm
    _dispatcher.listeners = list(listeners or [])
    _dispatcher.batch_listeners = list(batch_listeners or [])


def add_listener(listener: Listener) -> None:
    _dispatcher.listeners.append(listener)


def set_actor(user_id: int | None) -> contextvars.Token[int | None]:
    """Record who is acting in this context (API request, CLI user, job: None)."""
    return _actor.set(user_id)


def current_actor() -> int | None:
    return _actor.get()


@asynccontextmanager
async def unit_of_work() -> AsyncIterator[None]:
    """A write transaction whose events are delivered after it commits. Nested use joins the
    outer unit; only the outermost one delivers."""
    outer = _pending.get()
    if outer is not None:
        async with db.transaction():
            yield
        return
    unit = _Unit()
    token = _pending.set(unit)
    carried: list[int] = []
    try:
        async with db.transaction():
            yield
            collected = await _flush(unit)
            carried = _carry_marks()
            if carried:
                await _mark_delivered(carried)
    except BaseException:
        if carried:  # rolled back with the unit: the mark is written on its own, later
            _mark_soon(carried)
        raise
    finally:
        _pending.reset(token)
    if collected:
        await deliver_grouped(collected)
        # Let the work the delivery handed over (search indexing) start now: on SQLite a unit
        # of work never waits for the database (its statements run on the loop's thread),
        # so a caller writing one change after another (a job, bench/workflow.py) starved
        # the indexing until it stopped, and the index then lagged behind by all of them.
        await asyncio.sleep(0)


#: Rows per statement when a unit's log rows and events are written, at most (fewer when the
#: columns would bind more than ``db.MAX_ARGS`` values: a large unit, such as the receivables
#: plugin's overdue scan, writes thousands of audit entries and events at once).
_FLUSH_ROWS = 2000
_EVENT_COLUMNS = ("name", "entity", "entity_id", "payload", "user_id", "occurred_at")


#: The statements ``_flush`` writes, by shape (table, columns, row count, returning): a few.
_statements: dict[tuple[str, tuple[str, ...], int, bool], db.Statement] = {}


def _insert(table: str, columns: tuple[str, ...], rows: int, returning: bool) -> db.Statement:
    key = (table, columns, rows, returning)
    statement = _statements.get(key)
    if statement is None:
        names = ", ".join(f'"{c}"' for c in columns)
        one = "(" + ", ".join("{}" for _ in columns) + ")"
        sql = f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([one] * rows)
        sql += ' RETURNING "id"' if returning else ""
        if len(_statements) > 1000:  # shapes are few; never let odd ones pile up
            _statements.clear()
        statement = _statements[key] = db.Statement(sql)
    return statement


async def _flush(unit: _Unit) -> list[DomainEvent]:
    """Write the unit's log rows and events (in the transaction, before commit) and return
    the events with their ids. On PostgreSQL the log rows ride in the events' statements, as
    many as keep each statement within ``db.MAX_ARGS`` bound values."""
    statements: list[prepared.Bound] = []
    by_shape: dict[tuple[str, tuple[str, ...]], list[LogRow]] = {}
    for row in unit.log_rows:
        by_shape.setdefault((row.table, tuple(map(_first, row.values))), []).append(row)
    for (table, columns), rows in by_shape.items():
        for chunk in db.chunks(rows, len(columns), _FLUSH_ROWS * len(columns)):
            args = [value for row in chunk for _, value in row.values]
            statements.append(prepared.Bound(_insert(table, columns, len(chunk), False), args))
    ids: list[int] = []
    items = unit.events
    per_event = len(_EVENT_COLUMNS)
    for chunk in db.chunks(items, per_event, _FLUSH_ROWS * per_event):
        args = [
            v for name, entity, eid, _, uid, at, text in chunk for v in (name, entity, eid, text, uid, at)
        ]
        insert = prepared.Bound(_insert("domain_event", _EVENT_COLUMNS, len(chunk), True), args)
        if statements and db.is_postgres():
            riders, budget = [], db.MAX_ARGS - len(args)
            while statements and len(statements[0].args) <= budget:
                budget -= len(statements[0].args)
                riders.append(statements.pop(0))
            if riders:
                ctes = ", ".join(f"log_{i} AS ({{}})" for i in range(len(riders)))
                insert = prepared.compose(f"WITH {ctes} {{}}", [*riders, insert])
        rows = await insert
        # Ids are handed out in the order of the rows inserted.
        ids.extend(sorted(row["id"] for row in rows))
    for statement in statements:
        await statement
    return [
        DomainEvent(event_id, name, entity, entity_id, data, user_id, occurred_at)
        for event_id, (name, entity, entity_id, data, user_id, occurred_at, _) in zip(ids, items, strict=True)
    ]


@dataclass(frozen=True)
class Also:
    """An event to write with the next ``emit``, handed to it in ``also`` next to queries
    (an ``after_write`` hook's event, such as ``task.completed``): it is written before that
    emit's own events, in the same statement (one round trip on PostgreSQL)."""

    name: str
    entity: str
    entity_id: int | None
    payload: dict[str, Any] | None = None


@dataclass
class _Waiting:
    events: list[DomainEvent]
    done: bool = False


@dataclass
class _Group:
    """Per event loop: units of work that committed and wait for their events' delivery."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[_Waiting] = field(default_factory=list)


_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Group] = weakref.WeakKeyDictionary()
_delivering: contextvars.ContextVar[bool] = contextvars.ContextVar("tessera_delivering", default=False)


async def deliver_grouped(batch: list[DomainEvent]) -> None:
    """Deliver the events of a committed unit of work, together with those of every other unit
    of work that committed in this process while a delivery was running (group commit): N
    concurrent writes cost one delivery instead of N. Returns once this unit's events reached
    the listeners and plugin hooks; search indexing finishes in the background (a search
    waits for the indexing handed over before it, ``tessera.search.service.settled``, so a
    client that got its response finds the record). A failure is logged, not raised: the change is
    committed and its events stay in the outbox for redelivery."""
    if _delivering.get():
        # A listener's own unit of work: the group is held by the delivery that called it.
        await deliver_events(batch, wait=False)
        return
    loop = asyncio.get_running_loop()
    group = _groups.get(loop)
    if group is None:
        group = _groups[loop] = _Group()
    mine = _Waiting(batch)
    group.queue.append(mine)
    async with group.lock:
        if mine.done:  # an earlier delivery took ours along
            return
        taken, group.queue[:] = list(group.queue), []
        token = _delivering.set(True)
        try:
            await deliver_events([event for waiting in taken for event in waiting.events], wait=False)
        except Exception:
            log.exception("event delivery failed; the outbox keeps the events for redelivery")
        finally:
            _delivering.reset(token)
            for waiting in taken:
                waiting.done = True


async def emit(
    name: str,
    entity: str,
    entity_id: int | None,
    payload: dict[str, Any] | None = None,
    also: Sequence[Query[Any, Any] | prepared.Bound | Also | LogRow] = (),
) -> None:
    """Record a domain event in the current unit of work (required: events without a
    transaction could be delivered for changes that were rolled back). ``also``: inserts to
    write with it (the change's audit entry): on PostgreSQL in the same statement, one round
    trip instead of one each."""
    await emit_all([(name, entity, entity_id, payload)], also)


async def emit_all(
    items: Sequence[tuple[str, str, int | None, dict[str, Any] | None]],
    also: Sequence[Query[Any, Any] | prepared.Bound | Also | LogRow] = (),
) -> Any:
    """``emit`` for several events of one change (``(name, entity, entity_id, payload)``
    each), in this order. ``also``: the change's other writes: queries run now (on PostgreSQL
    several in one statement) — the result of the last one is returned (its ``RETURNING``
    rows) —; ``Also`` events, written before these; ``LogRow``s (audit entries), written
    with the events at the end of the unit of work."""
    if any(isinstance(a, Also) for a in also):
        items = [
            *((a.name, a.entity, a.entity_id, a.payload) for a in also if isinstance(a, Also)),
            *items,
        ]
    unit = _pending.get()
    if unit is None:
        raise RuntimeError(f"emit({items[0][0] if items else ''!r}) outside unit_of_work()")
    unit.log_rows.extend(a for a in also if isinstance(a, LogRow))
    queries = [a for a in also if not isinstance(a, Also | LogRow)]
    result: Any = None
    if len(queries) > 1 and db.is_postgres() and all(isinstance(q, prepared.Bound) for q in queries):
        ctes = ", ".join(f"also_{i} AS ({{}})" for i in range(len(queries) - 1))
        result = await prepared.compose(f"WITH {ctes} {{}}", queries)
    elif len(queries) > 1 and db.is_postgres():
        parts = [q.querystrings[0] for q in queries]
        ctes = ", ".join(f"also_{i} AS ({{}})" for i in range(len(parts) - 1))
        result = await db.get_engine().run_querystring(QueryString(f"WITH {ctes} {{}}", *parts), in_pool=True)
    else:
        for query in queries:
            result = await query
    if not items:
        return result
    user_id, occurred_at = _actor.get(), clock.now()
    for name, entity, entity_id, payload in items:
        # Listeners get the payload as stored (JSON types), also when it is delivered at once;
        # the text is what ``_flush`` stores (encoded once).
        text = dump_json(payload or {})
        unit.events.append((name, entity, entity_id, _loads(text), user_id, occurred_at, text))
    return result


def _to_event(row: dict[str, Any]) -> DomainEvent:
    return DomainEvent(
        id=row["id"],
        name=row["name"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        payload=row["payload"] or {},
        user_id=row["user_id"],
        occurred_at=row["occurred_at"],
    )


async def deliver(event_ids: list[int]) -> int:
    """Deliver the given undelivered events; returns how many were delivered."""
    if not event_ids:
        return 0
    rows = (
        await DomainEventRow.select()
        .where(DomainEventRow.id.is_in(event_ids), DomainEventRow.dispatched_at.is_null())
        .order_by(DomainEventRow.id)
        .output(load_json=True)
    )
    return await deliver_events([_to_event(row) for row in rows])


async def deliver_events(batch: list[DomainEvent], wait: bool = True) -> int:
    """Deliver events just written by committed units of work (as ``deliver``, without reading
    them back). ``wait=False``: return once the listeners and hooks ran, and let what batch
    listeners finish in the background (search indexing) complete the delivery later
    (``settle`` waits for it)."""
    if not batch:
        return 0
    batch_error = ""
    finishing: list[Awaitable[None]] = []
    for batch_listener in _dispatcher.batch_listeners:
        try:
            later = await batch_listener(batch)
            if later is not None:
                finishing.append(later)
        except Exception as exc:  # keep the events for redelivery, like a failing listener
            log.exception("batch event listener failed")
            batch_error = f"{getattr(batch_listener, '__name__', batch_listener)}: {exc!r}"
    delivered: list[int] = []
    for event in batch:
        error = "; ".join(e for e in (batch_error, await _deliver_one(event)) if e)
        if error:
            await _failed([event.id], error)
        else:
            delivered.append(event.id)
    if finishing and not wait:
        loop = asyncio.get_running_loop()
        task = loop.create_task(_complete_later(delivered, finishing))
        tasks = _finishing.setdefault(loop, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    else:
        await _complete(delivered, finishing)
    return len(delivered)


_finishing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[asyncio.Task[None]]] = (
    weakref.WeakKeyDictionary()
)


async def _complete(delivered: list[int], finishing: list[Awaitable[None]]) -> None:
    if await _finished_well(delivered, finishing):
        await _mark_delivered(delivered)


async def _finished_well(delivered: list[int], finishing: list[Awaitable[None]]) -> bool:
    """Wait for the background part of a delivery; True when ``delivered`` is to be marked."""
    error = ""
    for later in finishing:
        try:
            await later
        except Exception as exc:
            log.exception("batch event listener failed")
            error = repr(exc)
    if not delivered:
        return False
    if error:
        await _failed(delivered, error)
        return False
    return True


_MARK_SQL = (
    "UPDATE domain_event SET dispatched_at = {}, attempts = attempts + 1 WHERE id IN ({})",
    # PostgreSQL: the ids as one array value (no bound value per id, no limit on their number).
    "UPDATE domain_event SET dispatched_at = {}, attempts = attempts + 1 WHERE id = ANY({})",
)
#: Event ids per "delivered" mark on SQLite (a first overdue scan of the receivables plugin
#: delivers hundreds of thousands in one window).
_MARK_IDS = 10_000


async def _mark_delivered(delivered: list[int]) -> None:
    # One write for the whole batch: a crash before it only means these are delivered again
    # (at-least-once), and a busy unit of work no longer pays a commit per event.
    if not delivered:
        return
    if db.is_postgres():
        await db.raw(_MARK_SQL[1], clock.now(), delivered)
        return
    for chunk in db.chunks(delivered, 1, _MARK_IDS):
        await db.raw(
            _MARK_SQL[0].replace("({})", "(" + ", ".join("{}" for _ in chunk) + ")"), clock.now(), *chunk
        )


async def _complete_later(delivered: list[int], finishing: list[Awaitable[None]]) -> None:
    try:
        if await _finished_well(delivered, finishing):
            _mark_soon(delivered)
    except Exception:
        log.exception("event delivery failed; the outbox keeps the events for redelivery")


#: Deliveries that finished in the background (search indexing) are marked delivered together,
#: at most this long after the first of them: one write transaction (on SQLite a commit with
#: its fsync) for every delivery in that window instead of one each — a workflow transition
#: committed twice before (bench/workflow.py). ``settle`` writes them at once.
MARK_DELAY_S = 0.1


@dataclass
class _Marks:
    ids: list[int] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


_marks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Marks] = weakref.WeakKeyDictionary()


def _mark_soon(delivered: list[int]) -> None:
    loop = asyncio.get_running_loop()
    marks = _marks.get(loop)
    if marks is None:
        marks = _marks[loop] = _Marks()
    marks.ids.extend(delivered)
    if marks.task is None or marks.task.done():
        marks.wake = asyncio.Event()
        marks.task = loop.create_task(_write_marks(marks))
        tasks = _finishing.setdefault(loop, set())
        tasks.add(marks.task)
        marks.task.add_done_callback(tasks.discard)


def _carry_marks() -> list[int]:
    """On SQLite, the "delivered" marks waiting for their write (``_mark_soon``), for the unit
    of work about to commit to write them too: a commit (with its fsync) of their own saved.
    Sequential transitions of one process wrote one every ``MARK_DELAY_S`` (bench/workflow.py).
    On PostgreSQL they keep their own transaction (rows of the outbox locked by a user's write
    for no reason of its own)."""
    marks = _marks.get(asyncio.get_running_loop())
    if marks is None or not marks.ids or db.is_postgres():
        return []
    ids, marks.ids = marks.ids, []
    return ids


async def _write_marks(marks: _Marks) -> None:
    try:
        await asyncio.wait_for(marks.wake.wait(), MARK_DELAY_S)
    except TimeoutError:
        pass
    while marks.ids:
        ids, marks.ids = marks.ids, []
        try:
            await _mark_delivered(ids)
        except Exception:
            log.exception("event delivery failed; the outbox keeps the events for redelivery")


async def _failed(event_ids: list[int], error: str) -> None:
    await DomainEventRow.update(
        {DomainEventRow.attempts: DomainEventRow.attempts + 1, DomainEventRow.last_error: error}
    ).where(DomainEventRow.id.is_in(event_ids))


async def settle() -> None:
    """Wait until the deliveries of this event loop that returned so far completed, their
    background part included (run before the database closes: at shutdown, at the end of a
    CLI command, in tests). Later deliveries are not waited for: under steady writes there
    would always be one more."""
    loop = asyncio.get_running_loop()
    _wake_marks(loop)
    tasks = _finishing.get(loop)
    if tasks:
        await asyncio.wait(list(tasks))
    # Deliveries that just finished may have queued their marks: write those too.
    marks = _marks.get(loop)
    if marks is not None and marks.task is not None and not marks.task.done():
        marks.wake.set()
        await marks.task


def _wake_marks(loop: asyncio.AbstractEventLoop) -> None:
    marks = _marks.get(loop)
    if marks is not None:
        marks.wake.set()


db.before_stop(settle)


async def _deliver_one(event: DomainEvent) -> str:
    errors: list[str] = []
    for listener in _dispatcher.listeners:
        try:
            await listener(event)
        except Exception as exc:  # a listener must not break the others
            log.exception("event listener failed for %s", event.name)
            errors.append(f"{getattr(listener, '__name__', listener)}: {exc!r}")
    pm = _dispatcher.pm
    if pm is not None:
        for impl in reversed(pm.hook.tessera_on_event.get_hookimpls()):
            try:
                await await_me_maybe(impl.function(event))
            except Exception as exc:
                log.exception("plugin %s failed handling %s", impl.plugin_name, event.name)
                errors.append(f"{impl.plugin_name}: {exc!r}")
    return "; ".join(errors)


async def redeliver_pending(older_than: timedelta = timedelta(seconds=0), batch: int = 500) -> int:
    """Deliver events left undelivered (crash between commit and delivery, failed listener).
    Gives up on an event after 20 attempts; its ``last_error`` says why."""
    await settle()  # this process's own deliveries in flight are not leftovers
    cutoff = clock.now() - older_than
    total = 0
    while True:
        ids = [
            r["id"]
            for r in await DomainEventRow.select(DomainEventRow.id)
            .where(
                DomainEventRow.dispatched_at.is_null(),
                DomainEventRow.occurred_at <= cutoff,
                DomainEventRow.attempts < 20,
            )
            .order_by(DomainEventRow.id)
            .limit(batch)
        ]
        if not ids:
            return total
        delivered = await deliver(ids)
        total += delivered
        if delivered == 0:
            return total
