"""Parties: the organisations and people the company deals with, and their contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from tessera import audit, clock, events
from tessera.entities import service
from tessera.entities.channels import contact_index, normalise_channels
from tessera.entities.dto import Id, partial
from tessera.entities.tables import Contact, CrmUser, Party, PartyStatusChange, Team
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

PartyKind = Literal["organisation", "person"]
Relation = Literal["client", "partner", "supplier", "competitor"]
LifecycleStatus = Literal["potential", "current", "former"]
Name = Annotated[str, Meta(min_length=1, max_length=300)]


class Phone(Struct, forbid_unknown_fields=True):
    number: Annotated[str, Meta(min_length=1, max_length=50)]
    type: str = "work"


class Email(Struct, forbid_unknown_fields=True):
    address: Annotated[str, Meta(min_length=3, max_length=254)]
    type: str = "work"


class Address(Struct, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1, max_length=1000)]
    type: str = "legal"
    city: str = ""
    country: str = ""
    postcode: str = ""


class PartyIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    kind: PartyKind = "organisation"
    relations: list[Relation] = msgspec.field(default_factory=lambda: ["client"])
    status: LifecycleStatus = "potential"
    owner_id: Id | None = None
    team_id: Id | None = None
    tax_id: Annotated[str, Meta(max_length=50)] = ""
    website: Annotated[str, Meta(max_length=300)] = ""
    addresses: list[Address] = msgspec.field(default_factory=list)
    phones: list[Phone] = msgspec.field(default_factory=list)
    emails: list[Email] = msgspec.field(default_factory=list)
    tags: list[Annotated[str, Meta(min_length=1, max_length=100)]] = msgspec.field(default_factory=list)
    custom: dict[str, Any] = msgspec.field(default_factory=dict)


PartyPatch = partial(PartyIn, "PartyPatch")


class PartyOut(Struct, kw_only=True):
    id: int
    name: str
    kind: PartyKind
    relations: list[str]
    status: LifecycleStatus
    status_changed_at: datetime
    owner_id: int | None
    team_id: int | None
    tax_id: str
    website: str
    addresses: list[dict[str, Any]]
    phones: list[dict[str, Any]]
    emails: list[dict[str, Any]]
    tags: list[str]
    custom: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int


class ContactIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    name: Name
    position: Annotated[str, Meta(max_length=200)] = ""
    role: Annotated[str, Meta(max_length=100)] = ""
    phones: list[Phone] = msgspec.field(default_factory=list)
    emails: list[Email] = msgspec.field(default_factory=list)
    preferred_channel: Literal["", "phone", "email", "letter", "sms", "messenger"] = ""
    custom: dict[str, Any] = msgspec.field(default_factory=dict)


ContactPatch = partial(ContactIn, "ContactPatch")


class ContactOut(Struct, kw_only=True):
    id: int
    party_id: int
    name: str
    position: str
    role: str
    phones: list[dict[str, Any]]
    emails: list[dict[str, Any]]
    preferred_channel: str
    custom: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int


def party_visibility(principal: Principal) -> Any:
    """Who may read a party: its owner's and team's readers, and those it is shared with by an
    open task or process stage (``Principal.shared_party_where``: one hashed sub-select, so
    the planner keeps the plan it had for the owner condition alone)."""
    owned = principal.owner_where(Party.owner_id, Party.team_id)
    if owned is None:
        return None
    return owned | principal.shared_party_where(Party.id)


def party_write_visibility(principal: Principal) -> Any:
    """Who may change, reassign or delete a party: its owner's and team's readers only; a
    party shared by a task or a process stage is read-only to whom it is shared with."""
    return principal.owner_where(Party.owner_id, Party.team_id)


async def _check_owner(principal: Principal, owner_id: int | None) -> int | None:
    """An owner must exist, and be someone whose records the caller may manage."""
    if owner_id is None:
        return None
    if owner_id == principal.user_id:  # the caller: active (signed in) and their own records
        return principal.team_id
    owner = await CrmUser.select(CrmUser.team_id).where(CrmUser.id == owner_id).first()
    if owner is None:
        raise ValidationFailed.field("owner_id", f"user {owner_id} does not exist")
    if not principal.check_visible_owner(owner_id):
        raise ValidationFailed.field("owner_id", "you may only assign records to users whose records you see")
    return owner["team_id"]


async def prepare_party(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if existing is None and values.get("owner_id") is None:
        values["owner_id"] = principal.user_id
    if values.get("team_id") is not None and not await Team.exists().where(Team.id == values["team_id"]):
        raise ValidationFailed.field("team_id", f"team {values['team_id']} does not exist")
    if "owner_id" in values:
        owner_team = await _check_owner(principal, values["owner_id"])
        # The party follows its owner into the owner's team (so the owner's head sees it)
        # unless the caller names a team. A create always carries team_id (None by default).
        if existing is None:
            if values.get("team_id") is None:
                values["team_id"] = owner_team
        elif "team_id" not in values and values["owner_id"] != existing["owner_id"]:
            values["team_id"] = owner_team
    if "phones" in values or "emails" in values:
        normalise_channels(values)
        phones = values.get("phones", existing["phones"] if existing else [])
        emails = values.get("emails", existing["emails"] if existing else [])
        values["contact_index"] = contact_index(phones, emails)
    if "relations" in values:
        values["relations"] = sorted(set(values["relations"]))
    if "status" in values and (existing is None or existing["status"] != values["status"]):
        values["status_changed_at"] = clock.now()
    return values


async def after_party_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> list[Any]:
    old_status = existing["status"] if existing else None
    if old_status == row["status"]:
        return []
    status_entry = PartyStatusChange.insert(
        PartyStatusChange(
            party_id=row["id"],
            from_status=old_status,
            to_status=row["status"],
            changed_at=row["status_changed_at"],
            changed_by=principal.user_id,
        )
    )
    if existing is None:
        return [status_entry]  # written with the create's event (one statement on PostgreSQL)
    await events.emit(
        "party.status_changed",
        "party",
        row["id"],
        {"id": row["id"], "from": old_status, "to": row["status"]},
        also=[status_entry],
    )
    return []


async def before_party_delete(principal: Principal, row: dict[str, Any]) -> None:
    """The database deletes a party's contacts, activities, tasks, notes and files with it:
    audit each one with its last values and emit its ``.deleted`` event, so the history is
    not lost silently and listeners (the search index) drop them too."""
    from tessera.entities.tables import Activity, Attachment, Note, Task

    children: list[tuple[str, Any]] = [
        ("contact", Contact),
        ("activity", Activity),
        ("task", Task),
        ("note", Note),
        ("attachment", Attachment),
    ]
    for entity, table in children:
        rows = (
            await table.select().where(table.party_id == row["id"]).order_by(table.id).output(load_json=True)
        )
        for child in rows:
            for hidden in ("contact_index", "storage_url"):
                child.pop(hidden, None)
            await audit.record(
                "delete",
                entity,
                child["id"],
                audit.diff(child, None),
                detail=f"deleted with party {row['id']}",
            )
            await events.emit(
                f"{entity}.deleted", entity, child["id"], {"id": child["id"], "party_id": row["id"]}
            )


PARTY = service.EntitySpec(
    name="party",
    table=Party,
    permission="party",
    visibility=party_visibility,
    write_visibility=party_write_visibility,
    order_fields=("id", "name", "created_at", "updated_at"),
    prepare=prepare_party,
    after_write=after_party_write,
    before_delete=before_party_delete,
    hidden=("contact_index",),
)


def contact_visibility(principal: Principal) -> Any:
    """A contact is read with its party, also where the party is shared (an open hand-off)."""
    owned = principal.owner_where(Contact.party_id.owner_id, Contact.party_id.team_id)
    if owned is None:
        return None
    return owned | principal.shared_party_where(Contact.party_id)


def contact_write_visibility(principal: Principal) -> Any:
    return principal.owner_where(Contact.party_id.owner_id, Contact.party_id.team_id)


async def prepare_contact(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "party_id" in values:
        # A contact is part of its client: adding one changes the client.
        await service.require_writable(PARTY, principal, values["party_id"], "party_id")
    if "phones" in values or "emails" in values:
        normalise_channels(values)
        phones = values.get("phones", existing["phones"] if existing else [])
        emails = values.get("emails", existing["emails"] if existing else [])
        values["contact_index"] = contact_index(phones, emails)
    return values


CONTACT = service.EntitySpec(
    name="contact",
    table=Contact,
    permission="party",
    visibility=contact_visibility,
    write_visibility=contact_write_visibility,
    order_fields=("id", "name", "created_at"),
    prepare=prepare_contact,
    hidden=("contact_index",),
)


async def status_history(party_id: int) -> list[dict[str, Any]]:
    return (
        await PartyStatusChange.select()
        .where(PartyStatusChange.party_id == party_id)
        .order_by(PartyStatusChange.changed_at)
        .order_by(PartyStatusChange.id)
    )
