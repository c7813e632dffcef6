"""The sales reports on the kernel's report framework (``tessera_reports``): funnel, forecast,
manager KPIs, contacts by type and contact cadence, listed with the kernel's reports, run and
exported through ``/api/reports``. They compute their rows with the plugin's own report
functions (``reports.py``, ``cadence.py``: the same figures as the plugin's routes, with the
caller's visibility in their SQL); the funnel and the cadence drill down to their records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera import clock, i18n
from tessera.errors import ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.reports import Report, column, percent
from tessera.reports.framework import names

from tessera_sales import cadence, reports

PIPELINE = {"type": "string", "maxLength": 100, "default": "sales.b2b"}
GROUP = {"enum": ["", "owner", "team"], "default": ""}
TEAM = {"type": ["integer", "null"], "minimum": 1, "default": None}


def _dates(params: dict[str, Any]) -> tuple[dt.date, dt.date]:
    today = clock.now().date()
    return params.get("date_from") or today.replace(month=1, day=1), params.get("date_to") or today


def _row(values: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"values": values, "labels": labels or {}}


# --------------------------------------------------------------------------- funnel

FUNNEL_COLUMNS = [
    column("group", N_("Group"), "text", dimension=True),
    column("stage", N_("Stage"), "text", dimension=True),
    column("entered", N_("Entered")),
    column("conversion_from_previous", N_("Conversion from previous"), "percent", "%"),
    column("conversion_from_first", N_("Conversion from first"), "percent", "%"),
    column("avg_days", N_("Average days in stage"), "days", N_("days")),
    column("over_norm", N_("Over norm")),
    column("stuck", N_("Stuck")),
]


async def _funnel(principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    body = await reports.funnel(
        principal,
        pipeline=params["pipeline"],
        date_from=date_from,
        date_to=date_to,
        group_by=params["group_by"],
        team_id=params.get("team_id"),
    )
    kind = {"owner": "user", "team": "team"}.get(params["group_by"])
    found = await names(kind, {g["group"] for g in body["groups"]}) if kind else {}
    rows = []
    for group in body["groups"]:
        label = found.get(group["group"], "") if kind else ""
        for s in group["stages"]:
            rows.append(
                _row(
                    {
                        "group": group["group"],
                        "stage": s["stage"],
                        "entered": s["entered"],
                        "conversion_from_previous": percent(s["conversion_from_previous"]),
                        "conversion_from_first": percent(s["conversion_from_first"]),
                        "avg_days": s["avg_days"],
                        "over_norm": s["over_norm"],
                        "stuck": s["stuck"],
                    },
                    {"group": label, "stage": s["name"]},
                )
            )
    return {"columns": FUNNEL_COLUMNS, "rows": rows}


async def _funnel_drill(
    principal: Principal, params: dict[str, Any], cell: dict[str, Any], measure: str
) -> dict[str, Any]:
    stage = cell.get("stage")
    if not isinstance(stage, str) or not stage:
        raise ValidationFailed.field("cell.stage", "is required: the stage of the cell")
    group = cell.get("group")
    if group is not None and not isinstance(group, int):
        raise ValidationFailed.field("cell.group", "must be an id or null")
    date_from, date_to = _dates(params)
    owner_id = group if params["group_by"] == "owner" else None
    team_id = group if params["group_by"] == "team" else params.get("team_id")
    only = measure if measure in ("stuck", "over_norm") else ""
    deals = await reports.funnel_deals(
        principal,
        pipeline=params["pipeline"],
        stage=stage,
        date_from=date_from,
        date_to=date_to,
        owner_id=owner_id,
        team_id=team_id,
        only=only,
        limit=10_000,
    )
    ids = [d["id"] for d in deals]
    return {
        "report": "sales.funnel",
        "entity": "sales.deal",
        "count": len(ids),
        "ids": ids,
        "truncated": False,
        "list_url": None,
    }


# --------------------------------------------------------------------------- forecast


async def _forecast(principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    body = await reports.forecast(
        principal,
        pipeline=params["pipeline"],
        date_from=date_from,
        date_to=date_to,
        team_id=params.get("team_id"),
    )
    months: dict[str, dict[str, Any]] = {}
    for kind in ("weighted", "historical"):
        for r in body[f"{kind}_base"]:
            months.setdefault(r["month"], {"month": r["month"], "weighted": None, "historical": None})[
                kind
            ] = r["amount"]
    base = body["base_currency"]
    columns = [
        column("month", N_("Month"), "period", dimension=True),
        column("weighted", N_("Weighted by stage probability"), "decimal", base),
        column("historical", N_("By history of won deals"), "decimal", base),
    ]
    return {"columns": columns, "rows": [_row(v, {"month": k}) for k, v in sorted(months.items())]}


# --------------------------------------------------------------------------- manager KPIs

KPI_COLUMNS = [
    column("manager", N_("Manager"), "user", dimension=True),
    column("open_deals", N_("Open deals")),
    column("new_deals", N_("New deals")),
    column("won_deals", N_("Won deals")),
    column("lost_deals", N_("Lost deals")),
    column("activities", N_("Activities done")),
    column("calls", N_("Calls")),
    column("meetings", N_("Meetings")),
]


async def _kpi(principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    people = await reports.manager_kpis(
        principal, date_from=date_from, date_to=date_to, team_id=params.get("team_id")
    )
    rows = [
        _row(
            {"manager": p["user_id"], **{c["key"]: p[c["key"]] for c in KPI_COLUMNS[1:]}},
            {"manager": p["name"]},
        )
        for p in people
    ]
    return {"columns": KPI_COLUMNS, "rows": rows}


# --------------------------------------------------------------------------- contacts and cadence


async def _contacts(principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    counts = await cadence.contacts_by_type(principal, date_from, date_to)
    found = await names("user", {r["owner_id"] for r in counts})
    columns = [
        column("manager", N_("Manager"), "user", dimension=True),
        column("type", N_("Type"), "text", dimension=True),
        column("count", N_("Contacts")),
    ]
    rows = [
        _row(
            {"manager": r["owner_id"], "type": r["type"], "count": r["count"]},
            {"manager": found.get(r["owner_id"], ""), "type": i18n.label("activity.type", r["type"])},
        )
        for r in counts
    ]
    return {"columns": columns, "rows": rows}


CADENCE_COLUMNS = [
    column("rule", N_("Rule"), "text", dimension=True),
    column("manager", N_("Manager"), "user", dimension=True),
    column("clients", N_("Clients")),
    column("compliant", N_("In norm")),
    column("overdue", N_("Overdue")),
    column("compliance", N_("Compliance"), "percent", "%"),
]


async def _cadence(principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
    cells = await cadence.compliance(principal, params.get("rule_id"))
    found = await names("user", {c["owner_id"] for c in cells})
    rows = [
        _row(
            {
                "rule": c["rule_id"],
                "manager": c["owner_id"],
                "clients": c["clients"],
                "compliant": c["compliant"],
                "overdue": c["overdue"],
                "compliance": percent(c["compliance"]),
            },
            {"rule": c["rule"], "manager": found.get(c["owner_id"], "")},
        )
        for c in cells
    ]
    return {"columns": CADENCE_COLUMNS, "rows": rows}


async def _cadence_drill(
    principal: Principal, params: dict[str, Any], cell: dict[str, Any], measure: str
) -> dict[str, Any]:
    rule = cell.get("rule", params.get("rule_id"))
    if rule is not None and not isinstance(rule, int):
        raise ValidationFailed.field("cell.rule", "must be a rule id")
    rows = await cadence.overdue_clients(principal, rule)
    if "manager" in cell:
        rows = [r for r in rows if r["owner_id"] == cell["manager"]]
    ids = sorted({r["party_id"] for r in rows})
    return {
        "report": "sales.cadence",
        "entity": "party",
        "count": len(ids),
        "ids": ids,
        "truncated": False,
        "list_url": None,
    }


REPORTS = [
    Report(
        key="sales.funnel",
        title=N_("Sales funnel"),
        description=N_("Deals opened in the period and how far they got, stage by stage."),
        entity="sales.deal",
        permission="sales.deal.read",
        params={"pipeline": PIPELINE, "group_by": GROUP, "team_id": TEAM},
        run=_funnel,
        drill=_funnel_drill,
        columns=FUNNEL_COLUMNS,
        chart="funnel",
    ),
    Report(
        key="sales.forecast",
        title=N_("Sales forecast"),
        description=N_("Expected revenue per month from open deals, two methods."),
        entity="sales.deal",
        permission="sales.deal.read",
        params={"pipeline": PIPELINE, "team_id": TEAM},
        run=_forecast,
        chart="line",
    ),
    Report(
        key="sales.kpi",
        title=N_("Manager KPIs"),
        description=N_("Per manager: open, new, won and lost deals, activities done."),
        entity="sales.deal",
        permission="sales.deal.read",
        params={"team_id": TEAM},
        run=_kpi,
        columns=KPI_COLUMNS,
    ),
    Report(
        key="sales.contacts",
        title=N_("Contacts by type"),
        description=N_("Done contacts with clients per manager and contact type."),
        entity="sales.deal",
        permission="sales.deal.read",
        run=_contacts,
    ),
    Report(
        key="sales.cadence",
        title=N_("Contact cadence"),
        description=N_("Per rule and manager: clients in norm and overdue for a contact."),
        entity="sales.deal",
        permission="sales.deal.read",
        params={"rule_id": {"type": ["integer", "null"], "minimum": 1, "default": None}},
        run=_cadence,
        drill=_cadence_drill,
        columns=CADENCE_COLUMNS,
    ),
]
