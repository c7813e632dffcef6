"""Generic record service: visibility-filtered get/list/count, and create/update/delete that
validate custom fields, write the audit log and emit domain events in one transaction.

Entity modules (parties, activities, tasks ...) describe themselves with an ``EntitySpec`` and
add their own rules through ``prepare``; plugins reuse the same machinery for their records.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pluggy
from piccolo.columns import Column
from piccolo.table import Table
from piccolo.utils.encoding import load_json

from tessera import audit, clock, customfields, db, events, prepared
from tessera.entities.dto import MAX_ID
from tessera.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from tessera.permissions import Principal, forget_principals

Condition = Any  # a Piccolo Where / And / Or / WhereRaw
Prepare = Callable[[Principal, dict[str, Any], dict[str, Any] | None], Awaitable[dict[str, Any]]]
AfterWrite = Callable[
    [Principal, dict[str, Any], dict[str, Any] | None, dict[str, Any]], Awaitable[Sequence[Any] | None]
]


@dataclass
class EntitySpec:
    """How one entity type is stored, protected and named."""

    name: str
    table: type[Table]
    #: Permission prefix: ``party`` -> party.read / party.write / party.delete.
    permission: str
    #: Builds the visibility condition for a principal; None means "sees all".
    visibility: Callable[[Principal], Condition | None]
    #: Who may change, reassign, detach or delete a record (``update``, ``delete``, references
    #: that widen who reads it); None = the readers (``visibility``). Reading through a
    #: relation (a meeting's participant, a party shared by a hand-off) grants no writing.
    write_visibility: Callable[[Principal], Condition | None] | None = None
    #: Columns allowed in ``order`` (keyset pagination). Any type the cursor can carry (text,
    #: numbers, decimals, dates, times); a nullable column sorts its NULLs last ascending and
    #: first descending, on every engine.
    order_fields: Sequence[str] = ("id",)
    custom_fields: bool = True
    #: Normalises/validates values before a write: (principal, values, existing or None) -> values.
    prepare: Prepare | None = None
    #: Runs inside the transaction after a create/update: (principal, row, existing or None,
    #: extras) where extras are the prepared values that are not columns (participants ...).
    #: May return inserts (queries not run yet) to write together with the change's event.
    after_write: AfterWrite | None = None
    #: Runs inside the transaction just before a delete: (principal, row). Used to audit and
    #: announce the records the database deletes with it (ON DELETE CASCADE).
    before_delete: Callable[[Principal, dict[str, Any]], Awaitable[None]] | None = None
    #: Columns never returned by the API.
    hidden: Sequence[str] = ()
    #: Overrides per action ("read", "write", "delete"): a permission name, or None for
    #: "any signed-in user".
    permission_overrides: dict[str, str | None] = field(default_factory=dict)
    #: Writes change who may see or do what (users, teams, roles, substitutions): cached
    #: principals are dropped after each commit.
    changes_access: bool = False
    #: Its created/updated events carry the record's ``party_id`` (a task shares its party:
    #: search refreshes the party's sharing from the event, without a query).
    party_in_events: bool = False

    def __post_init__(self) -> None:
        _SPECS[self.name] = self

    def require(self, principal: Principal, action: str) -> None:
        if action in self.permission_overrides:
            needed = self.permission_overrides[action]
            if needed is not None:
                principal.require(needed)
            return
        principal.require(f"{self.permission}.{action}")


#: Every EntitySpec by entity name (kernel and plugins), filled as specs are created: the audit
#: log shows an entry to whoever may read the record it describes (``specs()``).
_SPECS: dict[str, EntitySpec] = {}


def specs() -> dict[str, EntitySpec]:
    """The entity specs created so far, by entity name."""
    return dict(_SPECS)


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


_pm: pluggy.PluginManager | None = None


def configure(pm: pluggy.PluginManager) -> None:
    global _pm
    _pm = pm


def plugin_manager() -> pluggy.PluginManager:
    if _pm is None:
        raise RuntimeError("tessera.entities.service.configure(pm) was not called")
    return _pm


def _and(*conditions: Condition | None) -> list[Condition]:
    return [c for c in conditions if c is not None]


def _column(spec: EntitySpec, name: str) -> Column:
    col = spec.table._meta.get_column_by_name(name)
    return col


def encode_cursor(value: Any, record_id: int, order: str = "id") -> str:
    """An opaque cursor: the last row's sort value and id, and the order it belongs to (so a
    cursor replayed with another ``order`` is refused instead of comparing a name with a date)."""
    if isinstance(value, datetime):
        payload = ["dt", value.isoformat(), record_id, order]
    elif isinstance(value, date):
        payload = ["d", value.isoformat(), record_id, order]
    elif isinstance(value, Decimal):
        payload = ["dec", str(value), record_id, order]  # exact, unlike a JSON float
    elif value is None:
        payload = ["null", None, record_id, order]  # a nullable column (see _keyset)
    else:
        payload = ["v", value, record_id, order]
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: str = "id") -> tuple[Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, value, record_id, issued_for = json.loads(
            base64.b64decode(padded, altchars=b"-_", validate=True)
        )
        if issued_for != order:
            raise ValueError("cursor of another order")
        if kind == "dt":
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError("naive cursor time")
        elif kind == "d" and isinstance(value, str):
            value = date.fromisoformat(value)
        elif kind == "dec" and isinstance(value, str):
            value = Decimal(value)
            if not value.is_finite():
                raise ValueError("cursor number is not finite")
        elif kind == "null" and value is None:
            pass
        elif kind != "v" or not isinstance(value, str | int | float):
            raise ValueError("cursor value of an unexpected type")
        if isinstance(record_id, bool) or not isinstance(record_id, int) or not 0 <= record_id <= MAX_ID:
            raise ValueError("cursor id out of range")
        return value, record_id
    except Exception as exc:
        raise ValidationFailed.field(
            "cursor", "is not a cursor this API issued for this order; start again without it"
        ) from exc


def parse_order(spec: EntitySpec, order: str | None) -> tuple[str, bool]:
    order = order or "id"
    descending = order.startswith("-")
    name = order.lstrip("-")
    if name not in spec.order_fields:
        raise ValidationFailed.field(
            "order", f"must be one of {', '.join(spec.order_fields)} (prefix - for descending)"
        )
    return name, descending


async def get(spec: EntitySpec, principal: Principal, record_id: int) -> dict[str, Any]:
    """The record if it exists and the principal may read it; 404 otherwise (a hidden record
    is indistinguishable from a missing one)."""
    spec.require(principal, "read")
    row = await _fetch(spec, principal, record_id)
    if row is None:
        raise NotFound(f"{spec.name} {record_id} not found")
    return row


def valid_id(record_id: Any) -> bool:
    """Whether ``record_id`` could be a primary key (ids from paths and forms are not range
    checked by the API layer; PostgreSQL would reject a larger one with an error, not a miss)."""
    return isinstance(record_id, int) and not isinstance(record_id, bool) and 1 <= record_id <= MAX_ID


async def get_for_write(spec: EntitySpec, principal: Principal, record_id: int) -> dict[str, Any]:
    """The record for a write route that is not a plain update (a deal's move, a proposal):
    404 when hidden, 403 when the caller may only read it (``EntitySpec.write_visibility``)."""
    spec.require(principal, "write")
    return await _fetch_for_write(spec, principal, record_id)


def writers(spec: EntitySpec, principal: Principal) -> Condition | None:
    """The condition "``principal`` may change the record" (``EntitySpec.write_visibility``)."""
    return (spec.write_visibility or spec.visibility)(principal)


async def may_change(spec: EntitySpec, principal: Principal, record_id: int) -> bool:
    """Whether ``principal`` may change the record (permission and write rules): pages show
    their forms only then, instead of forms whose submit is refused."""
    try:
        spec.require(principal, "write")
    except PermissionDenied:
        return False
    return await _fetch(spec, principal, record_id, writers(spec, principal)) is not None


async def _fetch_for_write(spec: EntitySpec, principal: Principal, record_id: int) -> dict[str, Any]:
    """The record when ``principal`` may change it; 403 when they may only read it (reading
    through a relation grants no writing), 404 when they may not even read it."""
    row = await _fetch(spec, principal, record_id, writers(spec, principal))
    if row is not None:
        return row
    if spec.write_visibility is not None and await _fetch(spec, principal, record_id) is not None:
        raise PermissionDenied(f"You may read {spec.name} {record_id} but not change it")
    raise NotFound(f"{spec.name} {record_id} not found")


async def _fetch(
    spec: EntitySpec, principal: Principal | None, record_id: int, visible: Condition | None = None
) -> dict[str, Any] | None:
    if not valid_id(record_id):
        return None
    table = spec.table
    if principal is not None and visible is None:
        visible = spec.visibility(principal)
    if visible is None:  # who sees every record: the statement prepared once per table
        row = await prepared.of(table).get(record_id)
        return _public(spec, row) if row else None
    conditions = _and(table._meta.primary_key == record_id, visible)
    row = await table.select().where(*conditions).first().output(load_json=True)
    return _public(spec, row) if row else None


def _loaded(table: type[Table], row: dict[str, Any]) -> dict[str, Any]:
    """A row from ``RETURNING`` as ``select().output(load_json=True)`` gives it: JSON parsed
    (with the decoder Piccolo uses there)."""
    for column in table._meta.json_columns:
        name = column._meta.name
        if isinstance(row.get(name), str):
            row[name] = load_json(row[name])
    return row


def _public(spec: EntitySpec, row: dict[str, Any]) -> dict[str, Any]:
    for name in spec.hidden:
        row.pop(name, None)
    return row


async def list_page(
    spec: EntitySpec,
    principal: Principal,
    filters: Sequence[Condition] = (),
    order: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    spec.require(principal, "read")
    if not 1 <= limit <= 500:
        raise ValidationFailed.field("limit", "must be between 1 and 500")
    table = spec.table
    name, descending = parse_order(spec, order)
    col = _column(spec, name)
    pk = table._meta.primary_key
    conditions = _and(spec.visibility(principal), *filters)
    if cursor:
        value, last_id = decode_cursor(cursor, order or "id")
        if name == "id":
            conditions.append(pk < last_id if descending else pk > last_id)
        elif col._meta.null:
            conditions.append(_after_nullable(col, pk, value, last_id, descending))
        elif descending:
            conditions.append((col < value) | ((col == value) & (pk < last_id)))
        else:
            conditions.append((col > value) | ((col == value) & (pk > last_id)))
    query = table.select().where(*conditions) if conditions else table.select()
    if name == "id":
        query = query.order_by(pk, ascending=not descending)
    else:
        if col._meta.null:
            # NULLs after every value ascending, before them descending, on both engines
            # (SQLite and PostgreSQL disagree on where NULLs sort by default).
            query = query.order_by(_is_null(col), ascending=not descending)
        query = query.order_by(col, ascending=not descending).order_by(pk, ascending=not descending)
    rows = await query.limit(limit + 1).output(load_json=True)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last[name], last[pk._meta.name], order or "id")
    return Page(items=[_public(spec, r) for r in rows], next_cursor=next_cursor)


def _is_null(col: Column) -> Any:
    from piccolo.querystring import QueryString

    return QueryString(f"({col._meta.get_full_name(with_alias=False)} IS NULL)")


def _after_nullable(col: Column, pk: Column, value: Any, last_id: int, descending: bool) -> Condition:
    """The rows after the cursor ``(value, last_id)`` in a nullable column's order, where NULL
    counts as larger than every value (see the ORDER BY in :func:`list_page`)."""
    if value is None:
        if descending:  # NULLs come first: the rest of them, then every value
            return (col.is_null() & (pk < last_id)) | col.is_not_null()
        return col.is_null() & (pk > last_id)
    if descending:
        return (col < value) | ((col == value) & (pk < last_id))
    return (col > value) | ((col == value) & (pk > last_id)) | col.is_null()


async def count(spec: EntitySpec, principal: Principal, filters: Sequence[Condition] = ()) -> int:
    spec.require(principal, "read")
    conditions = _and(spec.visibility(principal), *filters)
    query = spec.table.count()
    if conditions:
        query = query.where(*conditions)
    return await query


async def _lock_for_write(table: type[Table], record_id: int) -> None:
    """PostgreSQL: take the row's write lock before reading it, so concurrent writers of one
    record queue here and each reads what the previous one committed (an unversioned PATCH then
    applies on top of the latest state instead of failing the compare-and-set). SQLite needs
    nothing: BEGIN IMMEDIATE already serialises write transactions."""
    if valid_id(record_id) and db.is_postgres():
        pk = table._meta.primary_key
        await table.select(pk).where(pk == record_id).lock_rows()


async def _locked_for_write(spec: EntitySpec, principal: Principal, record_id: int) -> dict[str, Any]:
    """The row an update or delete starts from, its write lock taken first (``_lock_for_write``)
    and the write rules applied (``_fetch_for_write``: 403 / 404). A principal who may change
    every record (the engine, jobs, scope all) reads and locks it in one ``SELECT ... FOR
    UPDATE``: one round trip less on PostgreSQL."""
    if db.is_postgres() and valid_id(record_id) and writers(spec, principal) is None:
        row = await prepared.of(spec.table).get(record_id, lock=True)
        if row is None:
            raise NotFound(f"{spec.name} {record_id} not found")
        return _public(spec, row)
    await _lock_for_write(spec.table, record_id)
    return await _fetch_for_write(spec, principal, record_id)


def _check_version(spec: EntitySpec, existing: dict[str, Any], expected: int | None) -> None:
    if expected is not None and "version" in existing and existing["version"] != expected:
        raise Conflict(
            f"{spec.name} {existing['id']} was changed by someone else (version {existing['version']}, "
            f"you sent {expected}); reload and apply your change again",
            current_version=existing["version"],
        )


def merge_custom(current: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    """A PATCH of ``custom`` is a JSON merge patch (RFC 7386, one level): the fields it names
    change, ``null`` removes one, the others stay, so a client editing one field cannot wipe
    the fields it did not know about."""
    merged = dict(current or {})
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


async def _validate_custom(spec: EntitySpec, values: dict[str, Any]) -> None:
    if spec.custom_fields and "custom" in values:
        await customfields.validate(plugin_manager(), spec.name, values["custom"] or {})


async def create(spec: EntitySpec, principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    spec.require(principal, "write")
    async with events.unit_of_work():
        if spec.prepare:
            values = await spec.prepare(principal, dict(values), None)
        await _validate_custom(spec, values)
        now = clock.now()
        table = spec.table
        values, extras = _split_extras(table, values)
        if "created_at" in _columns(table):
            values.setdefault("created_at", now)
        if "updated_at" in _columns(table):
            values.setdefault("updated_at", now)
        # The stored row comes back with the insert (no second query); JSON as a select reads it.
        statements = prepared.of(table)
        rows = await statements.insert(values)
        row = _public(spec, statements.loaded(rows[0]))
        record_id = row[table._meta.primary_key._meta.name]
        written_with = await _after_write(spec, principal, row, None, extras)
        await events.emit(
            f"{spec.name}.created",
            spec.name,
            record_id,
            {"id": record_id, **_party_of(spec, row)},
            also=[*written_with, audit.entry("create", spec.name, record_id, audit.diff(None, row))],
        )
    _after_commit(spec)
    return row


def _party_of(spec: EntitySpec, row: dict[str, Any]) -> dict[str, Any]:
    """``EntitySpec.party_in_events``: the event names the record's party (None: none), so
    search refreshes the party's sharing without a query (``search.service._shared_parties_refs``)."""
    return {"party_id": row.get("party_id")} if spec.party_in_events else {}


def _visibly_changes(existing: dict[str, Any], changes: dict[str, Any]) -> bool:
    """A column the caller sees (read in this transaction) gets another value: the update
    changes something, without reading the stored row again (one query less per update)."""
    return any(k in existing and existing[k] != v for k, v in changes.items())


async def _changes_nothing(table: type[Table], record_id: int, changes: dict[str, Any]) -> bool:
    # Compared with the stored row, hidden columns included (a new password_hash is a change).
    stored = await prepared.of(table).get(record_id)
    return stored is not None and all(k in stored and stored[k] == v for k, v in changes.items())


def _split_extras(table: type[Table], values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    cols = _columns(table)
    return {k: v for k, v in values.items() if k in cols}, {k: v for k, v in values.items() if k not in cols}


#: Column names by table (read on every create and update; a table's columns do not change).
_column_names: dict[type[Table], frozenset[str]] = {}


def _columns(table: type[Table]) -> frozenset[str]:
    names = _column_names.get(table)
    if names is None:
        names = _column_names[table] = frozenset(c._meta.name for c in table._meta.columns)
    return names


async def update(
    spec: EntitySpec,
    principal: Principal,
    record_id: int,
    changes: dict[str, Any],
    expected_version: int | None = None,
    locked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``locked``: the record as the caller read it in this transaction with its write lock
    (the workflow engine reads a stage task with its instance), for a principal who may
    change every record: it is not read again."""
    spec.require(principal, "write")
    table = spec.table
    async with events.unit_of_work():
        if locked is not None and writers(spec, principal) is None:
            existing = _public(spec, dict(locked))
        else:
            existing = await _locked_for_write(spec, principal, record_id)
        _check_version(spec, existing, expected_version)
        if spec.custom_fields and isinstance(changes.get("custom"), dict):
            pm = plugin_manager()
            customfields.refuse_read_only(pm, spec.name, changes["custom"])
            changes["custom"] = customfields.without_read_only(
                pm, spec.name, merge_custom(existing.get("custom"), changes["custom"])
            )
        if spec.prepare:
            changes = await spec.prepare(principal, dict(changes), existing)
        await _validate_custom(spec, changes)
        changes, extras = _split_extras(table, changes)
        if (
            not extras
            and not _visibly_changes(existing, changes)
            and await _changes_nothing(table, record_id, changes)
        ):
            # Nothing would change: no new version, no audit entry, no event. A client that
            # re-sends what it read (a form saved twice, a sync job) must not look like an edit.
            audit.unchanged()
            return existing
        cols = _columns(table)
        if "updated_at" in cols:
            changes["updated_at"] = clock.now()
        statements = prepared.of(table)
        match: dict[str, Any] = {}
        if "version" in cols:
            changes["version"] = existing["version"] + 1
            # Compare-and-set: a concurrent writer that got here first makes this match nothing.
            match["version"] = existing["version"]
        # Only non-column values (a user's roles) may change: then there is no row to update.
        if changes:
            updated = await statements.update(changes, record_id, match=match, returning_all=True)
            stored = statements.loaded(updated[0]) if updated else None
        else:
            stored = await statements.get(record_id)
            if stored is not None and stored.get("version") != match.get("version"):
                stored = None
        if stored is None:
            raise Conflict(f"{spec.name} {record_id} was changed by someone else; reload and try again")
        row = _public(spec, stored)
        written_with = await _after_write(spec, principal, row, existing, extras)
        diff = audit.diff(existing, row)
        await events.emit(
            f"{spec.name}.updated",
            spec.name,
            record_id,
            {"id": record_id, "fields": sorted(diff), **_party_of(spec, row)},
            also=[*written_with, audit.entry("update", spec.name, record_id, diff)],
        )
    _after_commit(spec)
    return row


async def delete(
    spec: EntitySpec, principal: Principal, record_id: int, expected_version: int | None = None
) -> None:
    spec.require(principal, "delete")
    table = spec.table
    async with events.unit_of_work():
        existing = await _locked_for_write(spec, principal, record_id)
        _check_version(spec, existing, expected_version)
        if spec.before_delete:
            await spec.before_delete(principal, existing)
        await table.delete().where(table._meta.primary_key == record_id)
        await events.emit(
            f"{spec.name}.deleted",
            spec.name,
            record_id,
            {"id": record_id},
            also=[audit.entry("delete", spec.name, record_id, audit.diff(existing, None))],
        )
    _after_commit(spec)


async def _after_write(
    spec: EntitySpec,
    principal: Principal,
    row: dict[str, Any],
    existing: dict[str, Any] | None,
    extras: dict[str, Any],
) -> list[Any]:
    """Run the spec's ``after_write``; the inserts it hands back go with the change's event."""
    if spec.after_write is None:
        return []
    return list(await spec.after_write(principal, row, existing, extras) or [])


def _after_commit(spec: EntitySpec) -> None:
    if spec.changes_access:
        forget_principals()


async def visible_ids(spec: EntitySpec, principal: Principal, ids: Sequence[int]) -> set[int]:
    ids = [i for i in ids if valid_id(i)]
    if not ids:
        return set()
    conditions = _and(spec.table._meta.primary_key.is_in(ids), spec.visibility(principal))
    rows = await spec.table.select(spec.table._meta.primary_key).where(*conditions)
    return {r[spec.table._meta.primary_key._meta.name] for r in rows}


async def require_writable(spec: EntitySpec, principal: Principal, record_id: int | None, field: str) -> None:
    """Reject a reference that changes the referenced record or widens who reads it (a contact
    on a party, a task that shares its party) unless the caller may change that record."""
    if record_id is None or not valid_id(record_id):
        await require_visible(spec, principal, record_id, field)
        return
    if await _fetch(spec, principal, record_id, writers(spec, principal)) is None:
        await require_visible(spec, principal, record_id, field)
        raise PermissionDenied(f"You may read {spec.name} {record_id} but not change it or add to it")


async def require_visible(spec: EntitySpec, principal: Principal, record_id: int | None, field: str) -> None:
    """Reject a reference (``party_id`` on an activity ...) to a record the caller cannot see."""
    if record_id is None:
        return
    if not await visible_ids(spec, principal, [record_id]):
        raise ValidationFailed.field(
            field, f"{spec.name} {record_id} does not exist or is not visible to you"
        )
