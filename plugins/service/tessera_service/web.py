"""Web pages of the service plugin (mounted by the kernel under ``/service/``): the ticket
queue with filters and the SLA countdown, a ticket with its conversation and forms to reply,
write a note, pause (waiting on the client), resolve, close, reopen and hand it off, "new
ticket" (also from the client card's "Tickets" tab), and the client's public satisfaction
survey (``/service/csat/<token>``, no sign-in: the one-time token is the credential).

They call the same services as the API, decode forms through the API's structs, and every
signed-in form carries the session's CSRF token.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.response import Redirect
from tessera import clock, i18n
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.entities.tables import CrmUser, Party
from tessera.errors import DomainError, ValidationFailed
from tessera.i18n import N_
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    record_widgets,
    render,
)

from tessera_service import csat, services
from tessera_service.lists import ticket_list
from tessera_service.routes import AssignIn, MessageIn, StatusIn, TicketIn
from tessera_service.tables import Queue, Ticket

STATUSES = {
    "new": N_("New"),
    "in_progress": N_("In progress"),
    "waiting": N_("Waiting on the client"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
}
PRIORITIES = {"p1": N_("P1 urgent"), "p2": N_("P2 high"), "p3": N_("P3 normal"), "p4": N_("P4 low")}
CHANNELS = {
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "web": N_("Web form"),
    "chat": N_("Chat"),
    "in_person": N_("In person"),
}
CATEGORIES = {"request": N_("Request"), "incident": N_("Incident"), "claim": N_("Claim")}
MESSAGE_KINDS = {
    "reply": N_("Reply to the client"),
    "client": N_("From the client"),
    "note": N_("Internal note"),
    "event": N_("Event"),
}
i18n.register_labels("service.ticket.status", STATUSES)
i18n.register_labels("service.priority", PRIORITIES)
i18n.register_labels("service.channel", CHANNELS)
i18n.register_labels("service.category", CATEGORIES)
i18n.register_labels("service.message", MESSAGE_KINDS)
i18n.register_labels(
    "timeline.kind",
    {
        "service.ticket": N_("Ticket"),
        "service.message.reply": N_("Reply to the client"),
        "service.message.client": N_("Message from the client"),
        "service.message.note": N_("Internal note on a ticket"),
        "service.message.event": N_("Ticket event"),
        "service.csat": N_("Satisfaction survey"),
    },
)
NEW_FIELDS = frozenset(
    {"subject", "description", "priority", "category", "channel", "queue_id", "contact_id", "party_id"}
)
TICKET_FIELDS = frozenset({"body", "kind", "status", "comment", "user_id", "file"})


def countdown(seconds: int | None) -> str:
    """Time left before the SLA target (negative: how late), as a person reads it."""
    if seconds is None:
        return ""
    late = seconds < 0
    minutes = abs(seconds) // 60
    text = f"{minutes // 60}:{minutes % 60:02d}"
    return i18n.gettext("%(time)s late", time=text) if late else text


async def _names(user_ids: set[int], party_ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    users = {
        u["id"]: u["name"]
        for u in await CrmUser.select(CrmUser.id, CrmUser.name).where(
            CrmUser.id.is_in(list(user_ids) or [-1])
        )
    }
    parties = {
        p["id"]: p["name"]
        for p in await Party.select(Party.id, Party.name).where(Party.id.is_in(list(party_ids) or [-1]))
    }
    return users, parties


async def _queues() -> dict[int, str]:
    return {q["id"]: q["name"] for q in await Queue.select(Queue.id, Queue.name).where(Queue.active == True)}  # noqa: E712


async def _new_view(
    request: Request[Any, Any, Any],
    principal: Any,
    party_id: int | None,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    party = None
    if party_id is not None:
        try:
            party = await service.get(PARTY, principal, party_id)
        except DomainError as exc:
            return error_page(request, principal, exc)
    return render(
        request,
        "service/new_ticket.html",
        status=status,
        principal=principal,
        party=party,
        priorities=PRIORITIES,
        channels=CHANNELS,
        categories=CATEGORIES,
        queues=await _queues(),
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
    )


@get("/tickets/new", include_in_schema=False)
async def new_ticket(request: Request[Any, Any, Any], party_id: int | None = None) -> Response[Any]:
    """The "new ticket" form (from the client card: for that client)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _new_view(request, principal, party_id)


@post("/tickets/new", include_in_schema=False, status_code=303)
async def new_ticket_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Open the ticket (same struct and service as ``POST /api/service/tickets``)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    party_raw = data.get("party_id") or ""
    try:
        body = decode_form(TicketIn, data)
        from tessera.entities.dto import set_fields

        row = await service.create(services.TICKET, principal, set_fields(body))
    except DomainError as exc:
        party_id = int(party_raw) if party_raw.isdigit() else None
        return await _new_view(
            request, principal, party_id, form=data, errors=field_errors(exc, NEW_FIELDS), status=exc.status
        )
    return Redirect(f"/service/tickets/{row['id']}", status_code=303)


async def _ticket_view(
    request: Request[Any, Any, Any],
    principal: Any,
    ticket_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    try:
        ticket = await services.get_ticket(principal, ticket_id)
        conversation = await services.messages(principal, ticket_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    ticket["sla"] = services.sla_view(ticket, clock.now())
    user_ids = {m["author_user_id"] for m in conversation if m["author_user_id"]} | {ticket["assignee_id"]}
    users, parties = await _names(user_ids - {None}, {ticket["party_id"]})
    active = CrmUser.is_active == True  # noqa: E712
    agents = await CrmUser.select(CrmUser.id, CrmUser.name).where(active).order_by(CrmUser.name)
    scores = await csat.ticket_scores([ticket_id])
    files = await services.attachments(principal, ticket)
    return render(
        request,
        "service/ticket.html",
        status=status,
        principal=principal,
        ticket=ticket,
        conversation=conversation,
        users=users,
        party=parties.get(ticket["party_id"], ""),
        queue=(await _queues()).get(ticket["queue_id"], "") if ticket["queue_id"] else "",
        agents=agents,
        moves=services.TRANSITIONS[ticket["status"]],
        statuses=STATUSES,
        can_write=await service.may_change(services.TICKET, principal, ticket_id),
        score=scores.get(ticket_id),
        files=files,
        may_attach=principal.can("note.write"),
        countdown=countdown,
        survey_link=request.query_params.get("survey", ""),
        widgets=await record_widgets(request, principal, "ticket", ticket_id),
        kind="ticket",
        record_id=ticket_id,
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
    )


@get("/tickets/{ticket_id:int}", include_in_schema=False)
async def ticket_page(request: Request[Any, Any, Any], ticket_id: int) -> Response[Any]:
    """One ticket: the SLA clock, the conversation, reply / note / status / hand-off forms."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _ticket_view(request, principal, ticket_id)


def _back(ticket_id: int, query: str = "") -> Redirect:
    return Redirect(f"/service/tickets/{ticket_id}{query}", status_code=303)


async def _refused(
    request: Request[Any, Any, Any], principal: Any, ticket_id: int, data: dict[str, str], exc: DomainError
) -> Response[Any]:
    if exc.status == 404:
        return error_page(request, principal, exc)
    errors = field_errors(exc, TICKET_FIELDS)
    return await _ticket_view(request, principal, ticket_id, form=data, errors=errors, status=exc.status)


@post("/tickets/{ticket_id:int}/messages", include_in_schema=False, status_code=303)
async def message_submit(request: Request[Any, Any, Any], ticket_id: int, data: Form) -> Response[Any]:
    """Reply to the client or write an internal note."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(MessageIn, data)
        if body.kind == "client":
            raise ValidationFailed.field("kind", "must be reply or note")
        await services.add_message(principal, ticket_id, body.body, body.kind)
    except DomainError as exc:
        return await _refused(request, principal, ticket_id, data, exc)
    return _back(ticket_id)


@post("/tickets/{ticket_id:int}/status", include_in_schema=False, status_code=303)
async def status_submit(request: Request[Any, Any, Any], ticket_id: int, data: Form) -> Response[Any]:
    """Pause (waiting on the client), resume, resolve, close or reopen the ticket."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(StatusIn, data)
        row = await services.change_status(principal, ticket_id, body.status, body.comment)
    except DomainError as exc:
        return await _refused(request, principal, ticket_id, data, exc)
    if row.get("survey_link"):
        from urllib.parse import quote

        return _back(ticket_id, f"?survey={quote(row['survey_link'])}")
    return _back(ticket_id)


@post("/tickets/{ticket_id:int}/attachments", include_in_schema=False, status_code=303)
async def attachment_submit(request: Request[Any, Any, Any], ticket_id: int) -> Response[Any]:
    """Attach a file to the ticket (multipart field ``file``): a kernel attachment on the
    client, listed on the ticket and downloadable by whoever may read the client's files."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    raw = await request.form()
    data = {k: v for k, v in raw.items() if isinstance(v, str)}
    check_csrf(principal, data)
    upload = raw.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise ValidationFailed.field("file", "choose a file to attach")
        content = await upload.read()
        await services.attach(
            principal,
            request.app.state.settings.data_dir,
            ticket_id,
            upload.filename,
            upload.content_type,
            content,
        )
    except DomainError as exc:
        return await _refused(request, principal, ticket_id, {}, exc)
    return _back(ticket_id, "#files")


@post("/tickets/{ticket_id:int}/assign", include_in_schema=False, status_code=303)
async def assign_submit(request: Request[Any, Any, Any], ticket_id: int, data: Form) -> Response[Any]:
    """Hand the ticket to a colleague with a comment (or to the queue's next agent)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(AssignIn, data)
        await services.assign(principal, ticket_id, body.user_id, body.comment)
    except DomainError as exc:
        return await _refused(request, principal, ticket_id, data, exc)
    return _back(ticket_id)


@get("/parties/{party_id:int}/tickets", include_in_schema=False)
async def party_tickets(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """The "Tickets" tab of the client card: the client's tickets the user may see, "new ticket"."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        party = await service.get(PARTY, principal, party_id)
        page = await service.list_page(
            services.TICKET, principal, [Ticket.party_id == party_id], order="-id", limit=200
        )
    except DomainError as exc:
        return error_page(request, principal, exc)
    now = clock.now()
    for t in page.items:
        t["sla"] = services.sla_view(t, now)
    users, _ = await _names({t["assignee_id"] for t in page.items if t["assignee_id"]}, set())
    scores = await csat.ticket_scores([t["id"] for t in page.items])
    return render(
        request,
        "service/party_tickets.html",
        principal=principal,
        party=party,
        tickets=page.items,
        users=users,
        scores=scores,
        countdown=countdown,
    )


# --------------------------------------------------------------------------- public survey


async def _survey_view(
    request: Request[Any, Any, Any],
    token: str,
    *,
    done: bool = False,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    refused = None
    ticket = None
    if not done:
        try:
            row = await csat.survey(token)
            ticket = (
                await Ticket.select(Ticket.number, Ticket.subject)
                .where(Ticket.id == row["ticket_id"])
                .first()
            )
        except DomainError as exc:
            refused = exc.detail
            status = exc.status
    errors = dict(errors or {})
    return render(
        request,
        "service/csat.html",
        status=status,
        principal=None,
        token=token,
        ticket=ticket,
        done=done,
        refused=refused,
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
    )


@get("/csat/{token:str}", include_in_schema=False)
async def survey_page(request: Request[Any, Any, Any], token: str) -> Response[Any]:
    """The client's satisfaction survey (no sign-in; the one-time token is the credential)."""
    return await _survey_view(request, token)


@post("/csat/{token:str}", include_in_schema=False, status_code=200)
async def survey_submit(request: Request[Any, Any, Any], token: str, data: Form) -> Response[Any]:
    """Store the answer once. No CSRF token: the request is bound to the secret one-time token
    in its URL, which a cross-site page cannot know."""
    raw = (data.get("score") or "").strip()
    try:
        if not raw.isdigit():
            raise ValidationFailed.field("score", i18n.gettext("Choose a score from 1 to 5."))
        await csat.answer(token, int(raw), (data.get("comment") or "")[:5000])
    except DomainError as exc:
        if exc.status == 422:
            return await _survey_view(
                request, token, errors=field_errors(exc, {"score", "comment"}), form=data, status=422
            )
        return await _survey_view(request, token, status=exc.status)
    return await _survey_view(request, token, done=True)


HANDLERS = [
    ticket_list,  # tessera_service.lists: the queue on the kernel's list machinery
    new_ticket,
    new_ticket_submit,
    ticket_page,
    message_submit,
    status_submit,
    assign_submit,
    attachment_submit,
    party_tickets,
    survey_page,
    survey_submit,
]
