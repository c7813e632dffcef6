"""The mailing composer (``/marketing/mailings``): a draft's subject, HTML and text templates,
segment, rate and send window; its preview as one party would receive it (rendered by the
sandboxed Jinja2 of ``mailings.render``, the HTML sanitised, shown in a sandboxed frame); the
send button; and, once sending, its progress (recipients per state, refreshed by
``static/mailing.js`` from ``GET /api/marketing/mailings/{id}/progress``).

Forms are decoded through the API's ``MailingIn`` / ``MailingPatch`` and saved by the same
service as ``/api/marketing/mailings``; sending is the API's ``mailings.start``.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import events, i18n
from tessera.entities import service
from tessera.entities.dto import set_fields
from tessera.errors import DomainError
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    render,
)

from tessera_marketing import mailings, services
from tessera_marketing.routes import MailingIn, MailingPatch

MAILING_FIELDS = frozenset(
    {
        "name",
        "subject",
        "html",
        "text",
        "segment_id",
        "campaign_id",
        "promotional",
        "per_minute",
        "send_before",
    }
)
MAILING_STATUSES = {
    "draft": N_("Draft"),
    "sending": N_("Sending"),
    "sent": N_("Sent"),
    "expired": N_("Send window over"),
    "cancelled": N_("Cancelled"),
}
RECIPIENT_STATES = {
    "queued": N_("Queued"),
    "sending": N_("Being sent"),
    "sent": N_("Sent"),
    "failed": N_("Failed"),
    "late": N_("Too late (after the send window)"),
    "skipped": N_("Skipped (unsubscribed)"),
}
i18n.register_labels("marketing.mailing.status", MAILING_STATUSES)
i18n.register_labels("marketing.recipient.status", RECIPIENT_STATES)


def _body(data: dict[str, str]) -> dict[str, str]:
    body = {k: v for k, v in data.items() if k in MAILING_FIELDS}
    body["promotional"] = "true" if data.get("promotional") else "false"
    return body


async def _choices(principal: Principal) -> dict[str, Any]:
    segments = []
    if principal.can("marketing.segment.read"):
        page = await service.list_page(services.SEGMENT, principal, [], order="name", limit=500)
        segments = [{"id": s["id"], "name": s["name"]} for s in page.items]
    page = await service.list_page(services.CAMPAIGN, principal, [], order="name", limit=500)
    return {"segments": segments, "campaigns": [{"id": c["id"], "name": c["name"]} for c in page.items]}


async def _preview(
    principal: Principal, mailing: dict[str, Any], party_id: int | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The preview for ``party_id`` or the segment's first member the user reads."""
    if party_id is None and mailing["segment_id"] is not None:
        page = await services.members(principal, mailing["segment_id"], None, 1)
        party_id = page.items[0]["id"] if page.items else None
    if party_id is None:
        return None, None
    try:
        shown = await mailings.preview(principal, mailing["id"], party_id)
    except DomainError as exc:
        return None, i18n.translate_message(exc.detail)
    return {"party_id": party_id, **shown}, None


async def _view(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    mailing: dict[str, Any] | None,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    party_id: int | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    preview, preview_error = (None, None)
    progress = None
    if mailing is not None:
        preview, preview_error = await _preview(principal, mailing, party_id)
        progress = await mailings.progress(principal, mailing["id"])
    return render(
        request,
        "marketing/mailing.html",
        status=status,
        principal=principal,
        mailing=mailing,
        form=form,
        preview=preview,
        preview_error=preview_error,
        progress=progress,
        states=list(RECIPIENT_STATES),
        may_send=principal.can("marketing.mailing.send"),
        error=errors.pop("", None),
        errors=errors,
        **await _choices(principal),
    )


@get("/mailings")
async def mailings_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Mailings, newest first, with their state and how many were sent."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        page = await service.list_page(mailings.MAILING, principal, [], order="-id", limit=200)
        progress = {m["id"]: await mailings.progress(principal, m["id"]) for m in page.items}
    except DomainError as exc:
        return error_page(request, principal, exc)
    return render(
        request,
        "marketing/mailings.html",
        principal=principal,
        mailings=page.items,
        progress=progress,
        may_send=principal.can("marketing.mailing.send"),
    )


@get("/mailings/new")
async def new_mailing_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """A new mailing draft."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        mailings.MAILING.require(principal, "write")
    except DomainError as exc:
        return error_page(request, principal, exc)
    form = {
        "subject": "{{ party.name }}: ",
        "html": '<p>Hello, {{ party.name }}!</p>\n\n<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
        "promotional": "true",
        "per_minute": "600",
    }
    return await _view(request, principal, mailing=None, form=form)


@post("/mailings/new", status_code=303)
async def new_mailing_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Save the draft (``MailingIn``, the API's create) and show its preview."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(MailingIn, _body(data))
        async with events.unit_of_work():
            row = await service.create(mailings.MAILING, principal, set_fields(body))
    except DomainError as exc:
        if exc.status != 422:
            return error_page(request, principal, exc)
        return await _view(
            request,
            principal,
            mailing=None,
            form=dict(data),
            errors=field_errors(exc, MAILING_FIELDS),
            status=422,
        )
    return Redirect(f"/marketing/mailings/{row['id']}", status_code=303)


def _form_of(mailing: dict[str, Any]) -> dict[str, str]:
    form = {k: "" if mailing.get(k) is None else str(mailing[k]) for k in MAILING_FIELDS}
    form["promotional"] = "true" if mailing["promotional"] else ""
    if mailing.get("send_before") is not None:
        form["send_before"] = mailing["send_before"].strftime("%Y-%m-%dT%H:%M")
    return form


@get("/mailings/{mailing_id:int}")
async def mailing_page(
    request: Request[Any, Any, Any], mailing_id: int, party_id: int | None = None
) -> Response[Any]:
    """A mailing: the draft's form and preview (``?party_id=`` chooses whose), or its progress."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        mailing = await service.get(mailings.MAILING, principal, mailing_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _view(request, principal, mailing=mailing, form=_form_of(mailing), party_id=party_id)


@post("/mailings/{mailing_id:int}", status_code=303)
async def mailing_submit(request: Request[Any, Any, Any], mailing_id: int, data: Form) -> Response[Any]:
    """Save the draft's changes (``MailingPatch``, the API's update)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    mailing = None
    try:
        mailing = await service.get(mailings.MAILING, principal, mailing_id)
        body = decode_form(MailingPatch, _body(data))
        changes = set_fields(body)
        for key in ("segment_id", "campaign_id", "send_before"):  # emptied: cleared
            if data.get(key, None) == "":
                changes[key] = None
        async with events.unit_of_work():
            await service.update(mailings.MAILING, principal, mailing_id, changes)
    except DomainError as exc:
        if exc.status != 422 or mailing is None:
            return error_page(request, principal, exc)
        return await _view(
            request,
            principal,
            mailing=mailing,
            form=dict(data),
            errors=field_errors(exc, MAILING_FIELDS),
            status=422,
        )
    return Redirect(f"/marketing/mailings/{mailing_id}", status_code=303)


@post("/mailings/{mailing_id:int}/send", status_code=303)
async def send_submit(request: Request[Any, Any, Any], mailing_id: int, data: Form) -> Response[Any]:
    """Send the draft to its segment (the API's send: the ledger written, the job queued)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        await mailings.start(principal, mailing_id)
    except DomainError as exc:
        if exc.status not in (409, 422):
            return error_page(request, principal, exc)
        mailing = await service.get(mailings.MAILING, principal, mailing_id)
        return await _view(
            request,
            principal,
            mailing=mailing,
            form=_form_of(mailing),
            errors=field_errors(exc, MAILING_FIELDS),
            status=exc.status,
        )
    return Redirect(f"/marketing/mailings/{mailing_id}", status_code=303)


HANDLERS = [
    mailings_page,
    new_mailing_page,
    new_mailing_submit,
    mailing_page,
    mailing_submit,
    send_submit,
]
