"""Outbound webhooks (issue 16.5): delivered from the outbox at least once with retries and
back-off, signed with a timestamped HMAC the SDK verifier checks, logged per subscription, and
never sent to loopback, private, link-local or metadata addresses (at save, at delivery, through
redirects) unless an admin allows the network."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from entity_helpers import field_errors
from tessera import app as tessera_app
from tessera import db, jobs, webhooks
from tessera.entities.tables import AuditLog, BackgroundJob, DomainEvent, WebhookDelivery
from tessera_sdk.webhooks import InvalidSignature, verify_signature

LOCAL = ("127.0.0.0/8",)


class Receiver:
    """A real HTTP server on a loopback address: records every request, answers 500 to the
    first ``fail`` ones (or redirects to ``redirect_to``), 200 after."""

    def __init__(self, host: str = "127.0.0.1", fail: int = 0, redirect_to: str = "") -> None:
        self.host, self.fail, self.redirect_to = host, fail, redirect_to
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((headers, body))
                if receiver.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                elif len(receiver.requests) <= receiver.fail:
                    self.send_response(500)
                else:
                    receiver.accepted.append((headers, body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=3).start()
    yield r
    r.stop()


def _allow(crm: Any, networks: tuple[str, ...]) -> Any:
    """The admin's allow-list, as the API (save) and the worker (delivery) read it."""
    settings = crm.settings.with_(webhook_allowed_networks=networks)
    crm.app.state.settings = settings
    webhooks.configure(settings)
    return settings


async def _work(crm: Any, settings: Any) -> list[tuple[int, str]]:
    return await jobs.work(crm.pm, settings)


async def _subscribe(
    crm: Any, admin: dict[str, Any], url: str, types: list[str] | None = None
) -> dict[str, Any]:
    r = await crm.post("/api/webhooks", admin, json={"url": url, "event_types": types or ["party.*"]})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_flaky_receiver_down_during_a_restart_gets_the_event_once_signed(
    crm: Any, frozen_clock: Any, receiver: Receiver
) -> None:
    admin = await crm.user("admin")
    _allow(crm, ())
    r = await crm.post("/api/webhooks", admin, json={"url": receiver.url, "event_types": ["party.*"]})
    assert r.status_code == 422 and "url" in field_errors(r)  # loopback refused without the allowance
    settings = _allow(crm, LOCAL)
    sub = await _subscribe(crm, admin, receiver.url)
    secret = sub["secret"]
    assert secret.startswith("whsec_")
    listed = (await crm.get(f"/api/webhooks/{sub['id']}", admin)).json()
    assert "secret" not in listed  # shown once, at creation

    r = await crm.post("/api/parties", admin, json={"name": "Acme"})
    assert r.status_code == 201
    party_id = r.json()["id"]
    for _ in range(3):  # three failures, each followed by a back-off
        assert [status for _, status in await _work(crm, settings)] == ["queued"]
        assert await _work(crm, settings) == []  # not due before its back-off
        frozen_clock.advance(hours=1)
    assert len(receiver.requests) == 3 and receiver.accepted == []

    # The receiver is down, and the CRM restarts; its outbox row of the party event is left
    # undelivered as after a crash, so start-up delivers the event to the listener again.
    receiver.stop()
    await DomainEvent.update({DomainEvent.dispatched_at: None}).where(DomainEvent.entity == "party")
    await db.stop()
    await tessera_app.startup()
    assert [status for _, status in await _work(crm, settings)] == ["queued"]  # refused connection
    frozen_clock.advance(hours=2)
    receiver.start()  # back, on the same port
    assert [status for _, status in await _work(crm, settings)] == ["done"]

    assert len(receiver.accepted) == 1
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1  # one event, one id
    headers, body = receiver.accepted[0]
    now = frozen_clock().timestamp()
    event = verify_signature(secret, body, headers["tessera-signature"], now=now)
    assert event["type"] == "party.created" and event["data"]["entity_id"] == party_id
    assert str(event["id"]) == headers["webhook-id"] == headers["x-tessera-event-id"]
    with pytest.raises(InvalidSignature):
        verify_signature(secret, body + b" ", headers["tessera-signature"], now=now)
    with pytest.raises(InvalidSignature):  # a replay six minutes later
        verify_signature(secret, body, headers["tessera-signature"], now=now + 360)
    with pytest.raises(InvalidSignature):
        verify_signature("whsec_other", body, headers["tessera-signature"], now=now)
    assert await BackgroundJob.count().where(BackgroundJob.kind == "webhook.deliver") == 1

    log = (await crm.get(f"/api/webhooks/{sub['id']}/deliveries", admin)).json()
    assert [(d["event_type"], d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("party.created", "delivered", 5, 200)
    ]


async def test_only_matching_event_types_are_delivered_and_ping_reaches_its_subscription(
    crm: Any, frozen_clock: Any
) -> None:
    admin = await crm.user("admin")
    settings = _allow(crm, LOCAL)
    hook = Receiver().start()
    try:
        await _subscribe(crm, admin, hook.url, ["party.created"])
        tasks = await _subscribe(crm, admin, hook.url, ["task.*"])
        await crm.post("/api/parties", admin, json={"name": "Acme"})
        r = await crm.post(f"/api/webhooks/{tasks['id']}/test", admin)
        assert r.status_code == 202
        await _work(crm, settings)
        seen = [(h["webhook-id"], json.loads(b)) for h, b in hook.accepted]
        assert sorted(event["type"] for _, event in seen) == ["party.created", "webhook.ping"]
        assert len({event_id for event_id, _ in seen}) == 2
    finally:
        hook.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://0177.0.0.1/hook",
        "http://2130706433/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://localhost/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
    ],
)
async def test_forbidden_targets_are_refused_when_saved(crm: Any, url: str) -> None:
    admin = await crm.user("admin")
    _allow(crm, ())
    r = await crm.post("/api/webhooks", admin, json={"url": url, "event_types": ["*"]})
    assert r.status_code == 422
    assert "url" in field_errors(r)
    ok = await _subscribe(crm, admin, "http://93.184.215.14/hook")  # a public address is fine
    r = await crm.patch(f"/api/webhooks/{ok['id']}", admin, json={"url": url})
    assert r.status_code == 422 and "url" in field_errors(r)


async def test_a_target_that_became_forbidden_is_refused_at_delivery(crm: Any, receiver: Receiver) -> None:
    admin = await crm.user("admin")
    _allow(crm, LOCAL)
    # Saved while it resolved to an allowed address; since then the allowance was withdrawn
    # (as if its DNS answer changed to a loopback address).
    sub = await _subscribe(crm, admin, f"http://localhost:{receiver.port}/hook")
    settings = _allow(crm, ())
    await crm.post("/api/parties", admin, json={"name": "Acme"})
    assert [status for _, status in await _work(crm, settings)] == ["failed"]  # at once, no retry
    assert receiver.requests == []
    (delivery,) = (await crm.get(f"/api/webhooks/{sub['id']}/deliveries", admin)).json()
    assert delivery["status"] == "failed" and "refused" in delivery["last_error"]


async def test_a_redirect_to_a_loopback_address_is_not_followed(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin")
    inner = Receiver("127.0.0.1").start()
    outer = Receiver("127.0.0.2", redirect_to=inner.url).start()
    try:
        settings = _allow(crm, ("127.0.0.2/32",))  # only the redirecting host is allowed
        r = await crm.post("/api/webhooks", admin, json={"url": inner.url, "event_types": ["*"]})
        assert r.status_code == 422 and "url" in field_errors(r)
        sub = await _subscribe(crm, admin, outer.url)
        await crm.post("/api/parties", admin, json={"name": "Acme"})
        assert [status for _, status in await _work(crm, settings)] == ["queued"]
        assert len(outer.requests) == 1 and inner.requests == []
        (delivery,) = (await crm.get(f"/api/webhooks/{sub['id']}/deliveries", admin)).json()
        assert delivery["status"] == "retrying" and delivery["last_status_code"] == 307
        assert "redirect" in delivery["last_error"]
    finally:
        inner.stop()
        outer.stop()


async def test_webhooks_are_for_admins_and_every_write_is_audited(crm: Any) -> None:
    admin, manager = await crm.user("admin"), await crm.user("manager")
    _allow(crm, ())
    body = {"url": "http://93.184.215.14/hook", "event_types": ["party.*"]}
    assert (await crm.post("/api/webhooks", manager, json=body)).status_code == 403
    assert (await crm.get("/api/webhooks", manager)).status_code == 403
    sub = await _subscribe(crm, admin, body["url"])
    r = await crm.patch(f"/api/webhooks/{sub['id']}", admin, json={"active": False, "description": "ERP"})
    assert r.status_code == 200 and r.json()["active"] is False
    listed = (await crm.get("/api/webhooks", admin)).json()
    assert [w["id"] for w in listed] == [sub["id"]] and "secret" not in listed[0]
    assert (await crm.delete(f"/api/webhooks/{sub['id']}", admin)).status_code == 204
    assert (await crm.get(f"/api/webhooks/{sub['id']}", admin)).status_code == 404
    entries = await AuditLog.select(AuditLog.action, AuditLog.changes).where(AuditLog.entity == "webhook")
    assert [e["action"] for e in entries] == ["create", "update", "delete"]
    assert all(sub["secret"] not in str(e["changes"]) for e in entries)
    bad = await crm.post("/api/webhooks", admin, json={"url": body["url"], "event_types": ["no spaces"]})
    assert bad.status_code == 422
    assert await WebhookDelivery.count() == 0


def test_the_verifier_refuses_a_header_without_timestamp() -> None:
    body = b'{"id": 1}'
    header = webhooks.sign("s3cret", body, 1_000_000)
    assert verify_signature("s3cret", body, header, now=1_000_100)["id"] == 1
    with pytest.raises(InvalidSignature):
        verify_signature("s3cret", body, header.split(",")[1], now=1_000_100)


async def test_a_new_subscription_does_not_get_old_events_redelivered(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin")
    await crm.post("/api/parties", admin, json={"name": "Old news"})
    await DomainEvent.update({DomainEvent.dispatched_at: None}).where(DomainEvent.entity == "party")
    frozen_clock.advance(minutes=5)
    _allow(crm, LOCAL)
    sub = await _subscribe(crm, admin, "http://127.0.0.1:9/hook")
    await db.stop()
    await tessera_app.startup()  # redelivers the party event, older than the subscription
    assert (await crm.get(f"/api/webhooks/{sub['id']}/deliveries", admin)).json() == []
    await crm.post("/api/parties", admin, json={"name": "New"})
    log = (await crm.get(f"/api/webhooks/{sub['id']}/deliveries", admin)).json()
    assert [d["event_type"] for d in log] == ["party.created"]


def test_the_allowed_networks_come_from_the_environment_and_are_checked(tmp_path: Any) -> None:
    from tessera.config import load_settings

    env = {"TESSERA_WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16, 127.0.0.1"}
    settings = load_settings(tmp_path / "none.toml", env)
    assert settings.webhook_allowed_networks == ("10.20.0.0/16", "127.0.0.1")
    with pytest.raises(ValueError, match="webhook_allowed_networks"):
        load_settings(tmp_path / "none.toml", {"TESSERA_WEBHOOK_ALLOWED_NETWORKS": "intranet"})
