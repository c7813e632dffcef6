"""Append-only audit log: who changed what, when, old -> new."""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from piccolo.query import Insert
from piccolo.utils.encoding import dump_json

from tessera import clock, events
from tessera.entities.tables import AuditLog

log = logging.getLogger(__name__)

#: Fields never copied into the audit log.
SECRET_FIELDS = {"password_hash", "token_hash", "session_hash", "csrf_token"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


#: Fields ``diff`` leaves out besides the secrets: what every change changes.
_NOT_DIFFED = frozenset({"updated_at", "version"})


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every field that differs (secrets omitted)."""
    old = old or {}
    new = new or {}
    changes: dict[str, list[Any]] = {}
    old_get, new_get = old.get, new.get
    for key in sorted((old.keys() | new.keys()) - SECRET_FIELDS - _NOT_DIFFED):
        a, b = old_get(key), new_get(key)
        if a != b:
            changes[key] = [_plain(a), _plain(b)]
    return changes


@dataclass(frozen=True)
class Entry(events.LogRow):
    """An audit entry not written yet: ``await`` it to write it now, or hand it to
    ``events.emit(..., also=[...])`` to write it with the unit of work's events (one
    statement for all of them, before commit)."""

    def query(self) -> Insert:
        values = dict(self.values)
        values["changes"] = json.loads(values["changes"])
        return AuditLog.insert(AuditLog(**values))


def entry(
    action: str,
    entity: str,
    entity_id: int | None,
    changes: dict[str, Any] | None = None,
    detail: str = "",
    user_id: int | None = None,
) -> Entry:
    """The audit entry of a change, not written yet (``Entry``)."""
    watch = _watch.get()
    if watch is not None:
        watch.entries += 1
    return Entry(
        "audit_log",
        (
            ("at", clock.now()),
            ("user_id", user_id if user_id is not None else events.current_actor()),
            ("action", action),
            ("entity", entity),
            ("entity_id", entity_id),
            ("changes", dump_json(changes or {})),
            ("detail", detail),
        ),
    )


def entries(
    action: str,
    entity: str,
    entity_ids: Sequence[int],
    changes: dict[str, Any] | None = None,
    detail: str = "",
    user_id: int | None = None,
) -> list[Entry]:
    """The same audit entry for many records (a set-based change: the receivables plugin's
    overdue scan marks thousands of invoices at once), built once and repeated per id; handed
    to ``events.emit_all(..., also=...)`` they are written in multi-row statements."""
    if not entity_ids:
        return []
    first = entry(action, entity, entity_ids[0], changes, detail, user_id)
    watch = _watch.get()
    if watch is not None:
        watch.entries += len(entity_ids) - 1
    at = [name for name, _ in first.values].index("entity_id")
    head, tail = first.values[:at], first.values[at + 1 :]
    return [first, *(Entry(first.table, (*head, ("entity_id", i), *tail)) for i in entity_ids[1:])]


async def record(
    action: str,
    entity: str,
    entity_id: int | None,
    changes: dict[str, Any] | None = None,
    detail: str = "",
    user_id: int | None = None,
) -> None:
    await entry(action, entity, entity_id, changes, detail, user_id)


# --------------------------------------------------------------------------- the write guard

#: The action of the entry the kernel writes for a plugin's write request that wrote none.
UNAUDITED = "unaudited_write"


@dataclass
class _Watch:
    entries: int = 0
    #: The request asked for a change that changes nothing (a form saved twice): no entry due.
    unchanged: bool = False

    @property
    def accounted(self) -> bool:
        return self.entries > 0 or self.unchanged


_watch: contextvars.ContextVar[_Watch | None] = contextvars.ContextVar("tessera_audit_watch", default=None)


def watch() -> tuple[_Watch, contextvars.Token[_Watch | None]]:
    """Count the audit entries written from here on in this context (``entry`` and ``record``
    count themselves); ``unwatch(token)`` stops."""
    current = _Watch()
    return current, _watch.set(current)


def unwatch(token: contextvars.Token[_Watch | None]) -> None:
    _watch.reset(token)


def unchanged() -> None:
    """Say that the write asked for changed nothing, so it owes no audit entry (the entity
    service does this for an update that would store what is stored already)."""
    watch = _watch.get()
    if watch is not None:
        watch.unchanged = True


async def record_unaudited(plugin: str, method: str, path: str, status: int, user_id: int | None) -> None:
    """The kernel's safety net: a plugin's write request succeeded without an audit entry.
    Recorded (who, which route, the outcome; no record contents, so only those who see every
    entry read it) and logged as an error naming the route, so the plugin gets fixed."""
    log.error(
        "plugin %s: %s %s answered %s without writing an audit entry; the kernel recorded %r "
        "instead (write through tessera.entities.service or call tessera.audit.entry)",
        plugin,
        method,
        path,
        status,
        UNAUDITED,
    )
    await record(UNAUDITED, plugin, None, {}, detail=f"{method} {path} -> {status}", user_id=user_id)
