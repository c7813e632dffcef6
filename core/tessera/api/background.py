"""Routes of background jobs (``tessera.jobs``): status, progress, attempts, error and result;
retry and cancel for admins. Admins (``job.manage``) see every job, other users the jobs they
started (an import they launched, a report they asked for)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import get, post
from litestar.params import Parameter
from msgspec import Struct

from tessera import jobs
from tessera.entities.dto import MAX_ID, to_struct
from tessera.entities.tables import BackgroundJob
from tessera.errors import Conflict, NotFound
from tessera.permissions import Principal

Status = Literal["queued", "running", "done", "failed", "cancelled"]
JobId = Annotated[int, Parameter(ge=1, le=MAX_ID)]


class BackgroundJobOut(Struct, kw_only=True):
    id: int
    kind: str
    status: str
    run_at: datetime
    attempts: int
    max_attempts: int
    progress: dict[str, Any]
    result: Any | None
    error: str
    created_by: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


_COLUMNS = [
    c for c in BackgroundJob._meta.columns if c._meta.name not in ("payload", "dedup_key", "claimed_by")
]


def _visible(principal: Principal) -> Any:
    if principal.can("job.manage"):
        return None
    return BackgroundJob.created_by == principal.user_id


async def _get(principal: Principal, job_id: JobId) -> dict[str, Any]:
    query = BackgroundJob.select(*_COLUMNS).where(BackgroundJob.id == job_id)
    condition = _visible(principal)
    if condition is not None:
        query = query.where(condition)
    row = await query.first().output(load_json=True)
    if row is None:
        raise NotFound(f"background job {job_id} not found")
    return row  # type: ignore[no-any-return]


@get("/api/jobs/background", operation_id="list_background_jobs", tags=["jobs"])
async def list_background_jobs(
    principal: Principal,
    status: Status | None = None,
    kind: Annotated[str | None, Parameter(max_length=150)] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> list[BackgroundJobOut]:
    """Background jobs, newest first: status, progress, attempts, error and result. Admins
    (``job.manage``) see all of them, others the jobs they started."""
    query = BackgroundJob.select(*_COLUMNS)
    condition = _visible(principal)
    if condition is not None:
        query = query.where(condition)
    if status:
        query = query.where(BackgroundJob.status == status)
    if kind:
        query = query.where(BackgroundJob.kind == kind)
    rows = await query.order_by(BackgroundJob.id, ascending=False).limit(limit).output(load_json=True)
    return [to_struct(r, BackgroundJobOut) for r in rows]


@get("/api/jobs/background/{job_id:int}", operation_id="get_background_job", tags=["jobs"])
async def get_background_job(principal: Principal, job_id: JobId) -> BackgroundJobOut:
    """One background job (404 when it is not yours and you lack ``job.manage``)."""
    return to_struct(await _get(principal, job_id), BackgroundJobOut)


@post(
    "/api/jobs/background/{job_id:int}/retry",
    operation_id="retry_background_job",
    tags=["jobs"],
    status_code=200,
)
async def retry_background_job(principal: Principal, job_id: JobId) -> BackgroundJobOut:
    """Queue a failed or cancelled job again, due now, with a fresh set of attempts (409 for
    a job that is queued, running or done)."""
    principal.require("job.manage")
    await _get(principal, job_id)
    if not await jobs.retry(job_id):
        raise Conflict("only a failed or cancelled job can be retried")
    return to_struct(await _get(principal, job_id), BackgroundJobOut)


@post(
    "/api/jobs/background/{job_id:int}/cancel",
    operation_id="cancel_background_job",
    tags=["jobs"],
    status_code=200,
)
async def cancel_background_job(principal: Principal, job_id: JobId) -> BackgroundJobOut:
    """Cancel a queued or running job: it is not run (again); an attempt under way finishes but
    its outcome is dropped (409 for a job that already ended)."""
    principal.require("job.manage")
    await _get(principal, job_id)
    if not await jobs.cancel(job_id):
        raise Conflict("only a queued or running job can be cancelled")
    return to_struct(await _get(principal, job_id), BackgroundJobOut)


HANDLERS = [list_background_jobs, get_background_job, retry_background_job, cancel_background_job]
