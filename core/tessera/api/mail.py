"""Routes of incoming e-mail (``tessera.mail_in``): the triage of messages from unknown senders
(``mail.triage``: list, create a party, link to a party, ignore) and the mailboxes' poll state
with quarantined messages (``mail.manage``). Every triage action is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Request, get, post
from litestar.params import Parameter
from msgspec import Meta, Struct

from tessera import mail_in
from tessera.api.security import settings_of
from tessera.entities.dto import MAX_ID, Id, to_struct
from tessera.entities.tables import MailMailbox, MailMessage
from tessera.permissions import Principal

MessageId = Annotated[int, Parameter(ge=1, le=MAX_ID)]


class AttachmentInfo(Struct, kw_only=True):
    filename: str
    content_type: str
    size: int
    #: Why it was not stored (too large); absent when it was.
    error: str = ""


class TriageOut(Struct, kw_only=True):
    """A message from an address no party or contact has, waiting for someone to sort it."""

    id: int
    mailbox: str
    message_id: str
    thread_id: str
    from_address: str
    from_name: str
    to_addresses: list[str]
    cc_addresses: list[str]
    subject: str
    body_text: str
    sent_at: datetime | None
    received_at: datetime
    attachments: list[AttachmentInfo]


class TriageCreateIn(Struct, kw_only=True, forbid_unknown_fields=True):
    #: Name of the new party (default: the sender's display name, else the address).
    name: Annotated[str, Meta(max_length=300)] = ""
    kind: Literal["person", "organisation"] = "person"


class TriageLinkIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    #: Add the sender's address to the party's e-mails, so later mail from it matches.
    add_address: bool = True


class TriageResult(Struct, kw_only=True):
    #: The party the messages went to (none when ignored).
    party_id: int | None
    #: Every waiting message of the same sender that the action sorted.
    message_ids: list[int]


class MailboxOut(Struct, kw_only=True):
    """A configured mailbox (never its password) and its poll state."""

    name: str
    host: str
    port: int
    security: str
    username: str
    folder: str
    role: str
    uidvalidity: int
    last_uid: int
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str
    failures: int
    next_poll_at: datetime | None
    #: Messages that failed to import (kept aside; see ``GET /api/mail/quarantine``).
    quarantined: int


class QuarantinedOut(Struct, kw_only=True):
    id: int
    mailbox: str
    uid: int
    message_id: str
    from_address: str
    subject: str
    received_at: datetime
    error: str


_TRIAGE_COLUMNS = [
    c for c in MailMessage._meta.columns if c._meta.name not in ("body_html", "raw_sha256", "error")
]


@get("/api/mail/triage", operation_id="list_mail_triage", tags=["mail"])
async def list_triage(
    principal: Principal,
    mailbox: Annotated[str | None, Parameter(max_length=100)] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> list[TriageOut]:
    """Messages from unknown senders waiting for triage, newest first (``mail.triage``)."""
    principal.require("mail.triage")
    query = MailMessage.select(*_TRIAGE_COLUMNS).where(MailMessage.status == mail_in.UNKNOWN)
    if mailbox:
        query = query.where(MailMessage.mailbox == mailbox)
    rows = await query.order_by(MailMessage.id, ascending=False).limit(limit).output(load_json=True)
    return [to_struct(r, TriageOut) for r in rows]


@post("/api/mail/triage/{message_id:int}/create-party", operation_id="triage_create_party", tags=["mail"])
async def triage_create_party(
    request: Request[Any, Any, Any], principal: Principal, message_id: MessageId, data: TriageCreateIn
) -> TriageResult:
    """Make a party of the message's sender (its address becomes the party's e-mail, the
    caller its owner) and store every waiting message of that sender on it as e-mail
    activities with their attachments. Needs ``mail.triage`` and ``party.write``; 422 when
    the message is no longer waiting."""
    done = await mail_in.triage_create_party(
        settings_of(request).data_dir, principal, message_id, data.name or None, data.kind
    )
    return to_struct(done, TriageResult)


@post("/api/mail/triage/{message_id:int}/link", operation_id="triage_link_party", tags=["mail"])
async def triage_link(
    request: Request[Any, Any, Any], principal: Principal, message_id: MessageId, data: TriageLinkIn
) -> TriageResult:
    """Store every waiting message of the sender on a party the caller may change (404 for a
    party they may not see); with ``add_address`` the address joins the party's e-mails."""
    done = await mail_in.triage_link(
        settings_of(request).data_dir, principal, message_id, data.party_id, data.add_address
    )
    return to_struct(done, TriageResult)


@post("/api/mail/triage/{message_id:int}/ignore", operation_id="triage_ignore", tags=["mail"])
async def triage_ignore(principal: Principal, message_id: MessageId) -> TriageResult:
    """Leave every waiting message of the sender out of the CRM (kept, status ``ignored``)."""
    return to_struct(await mail_in.triage_ignore(principal, message_id), TriageResult)


@get("/api/mail/mailboxes", operation_id="list_mailboxes", tags=["mail"])
async def list_mailboxes(request: Request[Any, Any, Any], principal: Principal) -> list[MailboxOut]:
    """The configured IMAP mailboxes with their checkpoint and last error (``mail.manage``)."""
    principal.require("mail.manage")
    return await mailbox_states(settings_of(request))


async def mailbox_states(settings: Any) -> list[MailboxOut]:
    """Each configured mailbox with its poll state (the API's and the admin page's)."""
    states = {r["name"]: r for r in await MailMailbox.select()}
    failed: dict[str, int] = {}
    for r in await MailMessage.select(MailMessage.mailbox).where(MailMessage.status == mail_in.FAILED):
        failed[r["mailbox"]] = failed.get(r["mailbox"], 0) + 1
    out = []
    for box in settings.imap_mailboxes:
        state = states.get(box.name, {})
        out.append(
            MailboxOut(
                name=box.name,
                host=box.host,
                port=box.effective_port,
                security=box.security,
                username=box.username,
                folder=box.folder,
                role=box.role,
                uidvalidity=state.get("uidvalidity", 0),
                last_uid=state.get("last_uid", 0),
                last_poll_at=state.get("last_poll_at"),
                last_success_at=state.get("last_success_at"),
                last_error=state.get("last_error", ""),
                failures=state.get("failures", 0),
                next_poll_at=state.get("next_poll_at"),
                quarantined=failed.get(box.name, 0),
            )
        )
    return out


@get("/api/mail/quarantine", operation_id="list_mail_quarantine", tags=["mail"])
async def list_quarantine(
    principal: Principal, limit: Annotated[int, Parameter(ge=1, le=500)] = 100
) -> list[QuarantinedOut]:
    """Messages that failed to import, with the error, newest first (``mail.manage``)."""
    principal.require("mail.manage")
    rows = (
        await MailMessage.select()
        .where(MailMessage.status == mail_in.FAILED)
        .order_by(MailMessage.id, ascending=False)
        .limit(limit)
        .output(load_json=True)
    )
    return [to_struct(r, QuarantinedOut) for r in rows]


class RetryOut(Struct, kw_only=True):
    #: matched | unknown | duplicate | failed (again: see ``error``)
    status: str
    id: int | None
    error: str


@post("/api/mail/quarantine/{message_id:int}/retry", operation_id="retry_mail_message", tags=["mail"])
async def retry_quarantined(
    request: Request[Any, Any, Any], principal: Principal, message_id: MessageId
) -> RetryOut:
    """Import a quarantined message again from its raw copy, once the cause is fixed
    (``mail.manage``); the answer says what became of it."""
    principal.require("mail.manage")
    stored = await mail_in.retry_quarantined(settings_of(request), message_id, principal.user_id)
    return RetryOut(status=stored.status, id=stored.id, error=stored.error)


@post("/api/mail/quarantine/{message_id:int}/ignore", operation_id="ignore_mail_message", tags=["mail"])
async def ignore_quarantined(principal: Principal, message_id: MessageId) -> RetryOut:
    """Leave a quarantined message aside for good (``mail.manage``): it stays stored with status
    ``ignored`` and leaves the quarantine; 404 for a message that is not quarantined."""
    principal.require("mail.manage")
    return RetryOut(**await mail_in.ignore_quarantined(principal, message_id))


HANDLERS = [
    ignore_quarantined,
    list_triage,
    triage_create_party,
    triage_link,
    triage_ignore,
    list_mailboxes,
    list_quarantine,
    retry_quarantined,
]
