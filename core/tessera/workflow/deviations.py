"""Deviation detection: which running instances deviate from their template's norms.

Three kinds, each shown by ``GET /api/workflow/deviations`` (the "incident management" view):

* ``stage_overdue`` — the current stage has run past its time norm;
* ``task_overdue`` — the stage's task is open past its deadline (a deadline may differ from
  the norm after a change from the process card);
* ``actions_missing`` — a required action that carries its own ``within`` is still missing
  after that time.

The scan job escalates ``stage_overdue`` and ``actions_missing`` once per stage visit: it
notifies the responsible person and the controller, records a ``workflow_deviation`` row,
and emits one ``workflow.deviations_detected`` event per batch whose ``items`` name each
instance, kind, stage and people. ``task_overdue`` is escalated by the kernel's overdue-task
job (the stage task's controller is the stage controller). The scan only reads instances
whose ``next_check_at`` has come (an indexed column), so its cost follows the number of new
deviations, not the number of running instances.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from tessera import clock, db, events
from tessera.entities.tables import Notification
from tessera.errors import ValidationFailed
from tessera.permissions import Principal
from tessera.workflow import engine, templates
from tessera.workflow.engine import WI
from tessera.workflow.tables import WorkflowDeviation

KINDS = ("stage_overdue", "task_overdue", "actions_missing")
_SCAN_COLUMNS = (
    "id, template_id, template_key, title, current_stage, stage_seq, stage_entered_at, stage_due_at, "
    "actions_due_at, escalated, responsible_id, controller_id, party_id, checklist, owner_id"
)


def _escalated(row: dict[str, Any]) -> set[str]:
    return {k for k in (row.get("escalated") or "").split(",") if k}


async def scan(now: datetime | None = None, batch: int = 2000) -> dict[str, int]:
    """Escalate new deviations (the scheduled job). Idempotent; with several workers on
    PostgreSQL each instance is handled by one (``FOR UPDATE SKIP LOCKED``).

    Returns counts: ``checked`` instances, ``stage_overdue`` and ``actions_missing``
    deviations escalated."""
    now = now or clock.now()
    counts = {"checked": 0, "stage_overdue": 0, "actions_missing": 0}
    definitions: dict[int, dict[str, Any]] = {}
    while True:
        async with events.unit_of_work():
            if db.is_postgres():
                rows = await db.raw(
                    f"SELECT {_SCAN_COLUMNS} FROM workflow_instance WHERE next_check_at <= {{}} "
                    "AND status = 'running' ORDER BY next_check_at LIMIT {} FOR UPDATE SKIP LOCKED",
                    now,
                    batch,
                )
                for row in rows:
                    if isinstance(row["checklist"], str):
                        row["checklist"] = json.loads(row["checklist"])
            else:
                rows = (
                    await WI.select(
                        *[WI._meta.get_column_by_name(c.strip()) for c in _SCAN_COLUMNS.split(",")]
                    )
                    .where(WI.next_check_at <= now, WI.status == "running")
                    .order_by(WI.next_check_at)
                    .limit(batch)
                    .output(load_json=True)
                )
            if not rows:
                return counts
            await _escalate_batch(rows, now, definitions, counts)
        counts["checked"] += len(rows)
        if len(rows) < batch:
            return counts


async def _escalate_batch(
    rows: list[dict[str, Any]], now: datetime, definitions: dict[int, dict[str, Any]], counts: dict[str, int]
) -> None:
    deviations: list[WorkflowDeviation] = []
    notifications: list[Notification] = []
    updates: dict[tuple[str, datetime | None], list[int]] = defaultdict(list)
    detected: list[dict[str, Any]] = []
    for row in rows:
        template_id = row["template_id"]
        if template_id not in definitions:
            definitions[template_id] = (await templates.get_by_id(template_id))["definition"]
        definition = definitions[template_id]
        stage = templates.stage_map(definition).get(row["current_stage"], {"key": row["current_stage"]})
        done = _escalated(row)
        found: list[tuple[str, str]] = []
        if row["stage_due_at"] is not None and row["stage_due_at"] <= now and "stage_overdue" not in done:
            late = now - row["stage_due_at"]
            found.append(
                ("stage_overdue", f"stage {stage.get('name', stage['key'])!r} over its norm by {late}")
            )
            done.add("stage_overdue")
        if (
            row["actions_due_at"] is not None
            and row["actions_due_at"] <= now
            and "actions_missing" not in done
        ):
            missing = await engine.missing_actions(
                row, stage, engine.calendar_of(definition), only_due_by=now
            )
            # Requirements whose own deadline is still ahead keep the instance watched.
            if missing:
                labels = "; ".join(engine.describe_requirement(r) for r in missing)
                found.append(("actions_missing", f"required actions missing: {labels}"))
            if missing or not await _later_action_deadline(row, stage, definition, now):
                done.add("actions_missing")
        for kind, detail in found:
            counts[kind] += 1
            deviations.append(
                WorkflowDeviation(
                    instance_id=row["id"],
                    stage=row["current_stage"],
                    stage_seq=row["stage_seq"],
                    kind=kind,
                    detail=detail,
                    detected_at=now,
                    responsible_id=row["responsible_id"],
                    controller_id=row["controller_id"],
                )
            )
            title = f"Process deviation: {row['title']} — {detail}"[:500]
            ref = f"workflow_instance:{row['id']}"
            if row["responsible_id"] is not None:
                notifications.append(
                    Notification(
                        user_id=row["responsible_id"],
                        kind="workflow.deviation",
                        title=title,
                        ref=ref,
                        created_at=now,
                    )
                )
            if row["controller_id"] is not None and row["controller_id"] != row["responsible_id"]:
                notifications.append(
                    Notification(
                        user_id=row["controller_id"],
                        kind="workflow.escalation",
                        title=title,
                        ref=ref,
                        created_at=now,
                    )
                )
            detected.append(
                {
                    "instance_id": row["id"],
                    "kind": kind,
                    "stage": row["current_stage"],
                    "template": row["template_key"],
                    "responsible_id": row["responsible_id"],
                    "controller_id": row["controller_id"],
                }
            )
        watch = []
        if "stage_overdue" not in done and row["stage_due_at"] is not None:
            watch.append(row["stage_due_at"])
        if "actions_missing" not in done:
            later = await _later_action_deadline(row, stage, definition, now)
            if later is not None:
                watch.append(later)
        updates[(",".join(sorted(done)), min(watch) if watch else None)].append(row["id"])
    if deviations:
        await WorkflowDeviation.insert(*deviations)
    if notifications:
        await Notification.insert(*notifications)
    if detected:
        # One event per scan batch (not per instance): delivery costs a write per event.
        await events.emit("workflow.deviations_detected", "workflow_instance", None, {"items": detected})
    for (escalated, next_check), ids in updates.items():
        await WI.update({WI.escalated: escalated, WI.next_check_at: next_check}).where(WI.id.is_in(ids))


async def _later_action_deadline(
    row: dict[str, Any], stage: dict[str, Any], definition: dict[str, Any], now: datetime
) -> datetime | None:
    """The next ``within`` deadline of the stage's requirements that is still ahead."""
    from tessera.workflow import business_time

    if row["stage_entered_at"] is None:
        return None
    calendar = engine.calendar_of(definition)
    ahead = [
        due
        for r in stage.get("required", [])
        if r.get("within")
        and (due := business_time.due_at(row["stage_entered_at"], r["within"], calendar)) is not None
        and due > now
    ]
    return min(ahead, default=None)


# --------------------------------------------------------------------------- listing


def deviation_conditions(now: datetime, kind: str | None = None) -> Any:
    stage_late = WI.stage_due_at < now
    task_late = (WI.current_task_id.deadline < now) & WI.current_task_id.status.is_in(["open", "in_progress"])
    actions_late = WI.actions_due_at < now
    by_kind = {"stage_overdue": stage_late, "task_overdue": task_late, "actions_missing": actions_late}
    if kind is not None:
        if kind not in by_kind:
            raise ValidationFailed.field("kind", f"must be one of {', '.join(KINDS)}")
        return by_kind[kind]
    return stage_late | task_late | actions_late


async def list_deviations(
    principal: Principal,
    *,
    template: str | None = None,
    stage: str | None = None,
    user_id: int | None = None,
    team_id: int | None = None,
    kind: str | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Running instances that deviate now, visible to ``principal``, oldest id first (keyset
    pagination by ``after_id``). Each item says which norms are broken, by how much, and
    which required actions are missing."""
    principal.require("workflow.read")
    if not 1 <= limit <= 500:
        raise ValidationFailed.field("limit", "must be between 1 and 500")
    now = clock.now()
    conditions = [WI.status == "running", deviation_conditions(now, kind)]
    visible = engine.instance_visibility(principal)
    if visible is not None:
        conditions.append(visible)
    if template:
        conditions.append(WI.template_key == template)
    if stage:
        conditions.append(WI.current_stage == stage)
    if user_id is not None:
        conditions.append(WI.responsible_id == user_id)
    if team_id is not None:
        conditions.append(WI.team_id == team_id)
    if after_id is not None:
        conditions.append(WI.id > after_id)
    rows = (
        await WI.select(
            WI.all_columns(exclude=[WI.params, WI.results]),
            WI.current_task_id.deadline.as_alias("task_deadline"),
            WI.current_task_id.status.as_alias("task_status"),
            WI.current_task_id.assignee_id.as_alias("task_assignee_id"),
        )
        .where(*conditions)
        .order_by(WI.id)
        .limit(limit + 1)
        .output(load_json=True)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    definitions: dict[int, dict[str, Any]] = {}
    items = []
    for row in rows:
        if row["template_id"] not in definitions:
            definitions[row["template_id"]] = (await templates.get_by_id(row["template_id"]))["definition"]
        definition = definitions[row["template_id"]]
        stage_def = templates.stage_map(definition).get(row["current_stage"], {"key": row["current_stage"]})
        kinds: list[str] = []
        if row["stage_due_at"] is not None and row["stage_due_at"] < now:
            kinds.append("stage_overdue")
        if (
            row["task_deadline"] is not None
            and row["task_deadline"] < now
            and row["task_status"] in ("open", "in_progress")
        ):
            kinds.append("task_overdue")
        missing = await engine.missing_actions(row, stage_def, engine.calendar_of(definition))
        if row["actions_due_at"] is not None and row["actions_due_at"] < now:
            due_missing = await engine.missing_actions(
                row, stage_def, engine.calendar_of(definition), only_due_by=now
            )
            if due_missing:
                kinds.append("actions_missing")
        if kind is not None and kind not in kinds:
            continue
        if not kinds:
            continue
        items.append(
            {
                "instance_id": row["id"],
                "title": row["title"],
                "template": row["template_key"],
                "template_version": row["template_version"],
                "stage": row["current_stage"],
                "stage_name": stage_def.get("name", row["current_stage"]),
                "kinds": kinds,
                "responsible_id": row["responsible_id"],
                "controller_id": row["controller_id"],
                "team_id": row["team_id"],
                "party_id": row["party_id"],
                "stage_entered_at": row["stage_entered_at"],
                "stage_due_at": row["stage_due_at"],
                "overdue_seconds": (now - row["stage_due_at"]).total_seconds()
                if row["stage_due_at"] is not None and row["stage_due_at"] < now
                else 0,
                "task_id": row["current_task_id"],
                "task_assignee_id": row["task_assignee_id"],
                "task_deadline": row["task_deadline"],
                "missing_actions": [
                    {"key": r["key"], "label": engine.describe_requirement(r)} for r in missing
                ],
                "escalated": sorted(_escalated(row)),
            }
        )
    return {"items": items, "next_after_id": rows[-1]["id"] if more and rows else None}


async def count_deviating(now: datetime | None = None) -> int:
    """How many running instances deviate now (all records; for jobs and benchmarks)."""
    now = now or clock.now()
    return await WI.count().where(WI.status == "running", deviation_conditions(now))
