"""Activities: calls, meetings, e-mails, letters, seminars, mailings, claims and notes, planned
or done, with participants (users and contacts), outcome and the agreements reached."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from tessera import events
from tessera.entities import service
from tessera.entities.dto import Id, partial
from tessera.entities.parties import CONTACT, PARTY
from tessera.entities.tables import Activity, ActivityParticipant, CrmUser
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

ActivityType = Literal["call", "meeting", "email", "letter", "seminar", "mailing", "claim", "note"]
ActivityStatus = Literal["planned", "done", "cancelled"]


class ActivityIn(Struct, kw_only=True, forbid_unknown_fields=True):
    type: ActivityType
    subject: Annotated[str, Meta(min_length=1, max_length=500)]
    starts_at: datetime
    status: ActivityStatus = "planned"
    description: str = ""
    party_id: Id | None = None
    contact_id: Id | None = None
    owner_id: Id | None = None
    direction: Literal["", "in", "out"] = ""
    duration_minutes: Annotated[int, Meta(ge=0, le=100_000)] = 0
    outcome: str = ""
    agreements: str = ""
    participant_user_ids: list[Id] = msgspec.field(default_factory=list)
    participant_contact_ids: list[Id] = msgspec.field(default_factory=list)
    custom: dict[str, Any] = msgspec.field(default_factory=dict)


ActivityPatch = partial(ActivityIn, "ActivityPatch")


class ActivityOut(Struct, kw_only=True):
    id: int
    type: str
    status: str
    subject: str
    description: str
    party_id: int | None
    contact_id: int | None
    owner_id: int | None
    team_id: int | None
    direction: str
    starts_at: datetime
    duration_minutes: int
    outcome: str
    agreements: str
    participant_user_ids: list[int]
    participant_contact_ids: list[int]
    custom: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int


def activity_visibility(principal: Principal) -> Any:
    own = principal.owner_where(Activity.owner_id, Activity.team_id)
    if own is None:
        return None
    via_party = principal.owner_where(Activity.party_id.owner_id, Activity.party_id.team_id)
    taking_part = principal.member_where(
        Activity.id, ActivityParticipant.activity_id, ActivityParticipant.user_id
    )
    return own | via_party | taking_part


def activity_write_visibility(principal: Principal) -> Any:
    """Who may change, detach, reassign, delete an activity or change its participants: the
    readers of its owner (own, team, substitutes). Taking part in a meeting, or being the
    client's manager, only reads it."""
    return principal.owner_where(Activity.owner_id, Activity.team_id)


async def prepare_activity(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if existing is None and values.get("owner_id") is None:
        values["owner_id"] = principal.user_id
    if values.get("starts_at") is not None and values["starts_at"].tzinfo is None:
        raise ValidationFailed.field("starts_at", "must carry a time zone (e.g. 2026-11-26T10:00:00+03:00)")
    await service.require_visible(PARTY, principal, values.get("party_id"), "party_id")
    await service.require_visible(CONTACT, principal, values.get("contact_id"), "contact_id")
    if "owner_id" in values and values["owner_id"] is not None:
        owner = await CrmUser.select(CrmUser.team_id).where(CrmUser.id == values["owner_id"]).first()
        if owner is None:
            raise ValidationFailed.field("owner_id", f"user {values['owner_id']} does not exist")
        # Same rule as parties: nobody files work in the book of a user whose records they
        # cannot see (the record would vanish from their own lists at once).
        if not principal.check_visible_owner(values["owner_id"]):
            raise ValidationFailed.field(
                "owner_id", "you may only assign records to users whose records you see"
            )
        values["team_id"] = owner["team_id"]
    user_ids = values.get("participant_user_ids")
    if user_ids:
        found = {r["id"] for r in await CrmUser.select(CrmUser.id).where(CrmUser.id.is_in(user_ids))}
        missing = sorted(set(user_ids) - found)
        if missing:
            raise ValidationFailed.field("participant_user_ids", f"unknown users: {missing}")
    contact_ids = values.get("participant_contact_ids")
    if contact_ids:
        visible = await service.visible_ids(CONTACT, principal, contact_ids)
        missing = sorted(set(contact_ids) - visible)
        if missing:
            raise ValidationFailed.field("participant_contact_ids", f"unknown or hidden contacts: {missing}")
    return values


async def after_activity_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    if "participant_user_ids" in extras or "participant_contact_ids" in extras:
        current = await participants_of([row["id"]])
        users = extras.get("participant_user_ids", current[row["id"]]["users"])
        contacts = extras.get("participant_contact_ids", current[row["id"]]["contacts"])
        await ActivityParticipant.delete().where(ActivityParticipant.activity_id == row["id"])
        rows = [ActivityParticipant(activity_id=row["id"], user_id=u) for u in dict.fromkeys(users)]
        rows += [ActivityParticipant(activity_id=row["id"], contact_id=c) for c in dict.fromkeys(contacts)]
        if rows:
            await ActivityParticipant.insert(*rows)
    was_done = existing is not None and existing["status"] == "done"
    if row["status"] == "done" and not was_done:
        await events.emit(
            "activity.logged",
            "activity",
            row["id"],
            {"id": row["id"], "type": row["type"], "party_id": row["party_id"], "owner_id": row["owner_id"]},
        )


async def participants_of(activity_ids: list[int]) -> dict[int, dict[str, list[int]]]:
    out: dict[int, dict[str, list[int]]] = {a: {"users": [], "contacts": []} for a in activity_ids}
    if not activity_ids:
        return out
    rows = await ActivityParticipant.select().where(ActivityParticipant.activity_id.is_in(activity_ids))
    for r in rows:
        if r["user_id"] is not None:
            out[r["activity_id"]]["users"].append(r["user_id"])
        if r["contact_id"] is not None:
            out[r["activity_id"]]["contacts"].append(r["contact_id"])
    return out


async def with_participants(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts = await participants_of([r["id"] for r in rows])
    for r in rows:
        r["participant_user_ids"] = parts[r["id"]]["users"]
        r["participant_contact_ids"] = parts[r["id"]]["contacts"]
    return rows


ACTIVITY = service.EntitySpec(
    name="activity",
    table=Activity,
    permission="activity",
    visibility=activity_visibility,
    write_visibility=activity_write_visibility,
    order_fields=("id", "starts_at", "created_at"),
    prepare=prepare_activity,
    after_write=after_activity_write,
)
