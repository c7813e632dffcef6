"""E-mail in (issue 16.3) against a real IMAP server (dovecot, tests/imap_helpers.py): messages
land once as e-mail activities on the right party's card with their attachments, replies
thread with their original, two workers polling at once store one copy, unknown senders wait
in triage (API and web page), plugins get each message through ``tessera_inbound_email``, and a
wrong password is a recorded, readable error with back-off, not a crash loop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from entity_helpers import TESSERA_CLI, new_party
from imap_helpers import PASSWORD, Dovecot, dovecot_fixture, message
from tessera import jobs, mail_in, scheduler
from tessera.config import ImapMailbox, load_settings
from tessera.entities.tables import (
    Activity,
    Attachment,
    AuditLog,
    BackgroundJob,
    JobRun,
    MailMailbox,
    MailMessage,
    Party,
)
from tessera.plugins import get_plugin_manager
from tessera_sdk.plugin import hookimpl

SUPPORT = "support@crm.example"
SALES = "sales@crm.example"
PDF = b"%PDF-1.4\n% a small contract\n" + bytes(range(256))


@pytest.fixture
def imap() -> Iterator[Dovecot]:
    yield from dovecot_fixture([SUPPORT, SALES])


def _box(server: Dovecot, user: str = SUPPORT, name: str = "support", **changes: Any) -> ImapMailbox:
    values: dict[str, Any] = {
        "name": name,
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": user,
        "password": PASSWORD,
        "role": "support" if name == "support" else "general",
    }
    return ImapMailbox(**(values | changes))


def _settings(crm: Any, *boxes: ImapMailbox) -> Any:
    return crm.settings.with_(imap_mailboxes=boxes)


async def _client(crm: Any, admin: dict[str, Any], **values: Any) -> dict[str, Any]:
    return await new_party(crm, admin, **values)


async def _email_activities(party_id: int) -> list[dict[str, Any]]:
    return list(
        await Activity.select()
        .where(Activity.party_id == party_id, Activity.type == "email")
        .order_by(Activity.id)
        .output(load_json=True)
    )


async def test_message_from_a_known_contact_lands_on_its_party_card_with_the_attachment(
    crm: Any, imap: Dovecot
) -> None:
    admin = await crm.user("admin")
    client = await _client(crm, admin, name="Client Ltd")
    other = await _client(crm, admin, name="Other Ltd", emails=[{"address": "boss@other.example"}])
    r = await crm.post(
        "/api/contacts",
        admin,
        json={"name": "Ann", "party_id": client["id"], "emails": [{"address": "Ann@Client.example"}]},
    )
    assert r.status_code == 201, r.text
    contact = r.json()
    imap.append(
        SUPPORT,
        message(
            '"Ann Smith" <ANN@client.EXAMPLE>',
            SUPPORT,
            "Contract for signing",
            "Please find the contract attached.",
            attachments=[("contract.pdf", PDF, "application/pdf")],
        ),
    )
    # STARTTLS against the server's certificate (a throwaway CA), as a real deployment would.
    box = _box(imap, host="localhost", security="starttls", ca_file=imap.ca_file)
    [result] = await mail_in.poll_all(_settings(crm, box))
    assert (result.outcome, result.stored, result.error) == ("ok", 1, "")

    card = (await crm.get(f"/api/parties/{client['id']}/card", admin)).json()
    assert "Contract for signing" in str(card)
    [activity] = await _email_activities(client["id"])
    assert activity["direction"] == "in" and activity["status"] == "done"
    assert activity["description"] == "Please find the contract attached."
    assert activity["contact_id"] == contact["id"]
    assert await _email_activities(other["id"]) == []
    files = (await crm.get(f"/api/attachments?party_id={client['id']}", admin)).json()["items"]
    assert [(f["filename"], f["content_type"], f["subject_ref"]) for f in files] == [
        ("contract.pdf", "application/pdf", f"activity:{activity['id']}")
    ]
    content = await crm.get(f"/api/attachments/{files[0]['id']}/content", admin)
    assert content.content == PDF


async def test_a_reply_threads_with_its_original(crm: Any, imap: Dovecot) -> None:
    admin = await crm.user("admin")
    client = await _client(crm, admin, emails=[{"address": "buyer@client.example"}])
    original = message(
        "buyer@client.example", SUPPORT, "Order 42", "Where is my order?", message_id="<q1@client.example>"
    )
    reply = message(
        SUPPORT,
        "buyer@client.example",
        "Re: Order 42",
        "It ships today.",
        message_id="<a1@crm.example>",
        in_reply_to="<q1@client.example>",
        references="<q1@client.example>",
    )
    again = message(
        "buyer@client.example",
        SUPPORT,
        "Re: Order 42",
        "Thanks!",
        in_reply_to="<a1@crm.example>",
        references="<q1@client.example> <a1@crm.example>",
    )
    # Implicit TLS (imaps) this time.
    box = _box(imap, host="localhost", port=imap.ssl_port, security="ssl", ca_file=imap.ca_file)
    settings = _settings(crm, box)
    imap.append(SUPPORT, original)
    await mail_in.poll_all(settings)
    imap.append(SUPPORT, reply)
    imap.append(SUPPORT, again)
    await mail_in.poll_all(settings)
    rows = await MailMessage.select().order_by(MailMessage.id).output(load_json=True)
    assert [r["message_id"] for r in rows][:2] == ["q1@client.example", "a1@crm.example"]
    assert {r["thread_id"] for r in rows} == {"q1@client.example"}
    assert rows[1]["in_reply_to"] == "q1@client.example"
    assert rows[2]["reference_ids"] == ["q1@client.example", "a1@crm.example"]
    activities = await _email_activities(client["id"])
    assert len(activities) == 3
    assert {a["custom"]["email_thread_id"] for a in activities} == {"q1@client.example"}


async def test_polling_twice_or_by_two_workers_at_once_stores_one_copy(crm: Any, imap: Dovecot) -> None:
    admin = await crm.user("admin")
    client = await _client(crm, admin, emails=[{"address": "ann@client.example"}])
    for i in range(4):
        imap.append(
            SUPPORT,
            message(
                "ann@client.example", SUPPORT, f"Letter {i}", f"Text {i}", message_id=f"<m{i}@client.example>"
            ),
        )
    # The same message delivered twice to the mailbox (two UIDs, one Message-ID).
    imap.append(
        SUPPORT,
        message("ann@client.example", SUPPORT, "Letter 0", "Text 0", message_id="<m0@client.example>"),
    )
    box = _box(imap)
    settings = _settings(crm, box)
    # Two workers (on PostgreSQL: two connections) fetch the same UIDs and race to store them.
    results = await asyncio.gather(mail_in.poll_mailbox(settings, box), mail_in.poll_mailbox(settings, box))
    assert all(r.outcome == "ok" for r in results), results
    assert sum(r.stored for r in results) == 4
    assert sum(r.duplicates for r in results) == 6  # 5 fetched each, 4 + 1 copies stored once
    assert len(await _email_activities(client["id"])) == 4
    assert await MailMessage.count() == 4
    state = await MailMailbox.select().where(MailMailbox.name == "support").first()
    assert state["last_uid"] == 5 and state["uidvalidity"] > 0

    # The checkpoint: a later poll fetches nothing old; a new message only.
    again = await mail_in.poll_mailbox(settings, box)
    assert (again.stored, again.duplicates) == (0, 0)
    imap.append(SUPPORT, message("ann@client.example", SUPPORT, "Letter 5", "Text 5"))
    again = await mail_in.poll_mailbox(settings, box)
    assert (again.stored, again.duplicates) == (1, 0)
    # A lost checkpoint (or a new UIDVALIDITY) reads the folder again without a second copy.
    await MailMailbox.update({MailMailbox.last_uid: 0}).where(MailMailbox.name == "support")
    again = await mail_in.poll_mailbox(settings, box)
    assert (again.stored, again.duplicates) == (0, 6)
    assert len(await _email_activities(client["id"])) == 5
    assert await Attachment.count() == 0


async def test_unknown_sender_waits_in_triage_and_create_party_takes_its_messages(
    crm: Any, imap: Dovecot
) -> None:
    admin = await crm.user("admin")
    manager = await crm.user("manager")
    imap.append(
        SUPPORT,
        message(
            '"Peter Newman" <Peter@New.example>',
            SUPPORT,
            "Price request",
            "How much is it?",
            attachments=[("specs.txt", b"100 units", "text/plain")],
        ),
    )
    imap.append(SUPPORT, message("peter@new.example", SUPPORT, "Second question", "And delivery?"))
    imap.append(SUPPORT, message("spam@junk.example", SUPPORT, "Cheap watches", "Buy now"))
    imap.append(SUPPORT, message("olga@partner.example", SUPPORT, "Partnership", "Let us talk"))
    [result] = await mail_in.poll_all(_settings(crm, _box(imap)))
    assert (result.stored, result.unknown) == (4, 4)
    assert await Activity.count() == 0

    assert (await crm.get("/api/mail/triage", manager)).status_code == 403
    listed = (await crm.get("/api/mail/triage", admin)).json()
    assert {(m["from_address"], m["subject"]) for m in listed} == {
        ("peter@new.example", "Price request"),
        ("peter@new.example", "Second question"),
        ("spam@junk.example", "Cheap watches"),
        ("olga@partner.example", "Partnership"),
    }
    peter = next(m for m in listed if m["subject"] == "Price request")
    assert peter["from_name"] == "Peter Newman"
    assert peter["attachments"] == [
        {"filename": "specs.txt", "content_type": "text/plain", "size": 9, "error": ""}
    ]

    # Create party: a person named after the sender, with the address; both messages on it.
    r = await crm.post(f"/api/mail/triage/{peter['id']}/create-party", admin, json={})
    assert r.status_code == 201, r.text
    party_id = r.json()["party_id"]
    assert len(r.json()["message_ids"]) == 2
    party = (await crm.get(f"/api/parties/{party_id}", admin)).json()
    assert party["name"] == "Peter Newman" and party["kind"] == "person"
    assert [e["address"] for e in party["emails"]] == ["peter@new.example"]
    subjects = sorted(a["subject"] for a in await _email_activities(party_id))
    assert subjects == ["Price request", "Second question"]
    files = (await crm.get(f"/api/attachments?party_id={party_id}", admin)).json()["items"]
    assert [f["filename"] for f in files] == ["specs.txt"]
    again = await crm.post(f"/api/mail/triage/{peter['id']}/create-party", admin, json={})
    assert again.status_code == 422  # sorted already

    # Link: to a party the caller may change; the address joins it.
    partner = await _client(crm, admin, name="Partner GmbH")
    olga = next(m for m in listed if m["from_address"] == "olga@partner.example")
    hidden = await _client(crm, await crm.user("manager"), name="Someone else's")
    role = {
        "name": "triager",
        "permissions": ["party.*", "activity.*", "note.*", "mail.triage"],
        "scope": "own",
    }
    assert (await crm.post("/api/roles", admin, json=role)).status_code == 201
    triager = await crm.user("triager")
    refused = await crm.post(f"/api/mail/triage/{olga['id']}/link", triager, json={"party_id": hidden["id"]})
    assert refused.status_code == 404, refused.text
    r = await crm.post(f"/api/mail/triage/{olga['id']}/link", admin, json={"party_id": partner["id"]})
    assert r.status_code == 201, r.text
    linked = (await crm.get(f"/api/parties/{partner['id']}", admin)).json()
    assert [e["address"] for e in linked["emails"]] == ["olga@partner.example"]
    assert [a["subject"] for a in await _email_activities(partner["id"])] == ["Partnership"]

    # Ignore: gone from triage, on no card.
    spam = next(m for m in listed if m["from_address"] == "spam@junk.example")
    r = await crm.post(f"/api/mail/triage/{spam['id']}/ignore", admin)
    assert r.status_code == 201 and r.json()["message_ids"] == [spam["id"]]
    assert (await crm.get("/api/mail/triage", admin)).json() == []
    statuses = {r["from_address"]: r["status"] for r in await MailMessage.select()}
    assert statuses == {
        "peter@new.example": "created",
        "olga@partner.example": "linked",
        "spam@junk.example": "ignored",
    }
    audited = await AuditLog.select(AuditLog.entity_id, AuditLog.changes).where(
        AuditLog.entity == "mail_message", AuditLog.action == "triage", AuditLog.user_id == admin["id"]
    )
    assert len(audited) == 4

    # A later message from the created party's address matches by itself.
    imap.append(SUPPORT, message("PETER@new.example", SUPPORT, "Order", "I'll take it"))
    [result] = await mail_in.poll_all(_settings(crm, _box(imap)))
    assert (result.stored, result.unknown) == (1, 0)
    assert len(await _email_activities(party_id)) == 3


async def test_triage_web_page_lists_senders_and_creates_a_party(crm: Any, imap: Dovecot) -> None:
    admin = await crm.user("admin")
    imap.append(
        SUPPORT, message('"Mila Stranger" <mila@stranger.example>', SUPPORT, "Hello there", "Call me")
    )
    await mail_in.poll_all(_settings(crm, _box(imap)))
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": admin["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    page = await crm.client.get("/app/mail/triage")
    assert page.status_code == 200
    assert "mila@stranger.example" in page.text and "Hello there" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    row = await MailMessage.select(MailMessage.id).first()
    no_csrf = await crm.client.post(f"/app/mail/triage/{row['id']}/create-party", data={"name": "X"})
    assert no_csrf.status_code == 403
    done = await crm.client.post(
        f"/app/mail/triage/{row['id']}/create-party", data={"csrf_token": token, "name": "Mila S."}
    )
    assert done.status_code == 303, done.text
    party = await Party.select().where(Party.name == "Mila S.").first()
    assert party is not None
    assert [a["subject"] for a in await _email_activities(party["id"])] == ["Hello there"]
    page = await crm.client.get("/app/mail/triage")
    assert "mila@stranger.example" not in page.text
    # A refusal shows beside the field, the input kept (the API's struct decodes the form).
    imap.append(SUPPORT, message("lev@stranger.example", SUPPORT, "Question", "?"))
    await mail_in.poll_all(_settings(crm, _box(imap)))
    lev = (
        await MailMessage.select(MailMessage.id)
        .where(MailMessage.from_address == "lev@stranger.example")
        .first()
    )
    bad = await crm.client.post(
        f"/app/mail/triage/{lev['id']}/link", data={"csrf_token": token, "party_id": "abc"}
    )
    assert bad.status_code == 422 and 'value="abc"' in bad.text and "lev@stranger.example" in bad.text
    gone = await crm.client.post(
        f"/app/mail/triage/{lev['id']}/link", data={"csrf_token": token, "party_id": "999999"}
    )
    assert gone.status_code == 404 and "There is no such record" in gone.text
    ignored = await crm.client.post(f"/app/mail/triage/{lev['id']}/ignore", data={"csrf_token": token})
    assert ignored.status_code == 303
    assert (await MailMessage.select(MailMessage.status).where(MailMessage.id == lev["id"]).first())[
        "status"
    ] == "ignored"
    ru = await crm.client.get("/app/mail/triage", headers={"Accept-Language": "ru"})
    assert ru.status_code == 200


async def test_plugins_receive_each_message_through_the_hook(crm: Any, imap: Dovecot) -> None:
    admin = await crm.user("admin")
    client = await _client(crm, admin, emails=[{"address": "kate@client.example"}])
    got: list[mail_in.InboundEmail] = []

    async def tessera_inbound_email(message: mail_in.InboundEmail) -> None:
        got.append(message)

    pm = get_plugin_manager(crm.settings.with_(plugins=(), autoload_plugins=False))
    pm.register(SimpleNamespace(tessera_inbound_email=hookimpl(tessera_inbound_email)), name="service")
    imap.append(
        SUPPORT,
        message(
            "Kate <kate@client.example>",
            SUPPORT,
            "Printer broken",
            "<p>It <b>does not</b> print</p>",
            html="<p>It <b>does not</b> print<script>alert(1)</script></p>",
            message_id="<t1@client.example>",
            cc="boss@client.example",
        ),
    )
    settings = _settings(crm, _box(imap))
    await mail_in.poll_all(settings)
    await mail_in.poll_all(settings)
    ran = await jobs.work(pm, settings)
    assert [status for _id, status in ran] == ["done"]
    [msg] = got
    assert (msg.mailbox, msg.mailbox_role, msg.message_id, msg.thread_id) == (
        "support",
        "support",
        "t1@client.example",
        "t1@client.example",
    )
    assert (msg.from_address, msg.from_name, msg.to, msg.cc) == (
        "kate@client.example",
        "Kate",
        (SUPPORT,),
        ("boss@client.example",),
    )
    assert msg.subject == "Printer broken" and msg.party_ids == (client["id"],)
    assert len(msg.activity_ids) == 1 and "script" not in msg.html and "<b>does not</b>" in msg.html
    assert await jobs.work(pm, settings) == []  # handed over once


async def test_a_failing_hook_is_retried_until_the_plugin_takes_the_message(
    crm: Any, imap: Dovecot, frozen_clock: Any
) -> None:
    calls: list[str] = []

    def tessera_inbound_email(message: mail_in.InboundEmail) -> None:
        calls.append(message.message_id)
        if len(calls) == 1:
            raise RuntimeError("ticket service is down")

    pm = get_plugin_manager(crm.settings.with_(plugins=(), autoload_plugins=False))
    pm.register(SimpleNamespace(tessera_inbound_email=hookimpl(tessera_inbound_email)), name="service")
    imap.append(
        SUPPORT, message("new@person.example", SUPPORT, "Help", "please", message_id="<h1@person.example>")
    )
    settings = _settings(crm, _box(imap))
    await mail_in.poll_all(settings)
    assert [s for _id, s in await jobs.work(pm, settings)] == ["queued"]  # to be retried
    job = await BackgroundJob.select().where(BackgroundJob.kind == "mail.inbound").first()
    assert "ticket service is down" in job["error"]
    frozen_clock.advance(hours=1)
    assert [s for _id, s in await jobs.work(pm, settings)] == ["done"]
    assert calls == ["h1@person.example", "h1@person.example"]


async def test_wrong_password_is_a_recorded_readable_error_with_back_off(
    crm: Any, imap: Dovecot, frozen_clock: Any
) -> None:
    admin = await crm.user("admin")
    await _client(crm, admin, emails=[{"address": "ann@client.example"}])
    imap.append(SALES, message("ann@client.example", SALES, "For sales", "Hello sales"))
    wrong = _box(imap, password="not-the-password")
    good = _box(imap, user=SALES, name="sales")
    settings = _settings(crm, wrong, good)
    pm = get_plugin_manager(crm.settings.with_(plugins=(), autoload_plugins=False))
    await scheduler.sync_jobs(pm)
    assert "kernel.mail_in" in await scheduler.tick(pm, settings)
    run = await JobRun.select().where(JobRun.job_name == "kernel.mail_in").first()
    assert run["outcome"] == "ok", run["error"]  # the job itself did not crash
    state = await MailMailbox.select().where(MailMailbox.name == "support").first()
    assert state["failures"] == 1
    assert state["last_error"].startswith(f"login as {SUPPORT} refused by 127.0.0.1:")
    assert "not-the-password" not in state["last_error"]
    assert await MailMessage.count() == 1  # the other mailbox kept flowing
    crm.app.state.settings = settings  # the deployment's configuration, as the API reads it
    listed = (await crm.get("/api/mail/mailboxes", admin)).json()
    by_name = {m["name"]: m for m in listed}
    assert by_name["support"]["last_error"] == state["last_error"] and by_name["sales"]["last_error"] == ""
    assert all("password" not in m for m in listed)
    # Back-off: no new login attempt until the wait is over, then one, failing longer.
    logins = imap.log().count("auth failed") + imap.log().count("Login aborted")
    [waiting, _] = await mail_in.poll_all(settings)
    assert waiting.outcome == "waiting"
    assert imap.log().count("auth failed") + imap.log().count("Login aborted") == logins
    frozen_clock.advance(minutes=2)
    [failed, _] = await mail_in.poll_all(settings)
    assert failed.outcome == "failed"
    state = await MailMailbox.select().where(MailMailbox.name == "support").first()
    assert state["failures"] == 2 and (state["next_poll_at"] - state["last_poll_at"]).total_seconds() == 120
    # The password fixed, the next poll after the wait works and clears the error.
    frozen_clock.advance(minutes=3)
    [fixed, _] = await mail_in.poll_all(_settings(crm, _box(imap), good))
    assert fixed.outcome == "ok"
    state = await MailMailbox.select().where(MailMailbox.name == "support").first()
    assert (state["failures"], state["last_error"], state["next_poll_at"]) == (0, "", None)


async def test_a_message_that_fails_to_import_is_quarantined_and_the_rest_flow(
    crm: Any, imap: Dovecot
) -> None:
    admin = await crm.user("admin")
    client = await _client(crm, admin, emails=[{"address": "ann@client.example"}])
    # The attachment store is broken (a file where the attachment's folder should be): a
    # message with that attachment cannot be stored, one without still can.
    blocker = crm.settings.data_dir / "attachments" / hashlib.sha256(b"data").hexdigest()[:2]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    imap.append(
        SUPPORT,
        message(
            "ann@client.example",
            SUPPORT,
            "Blocked",
            "ok",
            message_id="<b1@client.example>",
            attachments=[("a.txt", b"data", "text/plain")],
        ),
    )
    imap.append(SUPPORT, message("new@stranger.example", SUPPORT, "Flows", "ok"))
    settings = _settings(crm, _box(imap))
    [result] = await mail_in.poll_all(settings)
    assert (result.outcome, result.failed, result.stored) == ("ok", 1, 1)
    state = await MailMailbox.select().where(MailMailbox.name == "support").first()
    assert state["last_uid"] == 2  # the checkpoint moved past it
    quarantined = (await crm.get("/api/mail/quarantine", admin)).json()
    assert [(q["message_id"], q["subject"]) for q in quarantined] == [("b1@client.example", "Blocked")]
    assert "Error" in quarantined[0]["error"] and blocker.name in quarantined[0]["error"]
    crm.app.state.settings = settings
    assert (await crm.get("/api/mail/mailboxes", admin)).json()[0]["quarantined"] == 1
    assert (await crm.get("/api/mail/quarantine", await crm.user("manager"))).status_code == 403
    # The cause fixed, the message is imported from its raw copy.
    blocker.unlink()
    retried = await crm.post(f"/api/mail/quarantine/{quarantined[0]['id']}/retry", admin)
    assert retried.status_code == 201 and retried.json()["status"] == "matched", retried.text
    assert [a["subject"] for a in await _email_activities(client["id"])] == ["Blocked"]
    assert (await crm.get("/api/mail/quarantine", admin)).json() == []
    assert len((await crm.get(f"/api/attachments?party_id={client['id']}", admin)).json()["items"]) == 1


async def test_a_message_over_the_size_limit_is_quarantined_unfetched_and_retried_on_demand(
    crm: Any, imap: Dovecot
) -> None:
    """One huge message (FreeScout's many-attachments case) never stops a mailbox."""
    admin = await crm.user("admin")
    client = await _client(crm, admin, emails=[{"address": "ann@client.example"}])
    big = b"%PDF" + os.urandom(20_000)
    imap.append(
        SUPPORT,
        message(
            "ann@client.example",
            SUPPORT,
            "Huge scan",
            "see attached",
            attachments=[("scan.pdf", big, "application/pdf")],
        ),
    )
    imap.append(SUPPORT, message("ann@client.example", SUPPORT, "Small note", "hello"))
    box = _box(imap, max_message_bytes=10_000)
    settings = _settings(crm, box)
    crm.app.state.settings = settings
    [result] = await mail_in.poll_all(settings)
    assert (result.outcome, result.stored, result.failed) == ("ok", 1, 1)
    assert [a["subject"] for a in await _email_activities(client["id"])] == ["Small note"]
    [held] = (await crm.get("/api/mail/quarantine", admin)).json()
    assert held["uid"] == 1 and "larger than max_message_bytes" in held["error"]
    boxes = await crm.get("/api/mail/mailboxes", admin)
    assert boxes.json()[0]["quarantined"] == 1 and PASSWORD not in boxes.text
    # An admin asks for it: fetched from the server now and imported with its attachment.
    retried = await crm.post(f"/api/mail/quarantine/{held['id']}/retry", admin)
    assert retried.status_code == 201 and retried.json()["status"] == "matched", retried.text
    assert sorted(a["subject"] for a in await _email_activities(client["id"])) == ["Huge scan", "Small note"]
    [scan] = [f for f in (await crm.get(f"/api/attachments?party_id={client['id']}", admin)).json()["items"]]
    assert (await crm.get(f"/api/attachments/{scan['id']}/content", admin)).content == big


async def test_a_message_the_server_cannot_hand_over_is_set_aside_after_three_polls(
    crm: Any, imap: Dovecot, frozen_clock: Any
) -> None:
    admin = await crm.user("admin")
    client = await _client(crm, admin, emails=[{"address": "ann@client.example"}])
    for i in range(3):
        imap.append(SUPPORT, message("ann@client.example", SUPPORT, f"Letter {i}", "text"))
    broken = imap.message_file(SUPPORT, 2)
    broken.chmod(0)  # dovecot fails its FETCH ("Internal error") and drops the connection
    settings = _settings(crm, _box(imap, timeout=3))
    crm.app.state.settings = settings
    outcomes = []
    for _ in range(4):
        [result] = await mail_in.poll_all(settings)
        outcomes.append((result.outcome, result.stored, result.failed))
        frozen_clock.advance(minutes=5)
    assert outcomes == [("failed", 1, 0), ("failed", 0, 0), ("ok", 0, 1), ("ok", 1, 0)]
    assert sorted(a["subject"] for a in await _email_activities(client["id"])) == ["Letter 0", "Letter 2"]
    [held] = (await crm.get("/api/mail/quarantine", admin)).json()
    assert held["uid"] == 2 and held["error"].startswith(
        "not fetched after 3 failed polls: fetching UID 2 failed"
    )
    state = await MailMailbox.select().where(MailMailbox.name == "support").first()
    assert (state["last_uid"], state["failures"], state["stuck_failures"], state["last_error"]) == (
        3,
        0,
        0,
        "",
    )
    imap.message_file(SUPPORT, 2).chmod(0o644)  # dovecot moved it from new/ to cur/
    retried = await crm.post(f"/api/mail/quarantine/{held['id']}/retry", admin)
    assert retried.status_code == 201 and retried.json()["status"] == "matched", retried.text
    assert len(await _email_activities(client["id"])) == 3


async def test_an_untrusted_certificate_is_refused_with_a_readable_error(crm: Any, imap: Dovecot) -> None:
    imap.append(SUPPORT, message("ann@client.example", SUPPORT, "Hello", "hi"))
    # No ca_file: the system CAs do not know the test server's throwaway CA.
    for box in (
        _box(imap, host="localhost", port=imap.ssl_port, security="ssl"),
        _box(imap, host="localhost", security="starttls", name="plain-then-tls"),
    ):
        [result] = await mail_in.poll_all(_settings(crm, box))
        assert result.outcome == "failed" and "certificate verify failed" in result.error, result.error
        assert result.error.startswith("TLS with localhost:")
    assert await MailMessage.count() == 0


def test_settings_read_mailboxes_and_take_the_password_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "tessera.toml"
    config.write_text(
        "[tessera]\n"
        "[[tessera.imap_mailboxes]]\n"
        'name = "support"\nhost = "imap.example.com"\nusername = "support@example.com"\n'
        'security = "starttls"\nrole = "support"\n'
    )
    settings = load_settings(config, env={"TESSERA_IMAP_SUPPORT_PASSWORD": "from-env-secret"})
    [box] = settings.imap_mailboxes
    assert (box.name, box.security, box.effective_port, box.folder, box.role) == (
        "support",
        "starttls",
        143,
        "INBOX",
        "support",
    )
    assert box.password == "from-env-secret" and "from-env-secret" not in repr(settings)
    assert box.own_addresses == {"support@example.com"}
    config.write_text(config.read_text().replace('"starttls"', '"tls"'))
    with pytest.raises(ValueError, match="must be 'ssl', 'starttls' or 'none'"):
        load_settings(config, env={})


def test_html_only_message_is_sanitised_and_read_as_text() -> None:
    raw = message("a@b.example", SUPPORT, "Promo", "x").as_bytes()
    from email import message_from_bytes, policy

    msg = message_from_bytes(raw, policy=policy.default)
    msg.set_content(
        '<p>Hello&nbsp;<b>you</b></p><script>steal()</script><img src=x onerror="bad()">', subtype="html"
    )
    parsed = mail_in.parse(msg.as_bytes())
    assert "script" not in parsed.html and "onerror" not in parsed.html and "<b>you</b>" in parsed.html
    assert parsed.text == "Hello\xa0you" or parsed.text == "Hello you"


async def test_the_worker_polls_the_configured_mailboxes(crm: Any, imap: Dovecot, tmp_path: Path) -> None:
    """``tessera worker --once`` with the mailbox in tessera.toml and the password in the
    environment stores the message."""
    admin = await crm.user("admin")
    client = await _client(crm, admin, emails=[{"address": "ann@client.example"}])
    imap.append(SUPPORT, message("ann@client.example", SUPPORT, "Via the worker", "Hello"))
    config = tmp_path / "tessera.toml"
    config.write_text(
        "[tessera]\n[[tessera.imap_mailboxes]]\n"
        f'name = "support"\nhost = "127.0.0.1"\nport = {imap.port}\nsecurity = "none"\n'
        f'username = "{SUPPORT}"\n'
    )
    env = {
        **os.environ,
        "TESSERA_CONFIG": str(config),
        "TESSERA_DATABASE_URL": crm.settings.resolved_database_url,
        "TESSERA_PLUGINS": "",
        "TESSERA_DATA_DIR": str(crm.settings.data_dir),
        "TESSERA_IMAP_SUPPORT_PASSWORD": PASSWORD,
    }
    done = await asyncio.to_thread(
        subprocess.run, [TESSERA_CLI, "worker", "--once"], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert PASSWORD.encode() not in done.stdout + done.stderr
    assert [a["subject"] for a in await _email_activities(client["id"])] == ["Via the worker"]
    # The same run handed it to plugins (the mail.inbound job is a kernel kind the worker knows).
    handed = await BackgroundJob.select(BackgroundJob.status).where(BackgroundJob.kind == "mail.inbound")
    assert [j["status"] for j in handed] == ["done"]
    assert b"kernel.mail_in" in done.stdout
