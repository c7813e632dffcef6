"""Background jobs: one-off work that code enqueues (an import started from the API, a mailing
batch, a webhook delivery, an e-mail), run by ``tessera worker``.

``await enqueue(kind, payload)`` writes a row in ``background_job`` inside the caller's
transaction (``events.unit_of_work()``): the job exists if and only if the change that asked
for it committed. Handlers are declared as data, by the kernel (``KERNEL_KINDS``) and by plugins
(hook ``tessera_background_jobs``): ``{kind: async handler(ctx, payload)}``.

A worker *claims* due jobs the way the scheduler claims runs: on PostgreSQL with
``SELECT ... FOR UPDATE SKIP LOCKED``, on SQLite inside ``BEGIN IMMEDIATE``. A claim sets a
lease (``claimed_by``, ``lease_until``); a worker that dies leaves the job ``running`` with a
lease that expires, and another worker claims it again. A failing job is retried with
exponential back-off plus jitter until ``max_attempts``, then it is ``failed`` with the error;
``PermanentFailure`` fails it at once. Handlers see the attempt number (``ctx.attempt``) and
report progress (``await ctx.progress(done, total, message)``); what they return is stored as
the job's ``result``. See docs/kernel.md, "Background jobs".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pluggy
from piccolo.utils.encoding import dump_json

from tessera import clock, db, events
from tessera.config import Settings
from tessera.entities.tables import BackgroundJob
from tessera.plugins import PluginError, call_each

log = logging.getLogger("tessera.jobs")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)

#: First retry delay; each further attempt doubles it (capped), times a jitter of 1 to 1.25.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
JITTER = 0.25
#: Added to a kind's timeout to make the lease: a job past it is taken to be abandoned.
LEASE_MARGIN = timedelta(seconds=60)


class PermanentFailure(Exception):
    """Raise from a handler when retrying cannot help (a 5xx from a mail server, bad input):
    the job fails at once with this message."""


@dataclass
class JobContext:
    """What a handler gets besides its payload."""

    id: int
    kind: str
    #: 1 for the first run, 2 for the first retry ... (a handler may skip work done before).
    attempt: int
    max_attempts: int
    created_by: int | None
    node: str
    settings: Settings | None
    pm: pluggy.PluginManager | None
    #: Seconds of lease a :meth:`heartbeat` grants (the kind's ``JobKind.lease``); None: the
    #: claim's lease is the kind's timeout and a heartbeat only checks the claim.
    lease: float | None = None

    async def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Record progress (visible at once through ``GET /api/jobs/background/{id}``); with a
        short lease it also renews the lease."""
        values: dict[Any, Any] = {BackgroundJob.progress: {"done": done, "total": total, "message": message}}
        if self.lease:
            values[BackgroundJob.lease_until] = clock.now() + timedelta(seconds=self.lease)
        await BackgroundJob.update(values).where(
            BackgroundJob.id == self.id,
            BackgroundJob.claimed_by == self.node,
            BackgroundJob.attempts == self.attempt,
        )

    async def heartbeat(self) -> bool:
        """Renew this attempt's lease (``lease`` seconds from now) and say whether it is still
        this worker's: False once another worker reclaimed it (this one stalled past its lease)
        or it was cancelled, and the handler must stop at once. A job whose kind has a short
        ``lease`` calls it as it goes, so a killed worker's job is taken over after that lease
        instead of after the whole timeout."""
        values: dict[Any, Any] = {BackgroundJob.claimed_by: self.node}
        if self.lease:
            values[BackgroundJob.lease_until] = clock.now() + timedelta(seconds=self.lease)
        rows = (
            await BackgroundJob.update(values)
            .where(
                (BackgroundJob.id == self.id)
                & (BackgroundJob.status == RUNNING)
                & (BackgroundJob.claimed_by == self.node)
                & (BackgroundJob.attempts == self.attempt)
            )
            .returning(BackgroundJob.id)
        )
        return bool(rows)


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class JobKind:
    """A handler with its limits; a plain ``async def`` in the hook's dict gets the defaults."""

    handler: Handler
    #: Seconds one attempt may take before it counts as failed (and retried).
    timeout: float = 600.0
    #: Seconds a claim holds without a heartbeat (``JobContext.heartbeat``, ``progress``);
    #: None: the timeout plus ``LEASE_MARGIN``. A long job that beats as it goes sets it short,
    #: so the job of a killed worker is taken over promptly; it must beat more often than this.
    lease: float | None = None


# --------------------------------------------------------------------------- declarations


#: The kernel's own job kinds (``email.send``, ``webhook.deliver``). The modules that handle
#: them register here when imported (``kernel_kind``; the app imports them), so this module
#: stands below them instead of importing them back.
KERNEL_KINDS: dict[str, JobKind] = {}


def kernel_kind(kind: str, timeout: float = 600.0) -> Callable[[Handler], Handler]:
    """Decorator: ``handler`` runs the kernel's background jobs of ``kind``."""

    def register(handler: Handler) -> Handler:
        KERNEL_KINDS[kind] = JobKind(handler, timeout=timeout)
        return handler

    return register


def node_name() -> str:
    """This worker process, as it signs its claims (the scheduler's too)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def collect_kinds(pm: pluggy.PluginManager | None) -> dict[str, JobKind]:
    """Every job kind of the kernel and the enabled plugins."""
    kinds = dict(KERNEL_KINDS)
    if pm is None:
        return kinds
    for plugin, declared in call_each(pm, "tessera_background_jobs"):
        if not isinstance(declared or {}, Mapping):
            raise PluginError(f"Plugin {plugin!r}: tessera_background_jobs must return a dict")
        for kind, value in (declared or {}).items():
            spec = value if isinstance(value, JobKind) else JobKind(value)
            if not callable(spec.handler):
                raise PluginError(f"Plugin {plugin!r}: background job {kind!r} needs an async handler")
            if kind in kinds:
                raise PluginError(f"Plugin {plugin!r}: background job kind {kind!r} is already taken")
            kinds[kind] = spec
    return kinds


# --------------------------------------------------------------------------- enqueue


async def enqueue(
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    max_attempts: int = 5,
    dedup_key: str | None = None,
) -> int:
    """Add a job; returns its id. Call it inside the change's ``unit_of_work()`` so the job is
    committed (or rolled back) with it. ``dedup_key``: when a job with that key exists (in any
    status), its id is returned and nothing is added (a webhook delivery id, an import file)."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if run_at is not None and run_at.tzinfo is None:
        raise ValueError("run_at must carry a time zone")
    stored = json.loads(dump_json(payload or {}))  # JSON types, as the handler will read them
    now = clock.now()
    row = BackgroundJob(
        kind=kind,
        payload=stored,
        status=QUEUED,
        run_at=run_at or now,
        max_attempts=max_attempts,
        dedup_key=dedup_key,
        created_by=events.current_actor(),
        created_at=now,
    )
    query = BackgroundJob.insert(row).returning(BackgroundJob.id)
    if dedup_key is not None:
        query = query.on_conflict(target=BackgroundJob.dedup_key, action="DO NOTHING")
    rows = await query
    if rows:
        return int(rows[0]["id"])
    existing = (
        await BackgroundJob.select(BackgroundJob.id).where(BackgroundJob.dedup_key == dedup_key).first()
    )
    assert existing is not None
    return int(existing["id"])


# --------------------------------------------------------------------------- claiming


@dataclass(frozen=True)
class Claim:
    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    created_by: int | None


def backoff(attempt: int, rnd: random.Random | None = None) -> timedelta:
    """Delay before the retry that follows failed attempt ``attempt`` (1-based)."""
    base = min(BACKOFF_BASE * (2 ** (attempt - 1)), BACKOFF_CAP)
    return base * (1 + (rnd or random).random() * JITTER)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def claim_due(kinds: dict[str, JobKind], node: str, limit: int = 1) -> list[Claim]:
    """Claim up to ``limit`` due jobs of the known kinds (queued and due, or running with an
    expired lease); atomically mark them running under this node's lease."""
    if not kinds:
        return []
    now = clock.now()
    names = list(kinds)
    due = ((BackgroundJob.status == QUEUED) & (BackgroundJob.run_at <= now)) | (
        (BackgroundJob.status == RUNNING) & (BackgroundJob.lease_until < now)
    )
    claims: list[Claim] = []
    async with db.transaction():
        if db.is_postgres():
            rows = await db.raw(
                "SELECT id, kind, status, attempts, max_attempts FROM background_job "
                "WHERE kind = ANY({}) AND ((status = 'queued' AND run_at <= {}) "
                "OR (status = 'running' AND lease_until < {})) "
                "ORDER BY run_at, id LIMIT {} FOR UPDATE SKIP LOCKED",
                names,
                now,
                now,
                limit,
            )
        else:
            rows = (
                await BackgroundJob.select(
                    BackgroundJob.id,
                    BackgroundJob.kind,
                    BackgroundJob.status,
                    BackgroundJob.attempts,
                    BackgroundJob.max_attempts,
                )
                .where(BackgroundJob.kind.is_in(names), due)
                .order_by(BackgroundJob.run_at)
                .order_by(BackgroundJob.id)
                .limit(limit)
            )
        for row in rows:
            if row["status"] == RUNNING and row["attempts"] >= row["max_attempts"]:
                # Its worker died on the last attempt (perhaps killed by the job itself).
                await BackgroundJob.update(
                    {
                        BackgroundJob.status: FAILED,
                        BackgroundJob.finished_at: now,
                        BackgroundJob.lease_until: None,
                        BackgroundJob.error: "the worker running the last attempt stopped (lease expired)",
                    }
                ).where(BackgroundJob.id == row["id"])
                continue
            kind = kinds[row["kind"]]
            lease = timedelta(seconds=kind.timeout) + LEASE_MARGIN
            if kind.lease:
                lease = timedelta(seconds=kind.lease)
            claimed = (
                await BackgroundJob.update(
                    {
                        BackgroundJob.status: RUNNING,
                        BackgroundJob.claimed_by: node,
                        BackgroundJob.lease_until: now + lease,
                        BackgroundJob.attempts: BackgroundJob.attempts + 1,
                        BackgroundJob.started_at: now,
                    }
                )
                .where(BackgroundJob.id == row["id"])
                .returning(
                    BackgroundJob.id,
                    BackgroundJob.kind,
                    BackgroundJob.payload,
                    BackgroundJob.attempts,
                    BackgroundJob.max_attempts,
                    BackgroundJob.created_by,
                )
            )
            got = claimed[0]
            claims.append(
                Claim(
                    id=got["id"],
                    kind=got["kind"],
                    payload=_loads(got["payload"]) or {},
                    attempt=got["attempts"],
                    max_attempts=got["max_attempts"],
                    created_by=got["created_by"],
                )
            )
    return claims


def _mine(claim: Claim, node: str) -> Any:
    """Only the holder of this attempt may record its outcome (not after a cancel or reclaim)."""
    return (
        (BackgroundJob.id == claim.id)
        & (BackgroundJob.status == RUNNING)
        & (BackgroundJob.claimed_by == node)
        & (BackgroundJob.attempts == claim.attempt)
    )


async def run_claim(
    claim: Claim,
    kinds: dict[str, JobKind],
    node: str,
    settings: Settings | None = None,
    pm: pluggy.PluginManager | None = None,
) -> str:
    """Run one claimed job and record its outcome; returns the status it ended in."""
    spec = kinds[claim.kind]
    ctx = JobContext(
        id=claim.id,
        kind=claim.kind,
        attempt=claim.attempt,
        max_attempts=claim.max_attempts,
        created_by=claim.created_by,
        node=node,
        settings=settings,
        pm=pm,
        lease=spec.lease,
    )
    token = events.set_actor(claim.created_by)  # audit entries name who asked for the work
    permanent = False
    try:
        result = await asyncio.wait_for(spec.handler(ctx, dict(claim.payload)), timeout=spec.timeout)
        stored = dump_json(result)  # JSON text (a bare str would be taken as JSON text)
    except PermanentFailure as exc:
        error, permanent = str(exc) or type(exc).__name__, True
    except TimeoutError:
        error = f"did not finish within {spec.timeout:g}s"
    except Exception:
        error = traceback.format_exc(limit=20)
        log.exception("background job %s #%s failed (attempt %s)", claim.kind, claim.id, claim.attempt)
    else:
        await BackgroundJob.update(
            {
                BackgroundJob.status: DONE,
                BackgroundJob.result: stored,
                BackgroundJob.error: "",
                BackgroundJob.finished_at: clock.now(),
                BackgroundJob.lease_until: None,
            }
        ).where(_mine(claim, node))
        return DONE
    finally:
        events._actor.reset(token)
    now = clock.now()
    if permanent or claim.attempt >= claim.max_attempts:
        changes = {BackgroundJob.status: FAILED, BackgroundJob.finished_at: now}
        status = FAILED
    else:
        changes = {BackgroundJob.status: QUEUED, BackgroundJob.run_at: now + backoff(claim.attempt)}
        status = QUEUED
    await BackgroundJob.update(
        {**changes, BackgroundJob.error: error, BackgroundJob.lease_until: None}
    ).where(_mine(claim, node))
    return status


async def work(
    pm: pluggy.PluginManager | None,
    settings: Settings | None = None,
    node: str | None = None,
    limit: int | None = None,
) -> list[tuple[int, str]]:
    """Claim and run due jobs one at a time until none is due (or ``limit`` ran); returns
    ``(job id, status after the run)`` pairs."""
    node = node or node_name()
    kinds = collect_kinds(pm)
    ran: list[tuple[int, str]] = []
    while limit is None or len(ran) < limit:
        claims = await claim_due(kinds, node)
        if not claims:
            break
        for claim in claims:
            ran.append((claim.id, await run_claim(claim, kinds, node, settings, pm)))
    return ran


async def run_worker(
    pm: pluggy.PluginManager, settings: Settings | None, stop: asyncio.Event, poll_seconds: float = 1.0
) -> None:
    """Run due background jobs until ``stop`` is set (beside the scheduler, in ``tessera worker``)."""
    node = node_name()
    await poll(lambda: work(pm, settings, node), stop, poll_seconds, "background job loop failed")


async def poll(
    step: Callable[[], Awaitable[Any]], stop: asyncio.Event, poll_seconds: float, failure: str
) -> None:
    """Run ``step`` every ``poll_seconds`` until ``stop`` is set (the worker's loops: background
    jobs here, scheduled jobs in the scheduler); a failing step is logged, never fatal."""
    while not stop.is_set():
        try:
            await step()
        except Exception:  # a database hiccup must not kill the worker
            log.exception(failure)
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
        except TimeoutError:
            pass


# --------------------------------------------------------------------------- admin actions


async def retry(job_id: int) -> bool:
    """Queue a failed or cancelled job again, due now, with a fresh set of attempts."""
    done = (
        await BackgroundJob.update(
            {
                BackgroundJob.status: QUEUED,
                BackgroundJob.run_at: clock.now(),
                BackgroundJob.attempts: 0,
                BackgroundJob.finished_at: None,
                BackgroundJob.lease_until: None,
            }
        )
        .where(BackgroundJob.id == job_id, BackgroundJob.status.is_in([FAILED, CANCELLED]))
        .returning(BackgroundJob.id)
    )
    return bool(done)


async def cancel(job_id: int) -> bool:
    """Cancel a queued or running job (a running attempt finishes, but its outcome is dropped
    and it is not retried)."""
    done = (
        await BackgroundJob.update(
            {
                BackgroundJob.status: CANCELLED,
                BackgroundJob.finished_at: clock.now(),
                BackgroundJob.lease_until: None,
            }
        )
        .where(BackgroundJob.id == job_id, BackgroundJob.status.is_in([QUEUED, RUNNING]))
        .returning(BackgroundJob.id)
    )
    return bool(done)
