"""Background jobs (issue 16.1): enqueued in the caller's transaction, claimed once across
workers, retried with back-off, reclaimed after a dead worker's lease, visible through the API."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from entity_helpers import run_workers_once
from tessera import clock, events, jobs, scheduler
from tessera.entities.tables import BackgroundJob
from tessera.hookspecs import hookimpl
from tessera.plugins import PluginError, get_plugin_manager


def _pm_with_kinds(crm: Any, kinds: dict[str, Any], name: str = "testjobs") -> Any:
    """The test's plugin manager plus an in-test plugin declaring ``kinds``."""

    def tessera_background_jobs() -> dict[str, Any]:
        return kinds

    pm = get_plugin_manager(crm.settings.with_(plugins=(), autoload_plugins=False))
    pm.register(SimpleNamespace(tessera_background_jobs=hookimpl(tessera_background_jobs)), name=name)
    return pm


async def _job(job_id: int) -> dict[str, Any]:
    return await BackgroundJob.select().where(BackgroundJob.id == job_id).first().output(load_json=True)  # type: ignore[no-any-return]


async def _enqueue(*args: Any, **kwargs: Any) -> int:
    async with events.unit_of_work():
        return await jobs.enqueue(*args, **kwargs)


# --------------------------------------------------------------------------- enqueue


async def test_a_job_is_committed_with_the_change_that_asked_for_it(crm: Any) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with events.unit_of_work():
            await jobs.enqueue("test.echo", {"n": 1})
            raise Boom  # the change fails after the enqueue: no job may survive it
    assert await BackgroundJob.count() == 0
    job_id = await _enqueue("test.echo", {"n": 2})
    row = await _job(job_id)
    assert (row["kind"], row["status"], row["payload"]) == ("test.echo", "queued", {"n": 2})
    assert row["attempts"] == 0


async def test_dedup_key_returns_the_existing_job(crm: Any) -> None:
    first = await _enqueue("test.echo", {"n": 1}, dedup_key="webhook-77")
    again = await _enqueue("test.echo", {"n": 2}, dedup_key="webhook-77")
    assert again == first
    assert await BackgroundJob.count() == 1


async def test_a_kind_declared_twice_fails_naming_the_plugin(crm: Any) -> None:
    async def handler(ctx: Any, payload: dict[str, Any]) -> None:
        return None

    pm = _pm_with_kinds(crm, {"email.send": handler}, name="clash")
    with pytest.raises(PluginError, match="clash"):
        jobs.collect_kinds(pm)


# --------------------------------------------------------------------------- running


async def test_handler_runs_once_with_its_payload_and_result_is_stored(crm: Any, frozen_clock: Any) -> None:
    seen: list[tuple[int, dict[str, Any], int]] = []

    async def echo(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
        seen.append((ctx.id, payload, ctx.attempt))
        return {"doubled": payload["n"] * 2}

    pm = _pm_with_kinds(crm, {"test.echo": echo})
    later = await _enqueue("test.echo", {"n": 5}, run_at=frozen_clock() + timedelta(hours=1))
    now = await _enqueue("test.echo", {"n": 21})
    assert await jobs.work(pm, crm.settings, node="n1") == [(now, "done")]
    assert await jobs.work(pm, crm.settings, node="n1") == []  # done jobs are not run again
    assert seen == [(now, {"n": 21}, 1)]
    row = await _job(now)
    assert (row["status"], row["result"], row["attempts"], row["error"]) == ("done", {"doubled": 42}, 1, "")
    assert row["finished_at"] == frozen_clock()
    frozen_clock.advance(hours=1)
    assert await jobs.work(pm, crm.settings, node="n1") == [(later, "done")]


async def test_a_job_of_a_kind_no_worker_knows_waits(crm: Any) -> None:
    job_id = await _enqueue("nobody.knows", {})
    assert await jobs.work(crm.pm, crm.settings) == []
    assert (await _job(job_id))["status"] == "queued"


async def test_failures_are_retried_with_exponential_backoff_then_fail(crm: Any, frozen_clock: Any) -> None:
    attempts: list[int] = []

    async def flaky(ctx: Any, payload: dict[str, Any]) -> None:
        attempts.append(ctx.attempt)
        raise ConnectionError(f"upstream down (attempt {ctx.attempt})")

    pm = _pm_with_kinds(crm, {"test.flaky": flaky})
    job_id = await _enqueue("test.flaky", {}, max_attempts=3)
    start = frozen_clock()
    assert await jobs.work(pm, crm.settings) == [(job_id, "queued")]
    row = await _job(job_id)
    assert row["status"] == "queued" and "upstream down (attempt 1)" in row["error"]
    # First retry 30 s later (up to 25% jitter), the second 60 s after that.
    assert start + timedelta(seconds=30) <= row["run_at"] <= start + timedelta(seconds=37.5)
    frozen_clock.advance(seconds=29)
    assert await jobs.work(pm, crm.settings) == []
    frozen_clock.set(row["run_at"])
    assert await jobs.work(pm, crm.settings) == [(job_id, "queued")]
    second = await _job(job_id)
    assert row["run_at"] + timedelta(seconds=60) <= second["run_at"] <= row["run_at"] + timedelta(seconds=75)
    frozen_clock.set(second["run_at"])
    assert await jobs.work(pm, crm.settings) == [(job_id, "failed")]
    final = await _job(job_id)
    assert final["status"] == "failed" and final["attempts"] == 3
    assert "upstream down (attempt 3)" in final["error"]
    frozen_clock.advance(days=1)
    assert await jobs.work(pm, crm.settings) == []
    assert attempts == [1, 2, 3]


async def test_permanent_failure_is_not_retried(crm: Any, frozen_clock: Any) -> None:
    async def hopeless(ctx: Any, payload: dict[str, Any]) -> None:
        raise jobs.PermanentFailure("the file is not a spreadsheet")

    pm = _pm_with_kinds(crm, {"test.hopeless": hopeless})
    job_id = await _enqueue("test.hopeless", {}, max_attempts=5)
    assert await jobs.work(pm, crm.settings) == [(job_id, "failed")]
    row = await _job(job_id)
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 1, "the file is not a spreadsheet")


async def test_a_dead_workers_job_is_reclaimed_after_its_lease(crm: Any, frozen_clock: Any) -> None:
    ran: list[tuple[str, int]] = []

    async def work_item(ctx: Any, payload: dict[str, Any]) -> str:
        ran.append((ctx.node, ctx.attempt))
        return "ok"

    kinds = {"test.item": jobs.JobKind(work_item, timeout=60)}
    pm = _pm_with_kinds(crm, kinds)
    job_id = await _enqueue("test.item", {})
    # Worker "dead" claims the job and is killed before it finishes.
    [lost] = await jobs.claim_due(jobs.collect_kinds(pm), "dead")
    row = await _job(job_id)
    assert (row["status"], row["claimed_by"], row["attempts"]) == ("running", "dead", 1)
    assert await jobs.work(pm, crm.settings, node="alive") == []  # leased: nobody else takes it
    frozen_clock.advance(seconds=60 + 59)
    assert await jobs.work(pm, crm.settings, node="alive") == []
    frozen_clock.advance(seconds=2)  # timeout + margin passed: the lease expired
    assert await jobs.work(pm, crm.settings, node="alive") == [(job_id, "done")]
    assert ran == [("alive", 2)]
    # The dead worker coming back late cannot overwrite the outcome of the new attempt.
    assert await jobs.run_claim(lost, jobs.collect_kinds(pm), "dead", crm.settings, pm) == "done"
    row = await _job(job_id)
    assert (row["status"], row["claimed_by"], row["attempts"], row["result"]) == ("done", "alive", 2, "ok")
    assert ran == [("alive", 2), ("dead", 1)]


async def test_a_short_lease_is_kept_by_heartbeats_and_a_stalled_worker_learns_it_lost_it(
    crm: Any, frozen_clock: Any
) -> None:
    beats: list[bool] = []

    async def long_job(ctx: Any, payload: dict[str, Any]) -> str:
        for _ in range(3):
            frozen_clock.advance(seconds=20)  # working; each step well within the lease
            beats.append(await ctx.heartbeat())
        return "ok"

    kinds = {"test.long": jobs.JobKind(long_job, timeout=3600, lease=30)}
    pm = _pm_with_kinds(crm, kinds)
    job_id = await _enqueue("test.long", {})
    # A live worker keeps its 30-second lease past 30 seconds by beating.
    assert await jobs.work(pm, crm.settings, node="alive") == [(job_id, "done")]
    assert beats == [True, True, True]
    # A killed worker's job is taken over after the short lease, not the hour of its timeout.
    job_id = await _enqueue("test.long", {})
    [lost] = await jobs.claim_due(jobs.collect_kinds(pm), "dead")
    row = await _job(job_id)
    assert row["lease_until"] - clock.now() == timedelta(seconds=30)
    frozen_clock.advance(seconds=31)
    beats.clear()
    assert await jobs.work(pm, crm.settings, node="alive") == [(job_id, "done")]
    # The stalled worker's next heartbeat says the job is no longer its own.
    ctx = jobs.JobContext(
        id=lost.id,
        kind=lost.kind,
        attempt=lost.attempt,
        max_attempts=lost.max_attempts,
        created_by=None,
        node="dead",
        settings=crm.settings,
        pm=pm,
        lease=30,
    )
    assert await ctx.heartbeat() is False


async def test_a_job_whose_worker_died_on_the_last_attempt_fails(crm: Any, frozen_clock: Any) -> None:
    async def crashes_worker(ctx: Any, payload: dict[str, Any]) -> None:
        raise AssertionError("never called: the worker died")

    pm = _pm_with_kinds(crm, {"test.crash": jobs.JobKind(crashes_worker, timeout=10)})
    job_id = await _enqueue("test.crash", {}, max_attempts=1)
    await jobs.claim_due(jobs.collect_kinds(pm), "dead")
    frozen_clock.advance(minutes=5)
    assert await jobs.work(pm, crm.settings) == []
    row = await _job(job_id)
    assert row["status"] == "failed" and "lease expired" in row["error"]


async def test_concurrent_workers_run_each_job_exactly_once(crm: Any, frozen_clock: Any) -> None:
    """Two claim loops at once against the same database (on PostgreSQL: two pool connections
    racing with FOR UPDATE SKIP LOCKED)."""
    runs: list[tuple[int, str]] = []

    async def item(ctx: Any, payload: dict[str, Any]) -> None:
        runs.append((payload["i"], ctx.node))
        await asyncio.sleep(0)  # let the other worker claim meanwhile

    pm = _pm_with_kinds(crm, {"test.item": item})
    async with events.unit_of_work():
        ids = [await jobs.enqueue("test.item", {"i": i}) for i in range(30)]
    results = await asyncio.gather(*(jobs.work(pm, crm.settings, node=f"w{n}") for n in range(2)))
    counts = Counter(i for i, _node in runs)
    assert sorted(counts) == list(range(30)) and set(counts.values()) == {1}
    assert sorted(job_id for result in results for job_id, _ in result) == ids
    statuses = {r["status"] for r in await BackgroundJob.select(BackgroundJob.status)}
    assert statuses == {"done"}


async def test_the_worker_runs_background_jobs_beside_the_schedule(crm: Any) -> None:
    stop = asyncio.Event()

    async def stopper(ctx: Any, payload: dict[str, Any]) -> str:
        stop.set()
        return "stopped"

    pm = _pm_with_kinds(crm, {"test.stop": stopper})
    job_id = await _enqueue("test.stop", {})
    await asyncio.wait_for(scheduler.run_worker(pm, crm.settings, stop, poll_seconds=0.01), timeout=60)
    row = await _job(job_id)
    assert (row["status"], row["result"]) == ("done", "stopped")


@pytest.mark.plugins("probe")
async def test_worker_processes_share_background_jobs(crm: Any) -> None:
    """``tessera worker --once`` processes (SQLite: BEGIN IMMEDIATE; PostgreSQL: SKIP LOCKED)
    run each job of a plugin's kind exactly once, and survive being separate processes."""
    async with events.unit_of_work():
        for i in range(12):
            await jobs.enqueue("probe.mark", {"label": f"job{i}"})
    await run_workers_once(crm, 2)
    admin = await crm.user("admin")
    marks = (await crm.get("/api/probe/marks", admin, params={"kind": "background"})).json()
    assert sorted(m["detail"] for m in marks) == sorted(f"job{i}#1" for i in range(12))
    listed = (await crm.get("/api/jobs/background", admin, params={"kind": "probe.mark"})).json()
    assert {(j["status"], j["attempts"]) for j in listed} == {("done", 1)} and len(listed) == 12


# --------------------------------------------------------------------------- API


async def test_progress_is_visible_through_the_api_while_the_job_runs(crm: Any) -> None:
    owner = await crm.user("manager")
    seen: list[dict[str, Any]] = []

    async def importer(ctx: Any, payload: dict[str, Any]) -> dict[str, int]:
        for done in range(0, 3):
            await ctx.progress(done, 3, f"row {done}")
            seen.append((await crm.get(f"/api/jobs/background/{ctx.id}", owner)).json())
        return {"imported": 3}

    pm = _pm_with_kinds(crm, {"test.import": importer})
    token = events.set_actor(owner["id"])
    try:
        job_id = await _enqueue("test.import", {"file": "clients.xlsx"})
    finally:
        events._actor.reset(token)
    before = (await crm.get(f"/api/jobs/background/{job_id}", owner)).json()
    assert (before["status"], before["progress"], before["created_by"]) == ("queued", {}, owner["id"])
    await jobs.work(pm, crm.settings)
    assert [(s["status"], s["progress"]) for s in seen] == [
        ("running", {"done": d, "total": 3, "message": f"row {d}"}) for d in range(3)
    ]
    after = (await crm.get(f"/api/jobs/background/{job_id}", owner)).json()
    assert (after["status"], after["result"], after["attempts"]) == ("done", {"imported": 3}, 1)
    assert "payload" not in after


async def test_users_see_their_own_jobs_admins_see_all_and_act(crm: Any, frozen_clock: Any) -> None:
    admin, mine, other = await crm.user("admin"), await crm.user("manager"), await crm.user("manager")

    async def hopeless(ctx: Any, payload: dict[str, Any]) -> None:
        raise jobs.PermanentFailure("no such report")

    pm = _pm_with_kinds(crm, {"test.report": hopeless})
    ids = {}
    for user in (mine, other):
        token = events.set_actor(user["id"])
        try:
            ids[user["id"]] = await _enqueue("test.report", {"for": user["id"]})
        finally:
            events._actor.reset(token)
    system_job = await _enqueue("test.report", {})
    listed = (await crm.get("/api/jobs/background", mine)).json()
    assert [j["id"] for j in listed] == [ids[mine["id"]]]
    assert (await crm.get(f"/api/jobs/background/{ids[other['id']]}", mine)).status_code == 404
    everything = (await crm.get("/api/jobs/background", admin)).json()
    assert {j["id"] for j in everything} == {*ids.values(), system_job}

    await jobs.work(pm, crm.settings)
    failed = (await crm.get("/api/jobs/background", admin, params={"status": "failed"})).json()
    assert len(failed) == 3 and {j["error"] for j in failed} == {"no such report"}
    assert (await crm.get("/api/jobs/background", admin, params={"status": "done"})).json() == []
    assert (await crm.get("/api/jobs/background", admin, params={"kind": "other.kind"})).json() == []
    bogus = await crm.get("/api/jobs/background", admin, params={"status": "bogus"})
    assert bogus.status_code == 422

    # Retry and cancel are for admins.
    job_id = ids[mine["id"]]
    assert (await crm.post(f"/api/jobs/background/{job_id}/retry", mine)).status_code == 403
    retried = await crm.post(f"/api/jobs/background/{job_id}/retry", admin)
    assert retried.status_code == 200
    assert (retried.json()["status"], retried.json()["attempts"]) == ("queued", 0)
    assert (await crm.post(f"/api/jobs/background/{job_id}/retry", admin)).status_code == 409
    cancelled = await crm.post(f"/api/jobs/background/{job_id}/cancel", admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert await jobs.work(pm, crm.settings) == []  # a cancelled job is not run
    assert (await crm.post(f"/api/jobs/background/{job_id}/cancel", admin)).status_code == 409
    missing = await crm.post("/api/jobs/background/999999/cancel", admin)
    assert missing.status_code == 404 and missing.json()["status"] == 404
