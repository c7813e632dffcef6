"""HTTP routes of the service plugin, mounted by the kernel under ``/api/service/``.

Thin: each handler checks the body shape (msgspec), then calls a service function. No
``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, Router, get, post
from litestar.params import Parameter
from msgspec import Meta, Struct
from tessera import clock, db
from tessera.api.crud import entity_router
from tessera.entities.dto import Id, partial
from tessera.permissions import Principal

from tessera_service import services
from tessera_service.tables import Agreement, Queue, SlaPolicy, Ticket

IdQ = Annotated[int | None, Parameter(ge=1, le=2**31 - 1)]
Priority = Literal["p1", "p2", "p3", "p4"]
Channel = Literal["phone", "email", "web", "chat", "in_person"]
Status = Literal["new", "in_progress", "waiting", "resolved", "closed"]
Hours = Annotated[Decimal, Meta(examples=["4"])]


# --------------------------------------------------------------------------- tickets


class TicketIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    subject: Annotated[str, Meta(min_length=1, max_length=300, examples=["Printer does not print"])]
    description: Annotated[str, Meta(max_length=20000)] = ""
    contact_id: Id | None = None
    channel: Channel = "web"
    category: Annotated[str, Meta(min_length=1, max_length=100)] = "request"
    priority: Priority = "p3"
    queue_id: Id | None = None
    assignee_id: Id | None = None
    related_entity: Annotated[str, Meta(max_length=60)] = ""
    related_id: Id | None = None
    custom: dict[str, Any] = msgspec.field(default_factory=dict)


class TicketPatchIn(Struct, kw_only=True, forbid_unknown_fields=True):
    subject: Annotated[str, Meta(min_length=1, max_length=300)]
    description: Annotated[str, Meta(max_length=20000)] = ""
    contact_id: Id | None = None
    channel: Channel = "web"
    category: Annotated[str, Meta(min_length=1, max_length=100)] = "request"
    related_entity: Annotated[str, Meta(max_length=60)] = ""
    related_id: Id | None = None
    custom: dict[str, Any] = msgspec.field(default_factory=dict)


TicketPatch = partial(TicketPatchIn, "TicketPatch")


class SlaOut(Struct, kw_only=True):
    target: str
    due: dt.datetime | None
    paused: bool
    seconds_left: int | None
    breached: bool
    first_response_met: bool | None
    resolution_met: bool | None


class TicketOut(Struct, kw_only=True):
    id: int
    number: str
    party_id: int
    contact_id: int | None
    channel: str
    category: str
    priority: str
    queue_id: int | None
    assignee_id: int | None
    team_id: int | None
    subject: str
    description: str
    status: str
    related_entity: str
    related_id: int | None
    policy_id: int | None
    agreement_id: int | None
    first_response_due: dt.datetime | None
    resolution_due: dt.datetime | None
    paused_since: dt.datetime | None
    paused_total: int
    first_responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    warned_at: dt.datetime | None
    breached_at: dt.datetime | None
    escalation_level: int
    reopened: int
    sla: SlaOut
    custom: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    #: Only in the answer to a close: the client's one-time satisfaction survey link.
    survey_link: str | None = None


async def _decorate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = clock.now()
    for r in rows:
        r["sla"] = services.sla_view(r, now)
    return rows


def ticket_filters(
    status: Status | None = None,
    open_only: Annotated[bool, Parameter(description="Only new, in progress and waiting tickets")] = False,
    priority: Priority | None = None,
    category: Annotated[str | None, Parameter(max_length=100)] = None,
    queue_id: IdQ = None,
    assignee_id: IdQ = None,
    party_id: IdQ = None,
    breached: bool | None = None,
    q: Annotated[str | None, Parameter(max_length=200, description="Part of the subject")] = None,
) -> list[Any]:
    out: list[Any] = []
    if status:
        out.append(Ticket.status == status)
    if open_only:
        out.append(Ticket.status.is_in(list(services.OPEN)))
    if priority:
        out.append(Ticket.priority == priority)
    if category:
        out.append(Ticket.category == category)
    if queue_id is not None:
        out.append(Ticket.queue_id == queue_id)
    if assignee_id is not None:
        out.append(Ticket.assignee_id == assignee_id)
    if party_id is not None:
        out.append(Ticket.party_id == party_id)
    if breached is not None:
        out.append(Ticket.breached_at.is_not_null() if breached else Ticket.breached_at.is_null())
    if q:
        pattern = f"%{q.replace('%', '').replace('_', '')}%"
        out.append(Ticket.subject.ilike(pattern) if db.is_postgres() else Ticket.subject.like(pattern))
    return out


class AssignIn(Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: Id | None = None
    comment: Annotated[str, Meta(max_length=5000)] = ""


class MessageIn(Struct, kw_only=True, forbid_unknown_fields=True):
    body: Annotated[str, Meta(min_length=1, max_length=50000, examples=["We are on it."])]
    kind: Literal["reply", "note", "client"] = "reply"
    contact_id: Id | None = None


class MessageOut(Struct, kw_only=True):
    id: int
    ticket_id: int
    author_user_id: int | None
    author_contact_id: int | None
    kind: str
    body: str
    message_id: str
    at: dt.datetime


class StatusIn(Struct, kw_only=True, forbid_unknown_fields=True):
    status: Status
    comment: Annotated[str, Meta(max_length=5000)] = ""
    version: int | None = None


def _out(row: dict[str, Any]) -> TicketOut:
    row["sla"] = services.sla_view(row, clock.now())
    return msgspec.convert(row, TicketOut, strict=False)


@post("/{record_id:int}/assign", operation_id="assign_ticket", status_code=200)
async def assign_ticket(principal: Principal, record_id: int, data: AssignIn) -> TicketOut:
    """Hand the ticket to a colleague (their substitute while they are absent) with a comment,
    or, without ``user_id``, to the queue's next agent (round-robin or least loaded)."""
    return _out(await services.assign(principal, record_id, data.user_id, data.comment))


@post("/{record_id:int}/messages", operation_id="add_ticket_message", status_code=201)
async def add_message(principal: Principal, record_id: int, data: MessageIn) -> MessageOut:
    """Reply to the client (the first reply meets the first-response target), write an internal
    note, or record the client's message (which resumes a ticket waiting on them)."""
    row = await services.add_message(principal, record_id, data.body, data.kind, contact_id=data.contact_id)
    return msgspec.convert(row, MessageOut, strict=False)


@get("/{record_id:int}/messages", operation_id="list_ticket_messages")
async def list_messages(principal: Principal, record_id: int) -> list[MessageOut]:
    """The ticket's conversation, oldest first: replies, client messages, notes, hand-offs and
    SLA events."""
    return [
        msgspec.convert(r, MessageOut, strict=False) for r in await services.messages(principal, record_id)
    ]


@post("/{record_id:int}/status", operation_id="change_ticket_status", status_code=200)
async def change_status(principal: Principal, record_id: int, data: StatusIn) -> TicketOut:
    """Move the ticket: in_progress, waiting (pauses the SLA clock), resolved, closed (sends a
    one-time satisfaction survey link), or back to in_progress (reopen). 409 explains an
    impossible move."""
    row = await services.change_status(principal, record_id, data.status, data.comment, data.version)
    return _out(row)


tickets_router = entity_router(
    spec=services.TICKET,
    path="/tickets",
    tag="service",
    out=TicketOut,
    create_body=TicketIn,
    patch_body=TicketPatch,
    filters=ticket_filters,
    decorate=_decorate,
    extra_handlers=[assign_ticket, add_message, list_messages, change_status],
    name="ticket",
)


# --------------------------------------------------------------------------- queues


class QueueIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Support"])]
    team_id: Id | None = None
    lead_id: Id | None = None
    manager_id: Id | None = None
    calendar: dict[str, Any] = msgspec.field(default_factory=dict)
    assignment: Literal["round_robin", "least_loaded"] = "round_robin"
    active: bool = True


QueuePatch = partial(QueueIn, "QueuePatch")


class QueueOut(Struct, kw_only=True):
    id: int
    name: str
    team_id: int | None
    lead_id: int | None
    manager_id: int | None
    calendar: dict[str, Any]
    assignment: str
    active: bool
    created_at: dt.datetime
    version: int


def queue_filters(active: bool | None = None) -> list[Any]:
    return [] if active is None else [Queue.active == active]


queues_router = entity_router(
    spec=services.QUEUE,
    path="/queues",
    tag="service",
    out=QueueOut,
    create_body=QueueIn,
    patch_body=QueuePatch,
    filters=queue_filters,
    name="service_queue",
)


# --------------------------------------------------------------------------- SLA policies


class PolicyIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Standard"])]
    priority: Literal["", "p1", "p2", "p3", "p4"] = ""
    category: Annotated[str, Meta(max_length=100)] = ""
    #: Only for clients of this ABC class (``custom.abc_class``), "" = any client.
    client_class: Literal["", "A", "B", "C"] = ""
    first_response_hours: Hours
    resolution_hours: Hours
    warn_share: Annotated[Decimal, Meta(examples=["0.8"])] = Decimal("0.8")
    is_default: bool = False
    active: bool = True


PolicyPatch = partial(PolicyIn, "PolicyPatch")


class PolicyOut(Struct, kw_only=True):
    id: int
    name: str
    priority: str
    category: str
    client_class: str
    first_response_hours: Decimal
    resolution_hours: Decimal
    warn_share: Decimal
    is_default: bool
    active: bool
    created_at: dt.datetime
    version: int


def policy_filters(active: bool | None = None, priority: Priority | None = None) -> list[Any]:
    out: list[Any] = []
    if active is not None:
        out.append(SlaPolicy.active == active)
    if priority:
        out.append(SlaPolicy.priority == priority)
    return out


policies_router = entity_router(
    spec=services.POLICY,
    path="/sla-policies",
    tag="service",
    out=PolicyOut,
    create_body=PolicyIn,
    patch_body=PolicyPatch,
    filters=policy_filters,
    name="sla_policy",
)


# --------------------------------------------------------------------------- agreements


class AgreementIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    policy_id: Id
    name: Annotated[str, Meta(max_length=200)] = ""
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    hours_included: Decimal | None = None
    calendar: dict[str, Any] = msgspec.field(default_factory=dict)
    owner_id: Id | None = None


AgreementPatch = partial(AgreementIn, "AgreementPatch")


class AgreementOut(Struct, kw_only=True):
    id: int
    party_id: int
    policy_id: int
    name: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    hours_included: Decimal | None
    calendar: dict[str, Any]
    owner_id: int | None
    created_at: dt.datetime
    version: int


def agreement_filters(party_id: IdQ = None, policy_id: IdQ = None) -> list[Any]:
    out: list[Any] = []
    if party_id is not None:
        out.append(Agreement.party_id == party_id)
    if policy_id is not None:
        out.append(Agreement.policy_id == policy_id)
    return out


@get("/expiring", operation_id="expiring_agreements")
async def expiring(
    principal: Principal, days: Annotated[int, Parameter(ge=1, le=366)] = 30
) -> list[AgreementOut]:
    """Agreements of clients you see that end within ``days`` days (for the account manager)."""
    rows = await services.expiring_agreements(principal, days)
    return [msgspec.convert(r, AgreementOut, strict=False) for r in rows]


agreements_router = entity_router(
    spec=services.AGREEMENT,
    path="/agreements",
    tag="service",
    out=AgreementOut,
    create_body=AgreementIn,
    patch_body=AgreementPatch,
    filters=agreement_filters,
    extra_handlers=[expiring],
    name="agreement",
)


# --------------------------------------------------------------------------- reports


class SlaRow(Struct, kw_only=True):
    group: str | int | None
    tickets: int
    first_response_met: int
    first_response_breached: int
    resolution_met: int
    resolution_breached: int
    attainment: float | None
    median_first_response_hours: float | None
    median_resolution_hours: float | None
    reopened: int
    reopen_rate: float
    csat_answers: int
    csat_average: float | None


GroupBy = Literal["queue", "priority", "assignee", "month"]


@get("/reports/sla", operation_id="service_sla_report")
async def sla_report(
    principal: Principal, date_from: dt.date, date_to: dt.date, group_by: GroupBy = "queue"
) -> list[SlaRow]:
    """SLA attainment of the tickets you may read opened in the period, per queue, priority,
    assignee or month: first response and resolution met or breached, median times, reopen
    rate, satisfaction."""
    from tessera_service import reports

    rows = await reports.sla_report(principal, date_from, date_to, group_by)
    return [msgspec.convert(r, SlaRow, strict=False) for r in rows]


@get("/reports/sla/export", operation_id="service_sla_report_csv", media_type="text/csv")
async def sla_report_csv(
    principal: Principal, date_from: dt.date, date_to: dt.date, group_by: GroupBy = "queue"
) -> Response[str]:
    """The SLA report as CSV (the export is audited)."""
    from tessera import audit

    from tessera_service import reports

    rows = await reports.sla_report(principal, date_from, date_to, group_by)
    await audit.record(
        "export", "service.ticket", None, detail=f"sla report {date_from}..{date_to} by {group_by}"
    )
    return Response(
        reports.as_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="sla-{date_from}-{date_to}.csv"'},
    )


def routers() -> list[Any]:
    return [
        tickets_router,
        queues_router,
        policies_router,
        agreements_router,
        Router(path="/", route_handlers=[sla_report, sla_report_csv], tags=["service"]),
    ]
