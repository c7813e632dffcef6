"""Bounce processing: hard bounces and complaints suppress the address.

Two ways in:

* **a bounce mailbox** read by the kernel's IMAP reader (``tessera.mail_in``; a mailbox with
  ``role = "bounces"``, or any mailbox for a message that is a delivery report): the hook
  ``tessera_inbound_email`` hands each stored message over and this module parses the raw
  message with the standard library's ``email`` package: a DSN (RFC 3464,
  ``multipart/report; report-type=delivery-status``: per recipient ``Final-Recipient``,
  ``Action``, ``Status``) or a complaint (ARF, RFC 5965, ``report-type=feedback-report``), and
  the returned headers' ``Message-ID``, which finds the mailing's ledger row;
* **a webhook** ``POST /api/marketing/bounces`` (an e-mail provider's notifications, or a raw DSN
  posted as ``message/rfc822``), with a shared secret in ``X-Tessera-Bounce-Secret``.

A **hard bounce** (``Action: failed`` with a permanent ``5.x.x`` status) or a **complaint**
marks the ledger row ``bounced`` and adds the address to ``marketing_unsubscribe`` with the
reason (``hard_bounce`` / ``complaint``): every later mailing leaves it out, as the rest of a
running one does. A soft bounce (``4.x.x``, ``delayed``) changes nothing. Processing the same
report twice changes nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

from tessera import audit, clock, db
from tessera.entities.channels import normalise_email

from tessera_marketing.tables import MailingRecipient

SECRET_HEADER = "X-Tessera-Bounce-Secret"
KINDS = ("hard_bounce", "soft_bounce", "complaint")
_ANGLE = re.compile(r"<([^>]+)>")


@dataclass(frozen=True)
class Report:
    """One recipient of a delivery report or complaint."""

    email: str
    #: hard_bounce | soft_bounce | complaint
    kind: str
    #: The Message-ID of the message that bounced (without ``<>``), when the report returned it.
    message_id: str = ""
    #: The status code and diagnostic, or the feedback type.
    detail: str = ""


def _address(value: str) -> str:
    """``rfc822; Someone@Example.com`` -> ``someone@example.com``."""
    value = value.split(";", 1)[1] if ";" in value else value
    value = value.strip().strip("<>").strip()
    try:
        return normalise_email(value) or ""
    except Exception:  # a report with a malformed address: nothing to suppress
        return ""


def _message_id(value: str | None) -> str:
    if not value:
        return ""
    found = _ANGLE.search(value)
    return (found.group(1) if found else value).strip()


def _returned_headers(message: Message) -> Message | None:
    """The returned message's headers (``message/rfc822`` or ``text/rfc822-headers``)."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True) or b""
            return message_from_bytes(raw, policy=policy.default)
    return None


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a ``message/delivery-status`` or ``message/feedback-report`` part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = part.get_payload(decode=True) or (payload.encode() if isinstance(payload, str) else b"")
    return [
        message_from_bytes(block.strip() + b"\n", policy=policy.default)
        for block in re.split(rb"\r?\n\r?\n", text)
    ]


def parse(raw: bytes) -> list[Report]:
    """The recipients a raw delivery report or complaint names (empty for anything else)."""
    message = message_from_bytes(raw, policy=policy.default)
    if message.get_content_type() != "multipart/report":
        return []
    returned = _returned_headers(message)
    original_id = _message_id(returned.get("Message-ID") if returned is not None else None)
    reports: list[Report] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            for block in _blocks(part):
                recipient = block.get("Final-Recipient") or block.get("Original-Recipient")
                action = str(block.get("Action") or "").strip().lower()
                if not recipient or not action:
                    continue  # the per-message block
                status = str(block.get("Status") or "").strip()
                email = _address(str(recipient))
                if not email or action in ("delivered", "relayed", "expanded"):
                    continue
                hard = action == "failed" and status.startswith("5")
                diagnostic = str(block.get("Diagnostic-Code") or "").strip()
                reports.append(
                    Report(
                        email,
                        "hard_bounce" if hard else "soft_bounce",
                        original_id,
                        f"{status} {diagnostic}".strip()[:500],
                    )
                )
        elif kind == "message/feedback-report":
            fields: dict[str, str] = {}
            for block in _blocks(part):
                for key, value in block.items():
                    fields.setdefault(key.lower(), str(value))
            email = _address(fields.get("original-rcpt-to", ""))
            if not email and returned is not None:
                email = _address(str(returned.get("To") or ""))
            if email:
                reports.append(
                    Report(email, "complaint", original_id, fields.get("feedback-type", "abuse")[:500])
                )
    return reports


async def apply(reports: list[Report], source: str) -> dict[str, int]:
    """Record the reports: hard bounces and complaints mark their ledger row ``bounced`` and
    suppress the address. Idempotent. Call inside a transaction."""
    counts = {"suppressed": 0, "bounced": 0, "ignored": 0}
    now = clock.now()
    for report in reports:
        if report.kind not in ("hard_bounce", "complaint"):
            counts["ignored"] += 1
            continue
        row = None
        if report.message_id:
            row = await (
                MailingRecipient.select(
                    MailingRecipient.id, MailingRecipient.party_id, MailingRecipient.mailing_id
                )
                .where(MailingRecipient.message_id == report.message_id)
                .first()
            )
        if row is None:  # no returned headers: the address's latest sent message
            row = await (
                MailingRecipient.select(
                    MailingRecipient.id, MailingRecipient.party_id, MailingRecipient.mailing_id
                )
                .where(
                    MailingRecipient.email == report.email, MailingRecipient.status.is_in(["sent", "bounced"])
                )
                .order_by(MailingRecipient.id, ascending=False)
                .first()
            )
        if row is not None:
            changed = (
                await MailingRecipient.update(
                    {
                        MailingRecipient.status: "bounced",
                        MailingRecipient.error: f"{report.kind}: {report.detail}"[:500],
                    }
                )
                .where(MailingRecipient.id == row["id"], MailingRecipient.status != "bounced")
                .returning(MailingRecipient.id)
            )
            counts["bounced"] += len(changed)
        inserted = await db.raw(
            "INSERT INTO marketing_unsubscribe (email, party_id, mailing_id, at, reason, detail) "
            "VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (email) DO NOTHING RETURNING id",
            report.email,
            row["party_id"] if row else None,
            row["mailing_id"] if row else None,
            now,
            report.kind,
            report.detail[:500],
        )
        if inserted:
            counts["suppressed"] += 1
            await audit.record(
                "suppress",
                "marketing.mailing",
                row["mailing_id"] if row else None,
                detail=f"{report.kind} ({source})",
            )
    if not counts["suppressed"] and not counts["bounced"]:
        audit.unchanged()
    return counts


async def on_inbound_email(message: Any) -> dict[str, int] | None:
    """``tessera_inbound_email``: a delivery report or complaint from the IMAP reader. The raw
    message is read from where the kernel keeps it (``message.raw_path``)."""
    path = getattr(message, "raw_path", "")
    if not path:
        return None
    import asyncio
    from pathlib import Path

    try:
        raw = await asyncio.to_thread(Path(path).read_bytes)
    except FileNotFoundError:
        return None
    if message.mailbox_role != "bounces" and b"multipart/report" not in raw[:20000].lower():
        return None
    reports = parse(raw)
    if not reports:
        return None
    async with db.transaction():
        counts = await apply(reports, f"mailbox {message.mailbox}")
    return counts


def parse_payload(data: Any) -> list[Report]:
    """The webhook's JSON: ``{"events": [{"email", "type", "message_id", "detail"}]}``; 422
    naming the event's field when malformed."""
    from tessera.errors import ValidationFailed

    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ValidationFailed.field("events", "a list of events")
    events = data["events"]
    if len(events) > 1000:
        raise ValidationFailed.field("events", "at most 1000 events at once")
    out = []
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise ValidationFailed.field(f"events[{i}]", "an object")
        email = _address(str(event.get("email") or ""))
        if not email:
            raise ValidationFailed.field(f"events[{i}].email", "an e-mail address")
        kind = event.get("type")
        if kind not in KINDS:
            raise ValidationFailed.field(f"events[{i}].type", f"one of {', '.join(KINDS)}")
        out.append(
            Report(
                email,
                str(kind),
                _message_id(str(event.get("message_id") or ""))[:300],
                str(event.get("detail") or "")[:500],
            )
        )
    return out
