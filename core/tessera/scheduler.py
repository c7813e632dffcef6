"""Scheduled jobs contributed by the kernel and plugins, run by ``tessera worker``.

A job is declared as data (``JobSpec``) and recorded in the ``job`` table, where admins can
switch it off. Each due run is *claimed* in the database before it runs: on PostgreSQL with
``SELECT ... FOR UPDATE SKIP LOCKED`` so any number of workers on any number of nodes never
run the same due time twice; on SQLite inside a ``BEGIN IMMEDIATE`` transaction (one writer at
a time). Every run is recorded in ``job_run`` with start, end, outcome and error.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pluggy
from croniter import croniter

from tessera import clock, db, events
from tessera.config import Settings
from tessera.entities.tables import Job, JobRun, WebSession
from tessera.jobs import node_name, poll
from tessera.plugins import PluginError, call_each

log = logging.getLogger("tessera.scheduler")


@dataclass(frozen=True)
class JobContext:
    name: str
    scheduled_for: datetime
    now: datetime
    run_id: int
    settings: Settings | None
    pm: pluggy.PluginManager | None


JobFunc = Callable[[JobContext], Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job: exactly one of ``every`` (interval) or ``cron`` (UTC cron expression)."""

    name: str
    func: JobFunc
    every: timedelta | None = None
    cron: str | None = None
    timeout: float = 600.0
    description: str = ""

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"job {self.name!r}: give exactly one of every= or cron=")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"job {self.name!r}: invalid cron expression {self.cron!r}")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError(f"job {self.name!r}: every= must be positive")

    @property
    def schedule(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {int(self.every.total_seconds())}s"  # type: ignore[union-attr]

    def next_after(self, moment: datetime) -> datetime:
        if self.cron:
            return croniter(self.cron, moment).get_next(datetime)  # type: ignore[no-any-return]
        assert self.every is not None
        return moment + self.every


# --------------------------------------------------------------------------- kernel jobs


async def _escalate_overdue_tasks(ctx: JobContext) -> int:
    from tessera.entities.tasks import escalate_overdue

    return await escalate_overdue(ctx.now)


async def _redeliver_events(ctx: JobContext) -> int:
    return await events.redeliver_pending(older_than=timedelta(seconds=30))


async def _workflow_scan_deviations(ctx: JobContext) -> Any:
    from tessera.workflow.jobs import scan_deviations

    return await scan_deviations(ctx)


async def _workflow_run_due_actions(ctx: JobContext) -> int:
    from tessera.workflow.jobs import run_due_actions

    return await run_due_actions(ctx)


async def _search_retry(ctx: JobContext) -> int:
    from tessera.search.service import drain_pending

    return await drain_pending()


async def _mail_in(ctx: JobContext) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from tessera.mail_in import poll_all

    return [asdict(r) for r in await poll_all(ctx.settings)]


async def _purge_sessions(ctx: JobContext) -> None:
    await WebSession.delete().where(WebSession.expires_at < ctx.now)


async def _send_scheduled_reports(ctx: JobContext) -> int:
    from tessera.reports import schedules

    return await schedules.run_due(ctx.pm, ctx.now)


async def _reconcile_summary(ctx: JobContext) -> int:
    from tessera.reports import summary

    return await summary.rebuild()


KERNEL_JOBS = [
    JobSpec(
        "kernel.escalate_overdue_tasks",
        _escalate_overdue_tasks,
        every=timedelta(minutes=1),
        description="Notify controllers of tasks past their deadline",
    ),
    JobSpec(
        "kernel.redeliver_events",
        _redeliver_events,
        every=timedelta(minutes=1),
        description="Deliver domain events left undelivered by a crash",
    ),
    JobSpec(
        "workflow.scan_deviations",
        _workflow_scan_deviations,
        every=timedelta(minutes=1),
        description="Escalate process instances past their stage norm or missing required actions",
    ),
    JobSpec(
        "workflow.run_due_actions",
        _workflow_run_due_actions,
        every=timedelta(minutes=1),
        description="Run delayed process-stage actions that are due (planned calls, tasks, events)",
    ),
    JobSpec(
        "kernel.search_retry",
        _search_retry,
        every=timedelta(minutes=1),
        description="Index records whose indexing failed (index locked or unavailable)",
    ),
    JobSpec(
        "kernel.purge_sessions",
        _purge_sessions,
        every=timedelta(hours=1),
        description="Delete expired web sessions",
    ),
    JobSpec(
        "reports.send_scheduled",
        _send_scheduled_reports,
        every=timedelta(minutes=1),
        description="Send scheduled reports whose time came (each recipient's own visibility)",
    ),
    JobSpec(
        "reports.reconcile_summary",
        _reconcile_summary,
        cron="30 3 * * *",
        timeout=1800,
        description="Rebuild the activity summary of reports and KPIs from the activities (a safety net)",
    ),
    JobSpec(
        "kernel.mail_in",
        _mail_in,
        every=timedelta(minutes=1),
        timeout=540,
        description="Fetch new e-mail from the IMAP mailboxes (imap_mailboxes)",
    ),
]


def collect_jobs(pm: pluggy.PluginManager) -> dict[str, tuple[str, JobSpec]]:
    """Every job of the kernel and the enabled plugins, by name."""
    jobs: dict[str, tuple[str, JobSpec]] = {spec.name: ("kernel", spec) for spec in KERNEL_JOBS}
    for plugin, specs in call_each(pm, "tessera_jobs"):
        for spec in specs or []:
            if not isinstance(spec, JobSpec):
                raise PluginError(f"Plugin {plugin!r}: tessera_jobs must return JobSpec objects")
            if spec.name in jobs:
                raise PluginError(f"Plugin {plugin!r}: job name {spec.name!r} is already taken")
            jobs[spec.name] = (plugin, spec)
    return jobs


async def sync_jobs(pm: pluggy.PluginManager) -> None:
    """Record the jobs in the ``job`` table (keeps each job's enabled flag)."""
    now = clock.now()
    existing = {r["name"]: r for r in await Job.select()}
    async with db.transaction():
        for name, (plugin, spec) in collect_jobs(pm).items():
            row = existing.get(name)
            if row is None:
                # Several workers may start on a fresh database at once: the first one wins.
                await Job.insert(
                    Job(
                        name=name,
                        plugin=plugin,
                        schedule=spec.schedule,
                        enabled=True,
                        next_run_at=spec.next_after(now) if spec.cron else now,
                    )
                ).on_conflict(target=Job.name, action="DO NOTHING")
            elif row["schedule"] != spec.schedule or row["plugin"] != plugin:
                await Job.update(
                    {
                        Job.schedule: spec.schedule,
                        Job.plugin: plugin,
                        Job.next_run_at: spec.next_after(now) if spec.cron else now,
                    }
                ).where(Job.name == name)


@dataclass(frozen=True)
class Claim:
    spec: JobSpec
    run_id: int
    scheduled_for: datetime


async def claim_due(jobs: dict[str, tuple[str, JobSpec]], node: str, limit: int = 10) -> list[Claim]:
    """Claim due runs: move each job's next_run_at forward and open a job_run row, atomically."""
    if not jobs:
        return []
    now = clock.now()
    names = list(jobs)
    claims: list[Claim] = []
    async with db.transaction():
        if db.is_postgres():
            rows = await db.raw(
                "SELECT name, next_run_at FROM job WHERE enabled AND next_run_at <= {} AND name = ANY({}) "
                "ORDER BY next_run_at LIMIT {} FOR UPDATE SKIP LOCKED",
                now,
                names,
                limit,
            )
        else:
            rows = (
                await Job.select(Job.name, Job.next_run_at)
                .where(
                    Job.enabled == True,  # noqa: E712 - Piccolo column comparison
                    Job.next_run_at <= now,
                    Job.name.is_in(names),
                )
                .order_by(Job.next_run_at)
                .limit(limit)
            )
        for row in rows:
            spec = jobs[row["name"]][1]
            await Job.update({Job.next_run_at: spec.next_after(now), Job.last_run_at: now}).where(
                Job.name == spec.name
            )
            inserted = await JobRun.insert(
                JobRun(
                    job_name=spec.name,
                    node=node,
                    scheduled_for=row["next_run_at"],
                    started_at=now,
                    outcome="running",
                )
            ).returning(JobRun.id)
            claims.append(Claim(spec=spec, run_id=inserted[0]["id"], scheduled_for=row["next_run_at"]))
    return claims


async def run_claim(claim: Claim, settings: Settings | None, pm: pluggy.PluginManager | None) -> str:
    ctx = JobContext(
        name=claim.spec.name,
        scheduled_for=claim.scheduled_for,
        now=clock.now(),
        run_id=claim.run_id,
        settings=settings,
        pm=pm,
    )
    outcome, error = "ok", ""
    events.set_actor(None)
    try:
        await asyncio.wait_for(claim.spec.func(ctx), timeout=claim.spec.timeout)
    except TimeoutError:
        outcome, error = "timeout", f"did not finish within {claim.spec.timeout:g}s"
    except Exception:
        outcome, error = "error", traceback.format_exc(limit=20)
        log.exception("job %s failed", claim.spec.name)
    await JobRun.update(
        {JobRun.finished_at: clock.now(), JobRun.outcome: outcome, JobRun.error: error}
    ).where(JobRun.id == claim.run_id)
    return outcome


async def tick(
    pm: pluggy.PluginManager, settings: Settings | None = None, node: str | None = None
) -> list[str]:
    """Claim and run every job that is due now; returns the names of the jobs run."""
    jobs = collect_jobs(pm)
    ran: list[str] = []
    while True:
        claims = await claim_due(jobs, node or node_name())
        if not claims:
            return ran
        for claim in claims:
            await run_claim(claim, settings, pm)
            ran.append(claim.spec.name)


async def run_worker(
    pm: pluggy.PluginManager, settings: Settings | None, stop: asyncio.Event, poll_seconds: float = 1.0
) -> None:
    """Run due jobs until ``stop`` is set."""
    from tessera import jobs

    await sync_jobs(pm)
    node = node_name()
    log.info("worker %s started with jobs: %s", node, ", ".join(collect_jobs(pm)))
    # One-off background jobs (tessera.jobs) are claimed beside the schedule, in their own loop
    # so a long import does not hold up the scheduled jobs.
    background = asyncio.ensure_future(jobs.run_worker(pm, settings, stop, poll_seconds))
    # The PBX link (tessera.telephony), when [tessera.telephony] ami_host is configured.
    from tessera.telephony.ami import run_link

    telephony = asyncio.ensure_future(run_link(settings, stop))
    try:
        await _schedule_loop(pm, settings, stop, node, poll_seconds)
    finally:
        await background
        await telephony


async def _schedule_loop(
    pm: pluggy.PluginManager, settings: Settings | None, stop: asyncio.Event, node: str, poll_seconds: float
) -> None:
    await poll(lambda: tick(pm, settings, node), stop, poll_seconds, "worker tick failed")
