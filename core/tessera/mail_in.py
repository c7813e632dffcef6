"""Incoming e-mail (issue 16.3): the worker polls the configured IMAP mailboxes (settings
``imap_mailboxes``, docs/integrations.md "E-mail in (IMAP)") with aioimaplib, in parallel, each
from its own UID checkpoint.

Each new message is parsed with the standard library (``email``, policy ``default``), kept raw
under ``data_dir/attachments/mail`` (so backups hold it) and recorded once in ``mail_message``:
its Message-ID is unique in the database, so polling twice, or two workers on two nodes
polling at once, store one copy (the second insert does nothing and that worker skips the
message). In the same transaction it is
matched by address (From, Reply-To, To, Cc, without the mailbox's own addresses) to parties
and contacts, stored as an ``email`` activity (direction ``in``) on each matched party with its
attachments (through the kernel's attachment service, same size limit), threaded
(Message-ID / In-Reply-To / References -> ``thread_id``), and a background job ``mail.inbound``
is queued that hands the message to plugins (hook ``tessera_inbound_email``). A message from
nobody known waits in triage (``status = "unknown"``: create a party, link to one, ignore).

A message that fails to import is quarantined (``status = "failed"`` with the error, raw kept)
and the checkpoint moves on: the rest keep flowing. A mailbox that fails (wrong password,
server down) records a readable ``last_error`` and is retried with back-off (1 minute,
doubling, at most an hour): no crash loop, no hammering the server. The password is never
logged (aioimaplib scrubs it from its debug log) nor shown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html as html_lib
import json
import logging
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

import aioimaplib
import msgspec
import nh3

from tessera import audit, clock, events, jobs
from tessera.config import ImapMailbox, Settings
from tessera.entities.channels import normalise_email
from tessera.entities.tables import Activity, Contact, MailMailbox, MailMessage, Party
from tessera.errors import NotFound, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.plugins import call_each_async

log = logging.getLogger("tessera.mail_in")

KIND = "mail.inbound"
#: Statuses of ``mail_message``.
MATCHED, UNKNOWN, CREATED, LINKED, IGNORED, FAILED = (
    "matched",
    "unknown",
    "created",
    "linked",
    "ignored",
    "failed",
)
#: Polls in a row whose fetch of one UID failed before that message is quarantined unfetched.
FETCH_ATTEMPTS = 3
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
#: Longest stored body text (a larger one is cut, the raw message keeps it whole).
MAX_TEXT = 1_000_000

# Refusals the triage routes and page show (translated where a person reads them).
NOT_IN_TRIAGE = N_("This message is no longer waiting for triage")


class MailboxError(Exception):
    """A poll of one mailbox failed for a reason worth telling the admin (stored as
    ``mail_mailbox.last_error``)."""


# --------------------------------------------------------------------------- the message


@dataclass(frozen=True)
class InboundEmail:
    """A stored incoming message as the hook ``tessera_inbound_email`` receives it."""

    #: ``mail_message.id``.
    id: int
    #: Name and role of the mailbox it came from (``"support"``, ``"support"``).
    mailbox: str
    mailbox_role: str
    #: Message-ID without ``<>`` (unique: a message is handed over once).
    message_id: str
    #: Message-ID of the thread's first message; a reply has its original's.
    thread_id: str
    in_reply_to: str
    references: tuple[str, ...]
    from_address: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    #: The plain text (the text part, or the HTML part's text).
    text: str
    #: The HTML part, sanitised (nh3); empty when the message had none.
    html: str
    sent_at: datetime | None
    received_at: datetime
    #: Parties and contacts its addresses matched (empty: the sender waits in triage).
    party_ids: tuple[int, ...]
    contact_ids: tuple[int, ...]
    #: The ``email`` activities stored for it, one per party.
    activity_ids: tuple[int, ...]
    #: ``{"filename", "content_type", "size", "sha256"}`` per attachment, with
    #: ``"attachment_ids"`` (stored, one per party) or ``"error"`` (too large, not stored).
    attachments: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    #: Where the raw message is kept (``data_dir/attachments/mail``), for a plugin that parses
    #: more than the text (a delivery report's ``message/delivery-status``); "" when not kept.
    raw_path: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any], role: str) -> InboundEmail:
        return cls(
            id=row["id"],
            mailbox=row["mailbox"],
            mailbox_role=role,
            message_id=row["message_id"],
            thread_id=row["thread_id"],
            in_reply_to=row["in_reply_to"],
            references=tuple(_list(row["reference_ids"])),
            from_address=row["from_address"],
            from_name=row["from_name"],
            to=tuple(_list(row["to_addresses"])),
            cc=tuple(_list(row["cc_addresses"])),
            subject=row["subject"],
            text=row["body_text"],
            html=row["body_html"],
            sent_at=row["sent_at"],
            received_at=row["received_at"],
            party_ids=tuple(_list(row["party_ids"])),
            contact_ids=tuple(_list(row["contact_ids"])),
            activity_ids=tuple(_list(row["activity_ids"])),
            attachments=tuple(_list(row["attachments"])),
        )


def _list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


@dataclass
class Parsed:
    message_id: str
    in_reply_to: str
    references: list[str]
    from_address: str
    from_name: str
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    subject: str
    text: str
    html: str
    sent_at: datetime | None
    attachments: list[tuple[str, str, bytes]]


_ID = re.compile(r"<([^<>\s]+)>")


def _ids(value: str | None) -> list[str]:
    """Message-IDs of a header (``<a@b> <c@d>``) without the brackets, in order."""
    if not value:
        return []
    found = _ID.findall(str(value))
    if not found and str(value).strip():
        found = [str(value).strip().strip("<>")]
    return [f[:500] for f in found]


def _address(raw: str) -> str:
    raw = raw.strip()
    try:
        return normalise_email(raw)
    except ValueError:
        return raw.lower()[:320]


def _addresses(message: EmailMessage, name: str) -> list[str]:
    values = [str(v) for v in message.get_all(name, [])]
    return [_address(addr) for _n, addr in getaddresses(values) if addr and "@" in addr]


def html_to_text(markup: str) -> str:
    """The text of an HTML part (tags dropped, entities decoded, blank runs squeezed)."""
    spaced = re.sub(r"(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", "\n", markup)
    text = html_lib.unescape(nh3.clean(spaced, tags=set()))
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", text)).strip()


def _clean(text: str) -> str:
    """Without NUL characters (PostgreSQL text cannot hold them)."""
    return text.replace("\x00", "")


def _safe_filename(name: str | None, index: int) -> str:
    cleaned = re.sub(r"[/\\\x00-\x1f]", "_", (name or "").strip()).strip(". ")
    return (cleaned or f"attachment-{index}")[:300]


def parse(raw: bytes) -> Parsed:
    """Read a raw RFC 5322 message (standard library, policy ``default``)."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    own_id = _ids(message.get("Message-ID"))
    message_id = own_id[0] if own_id else f"sha256:{hashlib.sha256(raw).hexdigest()}"
    senders = getaddresses([str(v) for v in message.get_all("From", [])])
    from_name, from_address = senders[0] if senders else ("", "")
    text = html = ""
    plain_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    if html_part is not None:
        html = nh3.clean(str(html_part.get_content()))
    if plain_part is not None:
        text = str(plain_part.get_content())
    elif html:
        text = html_to_text(html)
    attachments: list[tuple[str, str, bytes]] = []
    for i, part in enumerate(message.iter_attachments(), start=1):
        content = part.get_payload(decode=True) or b""
        attachments.append((_safe_filename(part.get_filename(), i), part.get_content_type(), content))
    try:
        date = message.get("Date")
        sent_at = parsedate_to_datetime(str(date)) if date else None
        if sent_at is not None and sent_at.tzinfo is None:
            sent_at = None
    except (TypeError, ValueError):
        sent_at = None
    return Parsed(
        message_id=message_id,
        in_reply_to=(_ids(message.get("In-Reply-To")) or [""])[0],
        references=_ids(message.get("References"))[:100],
        from_address=_address(from_address) if from_address else "",
        from_name=_clean(from_name).strip()[:300],
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        reply_to=_addresses(message, "Reply-To"),
        subject=_clean(str(message.get("Subject") or "")).strip()[:500],
        text=_clean(text).strip()[:MAX_TEXT],
        html=_clean(html)[:MAX_TEXT],
        sent_at=sent_at,
        attachments=attachments,
    )


# --------------------------------------------------------------------------- matching


def _json(value: Any) -> list[dict[str, Any]]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


async def match_addresses(addresses: Sequence[str]) -> list[tuple[int, int | None]]:
    """(party id, contact id) pairs whose e-mail addresses are among ``addresses``
    (case-insensitive: stored addresses are lower case, as are these). A party's own address
    gives no contact; a contact's gives its party with the contact."""
    found: dict[int, int | None] = {}
    for address in dict.fromkeys(a.lower() for a in addresses if a):
        pattern = f"%{address}%"
        for party in await Party.select(Party.id, Party.emails).where(Party.contact_index.like(pattern)):
            if any(str(e.get("address", "")).lower() == address for e in _json(party["emails"])):
                found.setdefault(party["id"], None)
        for contact in await Contact.select(Contact.id, Contact.party_id, Contact.emails).where(
            Contact.contact_index.like(pattern)
        ):
            if contact["party_id"] and any(
                str(e.get("address", "")).lower() == address for e in _json(contact["emails"])
            ):
                if found.get(contact["party_id"]) is None:
                    found[contact["party_id"]] = contact["id"]
    return list(found.items())


async def thread_of(parsed: Parsed) -> str:
    """The thread's id: that of a known message this one answers, else the first of its
    References (the thread's root), else its In-Reply-To, else its own Message-ID."""
    candidates = [*parsed.references, *([parsed.in_reply_to] if parsed.in_reply_to else [])]
    if candidates:
        known = {
            r["message_id"]: r["thread_id"]
            for r in await MailMessage.select(MailMessage.message_id, MailMessage.thread_id).where(
                MailMessage.message_id.is_in(candidates)
            )
        }
        for candidate in candidates:
            if candidate in known:
                return str(known[candidate])
        return candidates[0]
    return parsed.message_id


# --------------------------------------------------------------------------- storing


#: Raw messages live beside the attachments (``data_dir/attachments/mail``), so ``tessera
#: backup`` copies them and ``tessera restore`` puts them back with the database.
RAW_FOLDER = ("attachments", "mail")


def store_raw(data_dir: Path, raw: bytes) -> str:
    """Keep the raw message (content-addressed); returns its sha256."""
    digest = hashlib.sha256(raw).hexdigest()
    folder = data_dir.joinpath(*RAW_FOLDER, digest[:2])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.eml"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)
    return digest


def raw_path(data_dir: Path, digest: str) -> Path:
    return data_dir.joinpath(*RAW_FOLDER, digest[:2], f"{digest}.eml")


def _acting_for(user_id: int | None) -> Principal:
    """The kernel recording mail on a party's card, on behalf of the party's owner (the
    activity and its files are theirs and show in their book)."""
    return Principal(
        user_id=user_id,  # type: ignore[arg-type]  # None: records without owner
        name="e-mail",
        email="",
        permissions=frozenset({"*"}),
        scope="all",
        user_ids=None,
    )


async def record_on_parties(
    data_dir: Path,
    message_row_id: int,
    parsed: Parsed,
    thread_id: str,
    targets: Sequence[tuple[int, int | None]],
    owner_id: int | None = None,
) -> tuple[list[int], list[dict[str, Any]]]:
    """Store the message as an ``email`` activity (direction ``in``) with its attachments on
    each party of ``targets``; returns the activity ids and the attachments' record. Runs
    inside the caller's unit of work."""
    from tessera.entities import service
    from tessera.entities.activities import ACTIVITY
    from tessera.entities.notes import MAX_ATTACHMENT_BYTES, store_attachment

    activity_ids: list[int] = []
    kept: list[dict[str, Any]] = []
    for filename, content_type, content in parsed.attachments:
        entry: dict[str, Any] = {
            "filename": filename,
            "content_type": content_type,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        if len(content) > MAX_ATTACHMENT_BYTES:
            entry["error"] = f"larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB: not stored"
        kept.append(entry)
    for party_id, contact_id in targets:
        party = await Party.select(Party.owner_id).where(Party.id == party_id).first()
        if party is None:
            continue
        owner = owner_id if owner_id is not None else party["owner_id"]
        principal = _acting_for(owner)
        row = await service.create(
            ACTIVITY,
            principal,
            {
                "type": "email",
                "status": "done",
                "direction": "in",
                "subject": parsed.subject or "(no subject)",
                "description": parsed.text,
                "party_id": party_id,
                "contact_id": contact_id,
                "owner_id": owner,
                "starts_at": parsed.sent_at or clock.now(),
            },
        )
        # Beside the validated fields (as e-mail out does): an admin's required custom fields
        # must not stop the record of a message that arrived.
        custom = row.get("custom") or {}
        if isinstance(custom, str):
            custom = json.loads(custom)
        await Activity.update(
            {
                Activity.custom: {
                    **custom,
                    "email_message_id": parsed.message_id,
                    "email_thread_id": thread_id,
                    "mail_message_id": message_row_id,
                }
            }
        ).where(Activity.id == row["id"])
        activity_ids.append(row["id"])
        for entry, (filename, content_type, content) in zip(kept, parsed.attachments, strict=True):
            if entry.get("error"):
                continue
            stored = await store_attachment(
                principal,
                data_dir,
                filename,
                content_type[:200],
                content,
                party_id,
                subject_ref=f"activity:{row['id']}",
            )
            entry.setdefault("attachment_ids", []).append(stored["id"])
    return activity_ids, kept


@dataclass
class Stored:
    """What became of one fetched message."""

    status: str  # matched | unknown | duplicate | failed
    id: int | None = None
    error: str = ""


async def store_message(
    settings: Settings, box: ImapMailbox, uid: int, uidvalidity: int, raw: bytes
) -> Stored:
    """Record one fetched message once (see the module's docstring); never raises for a bad
    message: it is quarantined (``failed``) instead."""
    try:
        digest = store_raw(settings.data_dir, raw)
        parsed = parse(raw)
    except Exception as exc:  # a full or broken disk; the parser is lenient, a last resort
        digest = hashlib.sha256(raw).hexdigest()
        return await _quarantine(box, uid, uidvalidity, f"sha256:{digest}", raw, "", exc)
    try:
        async with events.unit_of_work():
            thread_id = await thread_of(parsed)
            inserted = (
                await MailMessage.insert(
                    MailMessage(
                        message_id=parsed.message_id,
                        mailbox=box.name,
                        uid=uid,
                        uidvalidity=uidvalidity,
                        thread_id=thread_id,
                        in_reply_to=parsed.in_reply_to,
                        reference_ids=parsed.references,
                        from_address=parsed.from_address,
                        from_name=parsed.from_name,
                        to_addresses=parsed.to,
                        cc_addresses=parsed.cc,
                        subject=parsed.subject,
                        body_text=parsed.text,
                        body_html=parsed.html,
                        sent_at=parsed.sent_at,
                        received_at=clock.now(),
                        status=UNKNOWN,
                        raw_sha256=digest,
                        raw_size=len(raw),
                    )
                )
                .on_conflict(target=MailMessage.message_id, action="DO NOTHING")
                .returning(MailMessage.id)
            )
            if not inserted:  # stored before: by an earlier poll or by another worker just now
                return Stored("duplicate")
            row_id = int(inserted[0]["id"])
            own = box.own_addresses
            addresses = [
                a for a in [parsed.from_address, *parsed.reply_to, *parsed.to, *parsed.cc] if a not in own
            ]
            targets = await match_addresses(addresses)
            activity_ids, kept = await record_on_parties(
                settings.data_dir, row_id, parsed, thread_id, targets
            )
            status = MATCHED if activity_ids else UNKNOWN
            await MailMessage.update(
                {
                    MailMessage.status: status,
                    MailMessage.party_ids: [p for p, _c in targets],
                    MailMessage.contact_ids: [c for _p, c in targets if c is not None],
                    MailMessage.activity_ids: activity_ids,
                    MailMessage.attachments: kept,
                }
            ).where(MailMessage.id == row_id)
            await jobs.enqueue(
                KIND, {"id": row_id, "role": box.role}, max_attempts=8, dedup_key=f"{KIND}:{row_id}"
            )
    except Exception as exc:
        return await _quarantine(box, uid, uidvalidity, parsed.message_id, raw, digest, exc, parsed)
    return Stored(status, row_id)


async def _quarantine(
    box: ImapMailbox,
    uid: int,
    uidvalidity: int,
    message_id: str,
    raw: bytes,
    digest: str,
    exc: Exception,
    parsed: Parsed | None = None,
) -> Stored:
    """Keep a message that failed to import aside (status ``failed``, the error, the raw
    message) so the rest of the mailbox keeps flowing."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    log.exception("mailbox %s: message UID %s could not be imported", box.name, uid, exc_info=exc)
    rows = (
        await MailMessage.insert(
            MailMessage(
                message_id=message_id,
                mailbox=box.name,
                uid=uid,
                uidvalidity=uidvalidity,
                thread_id=message_id,
                from_address=parsed.from_address if parsed else "",
                from_name=parsed.from_name if parsed else "",
                subject=parsed.subject if parsed else "",
                received_at=clock.now(),
                status=FAILED,
                raw_sha256=digest,
                raw_size=len(raw),
                error=error,
            )
        )
        .on_conflict(target=MailMessage.message_id, action="DO NOTHING")
        .returning(MailMessage.id)
    )
    return Stored(FAILED, rows[0]["id"] if rows else None, error)


async def retry_quarantined(settings: Settings, message_row_id: int, user_id: int | None = None) -> Stored:
    """Import a quarantined message again from its raw copy (after the cause was fixed)."""
    row = (
        await MailMessage.select()
        .where(MailMessage.id == message_row_id, MailMessage.status == FAILED)
        .first()
    )
    if row is None:
        raise NotFound(f"quarantined mail message {message_row_id} not found")
    box = next((b for b in settings.imap_mailboxes if b.name == row["mailbox"]), None)
    path = raw_path(settings.data_dir, row["raw_sha256"]) if row["raw_sha256"] else None
    if path is not None and path.exists():
        raw = path.read_bytes()
    elif path is None and box is not None:  # never fetched (too large): from the server now
        try:
            raw = await refetch(box, row["uid"], row["uidvalidity"])
        except (MailboxError, aioimaplib.AioImapException, OSError, TimeoutError) as exc:
            raise ValidationFailed.field("uid", f"cannot fetch it again: {exc}") from None
    else:
        raise ValidationFailed.field("raw_sha256", "the raw message is no longer kept")
    box = box or ImapMailbox(name=row["mailbox"], host="", username="")
    async with events.unit_of_work():
        await MailMessage.delete().where(MailMessage.id == message_row_id, MailMessage.status == FAILED)
        await audit.record(
            "retry", "mail_message", message_row_id, {"status": [FAILED, None]}, user_id=user_id
        )
    return await store_message(settings, box, row["uid"], row["uidvalidity"], raw)


# --------------------------------------------------------------------------- the hook (worker)


def _role_of(settings: Settings | None, mailbox: str) -> str:
    for box in settings.imap_mailboxes if settings else ():
        if box.name == mailbox:
            return box.role
    return "general"


async def load(
    message_row_id: int, role: str | None = None, settings: Settings | None = None
) -> InboundEmail:
    row = await MailMessage.select().where(MailMessage.id == message_row_id).first().output(load_json=True)
    if row is None:
        raise NotFound(f"mail message {message_row_id} not found")
    message = InboundEmail.from_row(row, role or _role_of(settings, row["mailbox"]))
    if settings is not None and row.get("raw_sha256"):
        path = raw_path(settings.data_dir, row["raw_sha256"])
        if path.exists():
            message = dataclasses.replace(message, raw_path=str(path))
    return message


@jobs.kernel_kind(KIND, timeout=300.0)
async def inbound_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Hand a stored message to the plugins (hook ``tessera_inbound_email``). At least once:
    a failing implementation makes the job retry (every implementation is called again)."""
    message = await load(payload["id"], payload.get("role"), ctx.settings)
    if ctx.pm is None:
        return {"plugins": []}
    results = await call_each_async(ctx.pm, "tessera_inbound_email", message=message)
    return {"plugins": [name for name, _ in results]}


def _unfetched_id(box_name: str, uidvalidity: int, uid: int) -> str:
    return f"uid:{box_name}:{uidvalidity}:{uid}"


async def _fetch_failed(name: str, uid: int) -> int:
    """Count a failed fetch of ``uid`` (polls in a row); returns the count."""
    state = (
        await MailMailbox.select(MailMailbox.stuck_uid, MailMailbox.stuck_failures)
        .where(MailMailbox.name == name)
        .first()
    )
    count = state["stuck_failures"] + 1 if state and state["stuck_uid"] == uid else 1
    await MailMailbox.update({MailMailbox.stuck_uid: uid, MailMailbox.stuck_failures: count}).where(
        MailMailbox.name == name
    )
    return count


async def _quarantine_unfetched(
    box: ImapMailbox, uid: int, uidvalidity: int, size: int, reason: str = ""
) -> Stored:
    """A message over ``max_message_bytes``, or one the server failed to hand over
    ``FETCH_ATTEMPTS`` polls in a row: listed in the quarantine without its content."""
    mib = 1024 * 1024
    error = (
        f"not fetched after {FETCH_ATTEMPTS} failed polls: {reason}"
        if reason
        else f"message of {size / mib:.1f} MiB is larger than max_message_bytes "
        f"({box.max_message_bytes / mib:.1f} MiB): not fetched"
    )
    log.warning("mailbox %s: UID %s %s", box.name, uid, error)
    key = _unfetched_id(box.name, uidvalidity, uid)
    rows = (
        await MailMessage.insert(
            MailMessage(
                message_id=key,
                mailbox=box.name,
                uid=uid,
                uidvalidity=uidvalidity,
                thread_id=key,
                received_at=clock.now(),
                status=FAILED,
                raw_size=size,
                error=error,
            )
        )
        .on_conflict(target=MailMessage.message_id, action="DO NOTHING")
        .returning(MailMessage.id)
    )
    return Stored(FAILED, rows[0]["id"] if rows else None, error)


async def refetch(box: ImapMailbox, uid: int, uidvalidity: int) -> bytes:
    """Fetch one message again by UID (a quarantined message that was never fetched)."""
    client = await _connect(box)
    try:
        if await _select(client, box) != uidvalidity:
            raise ValidationFailed.field(
                "uid", "the folder was renumbered (new UIDVALIDITY): the UID is gone"
            )
        return await _fetch(client, box, uid)
    finally:
        await _logout(client)


# --------------------------------------------------------------------------- polling (IMAP)


def _text(response: Any) -> str:
    lines = [
        line.decode(errors="replace") if isinstance(line, bytes | bytearray) else str(line)
        for line in getattr(response, "lines", [])
    ]
    return " ".join(line.strip() for line in lines if line.strip())[:500]


def _tls_context(box: ImapMailbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=box.ca_file or None)


async def _starttls(client: aioimaplib.IMAP4, box: ImapMailbox) -> None:
    """Upgrade the plain connection (RFC 3501 STARTTLS); refused if the server does not offer
    it, never a silent fall-back to plain text."""
    protocol = client.protocol
    if "STARTTLS" not in {c.upper() for c in protocol.capabilities}:
        raise MailboxError(f"{box.host} does not offer STARTTLS (security = starttls)")
    command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    response = await asyncio.wait_for(protocol.execute(command), box.timeout)
    if response.result != "OK":
        raise MailboxError(f"{box.host} refused STARTTLS: {_text(response)}")
    loop = asyncio.get_running_loop()
    transport = await asyncio.wait_for(
        loop.start_tls(protocol.transport, protocol, _tls_context(box), server_hostname=box.host),
        box.timeout,
    )
    protocol.transport = transport
    await asyncio.wait_for(protocol.capability(), box.timeout)


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message} (ca_file names a private CA)"
    return str(exc.reason or exc)


async def _connect(box: ImapMailbox) -> aioimaplib.IMAP4:
    where = f"{box.host}:{box.effective_port}"
    try:
        if box.security == "ssl":
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                box.host, box.effective_port, timeout=box.timeout, ssl_context=_tls_context(box)
            )
        else:
            client = aioimaplib.IMAP4(box.host, box.effective_port, timeout=box.timeout)
        await client.wait_hello_from_server()
    except ssl.SSLError as exc:
        raise MailboxError(f"TLS with {where} failed: {_tls_reason(exc)}") from None
    except (OSError, TimeoutError) as exc:
        raise MailboxError(f"cannot connect to {where}: {exc or type(exc).__name__}") from None
    try:
        if box.security == "starttls":
            await _starttls(client, box)
    except ssl.SSLError as exc:
        raise MailboxError(f"TLS with {where} failed: {_tls_reason(exc)}") from None
    response = await client.login(box.username, box.password)
    if response.result != "OK":
        await _logout(client)
        raise MailboxError(f"login as {box.username} refused by {box.host}: {_text(response)}")
    return client


async def _logout(client: aioimaplib.IMAP4) -> None:
    try:
        await asyncio.wait_for(client.logout(), min(5.0, client.timeout))
    except Exception:  # the connection is gone anyway
        pass


_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")


async def _select(client: aioimaplib.IMAP4, box: ImapMailbox) -> int:
    response = await client.select(box.folder)
    if response.result != "OK":
        raise MailboxError(f"cannot open folder {box.folder!r}: {_text(response)}")
    for line in response.lines:
        found = _UIDVALIDITY.search(bytes(line))
        if found:
            return int(found.group(1))
    raise MailboxError(f"{box.host} sent no UIDVALIDITY for {box.folder!r}")


async def _new_uids(client: aioimaplib.IMAP4, box: ImapMailbox, last_uid: int) -> list[int]:
    response = await client.uid_search(f"UID {last_uid + 1}:*", charset=None)
    if response.result != "OK":
        raise MailboxError(f"search in {box.folder!r} failed: {_text(response)}")
    uids: set[int] = set()
    for line in response.lines:
        text = bytes(line).decode(errors="replace")
        uids.update(int(t) for t in text.split() if t.isdigit())
    # "n:*" always names the last message, even when its UID is below n.
    return sorted(u for u in uids if u > last_uid)


_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


async def _sizes(client: aioimaplib.IMAP4, box: ImapMailbox, uids: Sequence[int]) -> dict[int, int]:
    """Sizes of the messages (``RFC822.SIZE``) before fetching them."""
    if not uids:
        return {}
    response = await client.uid("fetch", ",".join(map(str, uids)), "(RFC822.SIZE)")
    if response.result != "OK":
        raise MailboxError(f"reading message sizes failed: {_text(response)}")
    sizes: dict[int, int] = {}
    for line in response.lines:
        data = bytes(line)
        uid, size = _FETCH_UID.search(data), _SIZE.search(data)
        if uid and size:
            sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


async def _fetch(client: aioimaplib.IMAP4, box: ImapMailbox, uid: int) -> bytes:
    try:
        response = await client.uid("fetch", str(uid), "(BODY.PEEK[])")
    except aioimaplib.CommandTimeout:
        raise MailboxError(f"fetching UID {uid} failed: no answer within {box.timeout:g}s") from None
    if response.result != "OK":
        raise MailboxError(f"fetching UID {uid} failed: {_text(response)}")
    # lines: b'1 FETCH (UID 5 BODY[] {123}', bytearray(<message>), b')', b'Fetch completed'
    for i, line in enumerate(response.lines):
        if isinstance(line, bytearray) and i > 0:
            return bytes(line)
    raise MailboxError(f"UID {uid} has no body in the server's answer")


@dataclass
class PollResult:
    mailbox: str
    #: ok | failed | waiting (back-off after failures)
    outcome: str
    stored: int = 0
    duplicates: int = 0
    unknown: int = 0
    failed: int = 0
    error: str = ""


async def _state(name: str) -> dict[str, Any]:
    await MailMailbox.insert(MailMailbox(name=name)).on_conflict(target=MailMailbox.name, action="DO NOTHING")
    row = await MailMailbox.select().where(MailMailbox.name == name).first()
    assert row is not None
    return row  # type: ignore[no-any-return]


async def _checkpoint(name: str, uidvalidity: int, uid: int) -> None:
    """Move the checkpoint forward only (a slower concurrent poll never moves it back)."""
    await MailMailbox.update({MailMailbox.last_uid: uid, MailMailbox.uidvalidity: uidvalidity}).where(
        (MailMailbox.name == name) & ((MailMailbox.uidvalidity != uidvalidity) | (MailMailbox.last_uid < uid))
    )


async def poll_mailbox(settings: Settings, box: ImapMailbox) -> PollResult:
    """Fetch and store the new messages of one mailbox; failures are recorded on the mailbox
    (``mail_mailbox.last_error``) and returned, never raised."""
    state = await _state(box.name)
    now = clock.now()
    if state["failures"] and state["next_poll_at"] and state["next_poll_at"] > now:
        return PollResult(box.name, "waiting", error=state["last_error"])
    result = PollResult(box.name, "ok")
    try:
        client = await _connect(box)
        try:
            uidvalidity = await _select(client, box)
            last_uid = state["last_uid"] if state["uidvalidity"] == uidvalidity else 0
            if state["uidvalidity"] and state["uidvalidity"] != uidvalidity:
                log.warning("mailbox %s: UIDVALIDITY changed, reading the folder again", box.name)
            uids = (await _new_uids(client, box, last_uid))[: box.batch]
            sizes = await _sizes(client, box, uids)
            for uid in uids:
                if sizes.get(uid, 0) > box.max_message_bytes:
                    stored = await _quarantine_unfetched(box, uid, uidvalidity, sizes[uid])
                else:
                    try:
                        raw = await _fetch(client, box, uid)
                    except (MailboxError, aioimaplib.AioImapException, TimeoutError, OSError) as exc:
                        # Refused, or the server dropped the connection on it (dovecot's
                        # default): after FETCH_ATTEMPTS polls in a row it is set aside.
                        reason = str(exc) if isinstance(exc, MailboxError) else f"{type(exc).__name__}: {exc}"
                        if await _fetch_failed(box.name, uid) < FETCH_ATTEMPTS:
                            raise MailboxError(
                                f"{reason} (the message is set aside after {FETCH_ATTEMPTS} failed polls)"
                            ) from None
                        await _quarantine_unfetched(box, uid, uidvalidity, sizes.get(uid, 0), reason)
                        await _checkpoint(box.name, uidvalidity, uid)
                        result.failed += 1
                        break  # the connection may be gone: the next poll goes on
                    else:
                        stored = await store_message(settings, box, uid, uidvalidity, raw)
                if stored.status == "duplicate":
                    result.duplicates += 1
                elif stored.status == FAILED:
                    result.failed += 1
                else:
                    result.stored += 1
                    result.unknown += stored.status == UNKNOWN
                await _checkpoint(box.name, uidvalidity, uid)
        finally:
            await _logout(client)
    except (MailboxError, aioimaplib.AioImapException, OSError, TimeoutError) as exc:
        text = str(exc) if isinstance(exc, MailboxError) else f"{type(exc).__name__}: {exc}"
        result.outcome, result.error = "failed", text[:2000]
    failures = 0 if result.outcome == "ok" else state["failures"] + 1
    delay = min(BACKOFF_FIRST * (2 ** max(failures - 1, 0)), BACKOFF_CAP)
    changes: dict[Any, Any] = {
        MailMailbox.last_poll_at: clock.now(),
        MailMailbox.failures: failures,
        MailMailbox.last_error: result.error,
        MailMailbox.next_poll_at: clock.now() + delay if failures else None,
    }
    if result.outcome == "ok":
        changes[MailMailbox.last_success_at] = clock.now()
        changes[MailMailbox.stuck_uid] = 0
        changes[MailMailbox.stuck_failures] = 0
    else:
        log.warning("mailbox %s: poll failed: %s", box.name, result.error)
    await MailMailbox.update(changes).where(MailMailbox.name == box.name)
    return result


async def poll_all(settings: Settings | None) -> list[PollResult]:
    """Poll every configured mailbox in parallel (one slow or broken mailbox holds up no
    other)."""
    boxes = settings.imap_mailboxes if settings else ()
    if not settings or not boxes:
        return []
    outcomes = await asyncio.gather(*(poll_mailbox(settings, box) for box in boxes), return_exceptions=True)
    results: list[PollResult] = []
    for box, outcome in zip(boxes, outcomes, strict=True):
        if isinstance(outcome, BaseException):  # a database error: the others still finished
            log.error("mailbox %s: poll crashed", box.name, exc_info=outcome)
            outcome = PollResult(box.name, "failed", error=f"{type(outcome).__name__}: {outcome}"[:2000])
        results.append(outcome)
    return results


# --------------------------------------------------------------------------- triage


async def _waiting(message_row_id: int) -> dict[str, Any]:
    row = await MailMessage.select().where(MailMessage.id == message_row_id).first().output(load_json=True)
    if row is None:
        raise NotFound(f"mail message {message_row_id} not found")
    if row["status"] != UNKNOWN:
        raise ValidationFailed.field("status", NOT_IN_TRIAGE)
    return row  # type: ignore[no-any-return]


async def _attach_sender_messages(
    data_dir: Path,
    principal: Principal,
    first: dict[str, Any],
    party_id: int,
    contact_id: int | None,
    status: str,
) -> list[int]:
    """Record every triage message of ``first``'s sender on the party; returns their ids."""
    rows = (
        (
            await MailMessage.select()
            .where(MailMessage.status == UNKNOWN, MailMessage.from_address == first["from_address"])
            .order_by(MailMessage.id)
            .output(load_json=True)
        )
        if first["from_address"]
        else [first]
    )
    done: list[int] = []
    for row in rows:
        path = raw_path(data_dir, row["raw_sha256"])
        parsed = parse(path.read_bytes()) if path.exists() else None
        if parsed is None:
            continue
        activity_ids, kept = await record_on_parties(
            data_dir, row["id"], parsed, row["thread_id"], [(party_id, contact_id)]
        )
        await MailMessage.update(
            {
                MailMessage.status: status,
                MailMessage.party_ids: [party_id],
                MailMessage.activity_ids: activity_ids,
                MailMessage.attachments: kept,
                MailMessage.triaged_by: principal.user_id,
                MailMessage.triaged_at: clock.now(),
            }
        ).where(MailMessage.id == row["id"], MailMessage.status == UNKNOWN)
        await audit.record(
            "triage",
            "mail_message",
            row["id"],
            {"status": [UNKNOWN, status], "party_id": [None, party_id]},
            user_id=principal.user_id,
        )
        done.append(row["id"])
    return done


async def triage_create_party(
    data_dir: Path, principal: Principal, message_row_id: int, name: str | None = None, kind: str = "person"
) -> dict[str, Any]:
    """Make a party of an unknown sender (the sender's address its e-mail) and record every
    waiting message of that sender on it. Needs ``mail.triage`` and ``party.write``."""
    from tessera.entities import service
    from tessera.entities.dto import set_fields
    from tessera.entities.parties import PARTY, PartyIn

    principal.require("mail.triage")
    async with events.unit_of_work():
        row = await _waiting(message_row_id)
        try:
            body = msgspec.convert(
                {
                    "name": (name or row["from_name"] or row["from_address"] or "?").strip()[:300],
                    "kind": kind,
                    "emails": [{"address": row["from_address"]}] if row["from_address"] else [],
                    "owner_id": principal.user_id,
                },
                PartyIn,
            )
        except msgspec.ValidationError as exc:
            raise ValidationFailed.field("name", str(exc)) from None
        party = await service.create(PARTY, principal, set_fields(body))
        ids = await _attach_sender_messages(data_dir, principal, row, party["id"], None, CREATED)
    return {"party_id": party["id"], "message_ids": ids}


async def triage_link(
    data_dir: Path, principal: Principal, message_row_id: int, party_id: int, add_address: bool = True
) -> dict[str, Any]:
    """Record an unknown sender's waiting messages on a party the user may change; with
    ``add_address`` the sender's address is added to the party's e-mails, so later mail from
    it matches by itself. Needs ``mail.triage``."""
    from tessera.entities import service
    from tessera.entities.parties import PARTY

    principal.require("mail.triage")
    async with events.unit_of_work():
        row = await _waiting(message_row_id)
        party = await service.get_for_write(PARTY, principal, party_id)
        emails = _json(party.get("emails"))
        if (
            add_address
            and row["from_address"]
            and all(str(e.get("address", "")).lower() != row["from_address"] for e in emails)
        ):
            await service.update(
                PARTY,
                principal,
                party_id,
                {"emails": [*emails, {"address": row["from_address"], "type": "work"}]},
            )
        ids = await _attach_sender_messages(data_dir, principal, row, party_id, None, LINKED)
    return {"party_id": party_id, "message_ids": ids}


async def triage_ignore(principal: Principal, message_row_id: int) -> dict[str, Any]:
    """Leave an unknown sender's waiting messages out of the CRM (they stay stored, status
    ``ignored``). Needs ``mail.triage``."""
    principal.require("mail.triage")
    async with events.unit_of_work():
        row = await _waiting(message_row_id)
        condition = (
            (MailMessage.from_address == row["from_address"])
            if row["from_address"]
            else (MailMessage.id == row["id"])
        )
        ignored = await (
            MailMessage.update(
                {
                    MailMessage.status: IGNORED,
                    MailMessage.triaged_by: principal.user_id,
                    MailMessage.triaged_at: clock.now(),
                }
            )
            .where(condition, MailMessage.status == UNKNOWN)
            .returning(MailMessage.id)
        )
        for r in ignored:
            await audit.record(
                "triage", "mail_message", r["id"], {"status": [UNKNOWN, IGNORED]}, user_id=principal.user_id
            )
    return {"party_id": None, "message_ids": [r["id"] for r in ignored]}


async def ignore_quarantined(principal: Principal, message_row_id: int) -> dict[str, Any]:
    """A quarantined message set aside for good (status ``ignored``), audited."""
    from tessera import audit, events
    from tessera.errors import NotFound

    async with events.unit_of_work():
        done = (
            await MailMessage.update(
                {
                    MailMessage.status: IGNORED,
                    MailMessage.triaged_by: principal.user_id,
                    MailMessage.triaged_at: clock.now(),
                }
            )
            .where(MailMessage.id == message_row_id, MailMessage.status == FAILED)
            .returning(MailMessage.id)
        )
        if not done:
            raise NotFound(f"no quarantined message {message_row_id}")
        await audit.record("ignore", "mail_message", message_row_id, {"status": [FAILED, IGNORED]})
    return {"status": IGNORED, "id": message_row_id, "error": ""}
