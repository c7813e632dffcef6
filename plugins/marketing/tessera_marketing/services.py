"""Segments, campaigns, cost lines and leads: the marketing plugin's records (no HTTP).

Every record goes through ``tessera.entities.service`` with an ``EntitySpec`` (audit, events,
optimistic locking, visibility), like the sales plugin's deals. Segment members and counts use
the kernel's party list and count (``service.list_page`` / ``service.count`` with ``PARTY``),
so the caller's party visibility is applied by the very rule every party list uses.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from piccolo.columns.combination import WhereRaw
from tessera import audit, clock, db
from tessera.entities import service
from tessera.entities.parties import PARTY, party_visibility, party_write_visibility
from tessera.entities.tables import Party
from tessera.errors import NotFound, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal

from tessera_marketing import leadflow, segments
from tessera_marketing.tables import Campaign, CampaignCost, Lead, Segment, SegmentMember

CHANNELS = ("email", "web", "exhibition", "event", "ads", "social", "phone", "print", "referral", "other")
CHANNEL_LABELS = {
    "email": N_("E-mail"),
    "web": N_("Website"),
    "exhibition": N_("Exhibition"),
    "event": N_("Event"),
    "ads": N_("Advertising"),
    "social": N_("Social media"),
    "phone": N_("Phone"),
    "print": N_("Print"),
    "referral": N_("Referral"),
    "other": N_("Other"),
}
CAMPAIGN_STATUSES = ("planned", "active", "closed")
LEAD_SOURCES = ("form", "deal", "manual")
LEAD_STATUSES = ("new", "contacted", "qualified", "disqualified")


def _everyone(principal: Principal | None) -> Any:
    return None


def visible_parties(principal: Principal) -> Any:
    """The ids of the parties the caller may read, as a sub-select (the kernel's party rule);
    None = every party."""
    condition = party_visibility(principal)
    return None if condition is None else Party.select(Party.id).where(condition)


def lead_visibility(principal: Principal) -> Any:
    """Leads on parties the caller may read, and leads handed to a user whose records they see."""
    parties = visible_parties(principal)
    if parties is None:
        return None
    return Lead.party_id.is_in(parties) | principal.owner_where(Lead.assignee_id, Lead.team_id)


def lead_write_visibility(principal: Principal) -> Any:
    """Who may change or delete a lead: those who may change its party (reading a party shared
    by a task or a process stage is not writing), and the readers of its assignee."""
    condition = party_write_visibility(principal)
    if condition is None:
        return None
    return Lead.party_id.is_in(Party.select(Party.id).where(condition)) | principal.owner_where(
        Lead.assignee_id
    )


# --------------------------------------------------------------------------- segments


def _rules(value: Any) -> Any:
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value


async def _prepare_segment(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    values.pop("frozen_at", None)
    if existing is not None and "kind" in values and values["kind"] != existing["kind"]:
        raise ValidationFailed.field("kind", "cannot change; create a new segment")
    if "kind" in values and values["kind"] not in ("dynamic", "static"):
        raise ValidationFailed.field("kind", "must be dynamic or static")
    if "rules" in values or existing is None:
        await segments.compile_rules(
            _rules(values.get("rules", {"all": []})), "rules", existing["id"] if existing else None
        )
    if existing is None:
        values.setdefault("owner_id", principal.user_id or None)
    return values


async def _after_segment_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    if row["kind"] == "static" and (existing is None or _rules(existing["rules"]) != _rules(row["rules"])):
        await freeze_members(principal, row)


SEGMENT = service.EntitySpec(
    name="marketing.segment",
    table=Segment,
    permission="marketing.segment",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_segment,
    after_write=_after_segment_write,
    order_fields=("id", "name"),
    permission_overrides={
        "read": "marketing.segment.read",
        "write": "marketing.segment.manage",
        "delete": "marketing.segment.manage",
    },
)


async def freeze_members(principal: Principal, segment: dict[str, Any]) -> int:
    """Store a static segment's members: the parties its rules match among those the person
    freezing it reads, by one ``INSERT ... SELECT``."""
    condition = await segments.compile_rules(_rules(segment["rules"]), "rules", segment["id"])
    visible = party_visibility(principal)
    query = Party.select(Party.id).where(condition)
    if visible is not None:
        query = query.where(visible)
    await SegmentMember.delete().where(SegmentMember.segment_id == segment["id"])
    await db.raw(
        "INSERT INTO marketing_segment_member (segment_id, party_id) SELECT {}, fz.id FROM ({}) fz",
        segment["id"],
        query.querystrings[0],
    )
    now = clock.now()
    await Segment.update({Segment.frozen_at: now}).where(Segment.id == segment["id"])
    segment["frozen_at"] = now
    return int(await SegmentMember.count().where(SegmentMember.segment_id == segment["id"]))


async def refreeze(principal: Principal, segment_id: int) -> dict[str, Any]:
    async with db.transaction():
        segment = await service.get_for_write(SEGMENT, principal, segment_id)
        if segment["kind"] != "static":
            raise ValidationFailed.field("kind", "only a static segment has a frozen member list")
        count = await freeze_members(principal, segment)
        await audit.record("freeze", "marketing.segment", segment_id, detail=f"{count} members")
    return segment


async def segment_condition(principal: Principal, segment_id: int) -> WhereRaw:
    segment = await service.get(SEGMENT, principal, segment_id)
    return await segments.segment_where(segment)


async def count_rules(principal: Principal, rules: Any) -> int:
    """How many parties the caller reads match ``rules`` (the live count of the editor)."""
    SEGMENT.require(principal, "read")
    condition = await segments.compile_rules(rules)
    return await service.count(PARTY, principal, [condition])


async def count_segment(principal: Principal, segment_id: int) -> int:
    return await service.count(PARTY, principal, [await segment_condition(principal, segment_id)])


async def members(
    principal: Principal, segment_id: int, cursor: str | None, limit: int, order: str | None = None
) -> service.Page:
    condition = await segment_condition(principal, segment_id)
    return await service.list_page(PARTY, principal, [condition], order=order, cursor=cursor, limit=limit)


# --------------------------------------------------------------------------- campaigns


async def _prepare_campaign(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if values.get("channel") not in (None, *CHANNELS):
        raise ValidationFailed.field("channel", f"must be one of {', '.join(CHANNELS)}")
    if values.get("status") not in (None, *CAMPAIGN_STATUSES):
        raise ValidationFailed.field("status", f"must be one of {', '.join(CAMPAIGN_STATUSES)}")
    start = values.get("starts_on", existing["starts_on"] if existing else None)
    end = values.get("ends_on", existing["ends_on"] if existing else None)
    if start is not None and end is not None and end < start:
        raise ValidationFailed.field("ends_on", "must be on or after starts_on")
    for key in ("budget", "expected_revenue"):
        if values.get(key) is not None and Decimal(str(values[key])) < 0:
            raise ValidationFailed.field(key, "must be zero or more")
    for key in ("expected_responses", "expected_leads"):
        if values.get(key) is not None and values[key] < 0:
            raise ValidationFailed.field(key, "must be zero or more")
    if values.get("segment_id") is not None:
        await service.require_visible(SEGMENT, principal, values["segment_id"], "segment_id")
    if existing is None:
        values.setdefault("owner_id", principal.user_id or None)
    return values


CAMPAIGN = service.EntitySpec(
    name="marketing.campaign",
    table=Campaign,
    permission="marketing.campaign",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_campaign,
    order_fields=("id", "starts_on", "name"),
    permission_overrides={
        "read": "marketing.campaign.read",
        "write": "marketing.campaign.manage",
        "delete": "marketing.campaign.manage",
    },
)


async def _prepare_cost(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if existing is not None and "campaign_id" in values and values["campaign_id"] != existing["campaign_id"]:
        raise ValidationFailed.field("campaign_id", "cannot change; delete the line and add it again")
    if values.get("campaign_id") is not None and existing is None:
        await service.require_visible(CAMPAIGN, principal, values["campaign_id"], "campaign_id")
    if values.get("amount") is not None and Decimal(str(values["amount"])) < 0:
        raise ValidationFailed.field("amount", "must be zero or more")
    if existing is None:
        values["created_by"] = principal.user_id or None
    return values


COST = service.EntitySpec(
    name="marketing.campaign_cost",
    table=CampaignCost,
    permission="marketing.campaign",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_cost,
    order_fields=("id", "spent_on"),
    permission_overrides={
        "read": "marketing.campaign.read",
        "write": "marketing.campaign.manage",
        "delete": "marketing.campaign.manage",
    },
)


async def campaign_sources(campaign_id: int | None) -> list[dict[str, Any]]:
    """The answer to sales' ``tessera_sales_deal_sources``: campaigns a deal may link to."""
    query = Campaign.select(Campaign.id, Campaign.name, Campaign.channel, Campaign.status)
    if campaign_id is not None:
        query = query.where(Campaign.id == campaign_id)
    else:
        query = query.where(Campaign.status != "closed").order_by(Campaign.starts_on, ascending=False)
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "source": "campaign",
            "channel": r["channel"],
            "active": r["status"] != "closed",
        }
        for r in await query
    ]


# --------------------------------------------------------------------------- leads


async def _prepare_lead(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if values.pop("_system", False):
        return values
    for key in ("deal_id", "form_id", "payload", "team_id"):
        values.pop(key, None)
    if values.get("status") not in (None, *LEAD_STATUSES):
        raise ValidationFailed.field("status", f"must be one of {', '.join(LEAD_STATUSES)}")
    if existing is not None:
        for key in ("party_id", "source"):
            if key in values and values[key] != existing[key]:
                raise ValidationFailed.field(key, "cannot change on an existing lead")
    if values.get("source") not in (None, "manual"):
        raise ValidationFailed.field("source", "leads from forms and deals are recorded by the system")
    if "party_id" in values and existing is None:
        await service.require_visible(PARTY, principal, values["party_id"], "party_id")
    if values.get("campaign_id") is not None:
        await service.require_visible(CAMPAIGN, principal, values["campaign_id"], "campaign_id")
    if existing is None:
        values["created_by"] = principal.user_id or None
        if values.get("received_at") is None:
            values["received_at"] = clock.now()
        if values.get("assignee_id") is None:
            values["assignee_id"] = principal.user_id or None
    return values


LEAD = service.EntitySpec(
    name="marketing.lead",
    table=Lead,
    permission="marketing.lead",
    visibility=lead_visibility,
    write_visibility=lead_write_visibility,
    custom_fields=False,
    prepare=_prepare_lead,
    # A form lead runs through the workflow process marketing.lead (its norm, escalation).
    after_write=leadflow.after_write,
    order_fields=("id", "received_at"),
    party_in_events=True,
    permission_overrides={
        "read": "marketing.lead.read",
        "write": "marketing.lead.write",
        "delete": "marketing.lead.manage",
    },
)


async def on_deal_opened(payload: dict[str, Any]) -> None:
    """A deal opened with a campaign is a response of that campaign (source ``deal``): the
    first-touch attribution counts it when it is the party's earliest touch."""
    campaign_id = payload.get("campaign_id")
    party_id = payload.get("party_id")
    if not campaign_id or not party_id:
        return
    if not await Campaign.exists().where(Campaign.id == campaign_id):
        return
    if await Lead.exists().where(Lead.deal_id == payload.get("id"), Lead.source == "deal"):
        return
    from tessera.demo import system_principal

    await service.create(
        LEAD,
        system_principal(),
        {
            "_system": True,
            "party_id": party_id,
            "campaign_id": campaign_id,
            "source": "deal",
            "deal_id": payload.get("id"),
            "assignee_id": payload.get("owner_id"),
            "received_at": clock.now(),
        },
    )


async def require_campaign(principal: Principal, campaign_id: int) -> dict[str, Any]:
    try:
        return await service.get(CAMPAIGN, principal, campaign_id)
    except NotFound:
        raise NotFound(f"No campaign {campaign_id}") from None


def period_bounds(date_from: dt.date, date_to: dt.date) -> None:
    if date_to < date_from:
        raise ValidationFailed.field("date_to", "must be on or after date_from")
