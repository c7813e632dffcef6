"""The search service: keeps the index in step with the database and answers queries.

Indexing path. The kernel's write path records domain events in the same transaction as the
change (``tessera.events``). After commit, ``on_events`` (a kernel batch listener) hands the
changed records to this process's indexing pipeline, which re-reads them and replaces their
documents in the index in the background, many deliveries per index commit; a search first
waits for the work handed over before it (``settled``), so a client that got its answer to a
write finds the record with its next search. The events are marked delivered once indexed.
An index failure never fails a delivery: the record goes to the ``search_pending`` table and
is retried (by the next event, the next search, ``tessera search reindex`` and at start-up)
with backoff, so the database write is never lost and plugins' ``tessera_on_event`` hooks are
not re-notified because the index failed. Only a failure to record the pending work itself
propagates (the outbox then redelivers the event). A crash before indexing leaves the event
undelivered: start-up redelivers it.

Every indexing step reads the record's *current* state, so replays and races converge.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pluggy

from tessera import clock, db
from tessera.config import Settings
from tessera.entities.tables import Party
from tessera.events import DomainEvent
from tessera.permissions import Principal
from tessera.plugins import PluginError, await_me_maybe, call_each
from tessera.search import documents as d
from tessera.search.analysis import parse_query
from tessera.search.base import Access, Filters, Searcher
from tessera.search.snippets import snippet
from tessera.search.tables import SearchPending

log = logging.getLogger("tessera.search")

BATCH = 500
#: Ids in one ``IN (...)`` list, at most (``db.chunks`` keeps every statement within the
#: values a statement may bind, ``db.MAX_ARGS``).
_IN_CHUNK = 4000
Progress = Callable[[int, int], None]


@dataclass
class _State:
    settings: Settings | None = None
    pm: pluggy.PluginManager | None = None
    searcher: Searcher | None = None
    types: dict[str, d.SearchType] = field(default_factory=dict)
    started: bool = False


_state = _State()


def configure(settings: Settings, pm: pluggy.PluginManager) -> None:
    """Choose the backend from the settings, collect document types (``on_events`` is the
    batch listener to install with ``events.configure``)."""
    _state.settings = settings
    _state.pm = pm
    _state.searcher = make_searcher(settings)
    _state.types = collect_types(pm)
    _state.started = False


def make_searcher(settings: Settings) -> Searcher:
    if settings.search_backend == "postgres":
        if not settings.is_postgres:
            raise ValueError("search_backend 'postgres' needs a PostgreSQL database_url")
        from tessera.search.postgres_backend import PostgresSearcher

        return PostgresSearcher()
    from tessera.search.whoosh_backend import WhooshSearcher

    return WhooshSearcher(settings.data_dir / "search" / "whoosh")


def collect_types(pm: pluggy.PluginManager | None) -> dict[str, d.SearchType]:
    types = {t.name: t for t in d.KERNEL_TYPES}
    if pm is None:
        return types
    for plugin, declared in call_each(pm, "tessera_search_types"):
        for t in declared or []:
            if not isinstance(t, d.SearchType):
                raise PluginError(f"Plugin {plugin!r}: tessera_search_types must return SearchType objects")
            if t.name in types:
                raise PluginError(f"Plugin {plugin!r}: search type {t.name!r} is already declared")
            types[t.name] = t
    return types


def searcher() -> Searcher:
    if _state.searcher is None:
        raise RuntimeError("tessera.search.service.configure() was not called")
    return _state.searcher


def types() -> dict[str, d.SearchType]:
    return _state.types


def _tables() -> dict[str, Any]:
    return {t.source_entity: t.table for t in _state.types.values() if t.table is not None}


# --------------------------------------------------------------------------- start-up


async def start(rebuild_progress: Progress | None = None) -> bool:
    """Open the index; rebuild it when it is missing or was built by an older schema version;
    catch up on pending work. Returns True when it rebuilt."""
    s = searcher()
    rebuilt = False
    if await s.open():
        log.info("search index (%s) missing or outdated: rebuilding", s.name)
        await reindex(progress=rebuild_progress)
        await s.mark_built()
        rebuilt = True
    _state.started = True
    await drain_pending()
    return rebuilt


# --------------------------------------------------------------------------- indexing


async def on_events(batch: list[DomainEvent]) -> asyncio.Future[None] | None:
    """Kernel batch listener: hand every record a delivery batch is about to the indexing
    pipeline; returns what completes once they are indexed (``tessera.events`` marks the
    events delivered then)."""
    tables = _tables()
    wanted = [(e.entity, e.entity_id) for e in batch if e.entity in tables and e.entity_id is not None]
    # A bulk import announces its new parties in a few events listing their ids (importer.py).
    wanted += [("party", i) for e in batch if e.name == "parties.imported" for i in e.payload.get("ids", ())]
    # A task or process stage on a party shares the party (and its contacts) with its people
    # while it is open (permissions.py): refresh those documents' ACL when one changes.
    wanted += await _shared_parties_refs(batch)
    if not wanted:
        return None
    parties = [e.entity_id for e in batch if e.entity == "party" and _party_change_affects_dependents(e)]
    return _submit(wanted, [p for p in parties if p is not None])


@dataclass
class _Pipeline:
    """One event loop's index work: what deliveries handed over, indexed by one background
    task in batches. Under load each index commit takes every change that arrived while the
    previous one ran (whoosh pays mostly per commit, not per document), and writes no longer
    wait for the index: a create answered in ~2 ms instead of waiting ~40 ms for a commit
    (bench/run.py)."""

    refs: dict[tuple[str, int], None] = field(default_factory=dict)
    parties: dict[int, None] = field(default_factory=dict)
    waiting: list[asyncio.Future[None]] = field(default_factory=list)
    running: list[asyncio.Future[None]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    #: Set by a search waiting for the index (``settled``): index what is there now.
    wake: asyncio.Event = field(default_factory=asyncio.Event)


#: A batch waits this long for more changes before its index commit (whoosh pays mostly per
#: commit): sequential writes (a workflow's transitions, bench/workflow.py) each paid a commit.
#: A search does not wait for it: ``settled`` starts the batch at once.
GATHER_S = 0.05


_pipelines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pipeline] = weakref.WeakKeyDictionary()


def _submit(refs: Iterable[tuple[str, int]], parties: Iterable[int]) -> asyncio.Future[None]:
    loop = asyncio.get_running_loop()
    pipeline = _pipelines.get(loop)
    if pipeline is None:
        pipeline = _pipelines[loop] = _Pipeline()
    done: asyncio.Future[None] = loop.create_future()
    pipeline.refs.update(dict.fromkeys(refs))
    pipeline.parties.update(dict.fromkeys(parties))
    pipeline.waiting.append(done)
    if pipeline.task is None or pipeline.task.done():
        pipeline.task = loop.create_task(_index_handed_over(pipeline))
    return done


async def _index_handed_over(pipeline: _Pipeline) -> None:
    if not pipeline.wake.is_set():
        try:
            await asyncio.wait_for(pipeline.wake.wait(), GATHER_S)
        except TimeoutError:
            pass
    pipeline.wake = asyncio.Event()
    while pipeline.waiting:
        refs, parties = list(pipeline.refs), list(pipeline.parties)
        pipeline.running, pipeline.waiting = pipeline.waiting, []
        pipeline.refs, pipeline.parties = {}, {}
        try:
            await _index_now(refs, parties)
        except Exception as exc:  # the events stay undelivered and are delivered again
            for done in pipeline.running:
                if not done.done():
                    done.set_exception(exc)
        except BaseException:  # cancelled (the loop is closing): nobody may wait forever
            for done in [*pipeline.running, *pipeline.waiting]:
                done.cancel()
            raise
        else:
            for done in pipeline.running:
                if not done.done():
                    done.set_result(None)
        finally:
            pipeline.running = []


async def settled() -> None:
    """Wait until the index holds every change this process handed over so far (failures
    included: those are queued for retry or redelivered, and reported where they happened)."""
    pipeline = _pipelines.get(asyncio.get_running_loop())
    if pipeline is not None and (pipeline.running or pipeline.waiting):
        pipeline.wake.set()
        await asyncio.wait([*pipeline.running, *pipeline.waiting])


async def _index_now(refs: list[tuple[str, int]], parties: list[int]) -> None:
    """Refresh the documents of these records, with one index write per entity type; then
    those of records that show a changed party's name or access (its deals, activities)."""
    if not refs:
        return
    try:
        await index_records(refs)
    except Exception as exc:
        log.warning("indexing %s failed, queued for retry: %r", refs[:5], exc)
        await enqueue(refs, repr(exc))
        return
    if parties:
        own = {f"party:{p}" for p in parties}
        sources = await searcher().sources_of_party(list(dict.fromkeys(parties)))
        dependents = [_parse_source(s) for s in sources if s not in own]
        if dependents:
            await enqueue([r for r in dependents if r is not None])
            await drain_pending()


def _party_change_affects_dependents(event: DomainEvent) -> bool:
    if event.name.endswith(".deleted"):
        return True
    if event.name.endswith(".updated"):
        fields = set(event.payload.get("fields") or [])
        return not fields or bool(fields & {"owner_id", "team_id", "name"})
    return False


def _parse_source(source: str) -> tuple[str, int] | None:
    entity, _, raw_id = source.rpartition(":")
    try:
        return entity, int(raw_id)
    except ValueError:
        return None


async def enqueue(refs: Iterable[tuple[str, int]], error: str = "") -> None:
    now = clock.now()
    rows = [
        SearchPending(entity=e, entity_id=i, enqueued_at=now, next_attempt_at=now, last_error=error[:2000])
        for e, i in refs
    ]
    # In chunks: one statement may bind at most ``db.MAX_ARGS`` values, and a bulk write
    # (an import, a plugin's backfill) can queue far more records than that at once.
    for chunk in db.chunks(
        rows, len(SearchPending._meta.columns), _IN_CHUNK * len(SearchPending._meta.columns)
    ):
        await SearchPending.insert(*chunk)


_drain_lock: asyncio.Lock | None = None


async def drain_pending(limit: int = BATCH) -> int:
    """Index records queued in ``search_pending`` whose retry time has come; returns how many
    were indexed."""
    global _drain_lock
    if _drain_lock is None:
        _drain_lock = asyncio.Lock()
    done = 0
    async with _drain_lock:
        while True:
            now = clock.now()
            rows = (
                await SearchPending.select(SearchPending.id, SearchPending.entity, SearchPending.entity_id)
                .where(SearchPending.next_attempt_at <= now)
                .order_by(SearchPending.id)
                .limit(limit)
            )
            if not rows:
                return done
            by_ref: dict[tuple[str, int], list[int]] = {}
            for r in rows:
                by_ref.setdefault((r["entity"], r["entity_id"]), []).append(r["id"])
            try:
                await index_records(list(by_ref))
                ok = list(by_ref)
            except Exception:
                ok = []
                for ref, ids in by_ref.items():  # find the record(s) that fail
                    try:
                        await index_records([ref])
                        ok.append(ref)
                    except Exception as exc:
                        await _postpone(ids, repr(exc))
            done_ids = [i for ref in ok for i in by_ref[ref]]
            if done_ids:
                await SearchPending.delete().where(SearchPending.id.is_in(done_ids))
            done += len(ok)
            if len(rows) < limit or not ok:
                return done


async def _postpone(ids: list[int], error: str) -> None:
    rows = await SearchPending.select(SearchPending.id, SearchPending.attempts).where(
        SearchPending.id.is_in(ids)
    )
    for r in rows:
        delay = timedelta(seconds=min(3600, 2 ** min(r["attempts"] + 1, 12)))
        await SearchPending.update(
            {
                SearchPending.attempts: r["attempts"] + 1,
                SearchPending.next_attempt_at: clock.now() + delay,
                SearchPending.last_error: error[:2000],
            }
        ).where(SearchPending.id == r["id"])


async def pending_count() -> int:
    return int(await SearchPending.count())


async def _load(entity: str, ids: Sequence[int]) -> list[dict[str, Any]]:
    table = _tables()[entity]
    ids = list(ids)
    out: list[dict[str, Any]] = []
    for chunk in db.chunks(ids, 1, _IN_CHUNK):
        out.extend(await table.select().where(table._meta.primary_key.is_in(chunk)).output(load_json=True))
    return out


async def _parties(ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    wanted = sorted({i for i in ids if i is not None})
    out: dict[int, dict[str, Any]] = {}
    for chunk in db.chunks(wanted, 1, _IN_CHUNK):
        rows = await Party.select(Party.id, Party.name, Party.owner_id, Party.team_id).where(
            Party.id.is_in(chunk)
        )
        out.update((r["id"], r) for r in rows)
    return out


async def _participants(activity_ids: list[int]) -> dict[int, set[int]]:
    from tessera.entities.tables import ActivityParticipant

    out: dict[int, set[int]] = {}
    for chunk in db.chunks(activity_ids, 1, _IN_CHUNK):
        rows = await ActivityParticipant.select(
            ActivityParticipant.activity_id, ActivityParticipant.user_id
        ).where(
            ActivityParticipant.activity_id.is_in(chunk),
            ActivityParticipant.user_id.is_not_null(),
        )
        for row in rows:
            out.setdefault(row["activity_id"], set()).add(row["user_id"])
    return out


_SHARING_FIELDS = {"assignee_id", "controller_id", "status", "party_id"}


async def _shared_parties_refs(batch: list[DomainEvent]) -> list[tuple[str, int]]:
    """The parties (and their contacts) whose sharing a batch's task or process events may
    change: their documents are rebuilt with the new ACL."""
    from tessera.entities.tables import Contact, Task
    from tessera.workflow.tables import WorkflowInstance

    party_ids: set[int] = set()
    task_ids: set[int] = set()
    instance_ids: set[int] = set()
    for e in batch:
        if e.entity_id is None:
            continue
        if isinstance(e.payload.get("party_id"), int):
            party_ids.add(e.payload["party_id"])
        if "party_id" in e.payload:
            # The event names the record's party (None: on none): no query needed for it.
            continue
        if e.entity == "task":
            fields = e.payload.get("fields")
            if not e.name.endswith(".updated") or not fields or _SHARING_FIELDS & set(fields):
                task_ids.add(e.entity_id)
        elif e.entity == "workflow_instance":
            instance_ids.add(e.entity_id)
    if task_ids:
        rows = await Task.select(Task.party_id).where(
            Task.id.is_in(sorted(task_ids)), Task.party_id.is_not_null()
        )
        party_ids.update(r["party_id"] for r in rows)
    if instance_ids:
        rows = await WorkflowInstance.select(WorkflowInstance.party_id).where(
            WorkflowInstance.id.is_in(sorted(instance_ids)), WorkflowInstance.party_id.is_not_null()
        )
        party_ids.update(r["party_id"] for r in rows)
    if not party_ids:
        return []
    contacts = await Contact.select(Contact.id).where(Contact.party_id.is_in(sorted(party_ids)))
    return [("party", p) for p in sorted(party_ids)] + [("contact", c["id"]) for c in contacts]


async def _shared_with(party_ids: Iterable[int | None]) -> dict[int, set[int]]:
    """The users each party is shared with: assignees and controllers of its open tasks,
    responsible and controllers of its running or suspended process instances."""
    from tessera.entities.tables import Task
    from tessera.workflow.tables import WorkflowInstance as WI

    wanted = sorted({i for i in party_ids if i is not None})
    out: dict[int, set[int]] = {}
    if not wanted:
        return out
    for row in await Task.select(Task.party_id, Task.assignee_id, Task.controller_id).where(
        Task.party_id.is_in(wanted), Task.status.is_in(["open", "in_progress"])
    ):
        out.setdefault(row["party_id"], set()).update(
            u for u in (row["assignee_id"], row["controller_id"]) if u is not None
        )
    for row in await WI.select(WI.party_id, WI.responsible_id, WI.controller_id).where(
        WI.party_id.is_in(wanted), WI.status.is_in(["running", "suspended"])
    ):
        out.setdefault(row["party_id"], set()).update(
            u for u in (row["responsible_id"], row["controller_id"]) if u is not None
        )
    return out


async def build_documents(entity: str, records: Sequence[dict[str, Any]]) -> list[d.Document]:
    """Documents of these records: the kernel's own, then every plugin's."""
    parties = await _parties(r.get("party_id") if entity != "party" else r["id"] for r in records)
    taking_part = await _participants([r["id"] for r in records]) if entity == "activity" else {}
    if entity in ("party", "contact"):  # shared by an open task or stage (permissions.py)
        shared = await _shared_with(r["id"] if entity == "party" else r.get("party_id") for r in records)
        for record in records:
            taking_part[record["id"]] = shared.get(
                record["id"] if entity == "party" else record.get("party_id"), set()
            )
    known = _state.types
    out: list[d.Document] = []
    for record in records:
        party = parties.get(record["id"] if entity == "party" else record.get("party_id"))
        docs = d.kernel_documents(entity, record, party)
        for doc in docs:  # participants of an activity, users a party is shared with (permissions.py)
            doc.acl_users |= taking_part.get(record["id"], set())
        if _state.pm is not None:
            for plugin, value in call_each(
                _state.pm, "tessera_search_documents", entity=entity, record=record
            ):
                try:
                    produced = await await_me_maybe(value)
                    docs.extend(d.from_plugin(v, party) for v in produced or [])
                except Exception as exc:
                    raise PluginError(
                        f"Plugin {plugin!r} failed in tessera_search_documents: {exc!r}"
                    ) from exc
        for doc in docs:
            if doc.type not in known:
                log.warning("search document of undeclared type %r ignored", doc.type)
                continue
            doc.source = f"{entity}:{record['id']}"
            out.append(doc)
    return out


async def index_records(refs: Sequence[tuple[str, int]]) -> int:
    """(Re)index these records from their current state; a missing record loses its documents."""
    by_entity: dict[str, list[int]] = {}
    for entity, record_id in refs:
        by_entity.setdefault(entity, []).append(record_id)
    written = 0
    tables = _tables()
    for entity, ids in by_entity.items():
        if entity not in tables:
            continue
        records = await _load(entity, ids)
        docs = await build_documents(entity, records)
        await searcher().replace([f"{entity}:{i}" for i in ids], docs, time.time())
        written += len(docs)
    return written


async def reindex(only_types: Sequence[str] | None = None, progress: Progress | None = None) -> int:
    """Rebuild documents from the database, in place and in batches, so searches keep working
    meanwhile; documents of the rebuilt types that were not rewritten are purged at the end."""
    selected = [t for t in _state.types.values() if not only_types or t.name in only_types]
    unknown = set(only_types or []) - {t.name for t in selected}
    if unknown:
        raise ValueError(f"unknown search type(s): {', '.join(sorted(unknown))}")
    entities = sorted({t.source_entity for t in selected if t.table is not None})
    stamp = time.time()
    tables = _tables()
    totals = {e: int(await tables[e].count()) for e in entities}
    grand = sum(totals.values())
    done = 0
    written = 0
    if progress:
        progress(0, grand)
    for entity in entities:
        table = tables[entity]
        pk = table._meta.primary_key
        last = 0
        while True:
            records = list(
                await table.select().where(pk > last).order_by(pk).limit(BATCH).output(load_json=True)
            )
            if not records:
                break
            last = records[-1]["id"]
            docs = await build_documents(entity, records)
            await searcher().replace([f"{entity}:{r['id']}" for r in records], docs, stamp)
            written += len(docs)
            done += len(records)
            if progress:
                progress(done, grand)
    for t in selected:
        await searcher().purge_older(t.name, stamp)
    return written


# --------------------------------------------------------------------------- searching


@dataclass
class SearchOptions:
    types: Sequence[str] = ()
    owner_ids: Sequence[int] = ()
    date_from: datetime | None = None
    date_to: datetime | None = None
    party_id: int | None = None
    limit: int = 20
    offset: int = 0


def _may_see(principal: Principal, permission: str | tuple[str, ...] | None) -> bool:
    if permission is None:
        return True
    if isinstance(permission, str):
        return principal.can(permission)
    return any(principal.can(p) for p in permission)


def allowed_types(principal: Principal) -> frozenset[str]:
    return frozenset(t.name for t in _state.types.values() if _may_see(principal, t.permission))


def access_of(principal: Principal) -> Access:
    """The caller's visibility as the backends apply it: the types they may read, and their
    visible users (with ``documents.EVERYONE``) and teams; ``user_ids`` None sees every record."""
    users = principal.user_ids
    return Access(
        types=allowed_types(principal),
        user_ids=None if users is None else users | {d.EVERYONE},
        team_ids=principal.team_ids,
    )


async def search(principal: Principal, q: str, options: SearchOptions | None = None) -> dict[str, Any]:
    """Ranked hits the principal may read, grouped by type, with highlighted snippets and facets."""
    principal.require("search.use")
    options = options or SearchOptions()
    await settled()
    if not _state.started:
        await start()
    elif await SearchPending.exists().where(SearchPending.next_attempt_at <= clock.now()):
        await drain_pending()
    parsed = parse_query(q)
    access = access_of(principal)
    filters = Filters(
        types=frozenset(options.types),
        owner_ids=frozenset(options.owner_ids),
        date_from=options.date_from,
        date_to=options.date_to,
        party_id=options.party_id,
    )
    empty: dict[str, Any] = {
        "query": q,
        "total": 0,
        "total_is_lower_bound": False,
        "hits": [],
        "groups": [],
        "facets": {"type": {}, "owner": {}},
    }
    if parsed.empty:
        return empty
    raw = await searcher().search(parsed, access, filters, options.limit, options.offset)
    hits = []
    memo: dict[str, bool] = {}
    for h in raw.hits:
        title_html, body_html = snippet(h.title, h.body, parsed, memo)
        hits.append(
            {
                "type": h.type,
                "id": h.id,
                "title": h.title,
                "title_html": title_html,
                "snippet": body_html,
                "score": round(h.score, 4),
                "party_id": h.party_id,
                "owner_id": h.owner_id,
                "date": h.date,
            }
        )
    groups: list[dict[str, Any]] = []
    order = list(
        dict.fromkeys([h["type"] for h in hits] + sorted(raw.by_type, key=lambda t: -raw.by_type[t]))
    )
    for name in order:
        t = _state.types.get(name)
        groups.append(
            {
                "type": name,
                "label": t.label if t else name,
                "total": raw.by_type.get(name, 0),
                "hits": [h for h in hits if h["type"] == name],
            }
        )
    return {
        "query": q,
        "total": raw.total,
        "total_is_lower_bound": raw.total_capped,
        "hits": hits,
        "groups": groups,
        "facets": {"type": raw.by_type, "owner": {str(k): v for k, v in raw.by_owner.items()}},
    }
