"""Who may read which audit entries: an entry holds the old and new values of the record it
describes, so it follows that record's visibility (``EntitySpec.visibility``).

Apart from ``tessera.audit`` (which writes entries) because it reads the entity registry of
``tessera.entities.service``, which itself writes through ``tessera.audit``
(tests/test_import_graph.py).
"""

from __future__ import annotations

from typing import Any

from piccolo.columns.combination import WhereRaw

from tessera.entities import service
from tessera.entities.tables import AuditLog
from tessera.errors import PermissionDenied
from tessera.migrations import app_registry
from tessera.permissions import Principal

#: Entries about a user account that record what the person did, not a change to the record.
SIGN_IN_ACTIONS = ("login", "login_failed", "login_locked")


def sees_every_entry(principal: Principal) -> bool:
    """Admins and auditors: ``audit.read`` with scope ``all`` (the default ``auditor`` role has
    no record permission, so it reads the whole log without reading records elsewhere)."""
    return principal.sees_all


def visibility(principal: Principal) -> Any | None:
    """The SQL condition on ``audit_log`` for the entries ``principal`` may read; None = all.

    An entry holds the old and new values of the record it describes, so it follows that
    record's visibility: for every entity type with an ``EntitySpec`` (kernel and enabled
    plugins) ``entity = X AND entity_id IN (SELECT id FROM X WHERE <spec.visibility>)``, and
    only if the reader may read that type at all. Entries about anything else (sign-ins, API
    tokens, settings, records that were deleted since) are for those who see every entry."""
    if sees_every_entry(principal):
        return None
    live = {t for config in app_registry().app_configs.values() for t in config.table_classes}
    allowed: list[Any] = []
    for name, spec in sorted(service.specs().items()):
        if spec.table not in live:
            continue  # a plugin installed but not enabled: its table may not exist
        try:
            spec.require(principal, "read")
        except PermissionDenied:
            continue
        condition = spec.visibility(principal)
        if condition is None and name == "user":
            # Everyone reads the user directory, but sign-ins (with the client address) are
            # about what a person did: shown for the users whose records the caller sees.
            people = sorted(principal.user_ids or {principal.user_id})
            allowed.append(
                (AuditLog.entity == name)
                & (AuditLog.action.not_in(list(SIGN_IN_ACTIONS)) | AuditLog.entity_id.is_in(people))
            )
            continue
        if condition is None:
            allowed.append(AuditLog.entity == name)
            continue
        pk = spec.table._meta.primary_key
        readable = spec.table.select(pk).where(condition)
        allowed.append((AuditLog.entity == name) & AuditLog.entity_id.is_in(readable))
    if not allowed:
        return WhereRaw("1 = 0")
    combined = allowed[0]
    for part in allowed[1:]:
        combined = combined | part
    return combined


async def about_record(principal: Principal, entity_id: int, entity: str | None = None) -> Any:
    """The SQL condition for the entries about record ``entity_id`` (of ``entity``, or of any
    type) that ``principal`` may read: the record's own entries (``visibility``) and the
    entries about a range of records that covers it (``entity_id`` .. ``entity_id_last``: an
    import writes one per contiguous range of the ids it created, so "who created party X" is
    answered for every party it created). A range entry names the file, the count and the
    ranges, no record's contents: it is shown to a reader who may read the record asked about."""
    own = AuditLog.entity_id == entity_id
    covers = (AuditLog.entity_id_last >= entity_id) & (AuditLog.entity_id <= entity_id)
    visible = visibility(principal)
    if visible is None:
        return own | covers
    live = {t for config in app_registry().app_configs.values() for t in config.table_classes}
    readable: list[str] = []
    for name, spec in sorted(service.specs().items()):
        if (entity and name != entity) or spec.table not in live:
            continue
        try:
            spec.require(principal, "read")
        except PermissionDenied:
            continue
        if await service.visible_ids(spec, principal, [entity_id]):
            readable.append(name)
    if not readable:
        return own & visible
    return (own & visible) | (covers & AuditLog.entity.is_in(readable))


async def condition(
    principal: Principal, entity_id: int | None = None, entity: str | None = None
) -> Any | None:
    """The SQL condition for the entries ``principal`` may read (None: all), narrowed to those
    about record ``entity_id`` when one is asked for (``about_record``): the one rule the API's
    ``GET /api/audit`` and the audit page both filter by."""
    if entity_id is not None:
        return await about_record(principal, entity_id, entity)
    return visibility(principal)
