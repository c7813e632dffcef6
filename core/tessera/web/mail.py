"""The triage page of incoming e-mail (``/app/mail/triage``): messages from senders no party or
contact has, each with the three actions of the API (create a party, link to a party, ignore).
The forms decode through the API's structs and call the same ``tessera.mail_in`` functions, so
permissions (``mail.triage``, the party's visibility), audit and refusals are the API's."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import i18n, mail_in
from tessera.api.mail import TriageCreateIn, TriageLinkIn
from tessera.api.security import settings_of
from tessera.entities.tables import MailMessage
from tessera.errors import DomainError, PermissionDenied
from tessera.i18n import N_
from tessera.web.forms import decode_form, field_errors
from tessera.web.pages import Form, check_csrf, current_principal, error_page, render

PAGE = "/app/mail/triage"
#: Refusals this page shows, in the catalogue (docs/i18n.md).
MESSAGES = (
    N_("You may not sort incoming e-mail"),
    mail_in.NOT_IN_TRIAGE,
    N_("You may not manage the mailboxes"),
)


async def _page(
    request: Request[Any, Any, Any],
    principal: Any,
    *,
    failed: int | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    if not principal.can("mail.triage"):
        return error_page(
            request, principal, PermissionDenied(i18n.gettext("You may not sort incoming e-mail"))
        )
    rows = (
        await MailMessage.select(
            MailMessage.id,
            MailMessage.mailbox,
            MailMessage.from_address,
            MailMessage.from_name,
            MailMessage.subject,
            MailMessage.body_text,
            MailMessage.received_at,
            MailMessage.attachments,
        )
        .where(MailMessage.status == mail_in.UNKNOWN)
        .order_by(MailMessage.id, ascending=False)
        .limit(200)
        .output(load_json=True)
    )
    errors = dict(errors or {})
    return render(
        request,
        "mail_triage.html",
        status=status,
        principal=principal,
        messages=rows,
        failed=failed,
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
    )


@get(PAGE, include_in_schema=False)
async def triage_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _page(request, principal)


async def _act(
    request: Request[Any, Any, Any], message_id: int, data: dict[str, str], action: str
) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    check_csrf(principal, data)
    fields = {k: v for k, v in data.items() if k != "csrf_token"}
    try:
        data_dir = settings_of(request).data_dir
        if action == "create":
            body = decode_form(TriageCreateIn, fields)
            await mail_in.triage_create_party(data_dir, principal, message_id, body.name or None, body.kind)
        elif action == "link":
            link = decode_form(TriageLinkIn, {"party_id": fields.get("party_id", "")})
            await mail_in.triage_link(data_dir, principal, message_id, link.party_id, link.add_address)
        else:
            await mail_in.triage_ignore(principal, message_id)
    except DomainError as exc:
        if exc.status not in (404, 409, 422):
            return error_page(request, principal, exc)
        errors = field_errors(exc, {"name", "kind", "party_id"}) if exc.status == 422 else {}
        if exc.status == 404:
            errors[""] = i18n.gettext("There is no such record, or you may not see it.")
        return await _page(
            request, principal, failed=message_id, errors=errors, form=fields, status=exc.status
        )
    return Redirect(PAGE, status_code=303)


@post(f"{PAGE}/{{message_id:int}}/create-party", include_in_schema=False, status_code=303)
async def triage_create(request: Request[Any, Any, Any], message_id: int, data: Form) -> Response[Any]:
    return await _act(request, message_id, data, "create")


@post(f"{PAGE}/{{message_id:int}}/link", include_in_schema=False, status_code=303)
async def triage_link(request: Request[Any, Any, Any], message_id: int, data: Form) -> Response[Any]:
    return await _act(request, message_id, data, "link")


@post(f"{PAGE}/{{message_id:int}}/ignore", include_in_schema=False, status_code=303)
async def triage_ignore(request: Request[Any, Any, Any], message_id: int, data: Form) -> Response[Any]:
    return await _act(request, message_id, data, "ignore")


# --------------------------------------------------------------------------- mailboxes and quarantine

BOXES = "/app/mail/mailboxes"


async def _boxes(
    request: Request[Any, Any, Any], principal: Any, *, notice: str = "", error: str = "", status: int = 200
) -> Response[Any]:
    from tessera.api.mail import mailbox_states

    if not principal.can("mail.manage"):
        return error_page(
            request, principal, PermissionDenied(i18n.gettext("You may not manage the mailboxes"))
        )
    quarantined = (
        await MailMessage.select(
            MailMessage.id,
            MailMessage.mailbox,
            MailMessage.from_address,
            MailMessage.subject,
            MailMessage.error,
            MailMessage.received_at,
        )
        .where(MailMessage.status == mail_in.FAILED)
        .order_by(MailMessage.id, ascending=False)
        .limit(200)
    )
    return render(
        request,
        "mail_mailboxes.html",
        status=status,
        principal=principal,
        mailboxes=await mailbox_states(settings_of(request)),
        quarantined=quarantined,
        notice=notice,
        error=error,
    )


@get(BOXES, include_in_schema=False)
async def mailboxes_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Each IMAP mailbox's last poll, success, error and next attempt; the quarantine."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _boxes(request, principal)


async def _quarantine_act(
    request: Request[Any, Any, Any], message_id: int, data: dict[str, str], retry: bool
) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    check_csrf(principal, data)
    if not principal.can("mail.manage"):
        return error_page(
            request, principal, PermissionDenied(i18n.gettext("You may not manage the mailboxes"))
        )
    try:
        if retry:
            stored = await mail_in.retry_quarantined(settings_of(request), message_id, principal.user_id)
            if stored.status == mail_in.FAILED:
                return await _boxes(request, principal, error=stored.error, status=422)
        else:
            await mail_in.ignore_quarantined(principal, message_id)
    except DomainError as exc:
        if exc.status != 404:
            return error_page(request, principal, exc)
        return await _boxes(
            request,
            principal,
            error=i18n.gettext("There is no such record, or you may not see it."),
            status=404,
        )
    return Redirect(BOXES, status_code=303)


@post(f"{BOXES}/quarantine/{{message_id:int}}/retry", include_in_schema=False, status_code=303)
async def quarantine_retry(request: Request[Any, Any, Any], message_id: int, data: Form) -> Response[Any]:
    return await _quarantine_act(request, message_id, data, retry=True)


@post(f"{BOXES}/quarantine/{{message_id:int}}/ignore", include_in_schema=False, status_code=303)
async def quarantine_ignore(request: Request[Any, Any, Any], message_id: int, data: Form) -> Response[Any]:
    return await _quarantine_act(request, message_id, data, retry=False)


HANDLERS = [
    triage_page,
    triage_create,
    triage_link,
    triage_ignore,
    mailboxes_page,
    quarantine_retry,
    quarantine_ignore,
]
