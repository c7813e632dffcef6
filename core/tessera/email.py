"""Outgoing e-mail: the kernel service plugins send through (mailings, dunning letters,
reports, notifications).

``await send_email(to, subject, text, html=None, party_id=..., attachments=...)`` checks and
composes the message at once (a bad address or header fails the caller's request), gives it a
Message-ID and enqueues a background job of kind ``email.send`` in the caller's transaction.
The worker sends it over SMTP with aiosmtplib (settings ``smtp_*``, docs/integrations.md): a
temporary failure (4xx reply, connection or TLS error, timeout) is retried with back-off, a
permanent one (5xx) fails the job at once. Once the server accepted the message, an ``email``
activity (direction out, status done) is stored on the card of each party it went to: the
party given, the contact's party, or the parties and contacts whose e-mail address is a
recipient. The SMTP password is never logged nor stored in a job.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

import aiosmtplib

from tessera import clock, events, jobs
from tessera.config import Settings
from tessera.entities.channels import normalise_email
from tessera.entities.tables import Activity, Contact, Party
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

log = logging.getLogger("tessera.email")

KIND = "email.send"
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
#: Headers the service sets itself; a caller's ``headers`` may not replace them.
OWN_HEADERS = {"from", "to", "cc", "bcc", "subject", "date", "message-id", "content-type", "mime-version"}

_settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """The process's settings (From address and Message-ID domain when enqueuing)."""
    global _settings
    _settings = settings


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class QueuedEmail:
    job_id: int
    message_id: str


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "tessera.localhost"


def _attachment(value: Attachment | Sequence[Any]) -> Attachment:
    if isinstance(value, Attachment):
        return value
    return Attachment(*value)


def compose(payload: Mapping[str, Any], mail_from: str) -> EmailMessage:
    """The message of an ``email.send`` payload (multipart text + HTML, attachments)."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = ", ".join(payload["to"])
    message["Subject"] = payload["subject"]
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = payload["message_id"]
    for name, value in (payload.get("headers") or {}).items():
        message[name] = value
    message.set_content(payload["text"])
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html")
    for item in payload.get("attachments") or []:
        maintype, _, subtype = item["mime_type"].partition("/")
        message.add_attachment(
            base64.b64decode(item["content"]),
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=item["filename"],
        )
    return message


async def send_email(
    to: str | Iterable[str],
    subject: str,
    text: str,
    html: str | None = None,
    *,
    party_id: int | None = None,
    contact_id: int | None = None,
    attachments: Iterable[Attachment | Sequence[Any]] = (),
    headers: Mapping[str, str] | None = None,
    max_attempts: int = 8,
    dedup_key: str | None = None,
    record_activity: bool = True,
    redact_after_send: bool = False,
) -> QueuedEmail:
    """Queue a message for sending; call it inside the change's ``unit_of_work()`` so the
    message goes out only if the change committed. Raises ``ValidationFailed`` (422) for a
    bad recipient, header or attachment.

    ``record_activity=False``: the message is not client correspondence (a password reset)
    and is stored on no party's card, even when a recipient's address is a contact's.
    ``redact_after_send=True``: once the server accepted it, the text and HTML are wiped from
    the job's stored payload (a message carrying a secret, such as a reset link)."""
    recipients = [to] if isinstance(to, str) else list(to)
    if not recipients:
        raise ValidationFailed.field("to", "at least one recipient is needed")
    addresses: list[str] = []
    for i, raw in enumerate(recipients):
        try:
            addresses.append(normalise_email(parseaddr(raw)[1] or raw))
        except ValueError as exc:
            raise ValidationFailed.field(f"to.{i}", str(exc)) from exc
    extra = dict(headers or {})
    for name in extra:
        if name.lower() in OWN_HEADERS:
            raise ValidationFailed.field(f"headers.{name}", "set by the e-mail service")
    mail_from = (_settings.mail_from if _settings else "") or "tessera@tessera.localhost"
    payload: dict[str, Any] = {
        "to": recipients,
        "addresses": addresses,
        "subject": subject,
        "text": text,
        "html": html,
        "headers": extra,
        "attachments": [
            {
                "filename": a.filename,
                "mime_type": a.mime_type,
                "content": base64.b64encode(a.content).decode("ascii"),
            }
            for a in map(_attachment, attachments)
        ],
        "party_id": party_id,
        "contact_id": contact_id,
        "record_activity": record_activity,
        "redact_after_send": redact_after_send,
        "message_id": make_msgid(domain=_domain(mail_from)),
    }
    try:  # a header with a line break or a bad MIME type fails now, in the caller's request
        compose(payload, mail_from).as_bytes()
    except (ValueError, TypeError, LookupError) as exc:
        raise ValidationFailed.field("headers", f"cannot compose the message: {exc}") from exc
    job_id = await jobs.enqueue(KIND, payload, max_attempts=max_attempts, dedup_key=dedup_key)
    return QueuedEmail(job_id=job_id, message_id=payload["message_id"])


# --------------------------------------------------------------------------- sending (worker)


def _tls_context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.smtp_ca_file or None)


def _smtp_options(settings: Settings) -> dict[str, Any]:
    security = settings.smtp_security
    return {
        "hostname": settings.smtp_host,
        "port": settings.smtp_port or DEFAULT_PORTS.get(security, 587),
        "username": settings.smtp_username or None,
        "password": settings.smtp_password or None,
        "use_tls": security == "ssl",
        "start_tls": security == "starttls",
        "tls_context": _tls_context(settings) if security != "none" else None,
        "timeout": settings.smtp_timeout,
    }


def _delivered(refused: dict[str, Any], reply: str) -> dict[str, Any]:
    return {
        "refused": {address: f"{code} {text}" for address, (code, text) in refused.items()},
        "reply": reply,
    }


def _smtp_error(exc: Exception) -> Exception:
    """A refusal in the kernel's terms: ``PermanentFailure`` on a 5xx, ``TemporarySMTPError``
    on a 4xx; anything else (a lost connection) is returned as it is."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if all(500 <= r.code < 600 for r in exc.recipients):
            return jobs.PermanentFailure(f"every recipient was refused: {detail}")
        return TemporarySMTPError(f"recipients refused for now: {detail}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if 500 <= exc.code < 600:
            return jobs.PermanentFailure(f"SMTP server refused the message: {exc.code} {exc.message}")
        return TemporarySMTPError(f"SMTP server deferred the message: {exc.code} {exc.message}")
    return exc


async def deliver(message: EmailMessage, settings: Settings) -> dict[str, Any]:
    """Hand the message to the SMTP server; raise ``jobs.PermanentFailure`` on a 5xx and
    another exception on a temporary failure."""
    try:
        refused, reply = await aiosmtplib.send(message, **_smtp_options(settings))
    except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
        raise _smtp_error(exc) from None
    return _delivered(refused, reply)


class SMTPSession:
    """One SMTP connection for many messages (a mailing's run): ``deliver`` as above, message
    by message (each accepted or refused on its own), without a new connection, greeting and
    login per message. After any error the connection is dropped and the next message opens a
    new one (so a refused transaction never leaves the session in an unknown state); a
    connection idle for ``IDLE`` seconds (a slow rate) is replaced too, before servers drop it::

        async with SMTPSession(settings) as smtp:
            await smtp.deliver(message)
    """

    IDLE = 10.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: aiosmtplib.SMTP | None = None
        self._used = 0.0

    async def __aenter__(self) -> SMTPSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def deliver(self, message: EmailMessage) -> dict[str, Any]:
        if self._smtp is not None and time.monotonic() - self._used > self.IDLE:
            await self.close()
        if self._smtp is None or not self._smtp.is_connected:
            self._smtp = aiosmtplib.SMTP(**_smtp_options(self.settings))
            await self._smtp.connect()
        try:
            refused, reply = await self._smtp.send_message(message)
        except Exception as exc:
            smtp, self._smtp = self._smtp, None
            smtp.close()
            if isinstance(exc, aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPResponseException):
                raise _smtp_error(exc) from None
            raise
        self._used = time.monotonic()
        return _delivered(refused, reply)


class TemporarySMTPError(Exception):
    """A 4xx reply: the job is retried with back-off."""


@jobs.kernel_kind("email.send", timeout=120.0)
async def send_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Handler of ``email.send`` jobs."""
    settings = ctx.settings or _settings
    if settings is None or not settings.smtp_host:
        raise jobs.PermanentFailure("SMTP is not configured (smtp_host); retry the job once it is")
    mail_from = settings.mail_from or "tessera@tessera.localhost"
    outcome = await deliver(compose(payload, mail_from), settings)
    log.info(
        "e-mail %s accepted for %s (job %s)", payload["message_id"], ", ".join(payload["addresses"]), ctx.id
    )
    if payload.get("redact_after_send"):
        await redact_payload(ctx.id, payload)
    try:
        activities = await record_activities(ctx, payload) if payload.get("record_activity", True) else []
    except Exception:  # the message is out: failing (and re-sending) would duplicate it
        log.exception("e-mail %s was sent but its activity could not be stored", payload["message_id"])
        activities = []
    return {"message_id": payload["message_id"], "activity_ids": activities, **outcome}


REDACTED = "(removed after sending)"


async def redact_payload(job_id: int, payload: Mapping[str, Any]) -> None:
    """Wipe the text and HTML of a sent message from its job (``redact_after_send``)."""
    from tessera.entities.tables import BackgroundJob

    wiped = {**payload, "text": REDACTED, "html": REDACTED if payload.get("html") else None}
    await BackgroundJob.update({BackgroundJob.payload: wiped}).where(BackgroundJob.id == job_id)


async def _recipient_parties(payload: Mapping[str, Any]) -> list[tuple[int, int | None]]:
    """(party id, contact id) pairs the message went to."""
    if payload.get("party_id") is not None:
        return [(payload["party_id"], payload.get("contact_id"))]
    if payload.get("contact_id") is not None:
        row = await Contact.select(Contact.party_id).where(Contact.id == payload["contact_id"]).first()
        return [(row["party_id"], payload["contact_id"])] if row and row["party_id"] else []
    found: dict[int, int | None] = {}
    for address in payload.get("addresses") or []:
        pattern = f"%{address}%"
        for party in await Party.select(Party.id, Party.emails).where(Party.contact_index.like(pattern)):
            if any(e.get("address") == address for e in _json(party["emails"])):
                found.setdefault(party["id"], None)
        for contact in await Contact.select(Contact.id, Contact.party_id, Contact.emails).where(
            Contact.contact_index.like(pattern)
        ):
            if contact["party_id"] and any(e.get("address") == address for e in _json(contact["emails"])):
                if found.get(contact["party_id"]) is None:
                    found[contact["party_id"]] = contact["id"]
    return list(found.items())


def _json(value: Any) -> list[dict[str, Any]]:
    import json

    return json.loads(value) if isinstance(value, str) else list(value or [])


async def record_activities(ctx: jobs.JobContext, payload: Mapping[str, Any]) -> list[int]:
    """Store the sent message as an ``email`` activity on each recipient party's card (once:
    a retried job finds the activity of an earlier attempt by its Message-ID)."""
    from tessera.entities import service
    from tessera.entities.activities import ACTIVITY

    message_id = payload["message_id"]
    subject = payload["subject"][:500] or "(no subject)"
    ids: list[int] = []
    for party_id, contact_id in await _recipient_parties(payload):
        async with events.unit_of_work():
            earlier = await Activity.select(Activity.id, Activity.custom).where(
                Activity.party_id == party_id, Activity.type == "email", Activity.subject == subject
            )
            done = [a["id"] for a in earlier if (_custom(a["custom"]).get("email_message_id") == message_id)]
            if done:
                ids.extend(done)
                continue
            party = await Party.select(Party.owner_id).where(Party.id == party_id).first()
            if party is None:
                continue
            owner = ctx.created_by or party["owner_id"]
            # Acts for the kernel on behalf of whoever asked for the message (or the party's
            # owner): the activity is theirs and shows in their book.
            principal = Principal(
                user_id=owner,  # type: ignore[arg-type]  # None: an activity without owner
                name="e-mail",
                email="",
                permissions=frozenset({"*"}),
                scope="all",
                user_ids=None,
            )
            row = await service.create(
                ACTIVITY,
                principal,
                {
                    "type": "email",
                    "status": "done",
                    "direction": "out",
                    "subject": subject,
                    "description": payload["text"],
                    "party_id": party_id,
                    "contact_id": contact_id,
                    "owner_id": owner,
                    "starts_at": clock.now(),
                },
            )
            # Written beside the validated fields: an admin's required custom fields must not
            # stop the record of a message already sent.
            await Activity.update(
                {Activity.custom: {**_custom(row.get("custom")), "email_message_id": message_id}}
            ).where(Activity.id == row["id"])
            ids.append(row["id"])
    return ids


def _custom(value: Any) -> dict[str, Any]:
    import json

    return json.loads(value) if isinstance(value, str) else dict(value or {})
