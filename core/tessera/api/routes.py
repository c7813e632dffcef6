"""All kernel routes: entity CRUD routers plus task actions, attachments, custom fields,
audit log, notifications, jobs, plugins and permissions."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import File
from msgspec import Struct

from tessera import audit_visibility, customfields
from tessera.api import background, mail, webhooks
from tessera.api import filters as f
from tessera.api.cards import PARTY_EXTRA_HANDLERS
from tessera.api.crud import IdemKey, entity_router, idempotent_create
from tessera.entities import activities, admin, notes, parties, service, tasks
from tessera.entities.dto import MAX_ID, to_struct
from tessera.entities.tables import AuditLog, Job, JobRun, Notification
from tessera.errors import NotFound, ValidationFailed
from tessera.permissions import Principal, all_permissions
from tessera.search import api as search_api
from tessera.workflow.routes import workflow_router


async def _tasks_decorate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tasks.decorate(r) for r in rows]


# --------------------------------------------------------------------------- task actions


@post("/{task_id:int}/handoff", operation_id="handoff_task", status_code=200)
async def handoff_task(principal: Principal, task_id: int, data: tasks.HandoffIn) -> tasks.TaskOut:
    """Hand the task to the next executor; they are notified and the chain is kept."""
    row = await tasks.handoff(principal, task_id, data.to_user_id, data.comment)
    return to_struct(tasks.decorate(row), tasks.TaskOut)


@post("/{task_id:int}/complete", operation_id="complete_task", status_code=200)
async def complete_task(principal: Principal, task_id: int, data: tasks.CompleteIn) -> tasks.TaskOut:
    """Mark the task done with its result."""
    row = await tasks.complete(principal, task_id, data.result, data.version)
    return to_struct(tasks.decorate(row), tasks.TaskOut)


@post("/{task_id:int}/accept", operation_id="accept_task", status_code=200)
async def accept_task(principal: Principal, task_id: int, data: tasks.AcceptIn) -> tasks.TaskOut:
    """Accept a task someone handed (or gave) you: the hand-off is confirmed and whoever
    handed it is notified. Only the assignee or their substitute may; 409 for a closed task."""
    row = await tasks.accept(principal, task_id, data.version)
    return to_struct(tasks.decorate(row), tasks.TaskOut)


@get("/{task_id:int}/handoffs", operation_id="task_handoffs")
async def task_handoffs(principal: Principal, task_id: int) -> list[tasks.HandoffOut]:
    """The chain of executors: who had the task and since when; the last one has it now."""
    return [to_struct(r, tasks.HandoffOut) for r in await tasks.handoff_chain(principal, task_id)]


# --------------------------------------------------------------------------- attachments


class UploadForm(Struct):
    file: UploadFile
    party_id: int | None = None
    subject_ref: str = ""


@post("/upload", operation_id="upload_attachment", status_code=201)
async def upload_attachment(
    request: Request[Any, Any, Any],
    principal: Principal,
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    idempotency_key: IdemKey = None,
) -> Response[notes.AttachmentOut]:
    """Upload a file (multipart field ``file``; optional ``party_id`` and ``subject_ref``).
    With an ``Idempotency-Key`` a retried upload answers the first attachment."""
    upload = data.get("file")
    if not isinstance(upload, UploadFile):
        raise ValidationFailed.field("file", "a multipart file field named 'file' is required")
    party_id_raw = data.get("party_id")
    try:
        party_id = int(party_id_raw) if party_id_raw not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise ValidationFailed.field("party_id", "must be an integer") from exc
    content = await upload.read()

    async def store() -> notes.AttachmentOut:
        row = await notes.store_attachment(
            principal,
            request.app.state.settings.data_dir,
            upload.filename,
            upload.content_type,
            content,
            party_id,
            str(data.get("subject_ref") or ""),
        )
        return to_struct(row, notes.AttachmentOut)

    return await idempotent_create(idempotency_key, principal.user_id, request.url.path, store)


@get("/{attachment_id:int}/content", operation_id="download_attachment")
async def download_attachment(principal: Principal, attachment_id: int) -> File:
    """The file's bytes."""
    row, path = await notes.attachment_path(principal, attachment_id)
    if not path.is_file():
        raise NotFound(f"file of attachment {attachment_id} is missing from storage")
    return File(path=path, filename=row["filename"], media_type=row["content_type"])


# --------------------------------------------------------------------------- custom fields


class CustomFieldsIn(Struct, forbid_unknown_fields=True):
    properties: dict[str, Any]
    required: list[str] = []


@get("/api/custom-fields", operation_id="list_custom_field_targets", tags=["custom fields"])
async def custom_field_targets(request: Request[Any, Any, Any], principal: Principal) -> dict[str, Any]:
    """Entity types that accept custom fields, each with its effective JSON schema."""
    pm = request.app.state.pm
    return {t: await customfields.effective_schema(pm, t) for t in customfields.declared_targets(pm)}


@get("/api/custom-fields/{entity_type:str}", operation_id="get_custom_fields", tags=["custom fields"])
async def get_custom_fields(
    request: Request[Any, Any, Any], principal: Principal, entity_type: str
) -> dict[str, Any]:
    """The JSON schema every write of ``entity_type`` is validated against."""
    return await customfields.effective_schema(request.app.state.pm, entity_type)


@put("/api/custom-fields/{entity_type:str}", operation_id="set_custom_fields", tags=["custom fields"])
async def set_custom_fields(
    request: Request[Any, Any, Any], principal: Principal, entity_type: str, data: CustomFieldsIn
) -> dict[str, Any]:
    """Declare the admin's custom fields of ``entity_type`` (JSON-schema ``properties`` and
    ``required``). Plugin-declared fields stay; the result is the effective schema."""
    principal.require("customfield.manage")
    return await customfields.set_admin_properties(
        request.app.state.pm, entity_type, data.properties, data.required, principal.user_id
    )


# --------------------------------------------------------------------------- audit, notifications


class AuditOut(Struct, kw_only=True):
    id: int
    at: Any
    user_id: int | None
    action: str
    entity: str
    entity_id: int | None
    changes: dict[str, Any]
    detail: str


@get("/api/audit", operation_id="list_audit", tags=["audit"])
async def list_audit(
    principal: Principal,
    entity: str | None = None,
    entity_id: f.IdQ = None,
    user_id: f.IdQ = None,
    action: str | None = None,
    before_id: Annotated[
        int | None, Parameter(ge=1, le=MAX_ID, description="Cursor: entries older than this id")
    ] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> list[AuditOut]:
    """The audit log, newest first (needs audit.read): everything for those who see every
    record (admins, auditors), otherwise the entries about records the caller may read."""
    principal.require("audit.read")
    conditions = []
    # Entries hold record contents (old -> new): they follow the visibility of their record.
    visible = await audit_visibility.condition(principal, entity_id, entity)
    if visible is not None:
        conditions.append(visible)
    if entity:
        conditions.append(AuditLog.entity == entity)
    if user_id is not None:
        conditions.append(AuditLog.user_id == user_id)
    if action:
        conditions.append(AuditLog.action == action)
    if before_id is not None:
        conditions.append(AuditLog.id < before_id)
    query = AuditLog.select()
    if conditions:
        query = query.where(*conditions)
    rows = await query.order_by(AuditLog.id, ascending=False).limit(limit).output(load_json=True)
    return [to_struct(r, AuditOut) for r in rows]


class NotificationOut(Struct, kw_only=True):
    id: int
    kind: str
    title: str
    body: str
    ref: str
    created_at: Any
    read_at: Any | None


@get("/api/notifications", operation_id="list_notifications", tags=["notifications"])
async def list_notifications(
    principal: Principal, unread: bool = False, limit: Annotated[int, Parameter(ge=1, le=500)] = 100
) -> list[NotificationOut]:
    """Your inbox: escalations, hand-offs, deviations; newest first."""
    conditions = [Notification.user_id == principal.user_id]
    if unread:
        conditions.append(Notification.read_at.is_null())
    rows = (
        await Notification.select().where(*conditions).order_by(Notification.id, ascending=False).limit(limit)
    )
    return [to_struct(r, NotificationOut) for r in rows]


@post(
    "/api/notifications/{notification_id:int}/read",
    operation_id="read_notification",
    tags=["notifications"],
    status_code=204,
)
async def read_notification(principal: Principal, notification_id: int) -> None:
    """Mark one of your notifications read."""
    from tessera import clock

    if not service.valid_id(notification_id):
        raise NotFound(f"notification {notification_id} not found")
    done = (
        await Notification.update({Notification.read_at: clock.now()})
        .where(Notification.id == notification_id, Notification.user_id == principal.user_id)
        .returning(Notification.id)
    )
    if not done:
        raise NotFound(f"notification {notification_id} not found")


# --------------------------------------------------------------------------- jobs, plugins, permissions


class JobOut(Struct, kw_only=True):
    name: str
    plugin: str
    schedule: str
    enabled: bool
    next_run_at: Any | None
    last_run_at: Any | None


class JobRunOut(Struct, kw_only=True):
    id: int
    job_name: str
    node: str
    scheduled_for: Any | None
    started_at: Any
    finished_at: Any | None
    outcome: str
    error: str


class JobPatch(Struct, forbid_unknown_fields=True):
    enabled: bool


@get("/api/jobs", operation_id="list_jobs", tags=["jobs"])
async def list_jobs(request: Request[Any, Any, Any], principal: Principal) -> list[JobOut]:
    """Scheduled jobs contributed by the kernel and enabled plugins (a disabled plugin's jobs
    stay recorded, with their switch, but are not listed: no worker runs them)."""
    from tessera.scheduler import collect_jobs

    principal.require("job.manage")
    known = collect_jobs(request.app.state.pm)
    return [to_struct(r, JobOut) for r in await Job.select().order_by(Job.name) if r["name"] in known]


@put("/api/jobs/{name:str}", operation_id="set_job", tags=["jobs"])
async def set_job(principal: Principal, name: str, data: JobPatch) -> JobOut:
    """Switch a job on or off (takes effect on the next tick of every worker)."""
    principal.require("job.manage")
    done = await Job.update({Job.enabled: data.enabled}).where(Job.name == name).returning(Job.name)
    if not done:
        raise NotFound(f"job {name!r} not found")
    row = await Job.select().where(Job.name == name).first()
    return to_struct(row, JobOut)


@get("/api/jobs/runs", operation_id="list_job_runs", tags=["jobs"])
async def list_job_runs(
    principal: Principal, job_name: str | None = None, limit: Annotated[int, Parameter(ge=1, le=500)] = 100
) -> list[JobRunOut]:
    """Recent job runs: start, end, outcome and error."""
    principal.require("job.manage")
    query = JobRun.select()
    if job_name:
        query = query.where(JobRun.job_name == job_name)
    return [to_struct(r, JobRunOut) for r in await query.order_by(JobRun.id, ascending=False).limit(limit)]


@get("/api/plugins", operation_id="list_plugins", tags=["plugins"])
async def list_plugins(request: Request[Any, Any, Any], principal: Principal) -> list[dict[str, Any]]:
    """Installed plugins and whether each is enabled here."""
    from tessera.plugins import enabled_plugin_names, installed_plugins

    enabled = set(enabled_plugin_names(request.app.state.pm))
    installed = installed_plugins()
    names = sorted(set(installed) | enabled)
    return [
        {
            "name": n,
            "enabled": n in enabled,
            "installed": n in installed,
            "version": installed[n].version if n in installed else None,
        }
        for n in names
    ]


@get("/api/permissions", operation_id="list_permissions", tags=["auth"])
async def list_permissions(request: Request[Any, Any, Any], principal: Principal) -> dict[str, str]:
    """Every permission the kernel and the enabled plugins define."""
    return all_permissions(request.app.state.pm)


@get("/api/health", operation_id="health", tags=["system"])
async def health() -> dict[str, str]:
    """Liveness: the process answers and reaches its database."""
    from tessera.entities.tables import Team

    await Team.count()
    return {"status": "ok"}


def kernel_route_handlers() -> list[Any]:
    from tessera.reports.routes import builder_router, dashboard_router, kpi_router, report_router

    return [
        report_router(),
        dashboard_router(),
        builder_router(),
        kpi_router(),
        entity_router(
            spec=parties.PARTY,
            path="/api/parties",
            tag="parties",
            out=parties.PartyOut,
            create_body=parties.PartyIn,
            patch_body=parties.PartyPatch,
            filters=f.party_filters,
            extra_handlers=PARTY_EXTRA_HANDLERS,
        ),
        entity_router(
            spec=parties.CONTACT,
            path="/api/contacts",
            tag="contacts",
            out=parties.ContactOut,
            create_body=parties.ContactIn,
            patch_body=parties.ContactPatch,
            filters=f.contact_filters,
        ),
        entity_router(
            spec=activities.ACTIVITY,
            path="/api/activities",
            tag="activities",
            out=activities.ActivityOut,
            create_body=activities.ActivityIn,
            patch_body=activities.ActivityPatch,
            filters=f.activity_filters,
            decorate=activities.with_participants,
        ),
        entity_router(
            spec=tasks.TASK,
            path="/api/tasks",
            tag="tasks",
            out=tasks.TaskOut,
            create_body=tasks.TaskIn,
            patch_body=tasks.TaskPatch,
            filters=f.task_filters,
            decorate=_tasks_decorate,
            extra_handlers=[handoff_task, complete_task, accept_task, task_handoffs],
        ),
        entity_router(
            spec=notes.NOTE,
            path="/api/notes",
            tag="notes",
            out=notes.NoteOut,
            create_body=notes.NoteIn,
            patch_body=notes.NotePatch,
            filters=f.note_filters,
        ),
        entity_router(
            spec=notes.ATTACHMENT,
            path="/api/attachments",
            tag="attachments",
            out=notes.AttachmentOut,
            create_body=None,
            patch_body=None,
            filters=f.attachment_filters,
            extra_handlers=[upload_attachment, download_attachment],
        ),
        entity_router(
            spec=admin.USER,
            path="/api/users",
            tag="users",
            out=admin.UserOut,
            create_body=admin.UserIn,
            patch_body=admin.UserPatch,
            filters=f.user_filters,
            decorate=admin.with_roles,
        ),
        entity_router(
            spec=admin.TEAM,
            path="/api/teams",
            tag="teams",
            out=admin.TeamOut,
            create_body=admin.TeamIn,
            patch_body=admin.TeamPatch,
            filters=f.team_filters,
        ),
        entity_router(
            spec=admin.ROLE,
            path="/api/roles",
            tag="roles",
            out=admin.RoleOut,
            create_body=admin.RoleIn,
            patch_body=admin.RolePatch,
            filters=f.role_filters,
        ),
        entity_router(
            spec=admin.SUBSTITUTION,
            path="/api/substitutions",
            tag="substitutions",
            out=admin.SubstitutionOut,
            create_body=admin.SubstitutionIn,
            patch_body=admin.SubstitutionPatch,
            filters=f.substitution_filters,
        ),
        custom_field_targets,
        get_custom_fields,
        set_custom_fields,
        list_audit,
        list_notifications,
        read_notification,
        list_jobs,
        set_job,
        list_job_runs,
        *background.HANDLERS,
        *webhooks.HANDLERS,
        *mail.HANDLERS,
        list_plugins,
        list_permissions,
        health,
        *search_api.HANDLERS,
        workflow_router,
    ]


__all__ = ["kernel_route_handlers", "msgspec", "service"]
