"""The service reports on the kernel's report framework (``tessera_reports``, docs/analytics.md):
listed with the kernel's reports, run, charted on dashboards and exported to CSV/XLSX through
``/api/reports``, always over the tickets the caller may read (the ticket's visibility rule).

* ``service.tickets`` — volume: tickets, open, breached, resolved, reopened per assignee, team,
  priority, category, status, channel, client and period, drilling down to the ticket queue;
* ``service.sla`` — SLA attainment, median first-response and resolution hours, reopen rate and
  satisfaction per queue, priority, assignee or month (``reports.sla_report``);
* ``service.backlog`` — open tickets by age (backlog ageing) and priority, now;
* ``service.times`` — how long first responses and resolutions took: tickets per time band.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera import clock, i18n
from tessera.errors import ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.reports import Report, column, percent
from tessera.reports.framework import Dimension, Measure, Params, Ratio, names

from tessera_service import reports, services
from tessera_service.tables import Queue, Ticket

OPEN = ("new", "in_progress", "waiting")

#: Age bands of the backlog (days since the ticket was opened): key, label, lower bound.
AGE_BANDS = [
    ("d0_1", N_("under 1 day"), 0),
    ("d1_3", N_("1-3 days"), 1),
    ("d3_7", N_("3-7 days"), 3),
    ("d7_30", N_("7-30 days"), 7),
    ("d30", N_("over 30 days"), 30),
]
#: Time bands of first responses and resolutions (hours, calendar time): key, label, lower bound.
TIME_BANDS = [
    ("h0_1", N_("under 1 hour"), 0),
    ("h1_4", N_("1-4 hours"), 1),
    ("h4_8", N_("4-8 hours"), 4),
    ("h8_24", N_("8-24 hours"), 8),
    ("h24_72", N_("1-3 days"), 24),
    ("h72", N_("over 3 days"), 72),
]
PRIORITY_KEYS = ("p1", "p2", "p3", "p4")


def _band(bands: list[tuple[str, str, int]], value: float) -> str:
    chosen = bands[0][0]
    for key, _label, lower in bands:
        if value >= lower:
            chosen = key
    return chosen


def _dates(params: Params) -> tuple[dt.date, dt.date]:
    today = clock.now().date()
    return params.get("date_from") or today - dt.timedelta(days=30), params.get("date_to") or today


def _visible(principal: Principal) -> list[Any]:
    condition = services.ticket_visibility(principal)
    return [condition] if condition is not None else []


# --------------------------------------------------------------------------- volume

TICKETS = Report(
    key="service.tickets",
    title=N_("Tickets"),
    description=N_("Tickets opened, still open, past their SLA, resolved and reopened."),
    entity="service.ticket",
    period_column="created_at",
    dimensions=[
        Dimension("assignee", N_("Assignee"), "assignee_id", kind="user", list_param="assignee_id"),
        Dimension("team", N_("Team"), "team_id", kind="team"),
        Dimension("priority", N_("Priority"), "priority", labels="service.priority", list_param="priority"),
        Dimension("category", N_("Category"), "category", labels="service.category"),
        Dimension("status", N_("Status"), "status", labels="service.ticket.status", list_param="status"),
        Dimension("channel", N_("Channel"), "channel", labels="service.channel"),
        Dimension("party", N_("Client"), "party_id", kind="party"),
        Dimension("period", N_("Period"), kind="period"),
    ],
    measures=[
        Measure("tickets", N_("Tickets")),
        Measure(
            "open",
            N_("Open"),
            where=lambda p, params: Ticket.status.is_in(list(OPEN)),
            list_params=lambda params: {"open_only": "true"},
        ),
        Measure(
            "breached",
            N_("SLA breached"),
            where=lambda p, params: Ticket.breached_at.is_not_null(),
            list_params=lambda params: {"breached": "true"},
        ),
        Measure("resolved", N_("Resolved"), where=lambda p, params: Ticket.resolved_at.is_not_null()),
        Measure("reopened", N_("Reopened"), agg="sum", column="reopened"),
        Ratio("breached_share", N_("SLA breached, share"), numerator="breached", denominator="tickets"),
    ],
    default_group_by=["priority"],
    list_url="/service/tickets",
)


# --------------------------------------------------------------------------- SLA attainment

SLA_COLUMNS = [
    column("group", N_("Group"), "text", dimension=True),
    column("tickets", N_("Tickets")),
    column("first_response_met", N_("First response met")),
    column("first_response_breached", N_("First response missed")),
    column("resolution_met", N_("Resolution met")),
    column("resolution_breached", N_("Resolution missed")),
    column("attainment", N_("SLA attainment"), "percent", "%"),
    column("median_first_response_hours", N_("Median first response"), "number", N_("h")),
    column("median_resolution_hours", N_("Median resolution"), "number", N_("h")),
    column("reopen_rate", N_("Reopen rate"), "percent", "%"),
    column("csat_answers", N_("Satisfaction answers")),
    column("csat_average", N_("Satisfaction"), "number", "/5"),
]


async def _group_labels(group_by: str, keys: set[Any]) -> dict[Any, str]:
    if group_by == "assignee":
        return await names("user", keys)
    if group_by == "queue":
        ids = [k for k in keys if isinstance(k, int)] or [-1]
        queues = await Queue.select(Queue.id, Queue.name).where(Queue.id.is_in(ids))
        return {q["id"]: q["name"] for q in queues}
    if group_by == "priority":
        return {k: i18n.label("service.priority", k) for k in keys if k}
    return {k: str(k) for k in keys if k is not None}


async def _sla(principal: Principal, params: Params) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    rows = await reports.sla_report(principal, date_from, date_to, params["group_by"])
    labels = await _group_labels(params["group_by"], {r["group"] for r in rows})
    out = []
    for r in rows:
        values = {c["key"]: r.get(c["key"]) for c in SLA_COLUMNS}
        values["attainment"] = percent(r["attainment"])
        values["reopen_rate"] = percent(r["reopen_rate"])
        for key in ("median_first_response_hours", "median_resolution_hours"):
            values[key] = None if r[key] is None else round(r[key], 2)
        out.append({"values": values, "labels": {"group": labels.get(r["group"], "—")}})
    return {"columns": SLA_COLUMNS, "rows": out}


SLA = Report(
    key="service.sla",
    title=N_("SLA attainment"),
    description=N_("Targets met and missed, response and resolution times, reopening, satisfaction."),
    entity="service.ticket",
    params={"group_by": {"enum": list(reports.GROUPS), "default": "queue"}},
    run=_sla,
    columns=SLA_COLUMNS,
)


# --------------------------------------------------------------------------- backlog ageing


def _band_columns(bands: list[tuple[str, str, int]], first: dict[str, Any]) -> list[dict[str, Any]]:
    return [first, *[column(key, label) for key, label, _lower in bands], column("total", N_("Total"))]


BACKLOG_COLUMNS = _band_columns(AGE_BANDS, column("priority", N_("Priority"), "text", dimension=True))


async def _open_tickets(principal: Principal) -> list[dict[str, Any]]:
    return await Ticket.select(Ticket.id, Ticket.priority, Ticket.created_at).where(
        Ticket.status.is_in(list(OPEN)), *_visible(principal)
    )


async def _backlog(principal: Principal, params: Params) -> dict[str, Any]:
    now = clock.now()
    counts = {p: dict.fromkeys([k for k, _l, _b in AGE_BANDS], 0) for p in PRIORITY_KEYS}
    for t in await _open_tickets(principal):
        age = (now - t["created_at"]).total_seconds() / 86400
        counts.setdefault(t["priority"], dict.fromkeys([k for k, _l, _b in AGE_BANDS], 0))
        counts[t["priority"]][_band(AGE_BANDS, age)] += 1
    rows = []
    for priority, bands in counts.items():
        values: dict[str, Any] = {"priority": priority, **bands, "total": sum(bands.values())}
        rows.append({"values": values, "labels": {"priority": i18n.label("service.priority", priority)}})
    return {"columns": BACKLOG_COLUMNS, "rows": rows}


async def _backlog_drill(
    principal: Principal, params: Params, cell: dict[str, Any], measure: str
) -> dict[str, Any]:
    """The open tickets of a cell: one priority, one age band (or all bands: ``total``)."""
    priority = cell.get("priority")
    if priority not in PRIORITY_KEYS:
        raise ValidationFailed.field("cell.priority", f"must be one of {', '.join(PRIORITY_KEYS)}")
    bands = {k for k, _l, _b in AGE_BANDS}
    if measure not in bands | {"total"}:
        raise ValidationFailed.field("measure", f"must be one of {', '.join(sorted(bands))} or total")
    now = clock.now()

    def in_cell(t: dict[str, Any]) -> bool:
        age = (now - t["created_at"]).total_seconds() / 86400
        return t["priority"] == priority and measure in ("total", _band(AGE_BANDS, age))

    ids = [t["id"] for t in await _open_tickets(principal) if in_cell(t)]
    return {
        "report": "service.backlog",
        "entity": "service.ticket",
        "count": len(ids),
        "ids": ids[:10_000],
        "truncated": len(ids) > 10_000,
        "list_url": f"/service/tickets?open_only=true&priority={priority}",
    }


BACKLOG = Report(
    key="service.backlog",
    title=N_("Backlog ageing"),
    description=N_("Open tickets now, by priority and how long ago they were opened."),
    entity="service.ticket",
    run=_backlog,
    drill=_backlog_drill,
    columns=BACKLOG_COLUMNS,
)


# --------------------------------------------------------------------------- time distributions

TIMES_COLUMNS = _band_columns(TIME_BANDS, column("measure", N_("Measure"), "text", dimension=True))


async def _times(principal: Principal, params: Params) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    start = dt.datetime.combine(date_from, dt.time(0), dt.UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(0), dt.UTC)
    tickets = await Ticket.select(Ticket.created_at, Ticket.first_responded_at, Ticket.resolved_at).where(
        Ticket.created_at >= start, Ticket.created_at < end, *_visible(principal)
    )
    keys = [k for k, _l, _b in TIME_BANDS]
    rows = []
    for measure, label, done_at in (
        ("first_response", N_("First response"), "first_responded_at"),
        ("resolution", N_("Resolution"), "resolved_at"),
    ):
        bands = dict.fromkeys(keys, 0)
        for t in tickets:
            if t[done_at] is not None:
                bands[_band(TIME_BANDS, (t[done_at] - t["created_at"]).total_seconds() / 3600)] += 1
        values: dict[str, Any] = {"measure": measure, **bands, "total": sum(bands.values())}
        rows.append({"values": values, "labels": {"measure": i18n.gettext(label)}})
    return {"columns": TIMES_COLUMNS, "rows": rows}


TIMES = Report(
    key="service.times",
    title=N_("Response and resolution times"),
    description=N_("Tickets opened in the period by how long the first response and the resolution took."),
    entity="service.ticket",
    run=_times,
    columns=TIMES_COLUMNS,
)

REPORTS = [TICKETS, SLA, BACKLOG, TIMES]
