"""The process card: an instance's route map (every stage of its version, the current one,
time spent against the norm, who did what), its hand-offs, actions, deviations and the
controls the caller may use; and the hand-off trace of stage tasks a user passed on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tessera import clock
from tessera.entities.tables import Task, TaskHandoff
from tessera.permissions import Principal
from tessera.workflow import business_time, engine, templates
from tessera.workflow.tables import WorkflowDeviation, WorkflowScheduledAction, WorkflowTransition

#: Transitions that start a new stage visit.
ENTRY_KINDS = ("start", "advance")


def _seconds(value: Any) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


async def _task_state(task_id: int | None, now: datetime) -> dict[str, Any] | None:
    if task_id is None:
        return None
    task = (
        await Task.select(
            Task.id,
            Task.title,
            Task.status,
            Task.assignee_id,
            Task.deadline,
            Task.completed_at,
            Task.author_id,
        )
        .where(Task.id == task_id)
        .first()
    )
    if task is None:
        return None
    last = (
        await TaskHandoff.select(TaskHandoff.at, TaskHandoff.from_user_id)
        .where(TaskHandoff.task_id == task_id)
        .order_by(TaskHandoff.at, ascending=False)
        .order_by(TaskHandoff.id, ascending=False)
        .first()
    )
    open_ = task["status"] in engine.OPEN_TASK
    return {
        "id": task["id"],
        "title": task["title"],
        "status": task["status"],
        "author_id": task["author_id"],
        "holder_id": task["assignee_id"],
        "holder_since": last["at"] if last else None,
        "deadline": task["deadline"],
        "completed_at": task["completed_at"],
        "overdue": bool(open_ and task["deadline"] is not None and task["deadline"] < now),
    }


async def process_card(principal: Principal, instance_id: int) -> dict[str, Any]:
    instance = await engine.load_instance(principal, instance_id)
    template = await templates.get_by_id(instance["template_id"])
    definition = template["definition"]
    current_template = await templates.get_version(instance["template_key"])
    calendar = engine.calendar_of(definition)
    now = clock.now()
    history = (
        await WorkflowTransition.select()
        .where(WorkflowTransition.instance_id == instance_id)
        .order_by(WorkflowTransition.at)
        .order_by(WorkflowTransition.id)
        .output(load_json=True)
    )
    entries = [h for h in history if h["kind"] in ENTRY_KINDS]
    visits: dict[str, list[dict[str, Any]]] = {}
    stage_defs = templates.stage_map(definition)
    for index, entry in enumerate(entries):
        stage_key = entry["to_stage"]
        left = entries[index + 1]["at"] if index + 1 < len(entries) else None
        is_current = left is None and instance["status"] in engine.ACTIVE_STATUSES
        end = left or (now if is_current else instance["finished_at"] or now)
        if instance["status"] == "suspended" and is_current and instance["suspended_at"] is not None:
            end = instance["suspended_at"]
        norm = stage_defs.get(stage_key, {}).get("norm")
        spent = business_time.elapsed(entry["at"], end, norm, calendar)
        norm_seconds = business_time.norm_duration(norm).total_seconds() if norm else None
        left_by = entries[index + 1]["user_id"] if index + 1 < len(entries) else None
        visits.setdefault(stage_key, []).append(
            {
                "seq": entry["stage_seq"],
                "entered_at": entry["at"],
                "left_at": left,
                "entered_by": entry["user_id"],
                "completed_by": left_by,
                "responsible_id": entry["responsible_id"],
                "spent_seconds": _seconds(spent),
                "norm_seconds": norm_seconds,
                "over_norm": bool(norm_seconds is not None and spent.total_seconds() > norm_seconds),
                "task": await _task_state(entry["task_id"], now),
            }
        )
    route = []
    for stage in definition["stages"]:
        key = stage["key"]
        if key == instance["current_stage"] and instance["status"] in engine.ACTIVE_STATUSES:
            state = "current"
        elif key == instance["current_stage"] and instance["status"] == "completed":
            state = "reached"
        elif key in visits:
            state = "done"
        else:
            state = "pending"
        route.append(
            {
                "key": key,
                "name": stage["name"],
                "state": state,
                "final": templates.is_final(definition, key),
                "norm": stage.get("norm"),
                "probability": stage.get("probability"),
                "expected_result": stage.get("expected_result", ""),
                "required": [
                    {"key": r["key"], "kind": r["kind"], "label": r.get("label", r["key"])}
                    for r in stage.get("required", [])
                ],
                "results": stage.get("results", []),
                "next": [
                    {"to": t["to"], "when": t.get("when"), "label": t.get("label", "")}
                    for t in templates.next_candidates(definition, key)
                ],
                "visits": visits.get(key, []),
            }
        )
    current = None
    if instance["status"] in engine.ACTIVE_STATUSES:
        stage = stage_defs[instance["current_stage"]]
        missing = await engine.missing_actions(instance, stage, calendar)
        visit = visits.get(instance["current_stage"], [{}])[-1]
        current = {
            "stage": instance["current_stage"],
            "name": stage["name"],
            "responsible_id": instance["responsible_id"],
            "controller_id": instance["controller_id"],
            "entered_at": instance["stage_entered_at"],
            "due_at": instance["stage_due_at"],
            "spent_seconds": visit.get("spent_seconds"),
            "norm_seconds": visit.get("norm_seconds"),
            "overdue": bool(instance["stage_due_at"] is not None and instance["stage_due_at"] < now),
            "task": await _task_state(instance["current_task_id"], now),
            "missing_actions": [{"key": r["key"], "label": engine.describe_requirement(r)} for r in missing],
            "checklist": (instance["checklist"] or {}).get(instance["current_stage"], []),
        }
    actions = (
        await WorkflowScheduledAction.select()
        .where(WorkflowScheduledAction.instance_id == instance_id)
        .order_by(WorkflowScheduledAction.due_at)
        .order_by(WorkflowScheduledAction.id)
        .output(load_json=True)
    )
    deviations = (
        await WorkflowDeviation.select()
        .where(WorkflowDeviation.instance_id == instance_id)
        .order_by(WorkflowDeviation.id)
    )
    active = instance["status"] in engine.ACTIVE_STATUSES
    people = {principal.user_id, *principal.acting_for}
    controls_allowed = instance["controller_id"] in people or principal.can("workflow.manage")
    worker = controls_allowed or instance["responsible_id"] in people
    return {
        "instance": instance,
        "template": {
            "key": template["key"],
            "name": template["name"],
            "version": template["version"],
            "current_version": current_template["version"],
        },
        "current": current,
        "route": route,
        "history": [
            {
                "kind": h["kind"],
                "from_stage": h["from_stage"],
                "to_stage": h["to_stage"],
                "at": h["at"],
                "user_id": h["user_id"],
                "comment": h["comment"],
                "responsible_id": h["responsible_id"],
                "task_id": h["task_id"],
                "detail": h["detail"],
            }
            for h in history
        ],
        "actions": [
            {
                "id": a["id"],
                "stage": a["stage"],
                "trigger": a["trigger"],
                "type": a["action"].get("type"),
                "due_at": a["due_at"],
                "status": a["status"],
                "attempts": a["attempts"],
                "error": a["error"],
                "result_ref": a["result_ref"],
            }
            for a in actions
        ],
        "deviations": deviations,
        "controls": {
            "advance": worker and instance["status"] == "running",
            "checklist": worker and active,
            "change_parameters": controls_allowed and active,
            "reassign": controls_allowed and active,
            "suspend": controls_allowed and instance["status"] == "running",
            "resume": controls_allowed and instance["status"] == "suspended",
            "stop": controls_allowed and active,
            "migrate": principal.can("workflow.manage") and active,
        },
    }


async def handoff_trace(principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
    """Stage tasks ``principal`` handed on (authored by completing the previous stage or
    starting the process): who has each now, since when, and whether it is overdue."""
    principal.require("workflow.read")
    now = clock.now()
    rows = (
        await Task.select(Task.id)
        .where(Task.author_id == principal.user_id, Task.source.like("workflow:%"))
        .order_by(Task.id, ascending=False)
        .limit(limit)
    )
    out = []
    for row in rows:
        state = await _task_state(row["id"], now)
        if state is None:
            continue
        transition = (
            await WorkflowTransition.select(
                WorkflowTransition.instance_id, WorkflowTransition.to_stage, WorkflowTransition.at
            )
            .where(WorkflowTransition.task_id == row["id"], WorkflowTransition.kind.is_in(list(ENTRY_KINDS)))
            .first()
        )
        state["instance_id"] = transition["instance_id"] if transition else None
        state["stage"] = transition["to_stage"] if transition else None
        state["handed_at"] = transition["at"] if transition else None
        out.append(state)
    return out
