"""Mailbox status and quarantine pages for admins (issue 16.3): each IMAP mailbox's poll state,
and quarantined messages an admin retries or ignores (also through the API)."""

from __future__ import annotations

from typing import Any

from tessera.config import ImapMailbox
from tessera.entities.tables import AuditLog, MailMailbox, MailMessage


async def test_admins_see_mailbox_state_and_ignore_a_quarantined_message(crm: Any) -> None:
    box = ImapMailbox(name="support", host="imap.example.com", username="support@example.com")
    crm.app.state.settings = crm.settings.with_(imap_mailboxes=(box,))
    await MailMailbox.insert(
        MailMailbox(name="support", last_error="login as support@example.com refused", failures=3)
    )
    failed = await MailMessage.insert(
        MailMessage(message_id="broken@x", mailbox="support", thread_id="broken@x", subject="Invoice 17",
                    status="failed", error="database hiccup")
    ).returning(MailMessage.id)  # fmt: skip
    message_id = failed[0]["id"]
    admin = await crm.user("admin")
    csrf = await crm.sign_in(admin)
    page = await crm.client.get("/app/mail/mailboxes")
    assert page.status_code == 200
    assert "login as support@example.com refused" in page.text and "Invoice 17" in page.text
    assert "database hiccup" in page.text
    r = await crm.client.post(
        f"/app/mail/mailboxes/quarantine/{message_id}/ignore", data={"csrf_token": csrf}
    )
    assert r.status_code == 303
    row = await MailMessage.select(MailMessage.status).where(MailMessage.id == message_id).first()
    assert row["status"] == "ignored"
    assert await AuditLog.exists().where(AuditLog.action == "ignore", AuditLog.entity == "mail_message")
    crm.client.cookies.clear()
    r = await crm.post(f"/api/mail/quarantine/{message_id}/ignore", admin)
    assert r.status_code == 404  # no longer quarantined

    manager = await crm.user("manager")
    await crm.sign_in(manager)
    assert (await crm.client.get("/app/mail/mailboxes")).status_code == 403
    crm.client.cookies.clear()
