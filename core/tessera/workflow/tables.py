"""Piccolo tables of the kernel's workflow component (its own Piccolo app, so its migrations
stay separate from the entities').

A *template* row is one published version of a process (``key`` + ``version``); an
*instance* follows exactly one template version through its stages; every move is a
*transition*; delayed stage actions ("plan a call 7 days after close") wait as due rows in
``workflow_scheduled_action`` until the runner job executes them; ``workflow_deviation``
keeps each escalated deviation (stage over its norm, required actions missing).
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from tessera.entities.tables import CrmUser, Party, Task, Team


class WorkflowTemplate(Table, tablename="workflow_template"):
    """One published version of a process template; versions of a key are never edited."""

    key = Varchar(length=100, index=True)
    version = Integer()
    name = Varchar(length=300)
    description = Text(default="")
    #: The validated JSON document (stages, transitions, actions, business calendar).
    definition = JSON(default={})
    #: SHA-256 of the canonical JSON of ``definition``: re-shipping the same content is a no-op.
    content_hash = Varchar(length=64)
    #: ``admin`` or ``plugin:<name>``.
    source = Varchar(length=100, default="admin")
    #: The version new instances of ``key`` start on (exactly one per key).
    is_current = Boolean(default=True, index=True)
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class WorkflowInstance(Table, tablename="workflow_instance"):
    """A running (or finished) process attached to any record: ``subject_entity:subject_id``."""

    template_id = ForeignKey(WorkflowTemplate, on_delete=OnDelete.restrict, index=True)
    template_key = Varchar(length=100, index=True)
    template_version = Integer()
    subject_entity = Varchar(length=60)
    subject_id = Integer(null=True, default=None)
    party_id = ForeignKey(Party, null=True, on_delete=OnDelete.set_null, index=True)
    title = Varchar(length=500, default="")
    #: running | suspended | completed | stopped
    status = Varchar(length=20, default="running", index=True)
    current_stage = Varchar(length=100, default="", index=True)
    #: Increments at every stage entry; deviations and tasks are tied to one visit.
    stage_seq = Integer(default=0)
    stage_entered_at = Timestamptz(null=True, default=None)
    #: When the stage's time norm runs out (business hours or calendar time).
    stage_due_at = Timestamptz(null=True, default=None)
    #: Earliest deadline of the stage's required actions that carry their own ``within``.
    actions_due_at = Timestamptz(null=True, default=None)
    #: Next moment the deviation scan must look at this instance (NULL: nothing to watch).
    next_check_at = Timestamptz(null=True, default=None, index=True)
    #: Deviation kinds already escalated in this stage visit, comma-separated.
    escalated = Varchar(length=200, default="")
    responsible_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    controller_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    #: The record owner ("owner" responsible rule, delayed calls in the owner's calendar).
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    #: Team of the current responsible (deviation filter, team visibility).
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null, index=True)
    current_task_id = ForeignKey(Task, null=True, on_delete=OnDelete.set_null)
    probability = Integer(null=True, default=None)
    #: Parameters set at start and changed from the process card (free JSON).
    params = JSON(default={})
    #: Result fields filled at stage exits: ``{"outcome": "won", ...}``.
    results = JSON(default={})
    #: Ticked checklist items per stage: ``{"qualify": ["budget_confirmed"]}``.
    checklist = JSON(default={})
    started_by = Integer(null=True, default=None)
    started_at = Timestamptz(default=TimestamptzNow())
    suspended_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class WorkflowTransition(Table, tablename="workflow_transition"):
    """Every move of an instance: start, advance, reassign, suspend, resume, stop, migrate."""

    instance_id = ForeignKey(WorkflowInstance, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=20)
    from_stage = Varchar(length=100, null=True, default=None)
    to_stage = Varchar(length=100, null=True, default=None)
    stage_seq = Integer(default=0)
    #: Plain integer so the trail outlives the user.
    user_id = Integer(null=True, default=None)
    at = Timestamptz(default=TimestamptzNow(), index=True)
    comment = Text(default="")
    #: Who was responsible for ``to_stage`` and the task they were given.
    responsible_id = Integer(null=True, default=None)
    task_id = Integer(null=True, default=None)
    detail = JSON(default={})


class WorkflowScheduledAction(Table, tablename="workflow_scheduled_action"):
    """A stage action waiting for its moment; the runner job claims due rows once."""

    instance_id = ForeignKey(WorkflowInstance, on_delete=OnDelete.cascade, index=True)
    stage = Varchar(length=100)
    stage_seq = Integer(default=0)
    #: enter | leave
    trigger = Varchar(length=10)
    action = JSON(default={})
    due_at = Timestamptz(index=True)
    #: pending | done | failed | cancelled
    status = Varchar(length=20, default="pending", index=True)
    attempts = Integer(default=0)
    error = Text(default="")
    #: What the action produced: "activity:12", "task:7", "event:workflow.x".
    result_ref = Varchar(length=100, default="")
    done_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class WorkflowDeviation(Table, tablename="workflow_deviation"):
    """A deviation the scan escalated (once per instance, stage visit and kind)."""

    instance_id = ForeignKey(WorkflowInstance, on_delete=OnDelete.cascade, index=True)
    stage = Varchar(length=100)
    stage_seq = Integer(default=0)
    #: stage_overdue | actions_missing
    kind = Varchar(length=30)
    detail = Text(default="")
    detected_at = Timestamptz(default=TimestamptzNow(), index=True)
    responsible_id = Integer(null=True, default=None)
    controller_id = Integer(null=True, default=None)


TABLES: list[type[Table]] = [
    WorkflowTemplate,
    WorkflowInstance,
    WorkflowTransition,
    WorkflowScheduledAction,
    WorkflowDeviation,
]
