"""Scheduled jobs: declared by the kernel and plugins, recorded in ``job``, claimed in the
database so that several workers never run the same due time twice, each run recorded in
``job_run`` with start, end, outcome and error."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from entity_helpers import run_workers_once
from tessera import scheduler
from tessera.entities.tables import Job, JobRun
from tessera.hookspecs import hookimpl
from tessera.plugins import get_plugin_manager
from tessera.scheduler import JobContext, JobSpec

#: The kernel's jobs, written out here rather than read from ``scheduler.KERNEL_JOBS`` (the list
#: under test): a job dropped from the kernel, or one that stops being scheduled, fails the
#: tests that expect every one of them to run.
KERNEL_JOB_NAMES = {
    "kernel.escalate_overdue_tasks",
    "kernel.redeliver_events",
    "kernel.search_retry",
    "kernel.purge_sessions",
    "kernel.mail_in",
    "workflow.scan_deviations",
    "workflow.run_due_actions",
    "reports.send_scheduled",
}


def _pm_with_jobs(crm: Any, *specs: JobSpec) -> Any:
    """The test's plugin manager plus an in-test plugin contributing ``specs``."""

    def tessera_jobs() -> list[JobSpec]:
        return list(specs)

    pm = get_plugin_manager(crm.settings.with_(plugins=(), autoload_plugins=False))
    pm.register(SimpleNamespace(tessera_jobs=hookimpl(tessera_jobs)), name="testjobs")
    return pm


async def _runs(name: str) -> list[dict[str, Any]]:
    return await JobRun.select().where(JobRun.job_name == name).order_by(JobRun.id)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- declarations


def test_jobspec_needs_exactly_one_valid_schedule() -> None:
    async def job(ctx: JobContext) -> None:
        return None

    with pytest.raises(ValueError, match="exactly one"):
        JobSpec("x", job)
    with pytest.raises(ValueError, match="exactly one"):
        JobSpec("x", job, every=timedelta(minutes=1), cron="* * * * *")
    with pytest.raises(ValueError, match="invalid cron"):
        JobSpec("x", job, cron="every tuesday")
    with pytest.raises(ValueError, match="positive"):
        JobSpec("x", job, every=timedelta(0))
    spec = JobSpec("x", job, cron="30 2 * * *")
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert spec.next_after(start) == datetime(2026, 3, 3, 2, 30, tzinfo=UTC)
    assert JobSpec("y", job, every=timedelta(minutes=5)).next_after(start) == start + timedelta(minutes=5)


# --------------------------------------------------------------------------- runs and outcomes


async def test_due_job_runs_once_and_is_recorded(crm: Any, frozen_clock: Any) -> None:
    calls: list[datetime] = []

    async def job(ctx: JobContext) -> None:
        calls.append(ctx.scheduled_for)

    pm = _pm_with_jobs(crm, JobSpec("test.every5", job, every=timedelta(minutes=5)))
    await scheduler.sync_jobs(pm)
    start = frozen_clock()
    assert "test.every5" in await scheduler.tick(pm, node="n1")
    assert "test.every5" not in await scheduler.tick(pm, node="n1")  # not due again yet
    frozen_clock.advance(minutes=4)
    assert "test.every5" not in await scheduler.tick(pm, node="n1")
    frozen_clock.advance(minutes=1)
    assert "test.every5" in await scheduler.tick(pm, node="n1")
    assert calls == [start, start + timedelta(minutes=5)]
    runs = await _runs("test.every5")
    assert [(r["outcome"], r["node"], r["error"]) for r in runs] == [("ok", "n1", ""), ("ok", "n1", "")]
    assert [r["started_at"] for r in runs] == [start, start + timedelta(minutes=5)]
    assert all(r["finished_at"] is not None for r in runs)
    job_row = await Job.select().where(Job.name == "test.every5").first()
    assert job_row["next_run_at"] == start + timedelta(minutes=10)
    assert job_row["last_run_at"] == start + timedelta(minutes=5)


async def test_cron_job_waits_for_its_time(crm: Any, frozen_clock: Any) -> None:
    calls: list[datetime] = []

    async def job(ctx: JobContext) -> None:
        calls.append(ctx.scheduled_for)

    pm = _pm_with_jobs(crm, JobSpec("test.nightly", job, cron="0 2 * * *"))
    await scheduler.sync_jobs(pm)  # Monday 09:00: next run Tuesday 02:00
    assert "test.nightly" not in await scheduler.tick(pm)
    frozen_clock.set(datetime(2026, 3, 3, 1, 59, tzinfo=UTC))
    assert "test.nightly" not in await scheduler.tick(pm)
    frozen_clock.set(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))
    assert "test.nightly" in await scheduler.tick(pm)
    # A worker that was down for three days runs the job once, not three times.
    frozen_clock.set(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))
    ran = await scheduler.tick(pm)
    assert ran.count("test.nightly") == 1
    assert calls == [datetime(2026, 3, 3, 2, 0, tzinfo=UTC), datetime(2026, 3, 4, 2, 0, tzinfo=UTC)]
    job_row = await Job.select().where(Job.name == "test.nightly").first()
    assert job_row["next_run_at"] == datetime(2026, 3, 7, 2, 0, tzinfo=UTC)


async def test_failing_job_records_error_and_others_still_run(crm: Any, frozen_clock: Any) -> None:
    done: list[str] = []

    async def broken(ctx: JobContext) -> None:
        raise ZeroDivisionError("the ledger is empty")

    async def fine(ctx: JobContext) -> None:
        done.append(ctx.name)

    pm = _pm_with_jobs(
        crm,
        JobSpec("test.broken", broken, every=timedelta(minutes=1)),
        JobSpec("test.fine", fine, every=timedelta(minutes=1)),
    )
    await scheduler.sync_jobs(pm)
    ran = await scheduler.tick(pm)
    assert {"test.broken", "test.fine"} <= set(ran)
    assert done == ["test.fine"]
    (run,) = await _runs("test.broken")
    assert run["outcome"] == "error"
    assert "ZeroDivisionError: the ledger is empty" in run["error"]
    assert run["finished_at"] is not None
    # The failure does not stop the schedule: it is tried again next time.
    frozen_clock.advance(minutes=1)
    assert "test.broken" in await scheduler.tick(pm)


async def test_job_past_its_timeout_is_recorded_as_timeout(crm: Any, frozen_clock: Any) -> None:
    async def hangs(ctx: JobContext) -> None:
        await asyncio.Event().wait()

    pm = _pm_with_jobs(crm, JobSpec("test.hangs", hangs, every=timedelta(minutes=1), timeout=0.01))
    await scheduler.sync_jobs(pm)
    await scheduler.tick(pm)
    (run,) = await _runs("test.hangs")
    assert run["outcome"] == "timeout"
    assert "did not finish" in run["error"]


async def test_disabled_job_does_not_run_until_enabled(crm: Any, frozen_clock: Any) -> None:
    calls: list[str] = []

    async def job(ctx: JobContext) -> None:
        calls.append("ran")

    pm = _pm_with_jobs(crm, JobSpec("test.switch", job, every=timedelta(minutes=1)))
    await scheduler.sync_jobs(pm)
    admin = await crm.user("admin")
    manager = await crm.user("manager")
    assert (await crm.put("/api/jobs/test.switch", manager, json={"enabled": False})).status_code == 403
    r = await crm.put("/api/jobs/test.switch", admin, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert "test.switch" not in await scheduler.tick(pm)
    # Switched off stays switched off when the worker restarts.
    await scheduler.sync_jobs(pm)
    assert "test.switch" not in await scheduler.tick(pm)
    assert calls == []
    await crm.put("/api/jobs/test.switch", admin, json={"enabled": True})
    assert "test.switch" in await scheduler.tick(pm)
    assert (await crm.put("/api/jobs/no.such.job", admin, json={"enabled": True})).status_code == 404


async def test_changed_schedule_is_picked_up_on_sync(crm: Any, frozen_clock: Any) -> None:
    async def job(ctx: JobContext) -> None:
        return None

    pm = _pm_with_jobs(crm, JobSpec("test.changing", job, every=timedelta(hours=1)))
    await scheduler.sync_jobs(pm)
    await scheduler.tick(pm)
    pm2 = _pm_with_jobs(crm, JobSpec("test.changing", job, cron="*/10 * * * *"))
    await scheduler.sync_jobs(pm2)
    row = await Job.select().where(Job.name == "test.changing").first()
    assert row["schedule"] == "cron */10 * * * *"
    assert row["next_run_at"] == frozen_clock() + timedelta(minutes=10)


async def test_job_runs_are_listed_for_admins(crm: Any, frozen_clock: Any) -> None:
    pm = crm.pm
    await scheduler.sync_jobs(pm)
    await scheduler.tick(pm)
    admin = await crm.user("admin")
    runs = (await crm.get("/api/jobs/runs", admin)).json()
    assert {r["job_name"] for r in runs} == KERNEL_JOB_NAMES
    assert {r["outcome"] for r in runs if r["job_name"].startswith("kernel.")} == {"ok"}
    assert (await crm.get("/api/jobs/runs", await crm.user("manager"))).status_code == 403


async def test_run_worker_runs_jobs_until_stopped(crm: Any, frozen_clock: Any) -> None:
    stop = asyncio.Event()

    async def stopper(ctx: JobContext) -> None:
        stop.set()

    pm = _pm_with_jobs(crm, JobSpec("test.stopper", stopper, every=timedelta(minutes=1)))
    await asyncio.wait_for(scheduler.run_worker(pm, crm.settings, stop, poll_seconds=0.01), timeout=60)
    assert [r["outcome"] for r in await _runs("test.stopper")] == ["ok"]


# --------------------------------------------------------------------------- several workers


async def test_workers_starting_together_register_jobs_once(crm: Any, frozen_clock: Any) -> None:
    async def job(ctx: JobContext) -> None:
        return None

    pm = _pm_with_jobs(crm, JobSpec("test.fresh", job, every=timedelta(minutes=1)))
    await asyncio.gather(*(scheduler.sync_jobs(pm) for _ in range(4)))
    names = [r["name"] for r in await Job.select(Job.name)]
    assert names.count("test.fresh") == 1


async def test_concurrent_workers_run_each_due_time_exactly_once(crm: Any, frozen_clock: Any) -> None:
    started: list[tuple[str, datetime]] = []

    async def slow(ctx: JobContext) -> None:
        started.append((ctx.name, ctx.scheduled_for))
        await asyncio.sleep(0)  # let the other workers try to claim meanwhile

    pm = _pm_with_jobs(
        crm,
        JobSpec("test.a", slow, every=timedelta(minutes=1)),
        JobSpec("test.b", slow, every=timedelta(minutes=2)),
        JobSpec("test.c", slow, cron="*/3 * * * *"),
    )
    await scheduler.sync_jobs(pm)
    rounds = 12
    for _ in range(rounds):
        await asyncio.gather(*(scheduler.tick(pm, node=f"node-{i}") for i in range(5)))
        frozen_clock.advance(minutes=1)

    runs = await JobRun.select(JobRun.job_name, JobRun.scheduled_for, JobRun.outcome, JobRun.node)
    by_due = Counter((r["job_name"], r["scheduled_for"]) for r in runs)
    assert [key for key, n in by_due.items() if n > 1] == []
    assert Counter(name for name, _ in by_due)["test.a"] == rounds
    assert Counter(name for name, _ in by_due)["test.b"] == rounds // 2
    # 09:00 .. 09:11: the cron job is due at 09:03, 09:06 and 09:09.
    assert Counter(name for name, _ in by_due)["test.c"] == 3
    assert sorted(started) == sorted(
        (r["job_name"], r["scheduled_for"]) for r in runs if r["job_name"].startswith("test.")
    )
    assert {r["outcome"] for r in runs if r["job_name"].startswith("test.")} == {"ok"}


@pytest.mark.postgres_only
@pytest.mark.plugins("probe")
async def test_worker_processes_share_due_jobs_without_double_runs(crm: Any) -> None:
    """Several ``tessera worker --once`` processes against one PostgreSQL database."""
    await scheduler.sync_jobs(crm.pm)
    await run_workers_once(crm, 4)
    runs = await JobRun.select(JobRun.job_name, JobRun.node, JobRun.outcome)
    names = Counter(r["job_name"] for r in runs)
    expected = KERNEL_JOB_NAMES | {"probe.heartbeat"}
    assert set(names) == expected
    assert all(n == 1 for n in names.values()), names
    assert {r["outcome"] for r in runs if r["job_name"].startswith(("kernel.", "probe."))} == {"ok"}
    admin = await crm.user("admin")
    marks = (await crm.get("/api/probe/marks", admin, params={"kind": "heartbeat"})).json()
    assert len(marks) == 1
