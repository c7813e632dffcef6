"""Idempotency-Key under concurrency: simultaneous creates with one key make one record.

An integration retrying a create whose answer it never got (timeout, dropped connection) may
fire the retry while the first request is still running. Both must answer with the one record
the first created; the audit log and the event outbox must show one create, not two.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from entity_helpers import table_counts
from tessera.entities import tables

WRITERS = 20


async def _fire(
    crm: Any, user: dict[str, Any], url: str, body: dict[str, Any], key: str, n: int
) -> list[Any]:
    headers = {"Idempotency-Key": key}
    return list(await asyncio.gather(*(crm.post(url, user, json=body, headers=headers) for _ in range(n))))


async def _creates_of(entity: str, record_id: int) -> tuple[int, int]:
    audits = await tables.AuditLog.count().where(
        tables.AuditLog.entity == entity,
        tables.AuditLog.entity_id == record_id,
        tables.AuditLog.action == "create",
    )
    events = await tables.DomainEvent.count().where(
        tables.DomainEvent.name == f"{entity}.created", tables.DomainEvent.entity_id == record_id
    )
    return audits, events


async def test_same_key_fired_concurrently_creates_one_party(crm):
    admin = await crm.user("admin")
    before = await table_counts()
    body = {"name": "Race Ltd", "tags": ["x"]}
    responses = await _fire(crm, admin, "/api/parties", body, "race-1", WRITERS)

    assert [r.status_code for r in responses] == [201] * WRITERS, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies), "every retry answers with the first record"
    replays = [r.headers.get("idempotent-replay") == "true" for r in responses]
    assert replays.count(False) == 1, "exactly one request created the record"

    after = await table_counts()
    assert after["party"] == before["party"] + 1
    assert after["idempotency_record"] == before["idempotency_record"] + 1
    assert await _creates_of("party", bodies[0]["id"]) == (1, 1)
    stored = (await crm.get(f"/api/parties/{bodies[0]['id']}", admin)).json()
    assert stored == bodies[0]

    # Later retries keep replaying the same answer.
    again = await crm.post(
        "/api/parties", admin, json={"name": "Race Ltd"}, headers={"Idempotency-Key": "race-1"}
    )
    assert again.status_code == 201
    assert again.json() == bodies[0]


async def test_concurrent_keys_are_scoped_by_key_user_and_route(crm):
    admin = await crm.user("admin")
    other = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Host"})).json()
    before = await table_counts()
    batches = await asyncio.gather(
        _fire(crm, admin, "/api/parties", {"name": "A"}, "k-a", 8),
        _fire(crm, admin, "/api/parties", {"name": "B"}, "k-b", 8),
        _fire(crm, other, "/api/parties", {"name": "A"}, "k-a", 8),
        # The same key on another route is another request.
        _fire(crm, admin, "/api/contacts", {"party_id": party["id"], "name": "Ann"}, "k-a", 8),
    )
    ids: list[int] = []
    for batch in batches:
        assert {r.status_code for r in batch} == {201}, [r.text for r in batch]
        batch_ids = {r.json()["id"] for r in batch}
        assert len(batch_ids) == 1
        ids.extend(batch_ids)
    after = await table_counts()
    assert after["party"] == before["party"] + 3
    assert after["contact"] == before["contact"] + 1
    assert after["idempotency_record"] == before["idempotency_record"] + 4
    for entity, record_id in zip(("party", "party", "party", "contact"), ids, strict=True):
        assert await _creates_of(entity, record_id) == (1, 1)


async def test_failed_first_attempt_leaves_the_key_free(crm):
    """A create that fails (422) stores nothing, even when its retries run concurrently:
    all fail alike, and the corrected request then claims the key."""
    admin = await crm.user("admin")
    before = await table_counts()
    responses = await _fire(crm, admin, "/api/parties", {"name": "Bad", "owner_id": 999_999}, "k-bad", 6)
    assert {r.status_code for r in responses} == {422}
    assert all(r.json()["errors"][0]["field"] == "owner_id" for r in responses)
    assert await table_counts() == before
    fixed = await _fire(crm, admin, "/api/parties", {"name": "Good"}, "k-bad", 6)
    assert {r.status_code for r in fixed} == {201}
    assert len({r.json()["id"] for r in fixed}) == 1
    assert (await table_counts())["party"] == before["party"] + 1


async def test_database_refuses_a_second_record_for_one_key(crm):
    """The unique index itself (the arbiter between simultaneous requests on both engines)."""
    from tessera import clock

    def record() -> tables.IdempotencyRecord:
        return tables.IdempotencyRecord(
            key="dup", user_id=1, path="/api/parties", status_code=201, body="{}", created_at=clock.now()
        )

    await tables.IdempotencyRecord.insert(record())
    with pytest.raises(Exception, match=r"(?i)unique"):
        await tables.IdempotencyRecord.insert(record())
    assert await tables.IdempotencyRecord.count().where(tables.IdempotencyRecord.key == "dup") == 1


async def test_webhook_subscriptions_and_uploads_are_retry_safe(crm: Any) -> None:
    """The create routes an integration calls outside the record routes: a retried webhook
    subscription is not a second subscription (which would deliver every event twice) and
    answers the same secret; a retried upload stores one attachment."""
    admin = await crm.user("admin")
    body = {"url": "https://93.184.216.34/crm-hook", "event_types": ["party.*"]}
    headers = {"Idempotency-Key": "subscribe-erp"}
    first = await crm.post("/api/webhooks", admin, json=body, headers=headers)
    again = await crm.post("/api/webhooks", admin, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), first.text
    assert again.headers.get("Idempotent-Replay") == "true"
    assert again.json() == first.json() and first.json()["secret"].startswith("whsec_")
    assert await tables.WebhookSubscription.count() == 1
    other = await crm.post("/api/webhooks", admin, json=body, headers={"Idempotency-Key": "subscribe-2"})
    assert other.status_code == 201 and await tables.WebhookSubscription.count() == 2

    files = {"file": ("contract.txt", b"signed", "text/plain")}
    up = [
        await crm.post("/api/attachments/upload", admin, files=files, headers={"Idempotency-Key": "att-1"})
        for _ in range(2)
    ]
    assert [r.status_code for r in up] == [201, 201] and up[1].json()["id"] == up[0].json()["id"]
    assert await tables.Attachment.count() == 1
