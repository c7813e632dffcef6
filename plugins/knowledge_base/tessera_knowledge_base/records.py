"""Records of the kernel and of other plugins that the knowledge base reads (a party, a deal, a
ticket), found through the kernel's registry of entity specs so the plugin imports neither
sales nor service, and read with the caller's principal so visibility applies."""

from __future__ import annotations

from typing import Any

from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.errors import NotFound, ValidationFailed
from tessera.permissions import Principal

#: kind -> (entity name, plugin that owns it; None: the kernel)
KINDS: dict[str, tuple[str, str | None]] = {
    "party": ("party", None),
    "deal": ("sales.deal", "sales"),
    "ticket": ("service.ticket", "service"),
}


def enabled(kind: str) -> bool:
    """Whether records of ``kind`` exist in this installation (their plugin is enabled)."""
    if kind not in KINDS:
        return False
    entity, plugin = KINDS[kind]
    if plugin is None:
        return True
    try:
        pm = service.plugin_manager()
    except RuntimeError:
        return False
    return pm.get_plugin(plugin) is not None and entity in service.specs()


def spec_of(kind: str, field: str = "kind") -> service.EntitySpec:
    if kind not in KINDS:
        raise ValidationFailed.field(field, f"must be one of {', '.join(KINDS)}")
    if not enabled(kind):
        raise ValidationFailed.field(field, f"records of kind {kind!r} need the {KINDS[kind][1]} plugin")
    return PARTY if kind == "party" else service.specs()[KINDS[kind][0]]


async def load(principal: Principal, kind: str, record_id: int, field: str = "record_id") -> dict[str, Any]:
    """The record if the caller may read it; 422 naming ``field`` otherwise."""
    spec = spec_of(kind)
    try:
        return await service.get(spec, principal, record_id)
    except NotFound as exc:
        raise ValidationFailed.field(
            field, f"{kind} {record_id} does not exist or is not visible to you"
        ) from exc


def party_of(kind: str, record: dict[str, Any]) -> int | None:
    return record["id"] if kind == "party" else record.get("party_id")
