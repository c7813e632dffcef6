"""REST API of the workflow engine, mounted at ``/api/workflow``.

Templates (list, read, create, publish a version), instances (start, list, read, advance,
checklist, process card and its controls), deviations and the hand-off trace. Rules live in
``engine``/``deviations``/``card``; handlers stay thin.

No ``from __future__ import annotations``: Litestar reads these annotations as real objects.
"""

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.params import Parameter
from msgspec import Meta, Struct

from tessera.entities.dto import to_struct
from tessera.errors import ValidationFailed
from tessera.permissions import Principal
from tessera.workflow import card, deviations, engine, templates
from tessera.workflow.tables import WorkflowInstance

Limit = Annotated[int, Parameter(ge=1, le=500, description="Page size (1-500)")]
Comment = Annotated[str, Meta(max_length=10_000)]


class ProcessTemplateOut(Struct, kw_only=True):
    id: int
    key: str
    version: int
    name: str
    description: str
    source: str
    is_current: bool
    created_by: int | None
    created_at: datetime
    definition: dict[str, Any]


class ProcessTemplateIn(Struct, kw_only=True, forbid_unknown_fields=True):
    definition: dict[str, Any]


class MigrateSpec(Struct, kw_only=True, forbid_unknown_fields=True):
    #: ``{"old stage key": "new stage key"}``; stages left out keep their key.
    stage_map: dict[str, str] = msgspec.field(default_factory=dict)
    #: Only instances on these versions (default: every older version).
    from_versions: list[int] | None = None
    comment: Comment = ""


class PublishIn(Struct, kw_only=True, forbid_unknown_fields=True):
    definition: dict[str, Any]
    #: Move running instances onto the new version; omit to let them finish on theirs.
    migrate: MigrateSpec | None = None


class PublishOut(Struct, kw_only=True):
    template: ProcessTemplateOut
    created: bool
    migrated: int


class InstanceOut(Struct, kw_only=True):
    id: int
    template_id: int
    template_key: str
    template_version: int
    subject_entity: str
    subject_id: int | None
    party_id: int | None
    title: str
    status: str
    current_stage: str
    stage_seq: int
    stage_entered_at: datetime | None
    stage_due_at: datetime | None
    actions_due_at: datetime | None
    responsible_id: int | None
    controller_id: int | None
    owner_id: int | None
    team_id: int | None
    current_task_id: int | None
    probability: int | None
    params: dict[str, Any]
    results: dict[str, Any]
    checklist: dict[str, Any]
    started_by: int | None
    started_at: datetime
    suspended_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    version: int


class InstancePage(Struct, kw_only=True):
    items: list[InstanceOut]
    next_after_id: int | None


class StartIn(Struct, kw_only=True, forbid_unknown_fields=True):
    template: Annotated[str, Meta(min_length=1, max_length=100)]
    #: The record the process runs on: party, deal, ticket, invoice ...
    subject_entity: Annotated[str, Meta(min_length=1, max_length=60)] = "party"
    subject_id: int | None = None
    party_id: int | None = None
    #: The record's owner (default: the party's owner, else you).
    owner_id: int | None = None
    #: Controller of the whole process (stages without their own controller).
    controller_id: int | None = None
    title: Annotated[str, Meta(max_length=500)] = ""
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    comment: Comment = ""


class AdvanceIn(Struct, kw_only=True, forbid_unknown_fields=True):
    #: Target stage; default: the first transition whose condition holds.
    to: str | None = None
    results: dict[str, Any] = msgspec.field(default_factory=dict)
    comment: Comment = ""
    version: int | None = None


class ChecklistIn(Struct, kw_only=True, forbid_unknown_fields=True):
    item: Annotated[str, Meta(min_length=1)]
    done: bool = True
    comment: Comment = ""


class ReassignIn(Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: int
    comment: Comment = ""


class CommentIn(Struct, kw_only=True, forbid_unknown_fields=True):
    comment: Comment = ""


class ChangeIn(Struct, kw_only=True, forbid_unknown_fields=True):
    title: Annotated[str, Meta(max_length=500)] | None = None
    params: dict[str, Any] | None = None
    controller_id: int | None = None
    stage_due_at: datetime | None = None
    probability: Annotated[int, Meta(ge=0, le=100)] | None = None
    comment: Comment = ""


class InstanceMigrateIn(Struct, kw_only=True, forbid_unknown_fields=True):
    version: int
    stage_map: dict[str, str] = msgspec.field(default_factory=dict)
    comment: Comment = ""


def _pm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.pm


def _instance(row: dict[str, Any]) -> InstanceOut:
    return to_struct(row, InstanceOut)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- templates


@get("/template-schema", operation_id="workflow_template_schema")
async def template_schema(principal: Principal) -> dict[str, Any]:
    """The JSON schema every process template is validated against."""
    principal.require("workflow.read")
    return templates.template_schema()


@get("/templates", operation_id="list_process_templates")
async def list_templates(request: Request[Any, Any, Any], principal: Principal) -> list[ProcessTemplateOut]:
    """The current version of every process template (admin-made and plugin-shipped)."""
    principal.require("workflow.read")
    await templates.sync_plugin_templates(_pm(request))
    return [to_struct(r, ProcessTemplateOut) for r in await templates.list_current()]


@get("/templates/{key:str}", operation_id="get_process_template")
async def get_template(
    request: Request[Any, Any, Any],
    principal: Principal,
    key: str,
    version: Annotated[int | None, Parameter(description="A given version (default: current)")] = None,
) -> ProcessTemplateOut:
    """One template: the current version, or ``?version=N``."""
    principal.require("workflow.read")
    await templates.sync_plugin_templates(_pm(request))
    return to_struct(await templates.get_version(key, version), ProcessTemplateOut)  # type: ignore[no-any-return]


@get("/templates/{key:str}/versions", operation_id="list_process_template_versions")
async def list_versions(principal: Principal, key: str) -> list[ProcessTemplateOut]:
    """Every published version of a template, oldest first."""
    principal.require("workflow.read")
    return [to_struct(r, ProcessTemplateOut) for r in await templates.list_versions(key)]


@post("/templates", operation_id="create_process_template", status_code=201)
async def create_template(principal: Principal, data: ProcessTemplateIn) -> ProcessTemplateOut:
    """Create a new template (version 1). 422 names every invalid path of the definition."""
    principal.require("workflow.manage")
    row, _ = await templates.publish(data.definition, "admin", principal.user_id, new_key=True)
    return to_struct(row, ProcessTemplateOut)  # type: ignore[no-any-return]


@post("/templates/{key:str}/versions", operation_id="publish_process_template_version", status_code=201)
async def publish_version(
    request: Request[Any, Any, Any], principal: Principal, key: str, data: PublishIn
) -> PublishOut:
    """Publish a new version of ``key`` without stopping anything: new instances take it;
    running ones keep theirs unless ``migrate`` maps their stages onto it."""
    return await publish_new_version(principal, _pm(request), key, data)


async def publish_new_version(principal: Principal, pm: Any, key: str, data: PublishIn) -> PublishOut:
    """A new version of template ``key`` (the API route and the admin page): needs
    ``workflow.manage``; ``definition.key`` must be ``key``; running instances move onto it
    only with ``migrate``."""
    principal.require("workflow.manage")
    if data.definition.get("key") != key:
        raise ValidationFailed.field("definition.key", f"must be {key!r} (the template being versioned)")
    await templates.get_version(key)  # 404 for an unknown key
    migrating = data.migrate
    if migrating is not None:
        # Check the mapping against the new definition before anything is stored.
        templates.validate_definition(data.definition)
        await engine.check_stage_map(key, data.definition, migrating.stage_map, migrating.from_versions)
    row, created = await templates.publish(data.definition, "admin", principal.user_id)
    migrated = 0
    if migrating is not None:
        migrated = await engine.migrate_instances(
            principal,
            key,
            row["version"],
            migrating.stage_map,
            from_versions=migrating.from_versions,
            comment=migrating.comment,
            pm=pm,
        )
    return PublishOut(template=to_struct(row, ProcessTemplateOut), created=created, migrated=migrated)


# --------------------------------------------------------------------------- instances


@post("/instances", operation_id="start_process_instance", status_code=201)
async def start_instance(request: Request[Any, Any, Any], principal: Principal, data: StartIn) -> InstanceOut:
    """Start a process on a record with the template's current version; the first stage's
    task goes to its responsible person at once."""
    row = await engine.start(
        principal,
        _pm(request),
        data.template,
        subject_entity=data.subject_entity,
        subject_id=data.subject_id,
        party_id=data.party_id,
        owner_id=data.owner_id,
        controller_id=data.controller_id,
        title=data.title,
        params=data.params,
        comment=data.comment,
    )
    return _instance(row)


@get("/instances", operation_id="list_process_instances")
async def list_instances(
    principal: Principal,
    template: str | None = None,
    status: str | None = None,
    stage: str | None = None,
    responsible_id: int | None = None,
    party_id: int | None = None,
    subject_entity: str | None = None,
    subject_id: int | None = None,
    after_id: Annotated[int | None, Parameter(description="Cursor: instances after this id")] = None,
    limit: Limit = 50,
) -> InstancePage:
    """Instances you may see, filtered; keyset pagination by ``after_id``."""
    principal.require("workflow.read")
    wi = WorkflowInstance
    conditions: list[Any] = []
    if (visible := engine.instance_visibility(principal)) is not None:
        conditions.append(visible)
    for value, column in (
        (template, wi.template_key),
        (status, wi.status),
        (stage, wi.current_stage),
        (responsible_id, wi.responsible_id),
        (party_id, wi.party_id),
        (subject_entity, wi.subject_entity),
        (subject_id, wi.subject_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if after_id is not None:
        conditions.append(wi.id > after_id)
    query = wi.select()
    if conditions:
        query = query.where(*conditions)
    rows = await query.order_by(wi.id).limit(limit + 1).output(load_json=True)
    more = len(rows) > limit
    rows = rows[:limit]
    return InstancePage(items=[_instance(r) for r in rows], next_after_id=rows[-1]["id"] if more else None)


@get("/instances/{instance_id:int}", operation_id="get_process_instance")
async def get_instance(principal: Principal, instance_id: int) -> InstanceOut:
    """One instance."""
    return _instance(await engine.load_instance(principal, instance_id))


@get("/instances/{instance_id:int}/card", operation_id="process_card")
async def process_card(principal: Principal, instance_id: int) -> dict[str, Any]:
    """The process card: route map (each stage's state, visits, time spent vs norm, who did
    what), the current stage with its task holder and missing actions, the history of
    transitions, scheduled actions, deviations, and the controls you may use."""
    return await card.process_card(principal, instance_id)


@post("/instances/{instance_id:int}/advance", operation_id="advance_process_instance", status_code=200)
async def advance_instance(
    request: Request[Any, Any, Any], principal: Principal, instance_id: int, data: AdvanceIn
) -> InstanceOut:
    """Complete the current stage and hand the next one to its responsible person. 409 names
    every missing required action or result; 422 for malformed results or a wrong ``to``."""
    row = await engine.advance(
        principal,
        _pm(request),
        instance_id,
        to=data.to,
        results=data.results,
        comment=data.comment,
        version=data.version,
    )
    return _instance(row)


@post("/instances/{instance_id:int}/checklist", operation_id="tick_process_checklist", status_code=200)
async def tick_checklist(principal: Principal, instance_id: int, data: ChecklistIn) -> InstanceOut:
    """Tick (or untick with ``done: false``) a checklist requirement of the current stage."""
    return _instance(await engine.tick_checklist(principal, instance_id, data.item, data.done, data.comment))


@patch("/instances/{instance_id:int}", operation_id="change_process_instance")
async def change_instance(principal: Principal, instance_id: int, data: ChangeIn) -> InstanceOut:
    """Change a running process's parameters: title, params (merged), controller, the current
    stage's deadline (moves its task deadline) or probability. Controller or workflow.manage."""
    row = await engine.change_parameters(
        principal,
        instance_id,
        title=data.title,
        params=data.params,
        controller_id=data.controller_id,
        stage_due_at=data.stage_due_at,
        probability=data.probability,
        comment=data.comment,
    )
    return _instance(row)


@post("/instances/{instance_id:int}/reassign", operation_id="reassign_process_instance", status_code=200)
async def reassign_instance(principal: Principal, instance_id: int, data: ReassignIn) -> InstanceOut:
    """Give the current stage and its task to another user (kept in the task's hand-off chain)."""
    return _instance(await engine.reassign(principal, instance_id, data.user_id, data.comment))


@post("/instances/{instance_id:int}/suspend", operation_id="suspend_process_instance", status_code=200)
async def suspend_instance(principal: Principal, instance_id: int, data: CommentIn) -> InstanceOut:
    """Pause the process: no deviations and no delayed actions until resumed."""
    return _instance(await engine.suspend(principal, instance_id, data.comment))


@post("/instances/{instance_id:int}/resume", operation_id="resume_process_instance", status_code=200)
async def resume_instance(principal: Principal, instance_id: int, data: CommentIn) -> InstanceOut:
    """Continue a suspended process; deadlines move on by the time it was paused."""
    return _instance(await engine.resume(principal, instance_id, data.comment))


@post("/instances/{instance_id:int}/stop", operation_id="stop_process_instance", status_code=200)
async def stop_instance(principal: Principal, instance_id: int, data: CommentIn) -> InstanceOut:
    """End the process early: its open task is cancelled, pending actions are dropped."""
    return _instance(await engine.stop(principal, instance_id, data.comment))


@post("/instances/{instance_id:int}/migrate", operation_id="migrate_process_instance", status_code=200)
async def migrate_instance(
    request: Request[Any, Any, Any], principal: Principal, instance_id: int, data: InstanceMigrateIn
) -> InstanceOut:
    """Move one instance onto another version of its template, mapping its current stage."""
    instance = await engine.load_instance(principal, instance_id)
    await engine.migrate_instances(
        principal,
        instance["template_key"],
        data.version,
        data.stage_map,
        instance_ids=[instance_id],
        comment=data.comment,
        pm=_pm(request),
    )
    return _instance(await engine.load_instance(principal, instance_id))


# --------------------------------------------------------------------------- deviations, hand-offs


@get("/deviations", operation_id="list_process_deviations")
async def list_deviations(
    principal: Principal,
    template: Annotated[str | None, Parameter(description="Template key")] = None,
    stage: Annotated[str | None, Parameter(description="Current stage key")] = None,
    user_id: Annotated[int | None, Parameter(description="Responsible user")] = None,
    team_id: Annotated[int | None, Parameter(description="Team of the responsible user")] = None,
    kind: Annotated[
        str | None, Parameter(description="stage_overdue, task_overdue or actions_missing")
    ] = None,
    after_id: Annotated[int | None, Parameter(description="Cursor: instances after this id")] = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Running instances that deviate from their norms now (incident management): stage over
    its norm, stage task past its deadline, required actions missing. Visibility applies."""
    return await deviations.list_deviations(
        principal,
        template=template,
        stage=stage,
        user_id=user_id,
        team_id=team_id,
        kind=kind,
        after_id=after_id,
        limit=limit,
    )


@get("/handoffs", operation_id="list_process_handoffs")
async def list_handoffs(principal: Principal, limit: Limit = 100) -> list[dict[str, Any]]:
    """Stage tasks you handed on: who holds each now, since when, overdue or not."""
    return await card.handoff_trace(principal, limit)


ROUTE_HANDLERS = [
    template_schema,
    list_templates,
    get_template,
    list_versions,
    create_template,
    publish_version,
    start_instance,
    list_instances,
    get_instance,
    process_card,
    advance_instance,
    tick_checklist,
    change_instance,
    reassign_instance,
    suspend_instance,
    resume_instance,
    stop_instance,
    migrate_instance,
    list_deviations,
    list_handoffs,
]

workflow_router = Router(path="/api/workflow", route_handlers=ROUTE_HANDLERS, tags=["workflow"])

__all__ = ["Response", "workflow_router"]
