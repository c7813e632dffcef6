"""Tickets, queues, SLA policies and agreements: the service plugin's domain logic (no HTTP).

Every record goes through ``tessera.entities.service`` with an ``EntitySpec`` (audit, events,
optimistic locking, custom fields, search, visibility), like the sales plugin's deals. A
ticket's status and SLA columns are never written from a request body: the transitions here
(``assign``, ``add_message``, ``change_status``) write them through ``service.update`` with
the internal marker ``_system`` that the spec's ``prepare`` lets through.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import clock, db, events
from tessera.entities import service
from tessera.entities.parties import CONTACT, PARTY
from tessera.entities.tables import Contact, CrmUser, Notification, Party, Substitution, UserRole
from tessera.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.permissions import Principal

from tessera_service import lifecycle, sla
from tessera_service.tables import Agreement, Queue, SlaPolicy, Ticket, TicketMessage

CHANNELS = ("phone", "email", "web", "chat", "in_person")
CATEGORIES = ("request", "incident", "claim")
OPEN = ("new", "in_progress", "waiting")
STATUSES = ("new", "in_progress", "waiting", "resolved", "closed")
#: status -> the statuses it may move to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("in_progress", "waiting", "resolved", "closed"),
    "in_progress": ("waiting", "resolved", "closed"),
    "waiting": ("in_progress", "resolved", "closed"),
    "resolved": ("closed", "in_progress"),
    "closed": ("in_progress",),
}
#: Why a move is impossible, per target status (shown to the person who tried it).
REFUSALS = {
    "new": N_("A ticket cannot go back to “new”; reopen it instead."),
    "waiting": N_("Only an open ticket can wait on the client."),
    "resolved": N_("The ticket is already resolved or closed."),
    "closed": N_("The ticket is already closed."),
    "in_progress": N_("The ticket is already being worked on."),
}
#: Ticket columns a request may not set: the transitions own them.
SYSTEM_FIELDS = (
    "number",
    "status",
    "team_id",
    "policy_id",
    "agreement_id",
    "first_response_due",
    "resolution_due",
    "paused_since",
    "paused_total",
    "first_responded_at",
    "resolved_at",
    "closed_at",
    "warn_due",
    "warned_at",
    "breached_at",
    "escalation_level",
    "next_escalation_at",
    "reopened",
    "created_by",
    "message_id",
)


# --------------------------------------------------------------------------- visibility


def ticket_visibility(principal: Principal) -> Any:
    """Tickets assigned to someone the principal sees or in a queue team they see, and every
    ticket on a client they see (the account manager follows their client's requests)."""
    own = principal.owner_where(Ticket.assignee_id, Ticket.team_id)
    if own is None:
        return None
    return own | principal.owner_where(Ticket.party_id.owner_id, Ticket.party_id.team_id)


def ticket_write_visibility(principal: Principal) -> Any:
    """Who may reply, hand off, pause, resolve or close: the readers of the ticket's assignee or
    queue team. The client's manager reads the tickets on their client and only reads them
    (docs/security.md: reading is not writing)."""
    return principal.owner_where(Ticket.assignee_id, Ticket.team_id)


def _everyone(principal: Principal | None) -> Any:
    return None


def agreement_visibility(principal: Principal) -> Any:
    """Agreements of clients the principal sees."""
    return principal.owner_where(Agreement.party_id.owner_id, Agreement.party_id.team_id)


def _settings(read: str = "service.ticket.read") -> dict[str, str | None]:
    return {"read": read, "write": "service.ticket.manage", "delete": "service.ticket.manage"}


# --------------------------------------------------------------------------- queues, policies


async def _prepare_queue(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    values.pop("last_assignee_id", None)
    if "assignment" in values and values["assignment"] not in ("round_robin", "least_loaded"):
        raise ValidationFailed.field("assignment", "must be round_robin or least_loaded")
    if values.get("calendar"):
        _check_calendar(values["calendar"], "calendar")
    for key in ("lead_id", "manager_id"):
        if values.get(key) is not None and not await CrmUser.exists().where(CrmUser.id == values[key]):
            raise ValidationFailed.field(key, f"no user {values[key]}")
    if "name" in values:
        query = Queue.exists().where(Queue.name == values["name"])
        if existing is not None:
            query = query.where(Queue.id != existing["id"])
        if await query:
            raise ValidationFailed.field("name", "a queue with this name exists already")
    return values


def _check_calendar(spec: Any, field: str) -> None:
    from zoneinfo import ZoneInfo

    from tessera.workflow.business_time import BusinessCalendar

    try:
        calendar = BusinessCalendar.from_json(spec)
        ZoneInfo(calendar.timezone)
    except Exception as exc:
        raise ValidationFailed.field(field, f"not a business calendar: {exc}") from exc
    if calendar.end <= calendar.start or not calendar.weekdays:
        raise ValidationFailed.field(field, "working hours must end after they start, on some weekday")


async def _prepare_policy(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if values.get("priority") not in (None, "", *sla.PRIORITIES):
        raise ValidationFailed.field("priority", f"must be one of {', '.join(sla.PRIORITIES)} or empty")
    for key in ("first_response_hours", "resolution_hours"):
        if key in values and (values[key] is None or Decimal(str(values[key])) <= 0):
            raise ValidationFailed.field(key, "must be more than zero hours")
    if "warn_share" in values and not 0 < Decimal(str(values["warn_share"])) < 1:
        raise ValidationFailed.field("warn_share", "must be between 0 and 1 (0.8 = 80 %)")
    return values


async def _prepare_agreement(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "party_id" in values:
        await service.require_visible(PARTY, principal, values["party_id"], "party_id")
    if "policy_id" in values and not await SlaPolicy.exists().where(SlaPolicy.id == values["policy_id"]):
        raise ValidationFailed.field("policy_id", f"no SLA policy {values['policy_id']}")
    start = values.get("valid_from", existing["valid_from"] if existing else None)
    end = values.get("valid_until", existing["valid_until"] if existing else None)
    if start is not None and end is not None and end <= start:
        raise ValidationFailed.field("valid_until", "must be after valid_from")
    if values.get("calendar"):
        _check_calendar(values["calendar"], "calendar")
    if values.get("hours_included") is not None and Decimal(str(values["hours_included"])) < 0:
        raise ValidationFailed.field("hours_included", "must be zero or more")
    if existing is None and values.get("owner_id") is None:
        values["owner_id"] = principal.user_id or None
    return values


QUEUE = service.EntitySpec(
    name="service.queue",
    table=Queue,
    permission="service.ticket",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_queue,
    permission_overrides=_settings(),
)

POLICY = service.EntitySpec(
    name="service.sla_policy",
    table=SlaPolicy,
    permission="service.ticket",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_policy,
    permission_overrides=_settings(),
)

AGREEMENT = service.EntitySpec(
    name="service.agreement",
    table=Agreement,
    permission="service.ticket",
    visibility=agreement_visibility,
    custom_fields=False,
    prepare=_prepare_agreement,
    order_fields=("id", "valid_until"),
    permission_overrides=_settings(),
)


# --------------------------------------------------------------------------- assignment


async def absent_substitute(user_id: int, now: dt.datetime) -> int | None:
    """The active substitute of ``user_id`` when they are absent at ``now``; None when present
    (or absent with nobody standing in)."""
    rows = (
        await Substitution.select(Substitution.substitute_id)
        .where(
            Substitution.absent_user_id == user_id,
            Substitution.starts_at <= now,
            Substitution.ends_at > now,
        )
        .order_by(Substitution.starts_at, ascending=False)
    )
    for row in rows:
        if await CrmUser.exists().where(CrmUser.id == row["substitute_id"], CrmUser.is_active == True):  # noqa: E712
            return int(row["substitute_id"])
    return None


async def _is_absent(user_id: int, now: dt.datetime) -> bool:
    return bool(
        await Substitution.exists().where(
            Substitution.absent_user_id == user_id, Substitution.starts_at <= now, Substitution.ends_at > now
        )
    )


async def present_assignee(user_id: int, now: dt.datetime) -> int:
    """``user_id``, or their substitute while they are absent."""
    if await _is_absent(user_id, now):
        substitute = await absent_substitute(user_id, now)
        if substitute is not None:
            return substitute
    return user_id


async def auto_assignee(queue: dict[str, Any], now: dt.datetime) -> int | None:
    """The next agent of the queue's team: round-robin after the last one given a ticket, or
    the one with the fewest open tickets; absent and inactive users are skipped (when the
    whole team is away, the first one's substitute)."""
    if queue.get("team_id") is None:
        return None
    members = [
        r["id"]
        for r in await CrmUser.select(CrmUser.id)
        .where(CrmUser.team_id == queue["team_id"], CrmUser.is_active == True)  # noqa: E712
        .order_by(CrmUser.id)
    ]
    if not members:
        return None
    present = [m for m in members if not await _is_absent(m, now)]
    if not present:
        return await absent_substitute(members[0], now)
    if queue.get("assignment") == "least_loaded":
        loads = {m: 0 for m in present}
        for row in await Ticket.select(Ticket.assignee_id).where(
            Ticket.assignee_id.is_in(present), Ticket.status.is_in(list(OPEN))
        ):
            loads[row["assignee_id"]] += 1
        return min(present, key=lambda m: (loads[m], m))
    last = queue.get("last_assignee_id") or 0
    after = [m for m in present if m > last]
    chosen = (after or present)[0]
    await Queue.update({Queue.last_assignee_id: chosen}).where(Queue.id == queue["id"])
    return chosen


# --------------------------------------------------------------------------- ticket spec


async def _prepare_ticket(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if values.pop("_system", False):
        return values
    for key in SYSTEM_FIELDS:
        values.pop(key, None)
    if existing is not None:
        for key in ("party_id", "queue_id", "assignee_id", "priority"):
            if key in values and values[key] != existing[key]:
                raise ValidationFailed.field(
                    key,
                    "change it with POST .../assign"
                    if key == "assignee_id"
                    else "cannot change on an existing ticket; open a new one",
                )
    if values.get("priority") not in (None, *sla.PRIORITIES):
        raise ValidationFailed.field("priority", f"must be one of {', '.join(sla.PRIORITIES)}")
    if values.get("channel") not in (None, *CHANNELS):
        raise ValidationFailed.field("channel", f"must be one of {', '.join(CHANNELS)}")
    if "party_id" in values and existing is None:
        if values["party_id"] is None:
            raise ValidationFailed.field("party_id", "a ticket needs the client (party) it is for")
        await service.require_visible(PARTY, principal, values["party_id"], "party_id")
    if values.get("contact_id") is not None:
        await service.require_visible(CONTACT, principal, values["contact_id"], "contact_id")
        party_id = values.get("party_id", existing["party_id"] if existing else None)
        contact = await Contact.select(Contact.party_id).where(Contact.id == values["contact_id"]).first()
        if contact and contact["party_id"] != party_id:
            raise ValidationFailed.field("contact_id", "the contact works at another party")
    if bool(values.get("related_entity")) != (values.get("related_id") is not None) and (
        "related_entity" in values or "related_id" in values
    ):
        raise ValidationFailed.field("related_id", "give both related_entity and related_id, or neither")
    if existing is None:
        await _open(principal, values)
    return values


async def _open(principal: Principal, values: dict[str, Any]) -> None:
    """A new ticket: its queue, assignee, SLA policy and due times."""
    now = clock.now()
    values.setdefault("priority", "p3")
    values.setdefault("category", "request")
    queue = None
    if values.get("queue_id") is not None:
        queue = await Queue.select().where(Queue.id == values["queue_id"]).first()
        if queue is None or not queue["active"]:
            raise ValidationFailed.field("queue_id", f"no active queue {values['queue_id']}")
    if values.get("assignee_id") is not None:
        user = await CrmUser.select(CrmUser.is_active).where(CrmUser.id == values["assignee_id"]).first()
        if user is None or not user["is_active"]:
            raise ValidationFailed.field(
                "assignee_id", f"user {values['assignee_id']} does not exist or is inactive"
            )
        values["assignee_id"] = await present_assignee(values["assignee_id"], now)
    elif queue is not None:
        values["assignee_id"] = await auto_assignee(queue, now)
    if values.get("assignee_id") is None and queue is None:
        values["assignee_id"] = principal.user_id or None
    team_id = queue["team_id"] if queue else None
    if team_id is None and values.get("assignee_id"):
        row = await CrmUser.select(CrmUser.team_id).where(CrmUser.id == values["assignee_id"]).first()
        team_id = row["team_id"] if row else None
    policy, agreement = await sla.choose_policy(
        values["party_id"], values["priority"], values["category"], now
    )
    calendar = await sla.calendar_for(queue["id"] if queue else None, agreement["id"] if agreement else None)
    values.update(
        team_id=team_id,
        status="new",
        policy_id=policy["id"] if policy else None,
        agreement_id=agreement["id"] if agreement else None,
        created_by=principal.user_id or None,
        created_at=now,
        **sla.initial_state(policy, calendar, now),
    )


async def _after_ticket_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    if existing is None:
        number = f"T-{row['id']:06d}"
        await Ticket.update({Ticket.number: number}).where(Ticket.id == row["id"])
        row["number"] = number
        # The life-cycle process: its first stage's task tells the assignee (the hand-off).
        await lifecycle.start(row, principal.user_id)


TICKET = service.EntitySpec(
    name="service.ticket",
    table=Ticket,
    permission="service.ticket",
    visibility=ticket_visibility,
    write_visibility=ticket_write_visibility,
    order_fields=("id", "created_at", "updated_at", "resolution_due"),
    prepare=_prepare_ticket,
    after_write=_after_ticket_write,
    party_in_events=True,
    permission_overrides={
        "read": "service.ticket.read",
        "write": "service.ticket.write",
        "delete": "service.ticket.manage",
    },
)


async def _notify(user_id: int, kind: str, title: str, ticket_id: int, body: str = "") -> None:
    await Notification.insert(
        Notification(
            user_id=user_id,
            kind=kind,
            title=title[:500],
            body=body,
            ref=f"service_ticket:{ticket_id}",
            created_at=clock.now(),
        )
    )


async def get_ticket(principal: Principal, ticket_id: int) -> dict[str, Any]:
    return await service.get(TICKET, principal, ticket_id)


async def _system_update(
    principal: Principal, ticket_id: int, changes: dict[str, Any], version: int | None = None
) -> dict[str, Any]:
    return await service.update(TICKET, principal, ticket_id, {**changes, "_system": True}, version)


async def _calendar(ticket: dict[str, Any]) -> Any:
    return await sla.calendar_for(ticket["queue_id"], ticket["agreement_id"])


async def _log(ticket_id: int, user_id: int | None, body: str, kind: str = "event") -> None:
    await TicketMessage.insert(
        TicketMessage(
            ticket_id=ticket_id, author_user_id=user_id or None, kind=kind, body=body, at=clock.now()
        )
    )


# --------------------------------------------------------------------------- transitions


async def assign(
    principal: Principal, ticket_id: int, user_id: int | None = None, comment: str = ""
) -> dict[str, Any]:
    """Hand the ticket to ``user_id`` (their substitute while they are absent), or to the
    queue's next agent when ``user_id`` is None; the hand-off and its comment are logged."""
    async with events.unit_of_work():
        ticket = await service.get_for_write(TICKET, principal, ticket_id)
        if ticket["status"] == "closed":
            raise Conflict(_("A closed ticket cannot be reassigned; reopen it first."))
        now = clock.now()
        if user_id is not None:
            user = await CrmUser.select(CrmUser.is_active, CrmUser.name).where(CrmUser.id == user_id).first()
            if user is None or not user["is_active"]:
                raise ValidationFailed.field("user_id", f"user {user_id} does not exist or is inactive")
            target = await present_assignee(user_id, now)
        else:
            queue = await Queue.select().where(Queue.id == ticket["queue_id"]).first()
            target = await auto_assignee(queue, now) if queue else None
            if target is None:
                raise ValidationFailed.field("user_id", "the ticket's queue has no agent to take it")
        if target == ticket["assignee_id"]:
            raise Conflict(_("The ticket is already assigned to this person."))
        row = await _system_update(principal, ticket_id, {"assignee_id": target})
        name = await CrmUser.select(CrmUser.name).where(CrmUser.id == target).first()
        text = _("Handed to %(name)s", name=name["name"] if name else target)
        await _log(ticket_id, principal.user_id, f"{text}. {comment}".strip() if comment else text)
        # The stage (and its task) goes along: the kernel's hand-off tells the new agent.
        await lifecycle.hand_off(row, target, principal.user_id, comment)
    return row


async def add_message(
    principal: Principal,
    ticket_id: int,
    body: str,
    kind: str = "reply",
    *,
    contact_id: int | None = None,
    message_id: str = "",
) -> dict[str, Any]:
    """A reply to the client (the first one meets the first-response target and moves a new
    ticket to "in progress"), an internal note, or the client's own message (which resumes a
    ticket waiting on them). Returns the message."""
    if kind not in ("reply", "note", "client"):
        raise ValidationFailed.field("kind", "must be reply, note or client")
    if not body.strip():
        raise ValidationFailed.field("body", "must not be empty")
    async with events.unit_of_work():
        ticket = await service.get_for_write(TICKET, principal, ticket_id)
        if ticket["status"] == "closed" and kind != "note":
            raise Conflict(_("The ticket is closed; reopen it to write to the client."))
        now = clock.now()
        changes: dict[str, Any] = {}
        if kind == "reply":
            if ticket["first_responded_at"] is None:
                changes["first_responded_at"] = now
                changes.update(await _after_first_response(ticket))
            if ticket["status"] == "new":
                changes["status"] = "in_progress"
        elif kind == "client" and ticket["status"] in ("waiting", "resolved"):
            if ticket["status"] == "waiting":
                changes.update(sla.shifted(ticket, await _calendar(ticket), now))
            else:
                changes.update(resolved_at=None, reopened=int(ticket["reopened"] or 0) + 1)
            changes["status"] = "in_progress"
        rows = await TicketMessage.insert(
            TicketMessage(
                ticket_id=ticket_id,
                author_user_id=(principal.user_id or None) if kind != "client" else None,
                author_contact_id=contact_id,
                kind=kind,
                body=body,
                message_id=message_id,
                at=now,
            )
        ).returning(*TicketMessage._meta.columns)
        message = rows[0]
        updated = await _system_update(principal, ticket_id, changes or {"updated_at": now})
        if "status" in changes:
            await lifecycle.follow(updated, changes["status"], principal.user_id)
        await events.emit(
            "service.ticket.message",
            "service.ticket",
            ticket_id,
            {"id": ticket_id, "message_id": message["id"], "kind": kind, "party_id": ticket["party_id"]},
        )
        if kind == "client" and ticket["assignee_id"]:
            await _notify(
                ticket["assignee_id"],
                "service.client_replied",
                _("The client replied on %(number)s", number=ticket["number"]),
                ticket_id,
            )
    return message


async def _after_first_response(ticket: dict[str, Any]) -> dict[str, Any]:
    """The first response is in: the warning now watches the resolution target."""
    if ticket["warned_at"] is not None or ticket["policy_id"] is None:
        return {}
    policy = await SlaPolicy.select().where(SlaPolicy.id == ticket["policy_id"]).first()
    if policy is None:
        return {}
    return {
        "warn_due": sla.resolution_warn_due(
            policy, await _calendar(ticket), ticket["created_at"], int(ticket["paused_total"] or 0)
        )
    }


async def change_status(
    principal: Principal, ticket_id: int, to: str, comment: str = "", version: int | None = None
) -> dict[str, Any]:
    """Move the ticket through its life cycle: new -> in progress -> waiting on the client ->
    resolved -> closed, and reopen. Waiting pauses the SLA clock, leaving it resumes it and
    shifts the due times by the paused working time. 409 with the reason for an impossible move."""
    if to not in STATUSES:
        raise ValidationFailed.field("status", f"must be one of {', '.join(STATUSES)}")
    async with events.unit_of_work():
        ticket = await service.get_for_write(TICKET, principal, ticket_id)
        current = ticket["status"]
        if to not in TRANSITIONS[current]:
            reason = _(REFUSALS[to])
            raise Conflict(reason, [FieldError("status", reason)], current_status=current)
        now = clock.now()
        changes: dict[str, Any] = {"status": to}
        if current == "waiting":
            changes.update(sla.shifted(ticket, await _calendar(ticket), now))
        if to == "waiting":
            changes["paused_since"] = now
        elif to == "resolved":
            changes["resolved_at"] = now
        elif to == "closed":
            changes["closed_at"] = now
            if ticket["resolved_at"] is None:
                changes["resolved_at"] = now
        elif to == "in_progress" and current in ("resolved", "closed"):
            changes.update(resolved_at=None, closed_at=None, reopened=int(ticket["reopened"] or 0) + 1)
        row = await _system_update(principal, ticket_id, changes, version)
        await lifecycle.follow(row, to, principal.user_id, comment)
        label = {
            "in_progress": _("Reopened") if current in ("resolved", "closed") else _("In progress"),
            "waiting": _("Waiting on the client"),
            "resolved": _("Resolved"),
            "closed": _("Closed"),
            "new": _("New"),
        }[to]
        await _log(ticket_id, principal.user_id, f"{label}. {comment}".strip() if comment else label)
        await events.emit(
            "service.ticket.status_changed",
            "service.ticket",
            ticket_id,
            {"id": ticket_id, "from": current, "to": to, "party_id": ticket["party_id"]},
        )
        if to == "closed":
            from tessera_service import csat

            row["survey_link"] = await csat.create_survey(row)
    return row


async def messages(principal: Principal, ticket_id: int) -> list[dict[str, Any]]:
    """The ticket's conversation, oldest first: replies, client messages, notes and events."""
    await service.get(TICKET, principal, ticket_id)
    return (
        await TicketMessage.select()
        .where(TicketMessage.ticket_id == ticket_id)
        .order_by(TicketMessage.at)
        .order_by(TicketMessage.id)
    )


def attachment_ref(ticket_id: int) -> str:
    """The kernel attachments' ``subject_ref`` of a ticket's files (``POST /api/attachments/upload``
    with the ticket's ``party_id`` and this ``subject_ref`` attaches through the API)."""
    return f"service.ticket:{ticket_id}"


async def attachments(principal: Principal, ticket: dict[str, Any]) -> list[dict[str, Any]]:
    """The ticket's files the user may read (the kernel's attachments on the ticket's client
    with the ticket's ``subject_ref``), oldest first; none without ``note.read``."""
    from tessera.entities.notes import ATTACHMENT
    from tessera.entities.tables import Attachment

    try:
        ATTACHMENT.require(principal, "read")
    except PermissionDenied:
        return []
    page = await service.list_page(
        ATTACHMENT,
        principal,
        [Attachment.party_id == ticket["party_id"], Attachment.subject_ref == attachment_ref(ticket["id"])],
        order="id",
        limit=500,
    )
    return list(page.items)


async def attach(
    principal: Principal, data_dir: Any, ticket_id: int, filename: str, content_type: str, content: bytes
) -> dict[str, Any]:
    """Store a file on the ticket (a kernel attachment on its client, same checks and size
    limits as ``POST /api/attachments/upload``) and note it in the conversation."""
    from tessera.entities.notes import store_attachment

    ticket = await service.get_for_write(TICKET, principal, ticket_id)
    row = await store_attachment(
        principal, data_dir, filename, content_type, content, ticket["party_id"], attachment_ref(ticket_id)
    )
    await _log(ticket_id, principal.user_id, _("File attached: %(name)s", name=filename))
    return row


def sla_view(ticket: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """What a person reads about the SLA: paused or running, time left, met or breached and
    by how much (seconds, calendar time)."""
    paused = ticket["paused_since"] is not None
    due = ticket["first_response_due"] if ticket["first_responded_at"] is None else ticket["resolution_due"]
    done = ticket["resolved_at"]
    target = "first_response" if ticket["first_responded_at"] is None else "resolution"
    if ticket["status"] in ("resolved", "closed"):
        target = "resolution"
        due = ticket["resolution_due"]
    left = None
    if due is not None and not paused:
        left = int(((done or now) - due).total_seconds()) * -1
    first_met = None
    if ticket["first_response_due"] is not None and ticket["first_responded_at"] is not None:
        first_met = ticket["first_responded_at"] <= ticket["first_response_due"]
    resolution_met = None
    if ticket["resolution_due"] is not None and done is not None:
        resolution_met = done <= ticket["resolution_due"]
    return {
        "target": target,
        "due": due,
        "paused": paused,
        "seconds_left": left,
        "breached": ticket["breached_at"] is not None or (left is not None and left < 0),
        "first_response_met": first_met,
        "resolution_met": resolution_met,
    }


# --------------------------------------------------------------------------- expiring agreements


async def expiring_agreements(principal: Principal, days: int = 30) -> list[dict[str, Any]]:
    """Agreements of clients the caller sees that end within ``days`` (for the account manager)."""
    now = clock.now()
    conditions = [
        Agreement.valid_until.is_not_null(),
        Agreement.valid_until > now,
        Agreement.valid_until <= now + dt.timedelta(days=days),
    ]
    page = await service.list_page(AGREEMENT, principal, conditions, order="valid_until", limit=500)
    return page.items


# --------------------------------------------------------------------------- e-mail in


def _mid(value: Any) -> str:
    """A Message-ID without its angle brackets (the mail integration stores them so)."""
    return str(value or "").strip().strip("<>").strip()


def _address(value: str) -> str:
    from email.utils import parseaddr

    return parseaddr(value or "")[1].strip().lower()


async def tickets_from_email(message: dict[str, Any], principal: Principal | None = None) -> dict[str, Any]:
    """Turn an inbound e-mail into a new ticket or a client reply on an existing one.

    ``message`` has ``message_id``, ``from``, ``subject``, ``body`` and optionally
    ``in_reply_to``, ``references`` (list) and ``queue_id``. Deduplicated by Message-ID: the
    same message twice returns what the first made. A reply is found by In-Reply-To/References
    or by the ticket number ``[T-000123]`` in the subject. The sender is looked up among the
    contacts' and clients' e-mail addresses; an unknown sender is refused (422 ``from``).

    Returns ``{"ticket_id": ..., "message_id": ... or None, "created": bool}``. (The kernel has
    no ``tessera_inbound_email`` hook yet: the e-mail integration calls this function.)"""
    import re

    from tessera.demo import system_principal

    principal = principal or system_principal()
    mid = _mid(message.get("message_id"))
    if mid:
        found = await Ticket.select(Ticket.id).where(Ticket.message_id == mid).first()
        if found:
            return {"ticket_id": found["id"], "message_id": None, "created": False}
        done = (
            await TicketMessage.select(TicketMessage.id, TicketMessage.ticket_id)
            .where(TicketMessage.message_id == mid)
            .first()
        )
        if done:
            return {"ticket_id": done["ticket_id"], "message_id": done["id"], "created": False}
    refs = [_mid(r) for r in [message.get("in_reply_to"), *(message.get("references") or [])] if r]
    ticket_id = None
    if refs:
        hit = await Ticket.select(Ticket.id).where(Ticket.message_id.is_in(refs)).first()
        if hit is None:
            hit = (
                await TicketMessage.select(TicketMessage.ticket_id.as_alias("id"))
                .where(TicketMessage.message_id.is_in(refs))
                .first()
            )
        ticket_id = hit["id"] if hit else None
    subject = str(message.get("subject") or "").strip() or _("(no subject)")
    if ticket_id is None:
        number = re.search(r"\[(T-\d{6,})\]", subject)
        if number:
            hit = await Ticket.select(Ticket.id).where(Ticket.number == number.group(1)).first()
            ticket_id = hit["id"] if hit else None
    sender = _address(str(message.get("from") or ""))
    contact = None
    if message.get("party_id") is not None:
        # The mail integration matched the sender already (``InboundEmail.party_ids``).
        contact = (
            await Contact.select(Contact.id, Contact.party_id)
            .where(
                Contact.id.is_in(list(message.get("contact_ids") or []) or [-1]),
                Contact.party_id == message["party_id"],
            )
            .first()
        ) or {"id": None, "party_id": message["party_id"]}
    elif sender:
        pattern = f"%{sender}%"
        contact = (
            await Contact.select(Contact.id, Contact.party_id)
            .where(
                Contact.contact_index.ilike(pattern)
                if db.is_postgres()
                else Contact.contact_index.like(pattern)
            )
            .first()
        )
    body = str(message.get("body") or "")
    if ticket_id is not None:
        msg = await add_message(
            principal,
            ticket_id,
            body or subject,
            "client",
            contact_id=contact["id"] if contact else None,
            message_id=mid,
        )
        return {"ticket_id": ticket_id, "message_id": msg["id"], "created": False}
    party_id = contact["party_id"] if contact else None
    if party_id is None and sender:
        pattern = f"%{sender}%"
        party = (
            await Party.select(Party.id)
            .where(
                Party.contact_index.ilike(pattern) if db.is_postgres() else Party.contact_index.like(pattern)
            )
            .first()
        )
        party_id = party["id"] if party else None
    if party_id is None:
        raise ValidationFailed.field("from", f"no client or contact has the address {sender!r}")
    values: dict[str, Any] = {
        "party_id": party_id,
        "contact_id": contact["id"] if contact else None,
        "channel": "email",
        "subject": subject[:300],
        "description": body,
        "queue_id": message.get("queue_id"),
    }
    row = await service.create(TICKET, principal, values)
    if mid:
        await _system_update(principal, row["id"], {"message_id": mid})
    return {"ticket_id": row["id"], "message_id": None, "created": True}


async def ticket_or_404(ticket_id: int) -> dict[str, Any]:
    row = await Ticket.select().where(Ticket.id == ticket_id).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    return row


async def heads_of_team(team_id: int | None, not_user: int | None = None) -> list[int]:
    """Active users of ``team_id`` holding the ``head`` role (the lead's manager)."""
    if team_id is None:
        return []
    from tessera.entities.tables import Role

    rows = await UserRole.select(UserRole.user_id).where(
        UserRole.role_id.is_in(Role.select(Role.id).where(Role.name == "head")),
        UserRole.user_id.is_in(
            CrmUser.select(CrmUser.id).where(CrmUser.team_id == team_id, CrmUser.is_active == True)  # noqa: E712
        ),
    )
    return sorted({r["user_id"] for r in rows} - {not_user})
