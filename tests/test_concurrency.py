"""Fifty concurrent writers on one record lose no update silently (issue 7, item 3).

The optimistic-locking contract (docs/kernel.md, "Reliability"): a PATCH that carries the
version it read (``version`` in the body or ``If-Match``) either applies on top of exactly that
version or fails with 409 and a JSON body naming the current version; a PATCH without a
version is applied on top of the latest committed state (writers are serialised, ``custom`` is
merged), so it never overwrites a change it did not see. Every applied change is audited.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from tessera.entities import tables
from tessera_sdk.live import LiveServer

WRITERS = 50
COUNTER_SCHEMA = {
    "properties": {
        "counter": {"type": "integer", "minimum": 0},
        "writers": {"type": "array", "items": {"type": "string"}},
        **{f"w{i}": {"type": "integer"} for i in range(WRITERS)},
    }
}


async def _declare_counter(crm: Any, admin: dict[str, Any], entity: str) -> None:
    r = await crm.put(f"/api/custom-fields/{entity}", admin, json=COUNTER_SCHEMA)
    assert r.status_code == 200, r.text


def _assert_conflict_body(response: Any) -> None:
    assert response.status_code in (409, 412), response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]


def _versioned(i: int, current: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Writer ``i``'s read-modify-write of what it read: counter + 1, its name appended.
    Even writers send the version in the body, odd ones in If-Match."""
    custom = current["custom"]
    body: dict[str, Any] = {
        "custom": {"counter": custom.get("counter", 0) + 1, "writers": [*custom.get("writers", []), f"w{i}"]}
    }
    if i % 2:
        return body, {"If-Match": f'"{current["version"]}"'}
    return body | {"version": current["version"]}, {}


async def _audit_and_events(entity: str, record_id: int) -> tuple[list[dict[str, Any]], int]:
    audits = (
        await tables.AuditLog.select()
        .where(
            tables.AuditLog.entity == entity,
            tables.AuditLog.entity_id == record_id,
            tables.AuditLog.action == "update",
        )
        .order_by(tables.AuditLog.id)
        .output(load_json=True)
    )
    events = await tables.DomainEvent.count().where(
        tables.DomainEvent.name == f"{entity}.updated", tables.DomainEvent.entity_id == record_id
    )
    return audits, events


async def _race_versioned_writers(crm: Any, user: dict[str, Any], url: str, entity: str) -> None:
    """Round 1: all 50 read the same version, then all write at once: exactly one wins, 49
    get 409/412. Round 2: all 50 read and write once at random moments; whatever number wins,
    the counter each of them incremented read-modify-write equals that number."""
    start = (await crm.get(url, user)).json()
    assert start["version"] == 1

    barrier = asyncio.Barrier(WRITERS)

    async def one_shot(i: int) -> Any:
        current = (await crm.get(url, user)).json()
        await barrier.wait()  # everyone has read version 1 before anyone writes
        body, headers = _versioned(i, current)
        return await crm.patch(url, user, json=body, headers=headers)

    first = await asyncio.gather(*(one_shot(i) for i in range(WRITERS)))
    winners = [i for i, r in enumerate(first) if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in first]
    for r in first:
        if r.status_code != 200:
            _assert_conflict_body(r)
            assert r.json().get("current_version") in (None, 2)

    # Round 2: the 50 writers again, each reading and writing once at a random moment.
    rng = random.Random(7)
    delays = [rng.random() * 0.3 for _ in range(WRITERS)]

    async def free_run(i: int) -> Any:
        await asyncio.sleep(delays[i])
        current = (await crm.get(url, user)).json()
        body, headers = _versioned(i, current)
        return await crm.patch(url, user, json=body, headers=headers)

    second = await asyncio.gather(*(free_run(i) for i in range(WRITERS)))
    applied = {i: r.json() for i, r in enumerate(second) if r.status_code == 200}
    for r in second:
        if r.status_code != 200:
            _assert_conflict_body(r)
    assert applied, "the first write of the round always applies"

    successes = len(winners) + len(applied)
    final = (await crm.get(url, user)).json()
    # Exactly the writers that got a 200 are reflected, each once, in version order.
    assert final["custom"]["counter"] == successes
    assert final["version"] == 1 + successes
    in_order = [i for i, _ in sorted(applied.items(), key=lambda kv: kv[1]["version"])]
    assert final["custom"]["writers"] == [f"w{i}" for i in winners + in_order]
    assert sorted(a["version"] for a in applied.values()) == list(range(3, successes + 2))
    for result in applied.values():
        assert result["custom"]["counter"] == result["version"] - 1
    assert (await crm.get(url, user)).headers["etag"] == f'"{final["version"]}"'
    audits, events = await _audit_and_events(entity, final["id"])
    assert len(audits) == successes and events == successes
    # The audit chain has no gap: each change starts from the previous one's result.
    counters = [
        (a["changes"]["custom"][0].get("counter"), a["changes"]["custom"][1]["counter"]) for a in audits
    ]
    assert counters == [(n or None, n + 1) for n in range(successes)]


async def test_fifty_writers_on_one_party_lose_no_update(crm):
    admin = await crm.user("admin")
    await _declare_counter(crm, admin, "party")
    party = (await crm.post("/api/parties", admin, json={"name": "Contended"})).json()
    await _race_versioned_writers(crm, admin, f"/api/parties/{party['id']}", "party")


@pytest.mark.plugins("sales")
async def test_fifty_writers_on_one_deal_lose_no_update(crm):
    admin = await crm.user("admin")
    await _declare_counter(crm, admin, "sales.deal")
    party = (await crm.post("/api/parties", admin, json={"name": "Buyer"})).json()
    r = await crm.post("/api/sales/deals", admin, json={"title": "Contended deal", "party_id": party["id"]})
    assert r.status_code == 201, r.text
    await _race_versioned_writers(crm, admin, f"/api/sales/deals/{r.json()['id']}", "sales.deal")


async def test_unversioned_writers_are_serialised_and_audited(crm):
    """Without a version the API applies each change on top of the latest committed state:
    50 writers each setting their own custom field all land, none overwriting another."""
    admin = await crm.user("admin")
    await _declare_counter(crm, admin, "party")
    party = (await crm.post("/api/parties", admin, json={"name": "Shared", "custom": {"counter": 0}})).json()
    url = f"/api/parties/{party['id']}"

    responses = await asyncio.gather(
        *(crm.patch(url, admin, json={"custom": {f"w{i}": i}}) for i in range(WRITERS))
    )
    assert [r.status_code for r in responses] == [200] * WRITERS, [
        r.text for r in responses if r.status_code != 200
    ]
    assert sorted(r.json()["version"] for r in responses) == list(range(2, WRITERS + 2))

    final = (await crm.get(url, admin)).json()
    assert final["custom"] == {"counter": 0, **{f"w{i}": i for i in range(WRITERS)}}
    assert final["version"] == WRITERS + 1
    audits, events = await _audit_and_events("party", party["id"])
    assert len(audits) == WRITERS and events == WRITERS
    # Each audited change adds one field to exactly what the previous change left.
    previous = {"counter": 0}
    for entry in audits:
        old, new = entry["changes"]["custom"]
        assert old == previous
        assert len(set(new) - set(old)) == 1 and all(new[k] == v for k, v in old.items())
        previous = new
    assert previous == final["custom"]


async def test_stale_delete_is_refused_while_writers_race(crm):
    """A delete carrying a stale version is refused (409) and the record stays."""
    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Keep me"})).json()
    url = f"/api/parties/{party['id']}"
    results = await asyncio.gather(
        *(crm.patch(url, admin, json={"website": f"https://w{i}.example"}) for i in range(10)),
        crm.delete(url, admin, headers={"If-Match": '"1"'}),
    )
    deleted = results[-1]
    if deleted.status_code == 204:
        # The delete ran first, on version 1: the writers then found nothing (404), none a 500.
        assert all(r.status_code in (200, 404) for r in results[:-1])
        assert (await crm.get(url, admin)).status_code == 404
    else:
        _assert_conflict_body(deleted)
        assert (await crm.get(url, admin)).json()["version"] == 11


class _OverHttp:
    """The ``crm`` call shape (``get(url, user)``, ``patch(url, user, json=, headers=)``) over
    a real socket to a live server."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, url: str, user: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.client.get(url, headers=user["headers"], **kwargs)

    async def patch(
        self, url: str, user: dict[str, Any], headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.client.patch(url, headers=user["headers"] | (headers or {}), **kwargs)


async def test_fifty_writers_through_the_real_server(crm):
    """The same race through ``tessera serve`` (uvicorn, real connections, its own pool)."""
    admin = await crm.user("admin")
    await _declare_counter(crm, admin, "party")
    party = (await crm.post("/api/parties", admin, json={"name": "Contended live"})).json()
    server = LiveServer(crm.settings.resolved_database_url, crm.settings.data_dir / "live")
    await asyncio.to_thread(server.start)
    try:
        limits = httpx.Limits(max_connections=WRITERS)
        async with httpx.AsyncClient(base_url=server.url, timeout=60.0, limits=limits) as client:
            await _race_versioned_writers(_OverHttp(client), admin, f"/api/parties/{party['id']}", "party")
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_write_waits_for_another_process_and_the_server_keeps_answering(crm: Any) -> None:
    """While another process holds SQLite's write lock, a create waits for it (no "database
    is locked", no 500) and the server answers other requests meanwhile: a write transaction
    runs on the event loop's thread, so its wait must not block the loop (docs/kernel.md)."""
    if crm.backend != "sqlite":
        pytest.skip("SQLite's database-wide write lock; PostgreSQL locks rows")
    import sqlite3

    user = await crm.user("manager")
    assert (await crm.get("/api/parties", user)).status_code == 200  # the token's first use writes
    other = sqlite3.connect(crm.settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        create = asyncio.ensure_future(crm.post("/api/parties", user, json={"name": "Waits its turn"}))
        await asyncio.sleep(0.3)
        assert not create.done(), "the create did not wait for the other process's write"
        listed = await asyncio.wait_for(crm.get("/api/parties", user), 5)
        assert listed.status_code == 200
        assert not create.done()
    finally:
        other.execute("COMMIT")
        other.close()
    created = await asyncio.wait_for(create, 10)
    assert created.status_code == 201, created.text
    assert (await crm.get(f"/api/parties/{created.json()['id']}", user)).json()["name"] == "Waits its turn"


async def test_a_long_write_transaction_lets_other_requests_through(crm: Any) -> None:
    """A write transaction runs on the event loop's thread; a long one (a job recomputing
    figures) hands the loop to other requests every few milliseconds instead of freezing the
    server until it commits."""
    if crm.backend != "sqlite":
        pytest.skip("inline write transactions are SQLite's")
    import time

    from tessera import db

    user = await crm.user("manager")
    assert (await crm.get("/api/parties", user)).status_code == 200  # the token's first use writes
    started, answered = asyncio.Event(), asyncio.Event()

    async def long_job() -> bool:
        """Holds the write transaction open until the test says the GET was answered (an
        ordering, not a duration). The guard only ends the loop when the loop never lets the
        GET run at all (the failure), instead of hanging the test."""
        guard = time.monotonic() + 60
        async with db.transaction():
            await db.raw("SELECT COUNT(*) AS n FROM party")
            started.set()
            while not answered.is_set() and time.monotonic() < guard:
                await db.raw("SELECT COUNT(*) AS n FROM party")
            return answered.is_set()

    job = asyncio.ensure_future(long_job())
    await started.wait()
    listed = await crm.get("/api/parties", user)
    assert listed.status_code == 200
    assert not job.done(), "the read waited for the whole write transaction"
    answered.set()
    assert await job, "the write transaction committed before the read was answered"
