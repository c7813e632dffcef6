"""Tasks: assignments with author, assignee, controller, deadline and result, handed from one
executor to the next with the whole chain kept; overdue tasks escalate to the controller."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from tessera import audit, clock, events, prepared
from tessera.entities import service
from tessera.entities.dto import Id, partial
from tessera.entities.parties import PARTY
from tessera.entities.tables import CrmUser, Task, TaskHandoff
from tessera.errors import Conflict, PermissionDenied, ValidationFailed
from tessera.permissions import Principal, recent_users

Priority = Literal["low", "normal", "high", "urgent"]
TaskStatus = Literal["open", "in_progress", "done", "cancelled"]
OPEN_STATUSES = ("open", "in_progress")


class TaskIn(Struct, kw_only=True, forbid_unknown_fields=True):
    title: Annotated[str, Meta(min_length=1, max_length=500)]
    description: str = ""
    party_id: Id | None = None
    assignee_id: Id | None = None
    controller_id: Id | None = None
    deadline: datetime | None = None
    priority: Priority = "normal"
    status: TaskStatus = "open"
    result: str = ""
    custom: dict[str, Any] = msgspec.field(default_factory=dict)


TaskPatch = partial(TaskIn, "TaskPatch")


class TaskOut(Struct, kw_only=True):
    id: int
    title: str
    description: str
    party_id: int | None
    author_id: int | None
    assignee_id: int | None
    controller_id: int | None
    team_id: int | None
    deadline: datetime | None
    priority: str
    status: str
    result: str
    escalated_at: datetime | None
    completed_at: datetime | None
    #: When the assignee accepted the task; null while it waits for their acceptance.
    accepted_at: datetime | None = None
    source: str
    custom: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    overdue: bool = False


class HandoffIn(Struct, kw_only=True, forbid_unknown_fields=True):
    to_user_id: Id
    comment: str = ""


class HandoffOut(Struct, kw_only=True):
    id: int
    task_id: int
    from_user_id: int | None
    to_user_id: int | None
    at: datetime
    comment: str


class AcceptIn(Struct, kw_only=True, forbid_unknown_fields=True):
    #: The version the client saw (optional): a task changed meanwhile answers 409.
    version: int | None = None


class CompleteIn(Struct, kw_only=True, forbid_unknown_fields=True):
    result: Annotated[str, Meta(max_length=10_000)] = ""
    version: int | None = None


def task_visibility(principal: Principal) -> Any:
    if principal.user_ids is None:
        return None
    users = list(principal.user_ids) or [-1]
    condition = Task.assignee_id.is_in(users) | Task.author_id.is_in(users) | Task.controller_id.is_in(users)
    if principal.team_ids:
        condition = condition | Task.team_id.is_in(list(principal.team_ids))
    via_party = principal.owner_where(Task.party_id.owner_id, Task.party_id.team_id)
    return condition | via_party


def task_write_visibility(principal: Principal) -> Any:
    """Who may change, hand off, complete or delete a task: its assignee, author, controller
    (and the readers of their records), or the assignee's team; the client's manager only
    reads the tasks others hold on the client."""
    if principal.user_ids is None:
        return None
    users = list(principal.user_ids) or [-1]
    condition = Task.assignee_id.is_in(users) | Task.author_id.is_in(users) | Task.controller_id.is_in(users)
    if principal.team_ids:
        condition = condition | Task.team_id.is_in(list(principal.team_ids))
    return condition


async def _user_team(user_id: int, field: str) -> int | None:
    row = await CrmUser.select(CrmUser.team_id, CrmUser.is_active).where(CrmUser.id == user_id).first()
    if row is None or not row["is_active"]:
        raise ValidationFailed.field(field, f"user {user_id} does not exist or is inactive")
    return row["team_id"]


#: Users already read in this context (id -> ``{"is_active", "team_id"}``, None: no such
#: user), when a caller remembers them (the workflow engine during a start or transition,
#: which reads a stage's people first): a task it writes does not read them again.
known_users: contextvars.ContextVar[dict[int, dict[str, Any] | None] | None] = contextvars.ContextVar(
    "tessera_known_users", default=None
)


async def _users(user_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The assignee and controller of a task in one query (each write names both)."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return {}
    known = known_users.get()
    out: dict[int, dict[str, Any]] = {}
    missing = wanted
    if known is not None:
        out = {u: {"id": u, **row} for u in wanted if (row := known.get(u)) is not None}
        missing = [u for u in wanted if u not in known]
    for user_id in missing:
        if (recent := recent_users.get(user_id)) is not None:
            out[user_id] = {"id": user_id, **recent}
    missing = [u for u in missing if u not in out]
    if missing:
        rows = await prepared.of(CrmUser).with_ids(("id", "team_id", "is_active"), missing)
        for row in rows:
            out[row["id"]] = row
            person = {"is_active": row["is_active"], "team_id": row["team_id"]}
            recent_users.put(row["id"], person)
            if known is not None:
                known[row["id"]] = person
        if known is not None:
            for user_id in set(missing) - {row["id"] for row in rows}:
                known[user_id] = None
    return out


def _team_of(known: dict[int, dict[str, Any]], user_id: int, field: str) -> int | None:
    row = known.get(user_id)
    if row is None or not row["is_active"]:
        raise ValidationFailed.field(field, f"user {user_id} does not exist or is inactive")
    return row["team_id"]  # type: ignore[no-any-return]


async def prepare_task(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if existing is None:
        values["author_id"] = principal.user_id
        if values.get("assignee_id") is None:
            values["assignee_id"] = principal.user_id
    if values.get("deadline") is not None and values["deadline"].tzinfo is None:
        raise ValidationFailed.field("deadline", "must carry a time zone")
    # A task on a party shares the party with its assignee and controller (permissions.py):
    # only who may change the party may put a task on it or name the task's controller. A
    # hand-off (a new assignee) moves the access the task carries, it does not widen it.
    if "party_id" in values and (existing is None or values["party_id"] != existing["party_id"]):
        await service.require_writable(PARTY, principal, values["party_id"], "party_id")
    elif (
        existing is not None
        and existing["party_id"] is not None
        and values.get("controller_id") not in (None, existing["controller_id"])
    ):
        await service.require_writable(PARTY, principal, existing["party_id"], "controller_id")
    people = [values.get("assignee_id"), values.get("controller_id")]
    known = await _users(p for p in people if p is not None)
    if values.get("assignee_id") is not None:
        values["team_id"] = _team_of(known, values["assignee_id"], "assignee_id")
    if values.get("controller_id") is not None:
        _team_of(known, values["controller_id"], "controller_id")
    if existing is not None and "deadline" in values and values["deadline"] != existing["deadline"]:
        values["escalated_at"] = None  # a new deadline is watched afresh
    # A task someone else gives its assignee waits for the assignee's acceptance (``accept``);
    # a task one takes oneself is accepted at once.
    new_assignee = values.get("assignee_id", existing["assignee_id"] if existing else None)
    if existing is None or new_assignee != existing["assignee_id"]:
        values["accepted_at"] = clock.now() if new_assignee == principal.user_id else None
    if "status" in values:
        if values["status"] == "done" and (existing is None or existing["status"] != "done"):
            values["completed_at"] = clock.now()
        elif values["status"] != "done":
            values["completed_at"] = None
    return values


async def after_task_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> list[Any]:
    """The hand-off row and the new assignee's notification go back to the service as queries,
    written with the change's event (one statement on PostgreSQL)."""
    writes: list[Any] = []
    if existing is None or existing["assignee_id"] != row["assignee_id"]:
        writes.append(
            events.LogRow(
                "task_handoff",
                (
                    ("task_id", row["id"]),
                    ("from_user_id", principal.user_id if existing is None else existing["assignee_id"]),
                    ("to_user_id", row["assignee_id"]),
                    ("at", clock.now()),
                    ("comment", ""),
                ),
            )
        )
        # Reassigning by PATCH is a hand-off too: the new assignee must hear about it.
        if row["assignee_id"] not in (None, principal.user_id):
            writes.append(
                notification(
                    row["assignee_id"], "task.assigned", f"New task: {row['title']}", ref=f"task:{row['id']}"
                )
            )
    if existing is not None and existing["accepted_at"] is None and row["accepted_at"] is not None:
        writes.append(
            events.Also("task.accepted", "task", row["id"], {"id": row["id"], "by": principal.user_id})
        )
        handed_by = await _last_giver(row["id"], row["assignee_id"])
        if handed_by is not None and handed_by != principal.user_id:
            writes.append(
                notification(
                    handed_by, "task.accepted", f"Task accepted: {row['title']}", ref=f"task:{row['id']}"
                )
            )
    if row["status"] == "done" and (existing is None or existing["status"] != "done"):
        # Written with the change's own event, in the same statement (``events.Also``).
        writes.append(
            events.Also(
                "task.completed",
                "task",
                row["id"],
                {"id": row["id"], "result": row["result"], "party_id": row["party_id"]},
            )
        )
    return writes


async def _last_giver(task_id: int, assignee_id: int | None) -> int | None:
    """Who gave the task to its current assignee (the latest hand-off link to them)."""
    link = (
        await TaskHandoff.select(TaskHandoff.from_user_id)
        .where(TaskHandoff.task_id == task_id, TaskHandoff.to_user_id == assignee_id)
        .order_by(TaskHandoff.id, ascending=False)
        .first()
    )
    return link["from_user_id"] if link else None


TASK = service.EntitySpec(
    name="task",
    table=Task,
    permission="task",
    visibility=task_visibility,
    write_visibility=task_write_visibility,
    order_fields=("id", "created_at", "updated_at", "deadline"),
    prepare=prepare_task,
    after_write=after_task_write,
    party_in_events=True,
)


def decorate(row: dict[str, Any]) -> dict[str, Any]:
    deadline = row.get("deadline")
    row["overdue"] = bool(deadline and row["status"] in OPEN_STATUSES and deadline < clock.now())
    return row


def notification(user_id: int, kind: str, title: str, body: str = "", ref: str = "") -> events.LogRow:
    """The inbox entry, not written yet: awaited it is written at once; handed to
    ``events.emit(..., also=[...])`` it is written with the change's events."""
    return events.LogRow(
        "notification",
        (
            ("user_id", user_id),
            ("kind", kind),
            ("title", title[:500]),
            ("body", body),
            ("ref", ref),
            ("created_at", clock.now()),
            ("read_at", None),
        ),
    )


async def notify(user_id: int, kind: str, title: str, body: str = "", ref: str = "") -> None:
    await notification(user_id, kind, title, body, ref)


async def handoff(principal: Principal, task_id: int, to_user_id: int, comment: str = "") -> dict[str, Any]:
    """Hand the task to the next executor; the chain of executors is kept."""
    principal.require("task.write")
    async with events.unit_of_work():
        task = await service.get_for_write(TASK, principal, task_id)
        if task["status"] not in OPEN_STATUSES:
            raise Conflict(f"task {task_id} is {task['status']}; only open tasks can be handed off")
        team_id = await _user_team(to_user_id, "to_user_id")
        if to_user_id == task["assignee_id"]:
            raise ValidationFailed.field("to_user_id", "the task is already assigned to this user")
        now = clock.now()
        await Task.update(
            {
                Task.assignee_id: to_user_id,
                Task.team_id: team_id,
                Task.accepted_at: now if to_user_id == principal.user_id else None,
                Task.updated_at: now,
                Task.version: Task.version + 1,
            }
        ).where(Task.id == task_id)
        await TaskHandoff.insert(
            TaskHandoff(
                task_id=task_id,
                from_user_id=task["assignee_id"],
                to_user_id=to_user_id,
                at=now,
                comment=comment,
            )
        )
        await audit.record(
            "handoff", "task", task_id, {"assignee_id": [task["assignee_id"], to_user_id]}, detail=comment
        )
        await notify(
            to_user_id, "task.handed_off", f"Task handed to you: {task['title']}", comment, f"task:{task_id}"
        )
        await events.emit(
            "task.handed_off",
            "task",
            task_id,
            {
                "id": task_id,
                "from_user_id": task["assignee_id"],
                "to_user_id": to_user_id,
                "by": principal.user_id,
            },
        )
    # The caller may no longer see the task once it left their hands; they still get the
    # record as it is now (not as it was), since they just made the change.
    fresh = await Task.select().where(Task.id == task_id).first().output(load_json=True)
    return fresh or task


async def accept(principal: Principal, task_id: int, version: int | None = None) -> dict[str, Any]:
    """The assignee (or their substitute) accepts a task someone gave them: the hand-off is
    confirmed, the one who handed it hears so. Accepting an accepted task changes nothing."""
    task = await service.get_for_write(TASK, principal, task_id)
    if task["assignee_id"] not in {principal.user_id, *principal.acting_for}:
        raise PermissionDenied(f"only the task's assignee accepts task {task_id}")
    if task["status"] not in OPEN_STATUSES:
        raise Conflict(f"task {task_id} is {task['status']}; only open tasks are accepted")
    if task["accepted_at"] is not None:
        return task
    return await service.update(TASK, principal, task_id, {"accepted_at": clock.now()}, version)


async def complete(
    principal: Principal, task_id: int, result: str, version: int | None = None
) -> dict[str, Any]:
    task = await service.get_for_write(TASK, principal, task_id)
    if task["status"] not in OPEN_STATUSES:
        raise Conflict(f"task {task_id} is already {task['status']}")
    return await service.update(TASK, principal, task_id, {"status": "done", "result": result}, version)


async def handoff_chain(principal: Principal, task_id: int) -> list[dict[str, Any]]:
    """Who had the task, from when, in order; the last link is who has it now."""
    await service.get(TASK, principal, task_id)
    return (
        await TaskHandoff.select()
        .where(TaskHandoff.task_id == task_id)
        .order_by(TaskHandoff.at)
        .order_by(TaskHandoff.id)
    )


async def escalate_overdue(now: datetime | None = None) -> int:
    """Escalate every open task past its deadline once: notify the controller (or the author)
    and the assignee, mark it, emit ``task.overdue``. Idempotent."""
    now = now or clock.now()
    rows = await Task.select().where(
        Task.status.is_in(list(OPEN_STATUSES)), Task.deadline < now, Task.escalated_at.is_null()
    )
    count = 0
    for task in rows:
        async with events.unit_of_work():
            claimed = (
                await Task.update({Task.escalated_at: now})
                .where(Task.id == task["id"], Task.escalated_at.is_null())
                .returning(Task.id)
            )
            if not claimed:
                continue  # another worker escalated it meanwhile
            boss = task["controller_id"] or task["author_id"]
            if boss is not None:
                await notify(boss, "task.overdue", f"Overdue task: {task['title']}", ref=f"task:{task['id']}")
            if task["assignee_id"] is not None and task["assignee_id"] != boss:
                await notify(
                    task["assignee_id"],
                    "task.overdue",
                    f"Your task is overdue: {task['title']}",
                    ref=f"task:{task['id']}",
                )
            await audit.record(
                "escalate", "task", task["id"], detail=f"overdue since {task['deadline'].isoformat()}"
            )
            await events.emit(
                "task.overdue",
                "task",
                task["id"],
                {"id": task["id"], "assignee_id": task["assignee_id"], "controller_id": boss},
            )
            count += 1
    return count
