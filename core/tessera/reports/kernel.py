"""The kernel's reports: activities per manager and type per period, task discipline, late
hand-offs, client base dynamics and contact coverage (docs/analytics.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from piccolo.columns.combination import WhereRaw

from tessera import clock, db
from tessera.entities.activities import activity_visibility
from tessera.entities.parties import party_visibility
from tessera.entities.tables import (
    Activity,
    ActivitySummary,
    Party,
    PartyStatusChange,
    Task,
    TaskHandoff,
)
from tessera.entities.tasks import task_visibility
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.reports.builder import Entity, Field
from tessera.reports.framework import (
    Dimension,
    Measure,
    Params,
    Ratio,
    Report,
    Summary,
    register_list_dates,
)

OPEN_TASK = ("open", "in_progress")

register_list_dates("activity", "starts_at", "starts_after", "starts_before")


def _period(column: str = "") -> Dimension:
    return Dimension("period", N_("Period"), kind="period")


# --------------------------------------------------------------------------- activities

ACTIVITIES = Report(
    key="activities",
    title=N_("Activities by manager and type"),
    description=N_("Calls, meetings, letters ... per manager, team, type and period."),
    entity="activity",
    period_column="starts_at",
    dimensions=[
        Dimension("owner", N_("Manager"), "owner_id", kind="user", list_param="owner_id"),
        Dimension("team", N_("Team"), "team_id", kind="team", list_param="team_id"),
        Dimension("type", N_("Type"), "type", labels="activity.type", list_param="type"),
        Dimension("status", N_("Status"), "status", labels="activity.status", list_param="status"),
        Dimension("party", N_("Client"), "party_id", kind="party", list_param="party_id"),
        _period(),
    ],
    measures=[
        Measure("activities", N_("Activities")),
        Measure(
            "done",
            N_("Done"),
            where=lambda p, params: Activity.status == "done",
            list_params=lambda params: {"status": "done"},
        ),
        Measure("minutes", N_("Duration"), agg="sum", column="duration_minutes", unit=N_("min")),
        Measure("clients", N_("Clients"), agg="count_distinct", column="party_id"),
        Ratio("done_share", N_("Done, share"), numerator="done", denominator="activities"),
    ],
    default_group_by=["owner", "type"],
    list_url="/app/activities",
    # Counts and minutes per day, owner, team, type and status (tessera.reports.summary): read
    # when the reader sees every activity and the run asks for nothing else (not clients).
    summary=Summary(
        table=ActivitySummary,
        period_column="day",
        dimensions={"owner": "owner_id", "team": "team_id", "type": "type", "status": "status"},
        measures={
            "activities": Measure("activities", N_("Activities"), agg="sum", column="n"),
            "done": Measure(
                "done",
                N_("Done"),
                agg="sum",
                column="n",
                where=lambda p, params: ActivitySummary.status == "done",
            ),
            "minutes": Measure("minutes", N_("Duration"), agg="sum", column="minutes", unit=N_("min")),
        },
        zero_is_null=("owner", "team"),
    ),
)


# --------------------------------------------------------------------------- task discipline


def _overdue(principal: Principal, params: Params) -> Any:
    return Task.status.is_in(list(OPEN_TASK)) & (Task.deadline < clock.now())


def _done_late(principal: Principal, params: Params) -> Any:
    return (Task.status == "done") & WhereRaw('"task"."completed_at" > "task"."deadline"')


TASK_DISCIPLINE = Report(
    key="tasks.discipline",
    title=N_("Task discipline"),
    description=N_("Tasks per assignee by deadline: open, overdue now, done late."),
    entity="task",
    period_column="deadline",
    dimensions=[
        Dimension("assignee", N_("Assignee"), "assignee_id", kind="user", list_param="assignee_id"),
        Dimension("controller", N_("Controller"), "controller_id", kind="user", list_param="controller_id"),
        Dimension("team", N_("Team"), "team_id", kind="team", list_param="team_id"),
        Dimension("priority", N_("Priority"), "priority", labels="task.priority", list_param="priority"),
        _period(),
    ],
    measures=[
        Measure("tasks", N_("Tasks")),
        Measure(
            "open",
            N_("Open"),
            where=lambda p, params: Task.status.is_in(list(OPEN_TASK)),
            list_params=lambda params: {"open": "true"},
        ),
        Measure("overdue", N_("Overdue"), where=_overdue, list_params=lambda params: {"overdue": "true"}),
        Measure("done_late", N_("Done late"), where=_done_late),
        Ratio("overdue_share", N_("Overdue, share"), numerator="overdue", denominator="tasks"),
    ],
    default_group_by=["assignee"],
    list_url="/app/tasks",
)


# --------------------------------------------------------------------------- late hand-offs


def _handoff_visibility(principal: Principal) -> Any:
    visible = task_visibility(principal)
    if visible is None:
        return None
    return TaskHandoff.task_id.is_in(Task.select(Task.id).where(visible))


def _late_handoff(principal: Principal, params: Params) -> Any:
    """Not accepted ``hours`` after the hand-off (the task still open and not handed on
    since), or accepted later than that."""
    hours = int(params.get("hours", 24))
    limit = clock.now() - dt.timedelta(hours=hours)
    if db.is_postgres():
        late_accept = "EXTRACT(EPOCH FROM (t.accepted_at - h.at)) > {}"
    else:
        late_accept = "(julianday(t.accepted_at) - julianday(h.at)) * 86400 > {}"
    return WhereRaw(
        '"task_handoff"."id" IN (SELECT h.id FROM task_handoff h JOIN task t ON t.id = h.task_id WHERE '
        "((t.accepted_at IS NULL OR t.accepted_at < h.at) AND t.status IN ('open', 'in_progress') "
        "AND h.at < {} AND NOT EXISTS (SELECT 1 FROM task_handoff h2 WHERE h2.task_id = h.task_id "
        f"AND h2.id > h.id)) OR (t.accepted_at >= h.at AND {late_accept}))",
        limit,
        hours * 3600,
    )


TASK_HANDOFFS = Report(
    key="tasks.handoffs",
    title=N_("Task hand-offs"),
    description=N_("Hand-offs per receiver: how many were not accepted within the allowed hours."),
    entity="task",
    table=TaskHandoff,
    visibility=_handoff_visibility,
    period_column="at",
    params={"hours": {"type": "integer", "minimum": 1, "maximum": 24 * 60, "default": 24}},
    dimensions=[
        Dimension("to_user", N_("Receiver"), "to_user_id", kind="user"),
        Dimension("from_user", N_("Handed by"), "from_user_id", kind="user"),
        _period(),
    ],
    measures=[
        Measure("handoffs", N_("Hand-offs")),
        Measure("late", N_("Late"), where=_late_handoff),
        Ratio("late_share", N_("Late, share"), numerator="late", denominator="handoffs"),
    ],
    default_group_by=["to_user"],
    record_column="task_id",
)


# --------------------------------------------------------------------------- client base dynamics


def _status_change_visibility(principal: Principal) -> Any:
    visible = party_visibility(principal)
    if visible is None:
        return None
    return PartyStatusChange.party_id.is_in(Party.select(Party.id).where(visible))


CLIENT_DYNAMICS = Report(
    key="parties.dynamics",
    title=N_("Client base dynamics"),
    description=N_("New clients and moves between potential, current and former, per period."),
    entity="party",
    table=PartyStatusChange,
    visibility=_status_change_visibility,
    period_column="changed_at",
    dimensions=[
        Dimension("to_status", N_("New status"), "to_status", labels="party.status"),
        Dimension("from_status", N_("Previous status"), "from_status", labels="party.status"),
        _period(),
    ],
    measures=[
        Measure("new", N_("New"), where=lambda p, params: PartyStatusChange.from_status.is_null()),
        Measure(
            "became_current",
            N_("Became current"),
            where=lambda p, params: (
                (PartyStatusChange.to_status == "current") & PartyStatusChange.from_status.is_not_null()
            ),
        ),
        Measure(
            "became_former",
            N_("Became former"),
            where=lambda p, params: (
                (PartyStatusChange.to_status == "former") & PartyStatusChange.from_status.is_not_null()
            ),
        ),
        Measure("changes", N_("Status changes")),
    ],
    default_group_by=["period"],
    chart="line",
    record_column="party_id",
    record_entity="party",
)


# --------------------------------------------------------------------------- contact coverage


def _contacted(principal: Principal, params: Params) -> Any:
    since = clock.now() - dt.timedelta(days=int(params.get("days", 30)))
    done = Activity.select(Activity.party_id).where(
        (Activity.status == "done") & (Activity.starts_at >= since) & Activity.party_id.is_not_null()
    )
    visible = activity_visibility(principal)
    if visible is not None:
        done = done.where(visible)
    return Party.id.is_in(done)


CONTACT_COVERAGE = Report(
    key="parties.coverage",
    title=N_("Contact coverage"),
    description=N_(
        "Clients with a done activity in the last days, per manager: the share of the base in touch."
    ),
    entity="party",
    params={"days": {"type": "integer", "minimum": 1, "maximum": 3660, "default": 30}},
    dimensions=[
        Dimension("owner", N_("Manager"), "owner_id", kind="user", list_param="owner_id"),
        Dimension("team", N_("Team"), "team_id", kind="team", list_param="team_id"),
        Dimension("status", N_("Status"), "status", labels="party.status", list_param="status"),
        Dimension("kind", N_("Kind"), "kind", labels="party.kind", list_param="kind"),
    ],
    measures=[
        Measure("clients", N_("Clients")),
        Measure("contacted", N_("Contacted"), where=_contacted),
        Ratio("coverage", N_("Coverage"), numerator="contacted", denominator="clients"),
    ],
    default_group_by=["owner"],
    list_url="/app/parties",
)

REPORTS: list[Report] = [ACTIVITIES, TASK_DISCIPLINE, TASK_HANDOFFS, CLIENT_DYNAMICS, CONTACT_COVERAGE]


# --------------------------------------------------------------------------- report builder entities

ENTITIES: list[Entity] = [
    Entity(
        key="activity",
        label=N_("Activities"),
        entity="activity",
        custom_fields="activity",
        list_url="/app/activities",
        fields=[
            Field("type", N_("Type"), labels="activity.type", list_param="type"),
            Field("status", N_("Status"), labels="activity.status", list_param="status"),
            Field("direction", N_("Direction")),
            Field("subject", N_("Subject")),
            Field("owner", N_("Manager"), "owner_id", type="user", list_param="owner_id"),
            Field("team", N_("Team"), "team_id", type="team", list_param="team_id"),
            Field("party", N_("Client"), "party_id", type="party", list_param="party_id"),
            Field("starts_at", N_("Time"), type="datetime"),
            Field("duration_minutes", N_("Duration, min"), type="int"),
            Field("created_at", N_("Created"), type="datetime"),
        ],
    ),
    Entity(
        key="party",
        label=N_("Clients"),
        entity="party",
        custom_fields="party",
        list_url="/app/parties",
        fields=[
            Field("name", N_("Name")),
            Field("kind", N_("Kind"), labels="party.kind", list_param="kind"),
            Field("status", N_("Status"), labels="party.status", list_param="status"),
            Field("owner", N_("Manager"), "owner_id", type="user", list_param="owner_id"),
            Field("team", N_("Team"), "team_id", type="team", list_param="team_id"),
            # Tax ids identify the client base: reading them in bulk is an export.
            Field("tax_id", N_("Tax id"), permission="party.export"),
            Field("created_at", N_("Created"), type="datetime"),
            Field("status_changed_at", N_("Status changed"), type="datetime"),
        ],
    ),
    Entity(
        key="task",
        label=N_("Tasks"),
        entity="task",
        custom_fields="task",
        list_url="/app/tasks",
        fields=[
            Field("status", N_("Status"), labels="task.status", list_param="status"),
            Field("priority", N_("Priority"), labels="task.priority", list_param="priority"),
            Field("assignee", N_("Assignee"), "assignee_id", type="user", list_param="assignee_id"),
            Field("author", N_("Author"), "author_id", type="user", list_param="author_id"),
            Field("controller", N_("Controller"), "controller_id", type="user", list_param="controller_id"),
            Field("team", N_("Team"), "team_id", type="team", list_param="team_id"),
            Field("party", N_("Client"), "party_id", type="party", list_param="party_id"),
            Field("deadline", N_("Deadline"), type="datetime"),
            Field("completed_at", N_("Completed"), type="datetime"),
            Field("created_at", N_("Created"), type="datetime"),
        ],
    ),
]
