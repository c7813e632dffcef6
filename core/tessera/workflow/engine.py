"""The workflow engine: start instances, move them through their stages, hand each stage's
task to its responsible person, run stage actions (now or after a delay), and the process-card
controls (change parameters, reassign, suspend, resume, stop, migrate to another version).

Stage tasks are kernel tasks (``Task.source = "workflow:<instance id>"``), planned calls are
kernel activities; every change writes a ``workflow_transition`` row, the audit log and a
domain event in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pluggy

from tessera import audit, clock, db, events, prepared
from tessera.entities import activities, service, tasks
from tessera.entities.parties import PARTY
from tessera.entities.tables import Activity, CrmUser, Party, Task
from tessera.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from tessera.permissions import Principal, recent_users
from tessera.plugins import await_me_maybe
from tessera.workflow import business_time, templates
from tessera.workflow.business_time import BusinessCalendar
from tessera.workflow.tables import WorkflowInstance, WorkflowScheduledAction, WorkflowTransition

log = logging.getLogger("tessera.workflow")

WI = WorkflowInstance
ACTIVE_STATUSES = ("running", "suspended")
OPEN_TASK = tasks.OPEN_STATUSES
MAX_ACTION_ATTEMPTS = 5


# --------------------------------------------------------------------------- helpers


def engine_principal(user_id: int) -> Principal:
    """Acts for the engine on behalf of ``user_id`` (author of stage tasks, planner of calls):
    every permission and every record, since the template, not the caller, decides."""
    return Principal(
        user_id=user_id, name="workflow", email="", permissions=frozenset({"*"}), scope="all", user_ids=None
    )


def instance_visibility(principal: Principal) -> Any:
    """Who sees an instance: whoever sees its record's owner (or party), its responsible
    person or its controller; ``None`` = everyone (scope all)."""
    if principal.user_ids is None:
        return None
    users = list(principal.user_ids) or [-1]
    condition = WI.owner_id.is_in(users) | WI.responsible_id.is_in(users) | WI.controller_id.is_in(users)
    if principal.team_ids:
        condition = condition | WI.team_id.is_in(list(principal.team_ids))
    via_party = principal.owner_where(WI.party_id.owner_id, WI.party_id.team_id)
    return condition | via_party if via_party is not None else condition


async def load_instance(
    principal: Principal | None, instance_id: int, *, with_task_status: bool = False
) -> dict[str, Any]:
    """The instance when it exists and ``principal`` (None = the engine) may see it; else 404.
    ``with_task_status``: also its stage task's status (``current_task_status``), same query;
    for who sees every instance also the whole task row (``current_task``, None without a
    task), read with its write lock inside a transaction on PostgreSQL (``_WITH_TASK``)."""
    if principal is not None:
        principal.require("workflow.read")
    visible = instance_visibility(principal) if principal is not None else None
    if visible is None:  # the engine, or who sees every instance: SQL prepared once
        statements = prepared.of(WI)
        if not with_task_status:
            found = await statements.get(instance_id)
        else:
            rows = await _WITH_TASK[db.is_postgres()].rows(instance_id)
            found = _split_task(statements.loaded(rows[0])) if rows else None
        if found is None:
            raise NotFound(f"process instance {instance_id} not found")
        return found
    conditions = [WI.id == instance_id, visible]
    columns: list[Any] = (
        [WI.current_task_id.status.as_alias("current_task_status")] if with_task_status else []
    )
    row = await WI.select(*WI.all_columns(), *columns).where(*conditions).first().output(load_json=True)
    if row is None:
        raise NotFound(f"process instance {instance_id} not found")
    return row


_TASK_COLUMNS = [c._meta.name for c in Task._meta.columns]
#: ``load_instance(..., with_task_status=True)`` for who sees every instance: the instance and
#: its stage task in one statement (by PostgreSQL, the task locked for the update that
#: completes it: ``service.update(..., locked=...)`` reads it no more).
_WITH_TASK = {
    postgres: db.Statement(
        f"SELECT {prepared.of(WI).all_columns}, "
        + ", ".join(f'"task"."{c}" AS "task__{c}"' for c in _TASK_COLUMNS)
        + ' FROM "workflow_instance" '
        + (
            'LEFT JOIN LATERAL (SELECT * FROM "task" '
            'WHERE "task"."id" = "workflow_instance"."current_task_id" FOR UPDATE) AS "task" ON true '
            if postgres
            else 'LEFT JOIN "task" ON "task"."id" = "workflow_instance"."current_task_id" '
        )
        + 'WHERE "workflow_instance"."id" = {}'
    )
    for postgres in (False, True)
}


def _split_task(row: dict[str, Any]) -> dict[str, Any]:
    task = {c: row.pop(f"task__{c}") for c in _TASK_COLUMNS}
    row["current_task"] = prepared.of(Task).loaded(task) if task["id"] is not None else None
    row["current_task_status"] = task["status"]
    return row


def _as_stored(instance: dict[str, Any]) -> dict[str, Any]:
    """The instance as ``load_instance`` would read it back after this context wrote it
    (times in UTC, as the databases return them)."""
    return {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in instance.items()}


async def definition_of(instance: dict[str, Any]) -> dict[str, Any]:
    """The definition of the instance's template version (cached: versions are immutable)."""
    return await templates.definition_by_id(instance["template_id"])


def calendar_of(definition: dict[str, Any]) -> BusinessCalendar:
    return BusinessCalendar.from_json(definition.get("business_hours"))


def _is_party_to(principal: Principal, instance: dict[str, Any]) -> bool:
    people = {principal.user_id, *principal.acting_for}
    return instance["responsible_id"] in people or instance["controller_id"] in people


def require_control(principal: Principal, instance: dict[str, Any]) -> None:
    """Process-card controls: the controller (or their substitute) or ``workflow.manage``."""
    people = {principal.user_id, *principal.acting_for}
    if instance["controller_id"] in people or principal.can("workflow.manage"):
        return
    raise PermissionDenied(
        "Only the process controller or a user with workflow.manage may do this",
        missing_permission="workflow.manage",
    )


def require_worker(principal: Principal, instance: dict[str, Any]) -> None:
    """Moving a stage on: its responsible person, the controller, their substitutes, or
    ``workflow.manage``."""
    if _is_party_to(principal, instance) or principal.can("workflow.manage"):
        return
    raise PermissionDenied(
        "Only the stage's responsible person, the controller or a user with workflow.manage "
        "may move this process",
        missing_permission="workflow.manage",
    )


class _SafeDict(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(text: str, instance: dict[str, Any], definition: dict[str, Any], stage_key: str) -> str:
    """Fill ``{title}``, ``{stage}``, ``{stage_name}``, ``{template}``, ``{instance_id}``,
    ``{params.x}``-free placeholders in action texts; unknown ones stay as written."""
    stage = templates.stage_map(definition).get(stage_key, {})
    values = _SafeDict(
        title=instance.get("title", ""),
        stage=stage_key,
        stage_name=stage.get("name", stage_key),
        template=definition.get("name", ""),
        instance_id=instance.get("id"),
        subject_entity=instance.get("subject_entity", ""),
        subject_id=instance.get("subject_id"),
        **{f"param_{k}": v for k, v in (instance.get("params") or {}).items()},
        **{f"result_{k}": v for k, v in (instance.get("results") or {}).items()},
    )
    try:
        return text.format_map(values)
    except (ValueError, IndexError, AttributeError):
        return text


# --------------------------------------------------------------------------- people


#: Users read during one start or transition (id -> is_active, team_id): the stage's rules
#: ask about the same few people several times; one query each is enough.
#: Shared with the task service (``tasks.known_users``): the stage task's assignee and
#: controller are not read again when it is created.
_people = tasks.known_users


@contextmanager
def _remembering_people() -> Iterator[None]:
    token = _people.set({} if _people.get() is None else _people.get())
    try:
        yield
    finally:
        _people.reset(token)


async def _prefetch_people(*user_ids: int | None) -> None:
    """Read the given users in one query when a transition is remembering people."""
    known = _people.get()
    wanted = {u for u in user_ids if u is not None and (known is None or u not in known)}
    if known is None or not wanted:
        return
    for user_id in list(wanted):
        if (recent := recent_users.get(user_id)) is not None:
            known[user_id] = recent
            wanted.discard(user_id)
    if not wanted:
        return
    rows = await prepared.of(CrmUser).with_ids(("id", "is_active", "team_id"), sorted(wanted))
    for row in rows:
        known[row["id"]] = recent_users.put(
            row["id"], {"is_active": row["is_active"], "team_id": row["team_id"]}
        )
    for user_id in wanted - {row["id"] for row in rows}:
        known[user_id] = None


async def _person(user_id: int) -> dict[str, Any] | None:
    known = _people.get()
    if known is not None and user_id in known:
        return known[user_id]
    row = await CrmUser.select(CrmUser.is_active, CrmUser.team_id).where(CrmUser.id == user_id).first()
    if known is not None:
        known[user_id] = row
    return row


async def _active_user(user_id: int | None) -> int | None:
    if user_id is None:
        return None
    row = await _person(user_id)
    return user_id if row and row["is_active"] else None


async def _user_team(user_id: int | None) -> int | None:
    if user_id is None:
        return None
    row = await _person(user_id)
    return row["team_id"] if row else None


async def _least_loaded_with_role(role: str, team_id: int | None) -> int | None:
    """The active user holding ``role`` (in ``team_id`` when given) with the fewest open tasks."""
    team_sql = " AND u.team_id = {}" if team_id is not None else ""
    args: list[Any] = [role, *([team_id] if team_id is not None else [])]
    rows = await db.raw(
        "SELECT u.id FROM crm_user u JOIN user_role ur ON ur.user_id = u.id "
        "JOIN role r ON r.id = ur.role_id WHERE r.name = {} AND u.is_active" + team_sql + " "
        "ORDER BY (SELECT count(*) FROM task t WHERE t.assignee_id = u.id "
        "AND t.status IN ('open', 'in_progress')), u.id LIMIT 1",
        *args,
    )
    return rows[0]["id"] if rows else None


async def resolve_person(
    pm: pluggy.PluginManager | None, spec: dict[str, Any] | None, instance: dict[str, Any]
) -> int | None:
    """The user a stage's ``responsible``/``controller`` rule designates now (None if nobody)."""
    if not spec:
        return None
    if "user" in spec:
        return await _active_user(spec["user"])
    if spec.get("owner"):
        return await _active_user(instance.get("owner_id"))
    if spec.get("starter"):
        return await _active_user(instance.get("started_by"))
    if "role" in spec:
        team = await _user_team(instance.get("owner_id")) if spec.get("team") == "owner" else None
        if spec.get("team") == "owner" and team is None:
            return None
        return await _least_loaded_with_role(spec["role"], team)
    if "rule" in spec and pm is not None:
        answer = pm.hook.tessera_workflow_assignee(
            rule=spec["rule"], args=spec.get("args", {}), instance=dict(instance)
        )
        return await _active_user(await await_me_maybe(answer))
    return None


async def _target_user(action: dict[str, Any], instance: dict[str, Any], default: str) -> int | None:
    target = action.get("for", default)
    if isinstance(target, dict):
        return await _active_user(target.get("user"))
    column = {
        "owner": "owner_id",
        "responsible": "responsible_id",
        "controller": "controller_id",
        "starter": "started_by",
    }[target]
    return await _active_user(instance.get(column))


# --------------------------------------------------------------------------- requirements


async def missing_actions(
    instance: dict[str, Any],
    stage: dict[str, Any],
    calendar: BusinessCalendar | None = None,
    only_due_by: datetime | None = None,
) -> list[dict[str, Any]]:
    """Required actions of ``stage`` not yet done in the current visit.

    A checklist item is done when ticked; an activity requirement when an activity of that
    type (status ``done`` unless the requirement says otherwise) was recorded for the
    instance's party (or by its responsible person when there is no party) since the stage
    began. ``only_due_by`` keeps only requirements whose own ``within`` deadline has passed.
    """
    entered = instance["stage_entered_at"]
    ticked = set((instance.get("checklist") or {}).get(stage["key"], []))
    missing = []
    for requirement in stage.get("required", []):
        if only_due_by is not None:
            within = requirement.get("within")
            if not within or entered is None:
                continue
            due = business_time.due_at(entered, within, calendar or BusinessCalendar())
            if due is not None and due > only_due_by:
                continue
        if requirement["kind"] == "checklist":
            done = requirement["key"] in ticked
        else:
            conditions = [Activity.type == requirement["activity_type"], Activity.created_at >= entered]
            status = requirement.get("status", "done")
            if status != "any":
                conditions.append(Activity.status == status)
            if instance.get("party_id") is not None:
                conditions.append(Activity.party_id == instance["party_id"])
            else:
                conditions.append(Activity.owner_id == instance["responsible_id"])
            done = await Activity.exists().where(*conditions)
        if not done:
            missing.append(requirement)
    return missing


def describe_requirement(requirement: dict[str, Any]) -> str:
    label = requirement.get("label") or requirement["key"]
    if requirement["kind"] == "checklist":
        return f"{label}: tick the checklist item {requirement['key']!r}"
    status = requirement.get("status", "done")
    state = "" if status == "any" else f" {status}"
    return f"{label}: record a{state} {requirement['activity_type']} after the stage began"


def _check_results(stage: dict[str, Any], results: dict[str, Any]) -> list[FieldError]:
    """Type and enum errors of the result fields sent (422)."""
    errors = []
    declared = {f["name"]: f for f in stage.get("results", [])}
    kinds: dict[str, tuple[type, ...]] = {
        "string": (str,),
        "number": (int, float),
        "integer": (int,),
        "boolean": (bool,),
    }
    for name, value in results.items():
        spec = declared.get(name)
        if spec is None:
            continue  # results of other stages may be set too
        expected = spec.get("type")
        if expected and (
            not isinstance(value, kinds[expected]) or (expected != "boolean" and isinstance(value, bool))
        ):
            errors.append(FieldError(f"results.{name}", f"must be a {expected}"))
        if "enum" in spec and value not in spec["enum"]:
            errors.append(FieldError(f"results.{name}", f"must be one of {spec['enum']}"))
    return errors


def condition_holds(
    condition: dict[str, Any] | None, results: dict[str, Any], params: dict[str, Any]
) -> bool:
    """A transition's ``when``: ``field`` looks in results, then in params."""
    if not condition:
        return True
    name = condition["field"]
    value = results.get(name, params.get(name))
    if "equals" in condition and value != condition["equals"]:
        return False
    if "not_equals" in condition and value == condition["not_equals"]:
        return False
    if "in" in condition and value not in condition["in"]:
        return False
    try:
        if "gte" in condition and not (value is not None and value >= condition["gte"]):
            return False
        if "lte" in condition and not (value is not None and value <= condition["lte"]):
            return False
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------- stage entry


def _transition_writes(
    instance_id: int,
    kind: str,
    from_stage: str | None,
    to_stage: str | None,
    seq: int,
    user_id: int | None,
    comment: str = "",
    responsible_id: int | None = None,
    task_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> list[Any]:
    """The ``workflow_transition`` row and the audit entry of a change, not written yet:
    ``events.emit(..., also=...)`` writes the row with the change (on PostgreSQL in the stage
    update's statement) and the audit entry with the unit of work's events; awaited, each is
    written at once."""
    changes = {"stage": [from_stage, to_stage]} if from_stage != to_stage else {}
    return [
        # Written at once, not as a log row: plugins read an instance's transitions back in
        # the same transaction (the sales plugin projects a deal's stage history from them).
        prepared.of(WorkflowTransition).insert(
            {
                "instance_id": instance_id,
                "kind": kind,
                "from_stage": from_stage,
                "to_stage": to_stage,
                "stage_seq": seq,
                "user_id": user_id,
                "at": clock.now(),
                "comment": comment,
                "responsible_id": responsible_id,
                "task_id": task_id,
                "detail": detail or {},
            },
            returning="none",
        ),
        audit.entry(kind, "workflow_instance", instance_id, changes, detail=comment, user_id=user_id),
    ]


async def _record_transition(
    instance_id: int,
    kind: str,
    from_stage: str | None,
    to_stage: str | None,
    seq: int,
    user_id: int | None,
    comment: str = "",
    responsible_id: int | None = None,
    task_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    for query in _transition_writes(
        instance_id, kind, from_stage, to_stage, seq, user_id, comment, responsible_id, task_id, detail
    ):
        await query


def _delay_due(now: datetime, delay: dict[str, Any] | None, calendar: BusinessCalendar) -> datetime:
    if not delay:
        return now
    spec = {"calendar": "calendar", **delay}
    due = business_time.due_at(now, spec, calendar)
    assert due is not None
    return due


async def _schedule_actions(
    instance: dict[str, Any],
    definition: dict[str, Any],
    stage_key: str,
    seq: int,
    trigger: str,
    now: datetime,
) -> list[int]:
    """Store the stage's ``on_enter``/``on_leave`` actions as due rows; returns the ids of
    those due now (run right after commit)."""
    stage = templates.stage_map(definition)[stage_key]
    actions = stage.get("on_enter" if trigger == "enter" else "on_leave", [])
    if not actions:
        return []
    calendar = calendar_of(definition)
    due_now = []
    for action in actions:
        due = _delay_due(now, action.get("delay"), calendar)
        row = {
            "instance_id": instance["id"],
            "stage": stage_key,
            "stage_seq": seq,
            "trigger": trigger,
            "action": action,
            "due_at": due,
            "status": "pending",
            "created_at": now,
        }
        inserted = await prepared.of(WorkflowScheduledAction).insert(row, returning="id")
        if due <= now:
            due_now.append(inserted[0]["id"])
    return due_now


async def _enter_stage(
    pm: pluggy.PluginManager | None,
    instance: dict[str, Any],
    definition: dict[str, Any],
    stage_key: str,
    actor_id: int,
    kind: str,
    comment: str = "",
    from_stage: str | None = None,
    stage_completed: dict[str, Any] | None = None,
    claim: dict[str, Any] | None = None,
) -> list[int]:
    """Make ``stage_key`` the current stage: responsible, controller, norm, stage task
    (the hand-off), on-enter actions. Returns ids of actions due at once.
    ``stage_completed``: the payload of the left stage's ``workflow.stage_completed`` event,
    written with this stage's events. ``claim``: the instance's compare-and-set is made by
    this stage's own UPDATE (with these other columns, by name), not by one of its own
    (``_claim``): a concurrent change makes it a 409 and the transaction rolls back."""
    now = clock.now()
    stage = templates.stage_map(definition)[stage_key]
    calendar = calendar_of(definition)
    final = templates.is_final(definition, stage_key)
    await _prefetch_people(
        instance.get("owner_id"),
        instance.get("started_by"),
        instance.get("controller_id"),
        (instance.get("params") or {}).get("controller_id"),
        *(rule.get("user") for rule in (stage.get("responsible"), stage.get("controller")) if rule),
    )
    responsible = await resolve_person(pm, stage.get("responsible"), instance)
    responsible = responsible or await _active_user(instance.get("owner_id")) or instance.get("started_by")
    controller = await resolve_person(pm, stage.get("controller"), instance)
    controller = (
        controller or (instance.get("params") or {}).get("controller_id") or instance.get("controller_id")
    )
    seq = (instance.get("stage_seq") or 0) + 1
    due = None if final else business_time.due_at(now, stage.get("norm"), calendar)
    actions_due = None
    if not final:
        deadlines = [
            business_time.due_at(now, r["within"], calendar)
            for r in stage.get("required", [])
            if r.get("within")
        ]
        actions_due = min((d for d in deadlines if d is not None), default=None)
    task_id = None
    task_spec = stage.get("task", {})
    # ``"task": {"create": false}``: a stage the system works (a reminder sent by a plugin's
    # job) gives nobody a task; its norm and deviations still apply.
    if not final and responsible is not None and task_spec.get("create", True):
        title = render(
            task_spec.get("title", "{template}: {stage_name} — {title}"), instance, definition, stage_key
        )
        description = (
            task_spec.get("description") or stage.get("expected_result") or stage.get("description", "")
        )
        task = await service.create(
            tasks.TASK,
            engine_principal(actor_id),
            {
                "title": title[:500],
                "description": render(description, instance, definition, stage_key),
                "party_id": instance.get("party_id"),
                "assignee_id": responsible,
                "controller_id": controller,
                "deadline": due,
                "priority": task_spec.get("priority", "normal"),
                "source": f"workflow:{instance['id']}",
            },
        )
        task_id = task["id"]
    watch = [d for d in (due, actions_due) if d is not None]
    # By column name (a prepared statement's), not by Piccolo column: hashing those costs.
    by_name = {
        "current_stage": stage_key,
        "stage_seq": seq,
        "stage_entered_at": now,
        "stage_due_at": due,
        "actions_due_at": actions_due,
        "next_check_at": min(watch) if watch else None,
        "escalated": "",
        "responsible_id": responsible,
        "controller_id": controller,
        "team_id": await _user_team(responsible),
        "current_task_id": task_id,
        "probability": stage.get("probability", instance.get("probability")),
        "updated_at": now,
    }
    if final:
        by_name["status"] = "completed"
        by_name["finished_at"] = now
        by_name["next_check_at"] = None
    instance.update(by_name)
    payload = {
        "instance_id": instance["id"],
        "template": instance["template_key"],
        "from_stage": from_stage,
        "stage": stage_key,
        "responsible_id": responsible,
        "task_id": task_id,
        "subject_entity": instance["subject_entity"],
        "subject_id": instance["subject_id"],
        "party_id": instance.get("party_id"),  # search needs no query to refresh its sharing
    }
    # The stage's columns, the transition row, its audit entry and the events: one statement
    # on PostgreSQL.
    emitted: list[tuple[str, str, int | None, dict[str, Any] | None]] = []
    if stage_completed is not None:
        emitted.append(("workflow.stage_completed", "workflow_instance", instance["id"], stage_completed))
    emitted.append(("workflow.stage_entered", "workflow_instance", instance["id"], payload))
    if final:
        emitted.append(("workflow.completed", "workflow_instance", instance["id"], payload))
    if claim is None:
        stage_update = prepared.of(WI).update(by_name, instance["id"])
    else:
        stage_update = prepared.of(WI).update(
            {**claim, **by_name},
            instance["id"],
            match={"version": instance["version"], "status": "running"},
            increment=("version",),
        )
    claimed = await events.emit_all(
        emitted,
        also=[
            *_transition_writes(
                instance["id"], kind, from_stage, stage_key, seq, actor_id, comment, responsible, task_id
            ),
            stage_update,
        ],
    )
    if claim is not None:
        if not claimed:
            raise Conflict(f"process instance {instance['id']} was changed meanwhile; reload and try again")
        instance["version"] += 1
    return await _schedule_actions(instance, definition, stage_key, seq, "enter", now)


# --------------------------------------------------------------------------- start and advance


async def start(
    principal: Principal,
    pm: pluggy.PluginManager | None,
    template_key: str,
    *,
    subject_entity: str = "party",
    subject_id: int | None = None,
    party_id: int | None = None,
    owner_id: int | None = None,
    controller_id: int | None = None,
    title: str = "",
    params: dict[str, Any] | None = None,
    comment: str = "",
) -> dict[str, Any]:
    """Start an instance of the current version of ``template_key`` on a record."""
    with _remembering_people():
        return await _start(
            principal,
            pm,
            template_key,
            subject_entity=subject_entity,
            subject_id=subject_id,
            party_id=party_id,
            owner_id=owner_id,
            controller_id=controller_id,
            title=title,
            params=params,
            comment=comment,
        )


async def _start(
    principal: Principal,
    pm: pluggy.PluginManager | None,
    template_key: str,
    *,
    subject_entity: str,
    subject_id: int | None,
    party_id: int | None,
    owner_id: int | None,
    controller_id: int | None,
    title: str,
    params: dict[str, Any] | None,
    comment: str,
) -> dict[str, Any]:
    principal.require("workflow.read")
    if pm is not None:
        await templates.sync_plugin_templates(pm)
    template = await templates.get_version(template_key)
    definition = template["definition"]
    if subject_entity == "party":
        if subject_id is None and party_id is None:
            raise ValidationFailed.field("subject_id", "a party process needs the party's id")
        party_id = party_id if party_id is not None else subject_id
        subject_id = subject_id if subject_id is not None else party_id
    await service.require_visible(PARTY, principal, party_id, "party_id")
    if owner_id is None and party_id is not None:
        party = await Party.select(Party.owner_id).where(Party.id == party_id).first()
        owner_id = party["owner_id"] if party else None
    owner_id = owner_id if owner_id is not None else principal.user_id
    await _prefetch_people(owner_id, controller_id, principal.user_id)
    if await _active_user(owner_id) is None:
        raise ValidationFailed.field("owner_id", f"user {owner_id} does not exist or is inactive")
    if controller_id is not None and await _active_user(controller_id) is None:
        raise ValidationFailed.field("controller_id", f"user {controller_id} does not exist or is inactive")
    params = dict(params or {})
    if controller_id is not None:
        params["controller_id"] = controller_id
    now = clock.now()
    async with events.unit_of_work():
        rows = await WI.insert(
            WI(
                template_id=template["id"],
                template_key=template["key"],
                template_version=template["version"],
                subject_entity=subject_entity,
                subject_id=subject_id,
                party_id=party_id,
                title=title or f"{definition['name']} #{subject_id or ''}".strip(),
                status="running",
                owner_id=owner_id,
                controller_id=controller_id,
                params=params,
                results={},
                checklist={},
                started_by=principal.user_id,
                started_at=now,
                updated_at=now,
            )
        ).returning(*WI._meta.columns)
        # The stored row comes back with the insert; what the first stage writes is kept in it.
        instance = service._loaded(WI, rows[0])
        due_now = await _enter_stage(
            pm, instance, definition, templates.initial_stage(definition), principal.user_id, "start", comment
        )
        current = _as_stored(instance)
    if due_now:
        await run_actions(pm, due_now)
        current = await load_instance(None, instance["id"])
    return current


async def _claim(
    instance: dict[str, Any],
    statuses: tuple[str, ...] = ("running",),
    values: dict[Any, Any] | None = None,
) -> None:
    """Compare-and-set on the instance's version: a concurrent change makes this a 409.
    ``values``: other columns to write in the same statement."""
    claimed = (
        await WI.update({**(values or {}), WI.version: WI.version + 1, WI.updated_at: clock.now()})
        .where(WI.id == instance["id"], WI.version == instance["version"], WI.status.is_in(list(statuses)))
        .returning(WI.id)
    )
    if not claimed:
        raise Conflict(f"process instance {instance['id']} was changed meanwhile; reload and try again")
    instance["version"] += 1


def _require_status(instance: dict[str, Any], *allowed: str) -> None:
    if instance["status"] not in allowed:
        raise Conflict(
            f"process instance {instance['id']} is {instance['status']}; this needs it "
            + " or ".join(allowed),
            instance_status=instance["status"],
        )


async def advance(
    principal: Principal,
    pm: pluggy.PluginManager | None,
    instance_id: int,
    *,
    to: str | None = None,
    results: dict[str, Any] | None = None,
    comment: str = "",
    version: int | None = None,
) -> dict[str, Any]:
    """Complete the current stage and enter the next one.

    The next stage is ``to`` (which must be one of the stage's transitions) or the first
    transition whose condition holds. Missing required actions or result fields give a 409
    naming each of them; malformed results a 422.
    """
    with _remembering_people():
        async with events.unit_of_work():
            # Read, check and write in one transaction: on SQLite its reads run on the write
            # connection (no thread hop each), and nothing changes between check and write.
            instance = await load_instance(principal, instance_id, with_task_status=True)
            task_status = instance.pop("current_task_status", None)
            task_row = instance.pop("current_task", None)
            due_now = await _advance_in_transaction(
                principal,
                pm,
                instance,
                to=to,
                results=results,
                comment=comment,
                version=version,
                task_status=task_status,
                task_row=task_row,
            )
            # What the transition wrote is the instance now: no reload.
            current = _as_stored(instance)
        if due_now:
            await run_actions(pm, due_now)
            current = await load_instance(None, instance_id)
    return current


async def _advance_in_transaction(
    principal: Principal,
    pm: pluggy.PluginManager | None,
    instance: dict[str, Any],
    *,
    to: str | None,
    results: dict[str, Any] | None,
    comment: str,
    version: int | None,
    task_status: str | None,
    task_row: dict[str, Any] | None = None,
) -> list[int]:
    instance_id = instance["id"]
    require_worker(principal, instance)
    _require_status(instance, "running")
    if version is not None and version != instance["version"]:
        raise Conflict(
            f"process instance {instance_id} is at version {instance['version']}, you sent {version}",
            current_version=instance["version"],
        )
    definition = await definition_of(instance)
    stage_key = instance["current_stage"]
    stage = templates.stage_map(definition)[stage_key]
    results = dict(results or {})
    errors = _check_results(stage, results)
    if errors:
        raise ValidationFailed("Some result fields are not valid", errors)
    merged = {**(instance.get("results") or {}), **results}
    missing: list[FieldError] = []
    for field in stage.get("results", []):
        if field.get("required") and merged.get(field["name"]) in (None, ""):
            label = field.get("label") or field["name"]
            missing.append(FieldError(f"results.{field['name']}", f"{label}: the stage's result is required"))
    for requirement in await missing_actions(instance, stage):
        missing.append(FieldError(f"required.{requirement['key']}", describe_requirement(requirement)))
    if missing:
        names = ", ".join(e.field for e in missing)
        raise Conflict(
            f"Stage {stage_key!r} cannot be completed yet; missing: {names}",
            missing,
            missing=[e.field for e in missing],
        )
    candidates = templates.next_candidates(definition, stage_key)
    if not candidates:
        raise Conflict(f"stage {stage_key!r} is final; the process has nowhere to go")
    if to is not None:
        allowed = [c["to"] for c in candidates]
        if to not in allowed:
            raise ValidationFailed.field("to", f"stage {stage_key!r} leads only to: {', '.join(allowed)}")
        chosen = next(c for c in candidates if c["to"] == to)
        if not condition_holds(chosen.get("when"), merged, instance.get("params") or {}):
            raise Conflict(f"the transition to {to!r} needs {chosen['when']}", missing=[f"when.{to}"])
    else:
        matching = [
            c for c in candidates if condition_holds(c.get("when"), merged, instance.get("params") or {})
        ]
        if not matching:
            raise Conflict(
                f"no transition out of {stage_key!r} applies to these results; choose one of "
                + ", ".join(c["to"] for c in candidates),
                missing=["to"],
            )
        to = matching[0]["to"]
    now = clock.now()
    # The compare-and-set on the instance's version is made by the new stage's UPDATE at the
    # end (one statement fewer); a concurrent change still makes this a 409 and rolls back.
    claim = {"results": merged} if merged != instance.get("results") else {}
    instance["results"] = merged
    task_id = instance["current_task_id"]
    if task_id is not None and task_status in OPEN_TASK:
        await service.update(
            tasks.TASK,
            engine_principal(principal.user_id),
            task_id,
            {"status": "done", "result": comment or f"Stage {stage['name']} completed"},
            locked=task_row if task_row is not None and task_row["id"] == task_id else None,
        )
    due_now = await _schedule_actions(instance, definition, stage_key, instance["stage_seq"], "leave", now)
    completed = {
        "instance_id": instance_id,
        "stage": stage_key,
        "to": to,
        "results": merged,
        "party_id": instance.get("party_id"),
    }
    due_now += await _enter_stage(
        pm,
        instance,
        definition,
        to,
        principal.user_id,
        "advance",
        comment,
        from_stage=stage_key,
        stage_completed=completed,
        claim=claim,
    )
    return due_now


async def tick_checklist(
    principal: Principal, instance_id: int, item: str, done: bool = True, comment: str = ""
) -> dict[str, Any]:
    """Tick (or untick) a checklist requirement of the current stage."""
    instance = await load_instance(principal, instance_id)
    require_worker(principal, instance)
    _require_status(instance, "running", "suspended")
    definition = await definition_of(instance)
    stage = templates.stage_map(definition)[instance["current_stage"]]
    keys = [r["key"] for r in stage.get("required", []) if r["kind"] == "checklist"]
    if item not in keys:
        raise ValidationFailed.field(
            "item",
            f"stage {stage['key']!r} has no checklist item {item!r} (items: {', '.join(keys) or 'none'})",
        )
    checklist = dict(instance.get("checklist") or {})
    ticked = [k for k in checklist.get(stage["key"], []) if k != item]
    if done:
        ticked.append(item)
    checklist[stage["key"]] = ticked
    async with events.unit_of_work():
        await _claim(instance, ACTIVE_STATUSES)
        await WI.update({WI.checklist: checklist}).where(WI.id == instance_id)
        await audit.record(
            "checklist",
            "workflow_instance",
            instance_id,
            {f"checklist.{stage['key']}.{item}": [not done, done]},
            detail=comment,
            user_id=principal.user_id,
        )
    return await load_instance(None, instance_id)


# --------------------------------------------------------------------------- controls


async def reassign(principal: Principal, instance_id: int, user_id: int, comment: str = "") -> dict[str, Any]:
    """Give the current stage (and its task, through the kernel's hand-off) to another user."""
    instance = await load_instance(principal, instance_id)
    require_control(principal, instance)
    _require_status(instance, "running", "suspended")
    if await _active_user(user_id) is None:
        raise ValidationFailed.field("user_id", f"user {user_id} does not exist or is inactive")
    if user_id == instance["responsible_id"]:
        raise ValidationFailed.field("user_id", "this user is already responsible for the stage")
    async with events.unit_of_work():
        await _claim(instance, ACTIVE_STATUSES)
        task_id = instance["current_task_id"]
        if task_id is not None:
            task = await Task.select(Task.status, Task.assignee_id).where(Task.id == task_id).first()
            if task and task["status"] in OPEN_TASK and task["assignee_id"] != user_id:
                await tasks.handoff(engine_principal(principal.user_id), task_id, user_id, comment)
        await WI.update({WI.responsible_id: user_id, WI.team_id: await _user_team(user_id)}).where(
            WI.id == instance_id
        )
        await _record_transition(
            instance_id,
            "reassign",
            instance["current_stage"],
            instance["current_stage"],
            instance["stage_seq"],
            principal.user_id,
            comment,
            user_id,
            task_id,
            {"from_user_id": instance["responsible_id"]},
        )
        await events.emit(
            "workflow.reassigned",
            "workflow_instance",
            instance_id,
            {"instance_id": instance_id, "from_user_id": instance["responsible_id"], "to_user_id": user_id},
        )
    return await load_instance(None, instance_id)


async def suspend(principal: Principal, instance_id: int, comment: str = "") -> dict[str, Any]:
    """Pause the process: no deviations, no delayed actions until it is resumed."""
    instance = await load_instance(principal, instance_id)
    require_control(principal, instance)
    _require_status(instance, "running")
    async with events.unit_of_work():
        await _claim(instance)
        await WI.update({WI.status: "suspended", WI.suspended_at: clock.now()}).where(WI.id == instance_id)
        await _simple_transition(principal, instance, "suspend", comment)
    return await load_instance(None, instance_id)


async def resume(principal: Principal, instance_id: int, comment: str = "") -> dict[str, Any]:
    """Continue a suspended process; its norm, task deadline and delayed actions move on by
    the time it was suspended."""
    instance = await load_instance(principal, instance_id)
    require_control(principal, instance)
    _require_status(instance, "suspended")
    now = clock.now()
    paused = now - (instance["suspended_at"] or now)
    # SQL interval arithmetic (``Task.deadline + paused``) takes whole milliseconds only.
    paused -= timedelta(microseconds=paused.microseconds % 1000)
    async with events.unit_of_work():
        await _claim(instance, ("suspended",))
        values: dict[Any, Any] = {WI.status: "running", WI.suspended_at: None}
        for column in (WI.stage_due_at, WI.actions_due_at, WI.next_check_at):
            if instance[column._meta.name] is not None:
                values[column] = instance[column._meta.name] + paused
        await WI.update(values).where(WI.id == instance_id)
        if instance["current_task_id"] is not None:
            await Task.update({Task.deadline: Task.deadline + paused, Task.escalated_at: None}).where(
                Task.id == instance["current_task_id"],
                Task.status.is_in(list(OPEN_TASK)),
                Task.deadline.is_not_null(),
            )
        await _shift_pending_actions(instance_id, paused)
        await _simple_transition(
            principal, instance, "resume", comment, {"paused_seconds": paused.total_seconds()}
        )
    return await load_instance(None, instance_id)


async def _shift_pending_actions(instance_id: int, delta: timedelta) -> None:
    pending = await WorkflowScheduledAction.select(
        WorkflowScheduledAction.id, WorkflowScheduledAction.due_at
    ).where(WorkflowScheduledAction.instance_id == instance_id, WorkflowScheduledAction.status == "pending")
    for row in pending:
        await WorkflowScheduledAction.update({WorkflowScheduledAction.due_at: row["due_at"] + delta}).where(
            WorkflowScheduledAction.id == row["id"]
        )


async def stop(principal: Principal, instance_id: int, comment: str = "") -> dict[str, Any]:
    """End the process early: its open stage task is cancelled, pending actions dropped."""
    instance = await load_instance(principal, instance_id)
    require_control(principal, instance)
    _require_status(instance, "running", "suspended")
    now = clock.now()
    async with events.unit_of_work():
        await _claim(instance, ACTIVE_STATUSES)
        await WI.update(
            {WI.status: "stopped", WI.finished_at: now, WI.next_check_at: None, WI.suspended_at: None}
        ).where(WI.id == instance_id)
        if instance["current_task_id"] is not None:
            task = await Task.select(Task.status).where(Task.id == instance["current_task_id"]).first()
            if task and task["status"] in OPEN_TASK:
                await service.update(
                    tasks.TASK,
                    engine_principal(principal.user_id),
                    instance["current_task_id"],
                    {"status": "cancelled", "result": comment or "Process stopped"},
                )
        await WorkflowScheduledAction.update(
            {WorkflowScheduledAction.status: "cancelled", WorkflowScheduledAction.done_at: now}
        ).where(
            WorkflowScheduledAction.instance_id == instance_id, WorkflowScheduledAction.status == "pending"
        )
        await _simple_transition(principal, instance, "stop", comment)
    return await load_instance(None, instance_id)


async def _simple_transition(
    principal: Principal,
    instance: dict[str, Any],
    kind: str,
    comment: str,
    detail: dict[str, Any] | None = None,
) -> None:
    await _record_transition(
        instance["id"],
        kind,
        instance["current_stage"],
        instance["current_stage"],
        instance["stage_seq"],
        principal.user_id,
        comment,
        instance["responsible_id"],
        instance["current_task_id"],
        detail,
    )
    await events.emit(
        _CONTROL_EVENTS[kind],
        "workflow_instance",
        instance["id"],
        {"instance_id": instance["id"], "comment": comment},
    )


_CONTROL_EVENTS = {"suspend": "workflow.suspended", "resume": "workflow.resumed", "stop": "workflow.stopped"}


async def change_parameters(
    principal: Principal,
    instance_id: int,
    *,
    title: str | None = None,
    params: dict[str, Any] | None = None,
    controller_id: int | None = None,
    stage_due_at: datetime | None = None,
    probability: int | None = None,
    comment: str = "",
) -> dict[str, Any]:
    """Change a running process: title, parameters (merged), controller, the current stage's
    deadline (moves the stage task's deadline too) or the probability of success."""
    instance = await load_instance(principal, instance_id)
    require_control(principal, instance)
    _require_status(instance, "running", "suspended")
    values: dict[Any, Any] = {}
    changes: dict[str, list[Any]] = {}
    if title is not None and title != instance["title"]:
        values[WI.title] = title
        changes["title"] = [instance["title"], title]
    if params:
        merged = {**(instance["params"] or {}), **params}
        values[WI.params] = merged
        changes["params"] = [instance["params"], merged]
    if controller_id is not None and controller_id != instance["controller_id"]:
        if await _active_user(controller_id) is None:
            raise ValidationFailed.field(
                "controller_id", f"user {controller_id} does not exist or is inactive"
            )
        values[WI.controller_id] = controller_id
        changes["controller_id"] = [instance["controller_id"], controller_id]
    if probability is not None:
        if not 0 <= probability <= 100:
            raise ValidationFailed.field("probability", "must be between 0 and 100")
        values[WI.probability] = probability
        changes["probability"] = [instance["probability"], probability]
    if stage_due_at is not None:
        if stage_due_at.tzinfo is None:
            raise ValidationFailed.field("stage_due_at", "must carry a time zone")
        values[WI.stage_due_at] = stage_due_at
        watch = [d for d in (stage_due_at, instance["actions_due_at"]) if d is not None]
        values[WI.next_check_at] = min(watch)
        values[WI.escalated] = ",".join(
            k for k in instance["escalated"].split(",") if k and k != "stage_overdue"
        )
        changes["stage_due_at"] = [
            instance["stage_due_at"].isoformat() if instance["stage_due_at"] else None,
            stage_due_at.isoformat(),
        ]
    if not values:
        return instance
    async with events.unit_of_work():
        await _claim(instance, ACTIVE_STATUSES)
        await WI.update(values).where(WI.id == instance_id)
        task_id = instance["current_task_id"]
        if task_id is not None and (stage_due_at is not None or controller_id is not None):
            task_values: dict[Any, Any] = {}
            if stage_due_at is not None:
                task_values.update({Task.deadline: stage_due_at, Task.escalated_at: None})
            if controller_id is not None:
                task_values[Task.controller_id] = controller_id
            await Task.update(task_values).where(Task.id == task_id, Task.status.is_in(list(OPEN_TASK)))
        await _record_transition(
            instance_id,
            "change",
            instance["current_stage"],
            instance["current_stage"],
            instance["stage_seq"],
            principal.user_id,
            comment,
            instance["responsible_id"],
            task_id,
            {"changes": changes},
        )
        await audit.record(
            "update", "workflow_instance", instance_id, changes, detail=comment, user_id=principal.user_id
        )
        await events.emit(
            "workflow.changed",
            "workflow_instance",
            instance_id,
            {"instance_id": instance_id, "fields": sorted(changes)},
        )
    return await load_instance(None, instance_id)


# --------------------------------------------------------------------------- versions


def _mapped_stage(stage: str, stage_map: dict[str, str], new_definition: dict[str, Any]) -> str | None:
    target = stage_map.get(stage, stage)
    return target if target in templates.stage_map(new_definition) else None


async def migrate_instances(
    principal: Principal,
    key: str,
    to_version: int,
    stage_map: dict[str, str],
    *,
    instance_ids: list[int] | None = None,
    from_versions: list[int] | None = None,
    comment: str = "",
    pm: pluggy.PluginManager | None = None,
) -> int:
    """Move running/suspended instances of ``key`` onto version ``to_version``, mapping their
    current stage through ``stage_map`` (unmapped stages keep their key, which must exist in
    the new version). All or nothing: an unmappable stage is a 422 before anything changes.

    A migrated instance takes its new stage's properties wherever the new version declares
    them differently from the stage it was in (see ``_migrate_one``)."""
    principal.require("workflow.manage")
    target = await templates.get_version(key, to_version)
    definition = target["definition"]
    conditions = [
        WI.template_key == key,
        WI.status.is_in(list(ACTIVE_STATUSES)),
        WI.template_version != to_version,
    ]
    if instance_ids is not None:
        conditions.append(WI.id.is_in(instance_ids or [-1]))
    if from_versions is not None:
        conditions.append(WI.template_version.is_in(from_versions or [-1]))
    rows = await WI.select().where(*conditions).output(load_json=True)
    if instance_ids is not None:
        found = {r["id"] for r in rows}
        absent = [i for i in instance_ids if i not in found]
        if absent:
            raise ValidationFailed.field(
                "instance_ids", f"not active instances of {key!r} on another version: {absent}"
            )
    unmapped_error(rows, stage_map, definition, to_version, key)
    now = clock.now()
    async with events.unit_of_work():
        for row in rows:
            await _migrate_one(pm, principal, row, target, definition, stage_map, comment, now)
        if rows:
            await audit.record(
                "migrate",
                "workflow_template",
                target["id"],
                {"instances": [None, len(rows)]},
                detail=f"{key} -> v{to_version}",
                user_id=principal.user_id,
            )
            await events.emit(
                "workflow.migrated",
                "workflow_template",
                target["id"],
                {"key": key, "version": to_version, "instance_ids": [r["id"] for r in rows]},
            )
    return len(rows)


def _stage_of(definition: dict[str, Any], stage_key: str) -> dict[str, Any]:
    return templates.stage_map(definition).get(stage_key, {})


async def _migrate_one(
    pm: pluggy.PluginManager | None,
    principal: Principal,
    instance: dict[str, Any],
    target: dict[str, Any],
    definition: dict[str, Any],
    stage_map: dict[str, str],
    comment: str,
    now: datetime,
) -> None:
    """Put one instance on ``target`` (a template version row) and re-derive what its current
    stage declares there: probability, norm (stage due time, the stage task's deadline),
    deadlines of required actions, responsible person and controller (the stage task is
    handed over / re-controlled). A property the new version declares exactly as the old one
    keeps its current value, so a manual change (PATCH, reassign) survives a migration that
    does not touch it. Required actions and result fields are read from the instance's
    version at every check, so the new ones apply at once; checklist ticks follow a renamed
    stage for the items it still has."""
    old_key = instance["current_stage"]
    new_key = _mapped_stage(old_key, stage_map, definition)
    assert new_key is not None  # checked by unmapped_error
    old_stage = _stage_of(await definition_of(instance), old_key)
    new_stage = _stage_of(definition, new_key)
    calendar = calendar_of(definition)
    final = templates.is_final(definition, new_key)
    entered = instance["stage_entered_at"] or now
    values: dict[Any, Any] = {
        WI.template_id: target["id"],
        WI.template_version: target["version"],
        WI.current_stage: new_key,
        WI.updated_at: now,
        WI.version: WI.version + 1,
    }
    changes: dict[str, list[Any]] = {}

    def differs(name: str) -> bool:
        return old_stage.get(name) != new_stage.get(name)

    if "probability" in new_stage and (differs("probability") or old_key != new_key):
        if new_stage["probability"] != instance["probability"]:
            values[WI.probability] = new_stage["probability"]
            changes["probability"] = [instance["probability"], new_stage["probability"]]
    stage_due_at, actions_due_at = instance["stage_due_at"], instance["actions_due_at"]
    if differs("norm") or calendar_of(await definition_of(instance)) != calendar:
        stage_due_at = None if final else business_time.due_at(entered, new_stage.get("norm"), calendar)
    if differs("required") or calendar_of(await definition_of(instance)) != calendar:
        deadlines = [
            business_time.due_at(entered, r["within"], calendar)
            for r in new_stage.get("required", [])
            if r.get("within")
        ]
        actions_due_at = None if final else min((d for d in deadlines if d is not None), default=None)
    if stage_due_at != instance["stage_due_at"] or actions_due_at != instance["actions_due_at"]:
        watch = [d for d in (stage_due_at, actions_due_at) if d is not None]
        values[WI.stage_due_at] = stage_due_at
        values[WI.actions_due_at] = actions_due_at
        # Deviations are judged again against the new deadlines (the scan re-escalates).
        values[WI.escalated] = ""
        if instance["status"] == "running":
            values[WI.next_check_at] = min(watch) if watch else None
        changes["stage_due_at"] = [_iso(instance["stage_due_at"]), _iso(stage_due_at)]
        changes["actions_due_at"] = [_iso(instance["actions_due_at"]), _iso(actions_due_at)]
    responsible = instance["responsible_id"]
    if differs("responsible") and new_stage.get("responsible"):
        responsible = await resolve_person(pm, new_stage["responsible"], instance) or responsible
    controller = instance["controller_id"]
    if differs("controller") and new_stage.get("controller"):
        controller = await resolve_person(pm, new_stage["controller"], instance) or controller
    task_id = instance["current_task_id"]
    if responsible != instance["responsible_id"]:
        values[WI.responsible_id] = responsible
        values[WI.team_id] = await _user_team(responsible)
        changes["responsible_id"] = [instance["responsible_id"], responsible]
    if controller != instance["controller_id"]:
        values[WI.controller_id] = controller
        changes["controller_id"] = [instance["controller_id"], controller]
    checklist = dict(instance.get("checklist") or {})
    if new_key != old_key and checklist.get(old_key):
        items = {r["key"] for r in new_stage.get("required", []) if r["kind"] == "checklist"}
        checklist[new_key] = [k for k in checklist[old_key] if k in items]
        values[WI.checklist] = checklist
    await WI.update(values).where(WI.id == instance["id"])
    if task_id is not None:
        task = await Task.select(Task.status, Task.assignee_id).where(Task.id == task_id).first()
        if task and task["status"] in OPEN_TASK:
            task_values: dict[Any, Any] = {}
            if "stage_due_at" in changes:
                task_values.update({Task.deadline: stage_due_at, Task.escalated_at: None})
            if controller != instance["controller_id"]:
                task_values[Task.controller_id] = controller
            if task_values:
                await Task.update(task_values).where(Task.id == task_id)
            if responsible != task["assignee_id"] and responsible is not None:
                await tasks.handoff(engine_principal(principal.user_id), task_id, responsible, comment)
    await WorkflowTransition.insert(
        WorkflowTransition(
            instance_id=instance["id"],
            kind="migrate",
            from_stage=old_key,
            to_stage=new_key,
            stage_seq=instance["stage_seq"],
            user_id=principal.user_id,
            at=now,
            comment=comment,
            responsible_id=responsible,
            task_id=task_id,
            detail={
                "from_version": instance["template_version"],
                "to_version": target["version"],
                "changes": changes,
            },
        )
    )
    if changes:
        await audit.record(
            "migrate", "workflow_instance", instance["id"], changes, detail=comment, user_id=principal.user_id
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def unmapped_error(
    rows: list[dict[str, Any]],
    stage_map: dict[str, str],
    definition: dict[str, Any],
    to_version: Any,
    key: str,
) -> None:
    unmapped = sorted(
        {r["current_stage"] for r in rows if _mapped_stage(r["current_stage"], stage_map, definition) is None}
    )
    if unmapped:
        raise ValidationFailed(
            f"Version {to_version} of {key!r} has no stage for: {', '.join(unmapped)}; map them in stage_map",
            [
                FieldError(f"stage_map.{s}", f"stage {s!r} does not exist in version {to_version}")
                for s in unmapped
            ],
        )


async def check_stage_map(
    key: str, definition: dict[str, Any], stage_map: dict[str, str], from_versions: list[int] | None
) -> None:
    """Refuse (422) a version whose stages cannot take every active instance's current stage."""
    conditions = [WI.template_key == key, WI.status.is_in(list(ACTIVE_STATUSES))]
    if from_versions is not None:
        conditions.append(WI.template_version.is_in(from_versions or [-1]))
    rows = await WI.select(WI.current_stage).where(*conditions).distinct()
    unmapped_error(rows, stage_map, definition, "new", key)


# --------------------------------------------------------------------------- actions


async def run_actions(pm: pluggy.PluginManager | None, action_ids: list[int]) -> int:
    """Run the given due actions now (after the transition committed); failures stay pending
    for the runner job to retry."""
    done = 0
    for action_id in action_ids:
        done += await _run_one(pm, action_id)
    return done


async def run_due_actions(
    pm: pluggy.PluginManager | None, now: datetime | None = None, limit: int = 500
) -> int:
    """Execute every due action of running or completed instances (the runner job).

    Each action is claimed in its own transaction (PostgreSQL: ``FOR UPDATE SKIP LOCKED``), so
    several workers never run one action twice; its effect and its ``done`` mark commit
    together. A failing action is retried with back-off, then marked ``failed``."""
    now = now or clock.now()
    done = 0
    for _ in range(limit):
        ran = await _run_one(pm, None, now)
        if ran < 0:
            break
        done += ran
    return done


async def _claim_action(action_id: int | None, now: datetime) -> dict[str, Any] | None:
    if db.is_postgres():
        where = "a.id = {}" if action_id is not None else "a.due_at <= {}"
        rows = await db.raw(
            "SELECT a.id FROM workflow_scheduled_action a JOIN workflow_instance i ON i.id = a.instance_id "
            f"WHERE a.status = 'pending' AND {where} AND i.status IN ('running', 'completed') "
            "ORDER BY a.due_at, a.id LIMIT 1 FOR UPDATE OF a SKIP LOCKED",
            action_id if action_id is not None else now,
        )
        if not rows:
            return None
        claimed_id = rows[0]["id"]
    else:
        SA = WorkflowScheduledAction
        conditions = [SA.status == "pending", SA.instance_id.status.is_in(["running", "completed"])]
        conditions.append(SA.id == action_id if action_id is not None else SA.due_at <= now)
        row = await SA.select(SA.id).where(*conditions).order_by(SA.due_at).order_by(SA.id).first()
        if row is None:
            return None
        claimed_id = row["id"]
    return await (
        WorkflowScheduledAction.select()
        .where(WorkflowScheduledAction.id == claimed_id)
        .first()
        .output(load_json=True)
    )


async def _run_one(
    pm: pluggy.PluginManager | None, action_id: int | None, now: datetime | None = None
) -> int:
    """1 when an action ran, 0 when it failed, -1 when nothing was due."""
    now = now or clock.now()
    claimed: dict[str, Any] | None = None
    try:
        async with events.unit_of_work():
            claimed = await _claim_action(action_id, now)
            if claimed is None:
                return -1
            instance = await load_instance(None, claimed["instance_id"])
            definition = await definition_of(instance)
            ref = await execute_action(pm, claimed, instance, definition)
            await WorkflowScheduledAction.update(
                {
                    WorkflowScheduledAction.status: "done",
                    WorkflowScheduledAction.done_at: clock.now(),
                    WorkflowScheduledAction.result_ref: ref[:100],
                    WorkflowScheduledAction.attempts: WorkflowScheduledAction.attempts + 1,
                    WorkflowScheduledAction.error: "",
                }
            ).where(WorkflowScheduledAction.id == claimed["id"])
        return 1
    except Exception as exc:
        if claimed is None:
            raise
        log.exception("workflow action %s failed", claimed["id"])
        attempts = claimed["attempts"] + 1
        values: dict[Any, Any] = {
            WorkflowScheduledAction.attempts: attempts,
            WorkflowScheduledAction.error: repr(exc)[:2000],
            WorkflowScheduledAction.due_at: clock.now() + timedelta(minutes=5 * 2**attempts),
        }
        if attempts >= MAX_ACTION_ATTEMPTS:
            values[WorkflowScheduledAction.status] = "failed"
        async with db.transaction():
            await WorkflowScheduledAction.update(values).where(WorkflowScheduledAction.id == claimed["id"])
        return 0


async def execute_action(
    pm: pluggy.PluginManager | None,
    row: dict[str, Any],
    instance: dict[str, Any],
    definition: dict[str, Any],
) -> str:
    """Do what one stage action says; returns a reference to what it produced."""
    action = row["action"]
    kind = action["type"]
    stage = row["stage"]
    author = instance["started_by"] or instance["owner_id"] or instance["responsible_id"]
    ref = f"workflow_instance:{instance['id']}"
    if kind == "create_activity":
        owner = await _target_user(action, instance, "owner")
        if owner is None:
            raise RuntimeError("create_activity: nobody to plan the activity for")
        activity = await service.create(
            activities.ACTIVITY,
            engine_principal(author or owner),
            {
                "type": action["activity_type"],
                "subject": render(action["subject"], instance, definition, stage)[:500],
                "description": render(action.get("description", ""), instance, definition, stage),
                "status": "planned",
                "starts_at": row["due_at"],
                "duration_minutes": action.get("duration_minutes", 0),
                "party_id": instance.get("party_id"),
                "owner_id": owner,
                "custom": {},
            },
        )
        return f"activity:{activity['id']}"
    if kind == "create_task":
        assignee = await _target_user(action, instance, "responsible")
        if assignee is None:
            raise RuntimeError("create_task: nobody to give the task to")
        deadline = (
            _delay_due(row["due_at"], action["deadline_in"], calendar_of(definition))
            if action.get("deadline_in")
            else None
        )
        task = await service.create(
            tasks.TASK,
            engine_principal(author or assignee),
            {
                "title": render(action["title"], instance, definition, stage)[:500],
                "description": render(action.get("description", ""), instance, definition, stage),
                "party_id": instance.get("party_id"),
                "assignee_id": assignee,
                "controller_id": instance.get("controller_id"),
                "deadline": deadline,
                "priority": action.get("priority", "normal"),
                "source": f"workflow:{instance['id']}",
            },
        )
        return f"task:{task['id']}"
    if kind == "notify":
        user = await _target_user(action, instance, "responsible")
        if user is None:
            return "nobody"
        await tasks.notify(
            user,
            "workflow.notice",
            render(action["title"], instance, definition, stage),
            render(action.get("body", ""), instance, definition, stage),
            ref,
        )
        return f"notification:{user}"
    if kind == "emit_event":
        payload = {
            **action.get("payload", {}),
            "instance_id": instance["id"],
            "stage": stage,
            "subject_entity": instance["subject_entity"],
            "subject_id": instance["subject_id"],
        }
        await events.emit(action["name"], "workflow_instance", instance["id"], payload)
        return f"event:{action['name']}"
    if kind == "call_hook":
        if pm is None:
            raise RuntimeError("call_hook needs the plugin manager")
        handled = False
        for impl in reversed(pm.hook.tessera_workflow_action.get_hookimpls()):
            kwargs = {"name": action["name"], "args": action.get("args", {}), "instance": dict(instance)}
            answer = await await_me_maybe(impl.function(*[kwargs[arg] for arg in impl.argnames]))
            if answer is not None:
                handled = True
        if not handled:
            raise RuntimeError(f"no enabled plugin handles workflow action {action['name']!r}")
        return f"hook:{action['name']}"
    raise RuntimeError(f"unknown action type {kind!r}")
