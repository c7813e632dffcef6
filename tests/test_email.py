"""E-mail out (issue 16.2): composed at once, sent by the worker as an ``email.send`` job to a
real SMTP server (aiosmtpd on a loopback port, STARTTLS with a throwaway CA, AUTH), retried on
4xx, failed at once on 5xx, and stored as an e-mail activity on the recipient party's card."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from entity_helpers import new_party
from mail_helpers import MailServer, _free_port
from tessera import email as mail
from tessera import events, jobs
from tessera.config import load_settings
from tessera.entities.tables import Activity, BackgroundJob
from tessera.errors import ValidationFailed

SECRET = "s3cret-Smtp-pa55word"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"crm" and data.password == SECRET.encode()
    return AuthResult(success=ok, handled=False, auth_data=data)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, Path]]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    yield authority, path


@pytest.fixture
async def smtp(ca: tuple[trustme.CA, Path]) -> AsyncIterator[MailServer]:
    """An SMTP server on a free loopback port that requires STARTTLS and AUTH."""
    import ssl

    authority, _ = ca
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    box = MailServer(port=_free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def settings(crm: Any, smtp: MailServer, ca: tuple[trustme.CA, Path]) -> Iterator[Any]:
    configured = crm.settings.with_(
        smtp_host="localhost",
        smtp_port=smtp.port,
        smtp_security="starttls",
        smtp_username="crm",
        smtp_password=SECRET,
        smtp_ca_file=str(ca[1]),
        mail_from="Tessera CRM <crm@example.com>",
    )
    mail.configure(configured)  # as boot() does for the process: From and Message-ID domain
    yield configured
    mail.configure(crm.settings)


async def _send(user: dict[str, Any] | None, *args: Any, **kwargs: Any) -> mail.QueuedEmail:
    token = events.set_actor(user["id"] if user else None)
    try:
        async with events.unit_of_work():
            return await mail.send_email(*args, **kwargs)
    finally:
        events._actor.reset(token)


async def _job(job_id: int) -> dict[str, Any]:
    return await BackgroundJob.select().where(BackgroundJob.id == job_id).first().output(load_json=True)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- sending


async def test_message_arrives_over_starttls_with_auth_and_lands_on_the_card(
    crm: Any, smtp: MailServer, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, ours and the SMTP client's
    manager = await crm.user("manager")
    party = await new_party(crm, manager, name="Globex", emails=[{"address": "Buyer@Globex.example"}])
    queued = await _send(
        manager,
        "Buyer@Globex.example",
        "Your invoice 42",
        "Dear buyer,\nplease find the invoice attached.",
        "<p>Dear buyer,</p><p>please find the invoice attached.</p>",
        party_id=party["id"],
        attachments=[mail.Attachment("invoice-42.pdf", b"%PDF-1.4 fake", "application/pdf")],
        headers={"Reply-To": "sales@example.com"},
    )
    assert smtp.received == []  # nothing leaves before the worker runs the job
    assert await jobs.work(crm.pm, settings) == [(queued.job_id, "done")]

    [(rcpt, message, login)] = smtp.received
    assert rcpt == ["Buyer@Globex.example"] and login == "crm"  # as written; matched case-blind
    assert message["From"] == "Tessera CRM <crm@example.com>"
    assert message["To"] == "Buyer@Globex.example"
    assert message["Subject"] == "Your invoice 42"
    assert message["Reply-To"] == "sales@example.com"
    assert message["Message-ID"] == queued.message_id and queued.message_id.endswith("@example.com>")
    assert message.get_body(("plain",)).get_content().startswith("Dear buyer,\nplease find")  # type: ignore[union-attr]
    assert "<p>Dear buyer,</p>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "invoice-42.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.4 fake"

    card = (await crm.get(f"/api/parties/{party['id']}/card", manager)).json()
    [item] = [i for i in card["timeline"] if i["kind"] == "activity.email"]
    assert (item["title"], item["status"], item["user_id"]) == ("Your invoice 42", "done", manager["id"])
    assert item["detail"].startswith("Dear buyer,")
    activity = (await crm.get(f"/api/activities/{item['id']}", manager)).json()
    assert (activity["direction"], activity["type"]) == ("out", "email")
    assert activity["custom"] == {"email_message_id": queued.message_id}
    job = (await crm.get(f"/api/jobs/background/{queued.job_id}", manager)).json()
    assert job["result"]["message_id"] == queued.message_id
    assert job["result"]["activity_ids"] == [item["id"]]

    # The password is in no log line and nowhere in the stored job.
    # (The test server's own "mail.log" logs the AUTH exchange: not ours.)
    client_side = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    assert client_side and not [line for line in client_side if SECRET in line]
    assert SECRET not in str(await _job(queued.job_id))


async def test_recipient_address_finds_the_contacts_party(crm: Any, smtp: MailServer, settings: Any) -> None:
    manager = await crm.user("manager")
    party = await new_party(crm, manager, name="Initech")
    contact = await crm.post(
        "/api/contacts",
        manager,
        json={"party_id": party["id"], "name": "Bill", "emails": [{"address": "bill@initech.example"}]},
    )
    assert contact.status_code == 201, contact.text
    unrelated = await new_party(crm, manager, name="Umbrella", emails=[{"address": "info@umbrella.example"}])
    queued = await _send(None, ["Bill <bill@initech.example>"], "TPS reports", "See the new cover sheet.")
    await jobs.work(crm.pm, settings)
    assert [r for r, _m, _l in smtp.received] == [["bill@initech.example"]]
    rows = await Activity.select().where(Activity.type == "email").output(load_json=True)
    assert [(r["party_id"], r["contact_id"], r["owner_id"]) for r in rows] == [
        (party["id"], contact.json()["id"], manager["id"])  # nobody asked: the party's owner
    ]
    assert rows[0]["custom"]["email_message_id"] == queued.message_id
    assert unrelated["id"] not in {r["party_id"] for r in rows}


async def test_message_to_nobody_known_is_sent_without_activity(
    crm: Any, smtp: MailServer, settings: Any
) -> None:
    queued = await _send(None, "stranger@example.org", "Hello", "Hi")
    assert await jobs.work(crm.pm, settings) == [(queued.job_id, "done")]
    assert len(smtp.received) == 1
    assert await Activity.count().where(Activity.type == "email") == 0


async def test_implicit_tls_port(crm: Any, ca: tuple[trustme.CA, Path]) -> None:
    import ssl

    authority, ca_file = ca
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    box = MailServer(port=_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port, ssl_context=server_context)
    controller.start()
    try:
        settings = crm.settings.with_(
            smtp_host="localhost", smtp_port=box.port, smtp_security="ssl", smtp_ca_file=str(ca_file)
        )
        queued = await _send(None, "a@example.org", "Over TLS", "body")
        assert await jobs.work(crm.pm, settings) == [(queued.job_id, "done")]
    finally:
        controller.stop()
    assert [m["Subject"] for _r, m, _l in box.received] == ["Over TLS"]


# --------------------------------------------------------------------------- failures


async def test_temporary_refusal_is_retried_with_backoff(
    crm: Any, smtp: MailServer, settings: Any, frozen_clock: Any
) -> None:
    manager = await crm.user("manager")
    party = await new_party(crm, manager, emails=[{"address": "ops@acme.example"}])
    smtp.replies = ["451 4.3.0 Mailbox busy, try again later"]
    queued = await _send(manager, "ops@acme.example", "Report", "Numbers")
    assert await jobs.work(crm.pm, settings) == [(queued.job_id, "queued")]
    row = await _job(queued.job_id)
    assert row["attempts"] == 1 and "451" in row["error"] and "try again later" in row["error"]
    assert frozen_clock() + jobs.BACKOFF_BASE <= row["run_at"]
    assert smtp.received == [] and await Activity.count().where(Activity.type == "email") == 0
    assert await jobs.work(crm.pm, settings) == []  # not before its back-off ends
    frozen_clock.set(row["run_at"])
    assert await jobs.work(crm.pm, settings) == [(queued.job_id, "done")]
    assert [m["Message-ID"] for _r, m, _l in smtp.received] == [queued.message_id]
    card = (await crm.get(f"/api/parties/{party['id']}/card", manager)).json()
    assert [i["title"] for i in card["timeline"] if i["kind"] == "activity.email"] == ["Report"]


async def test_permanent_refusal_fails_at_once(
    crm: Any, smtp: MailServer, settings: Any, frozen_clock: Any
) -> None:
    manager = await crm.user("manager")
    await new_party(crm, manager, emails=[{"address": "ops@acme.example"}])
    smtp.replies = ["554 5.7.1 Message rejected as spam"]
    queued = await _send(manager, "ops@acme.example", "Offer", "Cheap")
    assert await jobs.work(crm.pm, settings) == [(queued.job_id, "failed")]
    row = await _job(queued.job_id)
    assert row["attempts"] == 1 and "554" in row["error"] and "spam" in row["error"]
    frozen_clock.advance(days=2)
    assert await jobs.work(crm.pm, settings) == []
    assert smtp.received == [] and await Activity.count().where(Activity.type == "email") == 0


async def test_wrong_password_fails_without_showing_it(crm: Any, smtp: MailServer, settings: Any) -> None:
    queued = await _send(None, "a@example.org", "Hi", "Hi")
    wrong = settings.with_(smtp_password="not-" + SECRET)
    assert await jobs.work(crm.pm, wrong) == [(queued.job_id, "failed")]  # 535: permanent
    row = await _job(queued.job_id)
    assert "535" in row["error"] and SECRET not in row["error"]


async def test_unreachable_server_is_retried(crm: Any, settings: Any) -> None:
    queued = await _send(None, "a@example.org", "Hi", "Hi")
    down = settings.with_(smtp_port=_free_port())  # nothing listens there
    assert await jobs.work(crm.pm, down) == [(queued.job_id, "queued")]
    assert (await _job(queued.job_id))["attempts"] == 1


async def test_unconfigured_smtp_fails_with_a_clear_error(crm: Any) -> None:
    queued = await _send(None, "a@example.org", "Hi", "Hi")
    assert await jobs.work(crm.pm, crm.settings.with_(smtp_host="")) == [(queued.job_id, "failed")]
    assert "SMTP is not configured" in (await _job(queued.job_id))["error"]


async def test_bad_input_fails_in_the_callers_transaction(crm: Any) -> None:
    with pytest.raises(ValidationFailed) as bad_address:
        await _send(None, ["ok@example.org", "not an address"], "Hi", "Hi")
    assert bad_address.value.errors[0].field == "to.1"
    with pytest.raises(ValidationFailed):
        await _send(None, "a@example.org", "Hi", "Hi", headers={"X-Note": "line\r\nBcc: victim@example.org"})
    with pytest.raises(ValidationFailed):
        await _send(None, "a@example.org", "Hi", "Hi", headers={"From": "ceo@example.org"})
    assert await BackgroundJob.count() == 0


# --------------------------------------------------------------------------- settings


def test_smtp_settings_come_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "tessera.toml"
    config.write_text(
        '[tessera]\nsmtp_host = "mail.example.com"\nsmtp_security = "ssl"\nmail_from = "crm@example.com"\n'
    )
    settings = load_settings(config, env={"TESSERA_SMTP_PASSWORD": SECRET, "TESSERA_SMTP_USERNAME": "crm"})
    assert (settings.smtp_host, settings.smtp_security, settings.smtp_username) == (
        "mail.example.com",
        "ssl",
        "crm",
    )
    assert settings.smtp_password == SECRET
    assert SECRET not in repr(settings)
    with pytest.raises(ValueError, match="smtp_security"):
        load_settings(config, env={"TESSERA_SMTP_SECURITY": "tls1.0"})


async def test_no_endpoint_returns_the_smtp_password(crm: Any) -> None:
    admin = await crm.user("admin")
    crm.app.state.settings = crm.settings.with_(smtp_host="mail.example.com", smtp_password=SECRET)
    schema = (await crm.get("/schema/openapi.json")).json()
    paths = [p for p, item in schema["paths"].items() if "get" in item and "{" not in p]
    assert "/api/jobs/background" in paths
    # An event stream answers by holding the connection for its ``wait`` (55 s by default, most
    # of this test's time): ``wait=0`` gives the same answer at once.
    waits = {
        p for p in paths if any(q["name"] == "wait" for q in schema["paths"][p]["get"].get("parameters", []))
    }
    assert "/api/telephony/stream" in waits
    for path in [*paths, "/schema/openapi.json"]:
        response = await crm.get(path, admin, params={"wait": 0} if path in waits else None)
        assert response.status_code < 500, path
        assert SECRET not in response.text, path


async def test_a_session_sends_many_messages_over_one_connection(smtp: MailServer, settings: Any) -> None:
    greetings: list[str] = []

    async def ehlo(
        server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        greetings.append(hostname)  # twice per connection: before and after STARTTLS
        session.host_name = hostname  # what aiosmtpd does when no handler answers EHLO
        return responses

    smtp.handle_EHLO = ehlo  # type: ignore[attr-defined]

    def message(i: int) -> Any:
        return mail.compose(
            {"to": [f"r{i}@example.org"], "subject": f"N{i}", "text": "t", "message_id": f"<n{i}@x.org>"},
            settings.mail_from,
        )

    async with mail.SMTPSession(settings) as session:
        for i in range(3):
            await session.deliver(message(i))
    assert len(greetings) == 2  # one connection (one STARTTLS and login) for three messages
    smtp.replies = ["554 5.7.1 Message rejected as spam"]
    async with mail.SMTPSession(settings) as session:
        with pytest.raises(jobs.PermanentFailure, match="554"):
            await session.deliver(message(3))
        await session.deliver(message(4))  # on a new connection after the refusal
    assert len(greetings) == 6
    assert [rcpt for rcpt, _m, _l in smtp.received] == [[f"r{i}@example.org"] for i in (0, 1, 2, 4)]
    assert all(login == "crm" for _r, _m, login in smtp.received)
