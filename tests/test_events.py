"""Domain events through the transactional outbox: written with the change, delivered to
``tessera_on_event`` implementations after commit, never for a rolled-back change, and
redelivered by the worker and at start-up when delivery did not finish."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from tessera import app as tessera_app
from tessera import db, events, scheduler
from tessera.entities import parties, service
from tessera.entities.tables import DomainEvent, Party
from tessera.events import DomainEvent as Event
from tessera.hookspecs import hookimpl


class Recorder:
    """A real plugin (registered with the plugin manager) that records what it receives and
    can be told to fail."""

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.fail_with: Exception | None = None
        self.seen_committed: list[bool] = []

    @hookimpl
    def tessera_on_event(self, event: Event) -> Any:
        async def handle() -> None:
            if event.entity in ("user", "team"):
                return  # test set-up noise (crm.user creates users)
            if self.fail_with is not None:
                raise self.fail_with
            if event.name == "party.created":
                # The change is committed before anyone hears about it.
                self.seen_committed.append(await Party.exists().where(Party.id == event.entity_id))
            self.received.append(event)

        return handle()

    def names(self) -> list[str]:
        return [e.name for e in self.received]


@pytest.fixture
def recorder(crm: Any) -> Recorder:
    plugin = Recorder()
    crm.pm.register(plugin, name="recorder")
    return plugin


async def _outbox() -> list[dict[str, Any]]:
    await events.settle()  # deliveries finish their search indexing in the background
    return await DomainEvent.select().order_by(DomainEvent.id).output(load_json=True)  # type: ignore[no-any-return]


async def test_api_change_is_delivered_after_commit_with_actor(crm: Any, recorder: Recorder) -> None:
    user = await crm.user("manager")
    r = await crm.post("/api/parties", user, json={"name": "Acme"})
    assert r.status_code == 201
    party_id = r.json()["id"]
    assert recorder.names() == ["party.created"]
    event = recorder.received[0]
    assert (event.entity, event.entity_id, event.user_id) == ("party", party_id, user["id"])
    assert event.payload == {"id": party_id}
    assert event.occurred_at.tzinfo is not None
    assert recorder.seen_committed == [True]
    (row,) = [r for r in await _outbox() if r["entity"] == "party"]
    assert row["dispatched_at"] is not None and row["attempts"] == 1 and row["last_error"] == ""

    await crm.patch(f"/api/parties/{party_id}", user, json={"status": "current"})
    assert recorder.names() == ["party.created", "party.status_changed", "party.updated"]
    assert recorder.received[1].payload == {"id": party_id, "from": "potential", "to": "current"}


async def test_rolled_back_change_emits_nothing(crm: Any, recorder: Recorder) -> None:
    user = await crm.user("manager")
    before = await _outbox()
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with events.unit_of_work():
            await service.create(parties.PARTY, crm.system, {"name": "Never", "owner_id": user["id"]})
            raise RuntimeError("changed my mind")
    assert recorder.received == []
    assert await _outbox() == before
    assert await Party.count() == 0
    # A failed API write (validation) leaves no event either.
    r = await crm.post("/api/parties", user, json={"name": "X", "owner_id": 999999})
    assert r.status_code == 422
    assert "party.created" not in recorder.names()


async def test_nested_units_deliver_once_after_the_outer_commit(crm: Any, recorder: Recorder) -> None:
    user = await crm.user("manager")
    async with events.unit_of_work():
        await service.create(parties.PARTY, crm.system, {"name": "One", "owner_id": user["id"]})
        await service.create(parties.PARTY, crm.system, {"name": "Two", "owner_id": user["id"]})
        assert recorder.received == []  # nothing before the outer commit
    assert recorder.names() == ["party.created", "party.created"]
    assert [e.entity_id for e in recorder.received] == sorted(e.entity_id for e in recorder.received)


async def test_emit_outside_a_unit_of_work_is_refused(crm: Any) -> None:
    with pytest.raises(RuntimeError, match="outside unit_of_work"):
        await events.emit("party.created", "party", 1)


async def test_failing_plugin_keeps_event_for_redelivery(
    crm: Any, recorder: Recorder, frozen_clock: Any
) -> None:
    other = Recorder()
    crm.pm.register(other, name="other")
    recorder.fail_with = ConnectionError("webhook endpoint down")
    user = await crm.user("manager")
    r = await crm.post("/api/parties", user, json={"name": "Acme"})
    assert r.status_code == 201  # the change itself stands
    assert other.names() == ["party.created"]  # one failing plugin does not block the others
    (row,) = [r for r in await _outbox() if r["entity"] == "party"]
    assert row["dispatched_at"] is None and row["attempts"] == 1
    assert "recorder" in row["last_error"] and "webhook endpoint down" in row["last_error"]

    # The worker's redelivery job retries it once it is old enough, and succeeds when fixed.
    recorder.fail_with = None
    await scheduler.sync_jobs(crm.pm)
    await scheduler.tick(crm.pm)
    assert recorder.received == []  # too fresh: it may still be in flight elsewhere
    frozen_clock.advance(minutes=1)
    ran = await scheduler.tick(crm.pm)
    assert "kernel.redeliver_events" in ran
    assert recorder.names() == ["party.created"]
    (row,) = [r for r in await _outbox() if r["entity"] == "party"]
    assert row["dispatched_at"] is not None and row["attempts"] == 2
    # At-least-once: the plugin that already had it hears it again.
    assert other.names() == ["party.created", "party.created"]


async def _restart() -> None:
    """The process stops (its database pool closed) and starts again."""
    await db.stop()
    await tessera_app.startup()


async def test_undelivered_events_are_delivered_at_startup(crm: Any, recorder: Recorder) -> None:
    # A process crashed after commit and before delivery: the outbox row is all that is left.
    async with events.unit_of_work():
        await DomainEvent.insert(
            DomainEvent(name="party.created", entity="party", entity_id=41, payload={"id": 41}),
            DomainEvent(name="activity.created", entity="activity", entity_id=7, payload={"id": 7}),
        )
    assert recorder.received == []
    await _restart()
    assert recorder.names() == ["party.created", "activity.created"]
    assert recorder.seen_committed == [False]  # party 41 never existed; delivery does not care
    assert all(r["dispatched_at"] is not None for r in await _outbox())
    await _restart()  # delivered events are not delivered again
    assert len(recorder.received) == 2


async def test_redelivery_gives_up_after_twenty_attempts(
    crm: Any, recorder: Recorder, frozen_clock: Any
) -> None:
    recorder.fail_with = ValueError("poison")
    async with events.unit_of_work():
        await events.emit("party.created", "party", None, {})
    for _ in range(25):
        frozen_clock.advance(minutes=1)
        await events.redeliver_pending()
    (row,) = await _outbox()
    assert row["attempts"] == 20 and row["dispatched_at"] is None
    assert "poison" in row["last_error"]


async def test_kernel_listeners_receive_events_too(crm: Any) -> None:
    got: list[str] = []

    async def listener(event: Event) -> None:
        got.append(event.name)

    user = await crm.user("manager")
    events.add_listener(listener)
    await service.create(parties.PARTY, crm.system, {"name": "Listened", "owner_id": user["id"]})
    assert got == ["party.created"]


async def test_task_overdue_event_from_the_worker(crm: Any, recorder: Recorder, frozen_clock: Any) -> None:
    head = await crm.user("head")
    manager = await crm.user("manager")
    r = await crm.post(
        "/api/tasks",
        head,
        json={
            "title": "Send the contract",
            "assignee_id": manager["id"],
            "controller_id": head["id"],
            "deadline": (frozen_clock() + timedelta(hours=2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    await scheduler.sync_jobs(crm.pm)
    await scheduler.tick(crm.pm)
    assert "task.overdue" not in recorder.names()
    frozen_clock.advance(hours=2, minutes=1)
    await scheduler.tick(crm.pm)
    overdue = [e for e in recorder.received if e.name == "task.overdue"]
    assert [(e.entity_id, e.payload["controller_id"]) for e in overdue] == [(task_id, head["id"])]
    assert overdue[0].user_id is None  # the worker acts, not a person
    frozen_clock.advance(minutes=5)
    await scheduler.tick(crm.pm)
    assert len([e for e in recorder.received if e.name == "task.overdue"]) == 1
    inbox = (await crm.get("/api/notifications", head)).json()
    assert [n["kind"] for n in inbox] == ["task.overdue"]


@pytest.mark.plugins("probe")
async def test_probe_plugin_records_events(crm: Any) -> None:
    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Probe me"})).json()
    await crm.delete(f"/api/parties/{party['id']}", admin)
    marks = (await crm.get("/api/probe/marks", admin, params={"kind": "event"})).json()
    party_marks = [m["detail"] for m in marks if m["detail"].startswith("party.")]
    assert party_marks == ["party.created", "party.deleted"]
    assert {m["party_id"] for m in marks if m["detail"].startswith("party.")} == {party["id"]}


def test_domain_event_is_plain_data() -> None:
    e = Event(1, "x.y", "x", None, {}, None, SimpleNamespace())  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        e.name = "z"  # type: ignore[misc]


async def test_concurrent_writes_share_deliveries_and_each_waits_for_its_own(crm: Any) -> None:
    """Units of work that commit while a delivery runs are delivered together in the next one,
    and none returns before its events were delivered; a client that got its 201 finds the
    record in search (which waits for the indexing handed over before it)."""
    import asyncio

    batches: list[list[int]] = []

    async def slow_batch_listener(batch: list[Event]) -> None:
        batches.append([e.entity_id for e in batch if e.name == "party.created"])
        await asyncio.sleep(0.05)  # an index commit: others commit meanwhile

    kernel_batch_listeners = list(events._dispatcher.batch_listeners)
    events.configure(crm.pm, batch_listeners=[slow_batch_listener, *kernel_batch_listeners])
    try:
        await _create_concurrently(crm, batches)
    finally:
        events.configure(crm.pm, batch_listeners=kernel_batch_listeners)


async def _create_concurrently(crm: Any, batches: list[list[int]]) -> None:
    import asyncio

    user = await crm.user("manager")

    async def create(i: int) -> int:
        r = await crm.post("/api/parties", user, json={"name": f"Grouped {i}"})
        assert r.status_code == 201, r.text
        party_id: int = r.json()["id"]
        assert any(party_id in b for b in batches), "answered before its event was delivered"
        found = (await crm.get("/api/search", user, params={"q": f"Grouped {i}"})).json()
        assert ("party", party_id) in [(h["type"], h["id"]) for h in found["hits"]]
        return party_id

    ids = await asyncio.gather(*(create(i) for i in range(12)))
    delivered = [i for b in batches for i in b]
    assert sorted(delivered) == sorted(ids)  # each exactly once
    assert len([b for b in batches if b]) < len(ids)  # and together
    await events.settle()
    rows = await DomainEvent.select().where(DomainEvent.name == "party.created")
    assert all(r["dispatched_at"] is not None for r in rows)


async def test_a_listener_may_write_while_delivering(crm: Any, recorder: Recorder) -> None:
    """A plugin reacting to an event with a change of its own (a unit of work inside a
    delivery) gets that change delivered too instead of waiting for the delivery it runs in."""

    class Follower:
        @hookimpl
        def tessera_on_event(self, event: Event) -> Any:
            async def handle() -> None:
                if event.name == "party.created" and not event.payload.get("follow_up"):
                    async with events.unit_of_work():
                        await events.emit("party.followed", "party", event.entity_id, {"follow_up": True})

            return handle()

    crm.pm.register(Follower(), name="follower")
    user = await crm.user("manager")
    r = await crm.post("/api/parties", user, json={"name": "Acme"})
    assert r.status_code == 201, r.text
    assert sorted(recorder.names()) == ["party.created", "party.followed"]
    assert all(r["dispatched_at"] is not None for r in await _outbox())


async def test_marking_a_huge_delivery_stays_under_the_argument_limit(crm: Any) -> None:
    """A first overdue scan delivers hundreds of thousands of events in one marking window:
    PostgreSQL takes at most 32,767 arguments a statement, so the marks go in chunks."""
    async with events.unit_of_work():
        await events.emit("test.ping", "test", 1, {})
    row = await DomainEvent.select(DomainEvent.id).order_by(DomainEvent.id, ascending=False).first()
    await DomainEvent.update({DomainEvent.dispatched_at: None}).where(DomainEvent.id == row["id"])
    await events._mark_delivered([*range(10**9, 10**9 + 40_000), row["id"]])
    marked = await DomainEvent.select(DomainEvent.dispatched_at).where(DomainEvent.id == row["id"]).first()
    assert marked["dispatched_at"] is not None


async def test_a_unit_with_more_log_rows_and_events_than_one_statement_binds(crm: Any) -> None:
    """A set-based change (the receivables plugin's overdue scan) writes thousands of audit
    entries and events in one unit of work: 6,000 of each bind 78,000 values, more than twice
    what one statement may (``db.MAX_ARGS``), so they are written in several statements; every
    event comes back with its own row's id, in order, and every entry is written once."""
    from tessera import audit
    from tessera.entities.tables import AuditLog

    n = 6000
    before = await DomainEvent.count().where(DomainEvent.name == "test.bulk")
    async with events.unit_of_work():
        await events.emit_all(
            [("test.bulk", "test", i, {"i": i}) for i in range(n)],
            also=audit.entries("bulk", "test", list(range(n)), {"x": [None, 1]}),
        )
    rows = (
        await DomainEvent.select(DomainEvent.id, DomainEvent.entity_id, DomainEvent.payload)
        .where(DomainEvent.name == "test.bulk")
        .order_by(DomainEvent.id)
        .output(load_json=True)
    )
    assert before == 0 and [r["entity_id"] for r in rows] == list(range(n))
    assert all(r["payload"] == {"i": r["entity_id"]} for r in rows)
    logged = (
        await AuditLog.select(AuditLog.entity_id, AuditLog.changes)
        .where(AuditLog.action == "bulk", AuditLog.entity == "test")
        .output(load_json=True)
    )
    assert sorted(r["entity_id"] for r in logged) == list(range(n))
    assert all(r["changes"] == {"x": [None, 1]} for r in logged)


def test_chunks_stay_within_the_bound_values() -> None:
    items = list(range(10))
    assert [list(c) for c in db.chunks(items, per_item=3, limit=9)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    # Never more than a statement may bind, whatever limit is asked for.
    assert [len(c) for c in db.chunks(list(range(40_000)), per_item=2, limit=10**6)] == [
        16_383,
        16_383,
        7_234,
    ]


async def test_waiting_delivered_marks_are_written_by_the_next_write(crm: Any) -> None:
    """On SQLite the "delivered" marks waiting for their write go with the next unit of work
    (no commit of their own); on PostgreSQL they are written on their own, soon after."""
    async with events.unit_of_work():
        await events.emit("test.ping", "test", 1, {})
    await events.settle()
    row = await DomainEvent.select(DomainEvent.id).where(DomainEvent.name == "test.ping").first()
    await DomainEvent.update({DomainEvent.dispatched_at: None}).where(DomainEvent.id == row["id"])
    events._mark_soon([row["id"]])
    async with events.unit_of_work():
        await events.emit("test.pong", "test", 2, {})
    marked = await DomainEvent.select(DomainEvent.dispatched_at).where(DomainEvent.id == row["id"]).first()
    assert (marked["dispatched_at"] is not None) == (not db.is_postgres())
    await events.settle()
    rows = await DomainEvent.select(DomainEvent.dispatched_at).where(
        DomainEvent.name.is_in(["test.ping", "test.pong"])
    )
    assert len(rows) == 2 and all(r["dispatched_at"] is not None for r in rows)
