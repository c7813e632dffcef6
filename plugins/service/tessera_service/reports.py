"""Service reports over the tickets the caller may read: SLA attainment per queue, priority,
assignee or month, first-response and resolution times, reopen rate and satisfaction; as
JSON or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from typing import Any

from tessera.permissions import Principal

from tessera_service import services
from tessera_service.tables import Csat, Ticket

GROUPS = ("queue", "priority", "assignee", "month")


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


async def sla_report(
    principal: Principal, date_from: dt.date, date_to: dt.date, group_by: str = "queue"
) -> list[dict[str, Any]]:
    """One row per group of tickets opened in ``[date_from, date_to]``: counts, first response
    and resolution met/breached, attainment (met / judged), median hours to first response and
    to resolution (calendar time), reopened, average satisfaction."""
    principal.require("service.ticket.read")
    start = dt.datetime.combine(date_from, dt.time(0), dt.UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(0), dt.UTC)
    query = Ticket.select(
        Ticket.id,
        Ticket.queue_id,
        Ticket.priority,
        Ticket.assignee_id,
        Ticket.created_at,
        Ticket.first_response_due,
        Ticket.first_responded_at,
        Ticket.resolution_due,
        Ticket.resolved_at,
        Ticket.breached_at,
        Ticket.reopened,
    ).where(Ticket.created_at >= start, Ticket.created_at < end)
    visible = services.ticket_visibility(principal)
    if visible is not None:
        query = query.where(visible)
    rows = await query
    scores: dict[int, list[int]] = defaultdict(list)
    if rows:
        for c in await Csat.select(Csat.ticket_id, Csat.score).where(
            Csat.ticket_id.is_in([r["id"] for r in rows]), Csat.answered_at.is_not_null()
        ):
            scores[c["ticket_id"]].append(c["score"])
    groups: dict[Any, dict[str, Any]] = {}
    for r in rows:
        key = {
            "queue": r["queue_id"],
            "priority": r["priority"],
            "assignee": r["assignee_id"],
            "month": r["created_at"].strftime("%Y-%m"),
        }[group_by]
        g = groups.setdefault(
            key,
            {
                "group": key,
                "tickets": 0,
                "first_response_met": 0,
                "first_response_breached": 0,
                "resolution_met": 0,
                "resolution_breached": 0,
                "reopened": 0,
                "_first": [],
                "_resolve": [],
                "_scores": [],
            },
        )
        g["tickets"] += 1
        g["reopened"] += 1 if r["reopened"] else 0
        if r["first_response_due"] is not None and r["first_responded_at"] is not None:
            met = r["first_responded_at"] <= r["first_response_due"]
            g["first_response_met" if met else "first_response_breached"] += 1
        if r["resolution_due"] is not None and r["resolved_at"] is not None:
            met = r["resolved_at"] <= r["resolution_due"]
            g["resolution_met" if met else "resolution_breached"] += 1
        elif r["breached_at"] is not None and r["resolved_at"] is None:
            g["resolution_breached"] += 1
        if r["first_responded_at"] is not None:
            g["_first"].append((r["first_responded_at"] - r["created_at"]).total_seconds() / 3600)
        if r["resolved_at"] is not None:
            g["_resolve"].append((r["resolved_at"] - r["created_at"]).total_seconds() / 3600)
        g["_scores"].extend(scores.get(r["id"], []))
    out = []
    for g in groups.values():
        judged = sum(g[k] for k in ("first_response_met", "first_response_breached", "resolution_met"))
        judged += g["resolution_breached"]
        met = g["first_response_met"] + g["resolution_met"]
        first, resolve, marks = g.pop("_first"), g.pop("_resolve"), g.pop("_scores")
        g["attainment"] = round(met / judged, 4) if judged else None
        g["median_first_response_hours"] = _median(first)
        g["median_resolution_hours"] = _median(resolve)
        g["reopen_rate"] = round(g["reopened"] / g["tickets"], 4)
        g["csat_answers"] = len(marks)
        g["csat_average"] = round(sum(marks) / len(marks), 2) if marks else None
        out.append(g)
    return sorted(out, key=lambda g: (g["group"] is None, str(g["group"])))


def as_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    fields = [
        "group",
        "tickets",
        "first_response_met",
        "first_response_breached",
        "resolution_met",
        "resolution_breached",
        "attainment",
        "median_first_response_hours",
        "median_resolution_hours",
        "reopened",
        "reopen_rate",
        "csat_answers",
        "csat_average",
    ]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r[k] for k in fields})
    return buffer.getvalue()
