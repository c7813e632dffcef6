"""Mailings: a personalised e-mail to a segment, sent by a background job through the kernel's
SMTP delivery (``tessera.email.compose`` / ``deliver``), with a per-recipient ledger.

* **Templates** are Jinja2 in a ``SandboxedEnvironment`` (no attribute access to internals),
  given ``party`` (name, kind, status, custom, email), ``mailing`` (name) and
  ``unsubscribe_url``; the HTML is sanitised with nh3 (ammonia's allow-list); the plain-text
  part is the text template, or the HTML's text when there is none.
* **Start** (``POST .../send``): one ``INSERT ... SELECT`` writes the ledger (one row per
  address: the segment's parties the sender reads with an e-mail, minus unsubscribed addresses
  and, for a promotional mailing, the parties named by ``tessera_marketing_suppressions``), and
  enqueues one ``marketing.mailing.send`` job (deduplicated per mailing) in the same transaction.
* **Sending**: for each ``queued`` row in id order the job commits ``sending`` with a fixed
  Message-ID, hands the message to the SMTP server, and commits ``sent`` **only after the server
  accepted it** (a 5xx marks the row ``failed``). A worker killed and restarted continues with
  the rows not ``sent``: every remaining recipient gets the message, nobody who was marked
  sent gets it again. The job's lease is short (``LEASE``, 2 minutes) and renewed by a
  heartbeat as it sends, so a killed worker's mailing resumes about two minutes later (not
  after the job's one-hour timeout); a worker that finds its claim taken over (it stalled past
  the lease) stops before its next message, so two workers never send at once. The one window left is
  between the server's acceptance and the ``sent`` commit (a kill exactly there re-sends that
  one message, with the same Message-ID, so receiving servers can drop the copy).
* **Rate** ``per_minute`` (a pause between messages) and **send window** ``send_before``: after it
  nothing more goes out and the rest is marked ``late``.
* **Unsubscribe**: every message carries ``List-Unsubscribe`` (a signed one-click URL, RFC 8058
  ``List-Unsubscribe-Post``) and ``unsubscribe_url`` for the body; the address is stored in
  ``marketing_unsubscribe`` and left out of every later mailing (and of the rest of this one).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlencode

import nh3
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from tessera import audit, clock, db, jobs
from tessera.email import SMTPSession, compose
from tessera.entities import service
from tessera.entities.parties import party_visibility
from tessera.entities.tables import Party
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.permissions import Principal

from tessera_marketing import revenue, segments
from tessera_marketing.tables import Mailing, MailingRecipient, Segment, Setting, Unsubscribe

KIND = "marketing.mailing.send"
BATCH = 50
#: The sending job's lease (``JobKind.lease``): a killed worker's mailing is taken over by
#: another worker this long after its last heartbeat, not after the job's whole timeout.
LEASE = 120.0
#: The job renews its lease at least this often (before a message, once this much time has
#: passed since the last renewal), so a live worker keeps it: a message starts with at least
#: ``LEASE - HEARTBEAT`` seconds of lease left, longer than the SMTP timeouts of one delivery.
HEARTBEAT = 15.0
HTML_ENV = SandboxedEnvironment(autoescape=True)
TEXT_ENV = SandboxedEnvironment(autoescape=False)


def _everyone(principal: Principal | None) -> Any:
    return None


@functools.lru_cache(maxsize=64)
def _compile(env: SandboxedEnvironment, source: str, field: str) -> Any:
    """The compiled template (cached: a mailing renders the same three for every recipient)."""
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed.field(field, f"template error on line {exc.lineno}: {exc.message}") from None


async def _prepare(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    for key in ("status", "started_at", "finished_at", "created_by"):
        values.pop(key, None)
    if existing is not None and existing["status"] != "draft":
        raise ValidationFailed.field("status", "only a draft can be changed")
    _compile(TEXT_ENV, values.get("subject", ""), "subject")
    _compile(HTML_ENV, values.get("html", ""), "html")
    _compile(TEXT_ENV, values.get("text", ""), "text")
    if existing is None and not (values.get("html") or values.get("text")):
        raise ValidationFailed.field("html", "give the HTML or the text of the message")
    if values.get("segment_id") is not None and not await Segment.exists().where(
        Segment.id == values["segment_id"]
    ):
        raise ValidationFailed.field("segment_id", f"no segment {values['segment_id']}")
    if existing is None:
        values["created_by"] = principal.user_id or None
        values["status"] = "draft"
    return values


MAILING = service.EntitySpec(
    name="marketing.mailing",
    table=Mailing,
    permission="marketing.mailing",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare,
    order_fields=("id",),
    permission_overrides={
        "read": "marketing.campaign.read",
        "write": "marketing.mailing.send",
        "delete": "marketing.mailing.send",
    },
)


# --------------------------------------------------------------------------- rendering


def _text_of(html: str) -> str:
    text = re.sub(r"(?is)<(script|style).*?</\1>", "", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</h\d>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    import html as html_module

    return re.sub(r"\n{3,}", "\n\n", html_module.unescape(text)).strip()


def render(
    mailing: dict[str, Any], party: dict[str, Any], email: str, unsubscribe_url: str
) -> dict[str, str]:
    custom = party.get("custom") or {}
    if isinstance(custom, str):
        custom = json.loads(custom)
    context = {
        "party": {
            "name": party.get("name", ""),
            "kind": party.get("kind", ""),
            "status": party.get("status", ""),
            "custom": custom,
            "email": email,
        },
        "mailing": {"name": mailing["name"]},
        "unsubscribe_url": unsubscribe_url,
    }
    subject = " ".join(_compile(TEXT_ENV, mailing["subject"], "subject").render(context).split())[:300]
    html = (
        nh3.clean(_compile(HTML_ENV, mailing["html"] or "", "html").render(context))
        if mailing["html"]
        else ""
    )
    text = _compile(TEXT_ENV, mailing["text"], "text").render(context) if mailing["text"] else _text_of(html)
    return {"subject": subject, "html": html, "text": text}


async def _secret() -> bytes:
    row = await Setting.select(Setting.value).where(Setting.key == "unsubscribe_secret").first()
    if row is None:
        value = {"key": secrets.token_hex(32)}
        await db.raw(
            "INSERT INTO marketing_setting (key, value) VALUES ('unsubscribe_secret', {}) ON "
            "CONFLICT (key) DO NOTHING",
            json.dumps(value),
        )
        row = await Setting.select(Setting.value).where(Setting.key == "unsubscribe_secret").first()
    value = row["value"]
    if isinstance(value, str):
        value = json.loads(value)
    return bytes.fromhex(value["key"])


def sign(secret: bytes, recipient_id: int, email: str) -> str:
    return hmac.new(secret, f"{recipient_id}:{email}".encode(), hashlib.sha256).hexdigest()[:40]


def unsubscribe_url(base: str, secret: bytes, recipient_id: int, email: str, page: bool = False) -> str:
    """The one-click URL (``List-Unsubscribe``, POST) or, ``page=True``, the page a person
    opens from the message's body (a button that posts)."""
    query = urlencode({"r": recipient_id, "t": sign(secret, recipient_id, email)})
    path = "/marketing/unsubscribe" if page else "/api/marketing/unsubscribe"
    return f"{base.rstrip('/')}{path}?{query}"


async def unsubscribe(recipient_id: int, token: str) -> bool:
    """One-click unsubscribe; False when the link is not genuine."""
    row = await MailingRecipient.select().where(MailingRecipient.id == recipient_id).first()
    if row is None or not hmac.compare_digest(sign(await _secret(), recipient_id, row["email"]), token):
        return False
    await db.raw(
        "INSERT INTO marketing_unsubscribe (email, party_id, mailing_id, at) VALUES ({}, {}, {}, {}) "
        "ON CONFLICT (email) DO NOTHING",
        row["email"],
        row["party_id"],
        row["mailing_id"],
        clock.now(),
    )
    await audit.record(
        "unsubscribe", "marketing.mailing", row["mailing_id"], detail=f"recipient {recipient_id}"
    )
    return True


async def preview(principal: Principal, mailing_id: int, party_id: int) -> dict[str, str]:
    from tessera.entities.parties import PARTY

    mailing = await service.get(MAILING, principal, mailing_id)
    party = await service.get(PARTY, principal, party_id)
    email = (party.get("emails") or [{}])[0].get("address", "") if party.get("emails") else ""
    return render(mailing, party, email, "https://example.invalid/unsubscribe")


# --------------------------------------------------------------------------- starting


def _first_email(alias: str) -> str:
    if db.is_postgres():
        return f"LOWER({alias}.emails->0->>'address')"
    return f"LOWER(json_extract({alias}.emails, '$[0].address'))"


async def start(principal: Principal, mailing_id: int) -> dict[str, Any]:
    """Write the ledger and queue the sending job (once)."""
    MAILING.require(principal, "write")
    async with db.transaction():
        mailing = await service.get_for_write(MAILING, principal, mailing_id)
        if mailing["status"] != "draft":
            raise Conflict(f"The mailing is {mailing['status']}, not a draft")
        if mailing["segment_id"] is None:
            raise ValidationFailed.field("segment_id", "choose the segment to send to")
        segment = (
            await Segment.select().where(Segment.id == mailing["segment_id"]).first().output(load_json=True)
        )
        if segment is None:
            raise NotFound(f"No segment {mailing['segment_id']}")
        query = Party.select(Party.id).where(await segments.segment_where(segment))
        visible = party_visibility(principal)
        if visible is not None:
            query = query.where(visible)
        email = _first_email("p")
        sql = (
            "INSERT INTO marketing_mailing_recipient (mailing_id, party_id, email, status, "
            "message_id, error) "
            f"SELECT {{}}, p.id, {email}, 'queued', '', '' FROM party p WHERE p.id IN ({{}}) "
            f"AND {email} IS NOT NULL AND {email} <> '' "
            # NOT EXISTS rather than NOT IN: a long list (beyond work_mem) is not rescanned per
            # party, and a NULL in it does not empty the result.
            f"AND NOT EXISTS (SELECT 1 FROM marketing_unsubscribe u WHERE u.email = {email})"
        )
        suppressed = revenue.suppression_sql() if mailing["promotional"] else None
        if suppressed:
            sql += f" AND NOT EXISTS (SELECT 1 FROM ({suppressed}) sup WHERE sup.party_id = p.id)"
        sql += " ORDER BY p.id ON CONFLICT (mailing_id, email) DO NOTHING"
        await db.raw(sql, mailing_id, query.querystrings[0])
        count = await MailingRecipient.count().where(MailingRecipient.mailing_id == mailing_id)
        now = clock.now()
        await Mailing.update({Mailing.status: "sending", Mailing.started_at: now}).where(
            Mailing.id == mailing_id
        )
        await jobs.enqueue(
            KIND, {"mailing_id": mailing_id}, dedup_key=f"marketing.mailing:{mailing_id}", max_attempts=20
        )
        await audit.record("send", "marketing.mailing", mailing_id, detail=f"{count} recipients")
    return {**mailing, "status": "sending", "started_at": now, "recipients": count}


async def progress(principal: Principal, mailing_id: int) -> dict[str, Any]:
    mailing = await service.get(MAILING, principal, mailing_id)
    rows = await db.raw(
        "SELECT status, COUNT(*) AS n FROM marketing_mailing_recipient WHERE mailing_id = {} GROUP BY status",
        mailing_id,
    )
    counts = {s: 0 for s in ("queued", "sending", "sent", "failed", "late", "skipped", "bounced")}
    counts.update({r["status"]: int(r["n"]) for r in rows})
    return {"mailing_id": mailing_id, "status": mailing["status"], **counts}


# --------------------------------------------------------------------------- the job


async def _mark(recipient_id: int, **values: Any) -> None:
    await MailingRecipient.update({getattr(MailingRecipient, k): v for k, v in values.items()}).where(
        MailingRecipient.id == recipient_id
    )


async def send_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    settings = ctx.settings
    if settings is None or not settings.smtp_host:
        raise jobs.PermanentFailure("SMTP is not configured (smtp_host); retry the job once it is")
    mailing_id = int(payload["mailing_id"])
    mailing = await Mailing.select().where(Mailing.id == mailing_id).first()
    if mailing is None or mailing["status"] != "sending":
        return {"sent": 0}
    mail_from = settings.mail_from or "tessera@tessera.localhost"
    domain = mail_from.rpartition("@")[2].strip(">") or "tessera.localhost"
    base = settings.public_url or "http://localhost:8000"
    secret = await _secret()
    pause = 60.0 / mailing["per_minute"] if mailing["per_minute"] and mailing["per_minute"] < 60000 else 0.0
    sent = 0
    beat = time.monotonic()  # the claim was just made
    # One SMTP connection for the run (reopened after an error), not one per message.
    async with SMTPSession(settings) as smtp:
        while True:
            now = clock.now()
            if mailing["send_before"] is not None and now > mailing["send_before"]:
                await MailingRecipient.update({MailingRecipient.status: "late"}).where(
                    MailingRecipient.mailing_id == mailing_id,
                    MailingRecipient.status.is_in(["queued", "sending"]),
                )
                await Mailing.update({Mailing.status: "expired", Mailing.finished_at: now}).where(
                    Mailing.id == mailing_id
                )
                break
            batch = (
                await MailingRecipient.select()
                .where(
                    MailingRecipient.mailing_id == mailing_id,
                    MailingRecipient.status.is_in(["queued", "sending"]),
                )
                .order_by(MailingRecipient.id)
                .limit(BATCH)
            )
            if not batch:
                await Mailing.update({Mailing.status: "sent", Mailing.finished_at: now}).where(
                    Mailing.id == mailing_id
                )
                break
            parties = {
                p["id"]: p
                for p in await Party.select(
                    Party.id, Party.name, Party.kind, Party.status, Party.custom
                ).where(Party.id.is_in([r["party_id"] for r in batch]))
            }
            gone = {
                u["email"]
                for u in await Unsubscribe.select(Unsubscribe.email).where(
                    Unsubscribe.email.is_in([r["email"] for r in batch])
                )
            }
            for r in batch:
                if time.monotonic() - beat > HEARTBEAT:
                    if not await ctx.heartbeat():
                        # Another worker holds the job now (this one stalled past its lease):
                        # stop before sending anything more, so nobody gets a message twice.
                        return {"sent": sent, "stopped": "the job was taken over"}
                    beat = time.monotonic()
                if r["email"] in gone:
                    await _mark(r["id"], status="skipped", error="unsubscribed")
                    continue
                message_id = r["message_id"] or make_msgid(domain=domain)
                if r["status"] != "sending" or not r["message_id"]:
                    await _mark(r["id"], status="sending", message_id=message_id)
                url = unsubscribe_url(base, secret, r["id"], r["email"])
                page = unsubscribe_url(base, secret, r["id"], r["email"], page=True)
                body = render(mailing, parties.get(r["party_id"], {}), r["email"], page)
                message = compose(
                    {
                        "to": [r["email"]],
                        "subject": body["subject"],
                        "text": body["text"],
                        "html": body["html"] or None,
                        "message_id": message_id,
                        "headers": {
                            "List-Unsubscribe": f"<{url}>",
                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                        },
                    },
                    mail_from,
                )
                try:
                    await smtp.deliver(message)
                except jobs.PermanentFailure as exc:
                    await _mark(r["id"], status="failed", error=str(exc)[:1000])
                    continue
                # Committed only now: the server has accepted this message.
                await _mark(r["id"], status="sent", sent_at=clock.now())
                sent += 1
                if pause:
                    await asyncio.sleep(pause)
            await ctx.progress(sent)
    return {"sent": sent}


async def timeline(party_id: int) -> list[dict[str, Any]]:
    """Sent mailings on the recipient's card."""
    rows = await MailingRecipient.select(
        MailingRecipient.sent_at,
        MailingRecipient.mailing_id,
        MailingRecipient.mailing_id.name,
        MailingRecipient.mailing_id.created_by,
    ).where(MailingRecipient.party_id == party_id, MailingRecipient.status == "sent")
    return [
        {
            "kind": "marketing.mailing",
            "at": r["sent_at"],
            "id": r["mailing_id"],
            "user_id": r["mailing_id.created_by"],
            "title": r["mailing_id.name"],
            "status": "sent",
            "detail": "",
        }
        for r in rows
    ]
