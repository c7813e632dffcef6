"""Bounce processing: a hard-bounce DSN read from a real bounce mailbox (dovecot, through the
kernel's IMAP reader and ``tessera_inbound_email``) and complaints posted to the webhook
suppress the address (the ledger row becomes ``bounced``); a soft bounce changes nothing; the
next mailing leaves the suppressed addresses out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from imap_helpers import PASSWORD, Dovecot, dovecot_fixture

pytestmark = pytest.mark.plugins("marketing")

BOUNCES = "bounces@crm.example"


@pytest.fixture
def imap() -> Iterator[Dovecot]:
    yield from dovecot_fixture([BOUNCES])


def dsn(recipient: str, action: str, status: str, original_id: str) -> bytes:
    """A delivery status notification as Postfix writes it (RFC 3464)."""
    return f"""From: MAILER-DAEMON@mx.client.example (Mail Delivery System)
To: {BOUNCES}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{original_id}-{action}@mx.client.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.client.example
Arrival-Date: Mon,  2 Mar 2026 09:00:00 +0000

Final-Recipient: rfc822; {recipient.upper()}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected

--BOUND
Content-Type: text/rfc822-headers

From: news@crm.example
To: {recipient}
Subject: Spring prices
Message-ID: <{original_id}>

--BOUND--
""".replace("\n", "\r\n").encode()


def arf(recipient: str, original_id: str) -> bytes:
    """A complaint in the Abuse Reporting Format (RFC 5965), as mailbox providers send it."""
    return f"""From: feedback@mail.example
To: {BOUNCES}
Subject: Complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an e-mail abuse report.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeISP/1.0
Version: 1
Original-Rcpt-To: {recipient}

--ARF
Content-Type: message/rfc822

From: news@crm.example
To: {recipient}
Subject: Spring prices
Message-ID: <{original_id}>

Hello
--ARF--
""".replace("\n", "\r\n").encode()


async def test_bounces_and_complaints_suppress_the_address(
    crm: Any, imap: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tessera import jobs, mail_in
    from tessera.config import ImapMailbox
    from tessera_marketing.tables import MailingRecipient, Unsubscribe

    admin = await crm.user("admin")
    for name in ("hard", "soft", "angry", "fine"):
        r = await crm.post(
            "/api/parties", admin, json={"name": name, "emails": [{"address": f"{name}@client.example"}]}
        )
        assert r.status_code == 201
    segment = await crm.post("/api/marketing/segments", admin, json={"name": "All", "rules": {"all": []}})
    first = await crm.post(
        "/api/marketing/mailings",
        admin,
        json={
            "name": "Spring",
            "subject": "Spring prices",
            "html": "<p>Hi</p>",
            "segment_id": segment.json()["id"],
        },
    )
    assert (await crm.post(f"/api/marketing/mailings/{first.json()['id']}/send", admin)).status_code == 200
    # As the worker leaves them once the SMTP server accepted each (test_marketing_mailing.py).
    rows = await MailingRecipient.select().where(MailingRecipient.mailing_id == first.json()["id"])
    ids = {}
    for row in rows:
        ids[row["email"]] = f"m{row['id']}@crm.example"
        await MailingRecipient.update(
            {MailingRecipient.status: "sent", MailingRecipient.message_id: ids[row["email"]]}
        ).where(MailingRecipient.id == row["id"])

    # The bounce mailbox: a hard bounce and a soft one (delayed), through the kernel's reader.
    imap.append(BOUNCES, dsn("hard@client.example", "failed", "5.1.1", ids["hard@client.example"]))
    imap.append(BOUNCES, dsn("soft@client.example", "delayed", "4.2.2", ids["soft@client.example"]))
    box = ImapMailbox(
        name="bounces",
        host="127.0.0.1",
        port=imap.port,
        security="none",
        username=BOUNCES,
        password=PASSWORD,
        role="bounces",
    )
    settings = crm.settings.with_(imap_mailboxes=(box,))
    [result] = await mail_in.poll_all(settings)
    assert (result.outcome, result.stored) == ("ok", 2), result
    from tessera.entities.tables import BackgroundJob

    await jobs.work(crm.pm, settings)  # (the mailing's own job fails: no SMTP server here)
    handed = await BackgroundJob.select(BackgroundJob.status).where(BackgroundJob.kind == mail_in.KIND)
    assert [j["status"] for j in handed] == ["done", "done"]
    status = {
        r["email"]: r["status"]
        for r in await MailingRecipient.select(MailingRecipient.email, MailingRecipient.status)
    }
    assert status == {
        "hard@client.example": "bounced",
        "soft@client.example": "sent",
        "angry@client.example": "sent",
        "fine@client.example": "sent",
    }
    suppressed = await Unsubscribe.select(Unsubscribe.email, Unsubscribe.reason)
    assert suppressed == [{"email": "hard@client.example", "reason": "hard_bounce"}]

    # The webhook: not configured -> 404; wrong secret -> 401; a malformed event -> 422.
    hook = "/api/marketing/bounces"
    complaint = {
        "events": [
            {
                "email": "Angry@Client.example",
                "type": "complaint",
                "message_id": f"<{ids['angry@client.example']}>",
            }
        ]
    }
    assert (await crm.client.post(hook, json=complaint)).status_code == 404
    monkeypatch.setenv("TESSERA_MARKETING_BOUNCE_SECRET", "s3cret")
    assert (
        await crm.client.post(hook, json=complaint, headers={"X-Tessera-Bounce-Secret": "no"})
    ).status_code == 401
    headers = {"X-Tessera-Bounce-Secret": "s3cret"}
    r = await crm.client.post(
        hook, json={"events": [{"email": "x@y.example", "type": "spam"}]}, headers=headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "events[0].type"
    r = await crm.client.post(hook, json=complaint, headers=headers)
    assert r.status_code == 200 and r.json() == {"suppressed": 1, "bounced": 1, "ignored": 0}
    assert (await crm.client.post(hook, json=complaint, headers=headers)).json()["suppressed"] == 0  # once
    # A raw complaint (ARF) posted as it arrived.
    r = await crm.client.post(
        hook,
        content=arf("soft@client.example", ids["soft@client.example"]),
        headers={**headers, "Content-Type": "message/rfc822"},
    )
    assert r.status_code == 200 and r.json()["suppressed"] == 1, r.text
    progress = (await crm.get(f"/api/marketing/mailings/{first.json()['id']}/progress", admin)).json()
    assert (progress["sent"], progress["bounced"]) == (1, 3)
    reasons = {
        r["email"]: r["reason"] for r in await Unsubscribe.select(Unsubscribe.email, Unsubscribe.reason)
    }
    assert reasons == {
        "hard@client.example": "hard_bounce",
        "angry@client.example": "complaint",
        "soft@client.example": "complaint",
    }

    # The next mailing leaves the suppressed addresses out.
    second = await crm.post(
        "/api/marketing/mailings",
        admin,
        json={"name": "Summer", "subject": "Summer", "html": "<p>Hi</p>", "segment_id": segment.json()["id"]},
    )
    await crm.post(f"/api/marketing/mailings/{second.json()['id']}/send", admin)
    ledger = await MailingRecipient.select(MailingRecipient.email).where(
        MailingRecipient.mailing_id == second.json()["id"]
    )
    assert [r["email"] for r in ledger] == ["fine@client.example"]
