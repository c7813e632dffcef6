"""Append-only audit log: who changed what, when, old -> new."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from piccolo.query import Insert

from tessera import clock
from tessera.entities.tables import AuditLog
from tessera.events import current_actor

#: Fields never copied into the audit log.
SECRET_FIELDS = {"password_hash", "token_hash", "session_hash", "csrf_token"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every field that differs (secrets omitted)."""
    old = old or {}
    new = new or {}
    changes: dict[str, list[Any]] = {}
    for key in sorted(set(old) | set(new)):
        if key in SECRET_FIELDS or key in {"updated_at", "version"}:
            continue
        a, b = old.get(key), new.get(key)
        if a != b:
            changes[key] = [_plain(a), _plain(b)]
    return changes


def entry(
    action: str,
    entity: str,
    entity_id: int | None,
    changes: dict[str, Any] | None = None,
    detail: str = "",
    user_id: int | None = None,
) -> Insert:
    """The audit entry as a query not run yet: ``await`` it, or hand it to ``events.emit(...,
    also=[...])`` to write it in the same statement as the event."""
    return AuditLog.insert(
        AuditLog(
            at=clock.now(),
            user_id=user_id if user_id is not None else current_actor(),
            action=action,
            entity=entity,
            entity_id=entity_id,
            changes=changes or {},
            detail=detail,
        )
    )


async def record(
    action: str,
    entity: str,
    entity_id: int | None,
    changes: dict[str, Any] | None = None,
    detail: str = "",
    user_id: int | None = None,
) -> None:
    await entry(action, entity, entity_id, changes, detail, user_id)
