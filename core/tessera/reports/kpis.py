"""KPIs (issue 21, item 3): any indicator defined as a measure of a registered report, with a
plan (target) per person, team or the whole company per month; the actual is the report's
total for that person's / team's records in the month, computed with the reader's visibility;
percent of plan and the history by month; manager load (open and overdue tasks per person).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from tessera import audit, clock, events
from tessera.entities.tables import Kpi, KpiTarget
from tessera.errors import NotFound, ValidationFailed
from tessera.permissions import Principal
from tessera.reports import catalog, framework, periods

MANAGE = "report.kpi.manage"


def kpi_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "report_key": row["report_key"],
        "measure": row["measure"],
        "params": json.loads(row["params"] or "{}"),
        "person_dimension": row["person_dimension"],
        "team_dimension": row["team_dimension"],
    }


async def create(pm: Any, principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    """Define a KPI (needs report.kpi.manage): the report, its measure and fixed parameters
    must exist and be valid; the person/team dimensions must be the report's."""
    principal.require(MANAGE)
    name = values.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationFailed.field("name", "is required (at most 200 characters)")
    report = catalog.registry(pm).get(values.get("report_key") or "")
    if report is None or report.run is not None:
        raise ValidationFailed.field("report_key", "must be a report the kernel builds (not a fixed one)")
    try:
        report.measure(values.get("measure") or "")
    except KeyError:
        raise ValidationFailed.field("measure", f"no such measure in {report.key}") from None
    params = values.get("params") or {}
    framework.validate_params(report, {**params, "group_by": []})
    dims = {d.key: d for d in report.dimensions}
    person = values.get("person_dimension", "owner")
    team = values.get("team_dimension", "team")
    if person not in dims or dims[person].kind != "user":
        raise ValidationFailed.field("person_dimension", "must be a user dimension of the report")
    if team is not None and (team not in dims or dims[team].kind != "team"):
        raise ValidationFailed.field("team_dimension", "must be a team dimension of the report")
    async with events.unit_of_work():
        row = (
            await Kpi.insert(
                Kpi(
                    name=name.strip(),
                    report_key=report.key,
                    measure=values["measure"],
                    params=json.dumps(params, sort_keys=True),
                    person_dimension=person,
                    team_dimension=team or "",
                    created_by=principal.user_id,
                    created_at=clock.now(),
                )
            ).returning(*Kpi.all_columns())
        )[0]
        await audit.record("create", "kpi", row["id"], {"name": [None, row["name"]]})
    return kpi_out(row)


async def list_kpis() -> list[dict[str, Any]]:
    return [kpi_out(r) for r in await Kpi.select().order_by(Kpi.id)]


async def set_target(principal: Principal, kpi_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Set (replace) the plan of a KPI for a user, a team or the company (neither) in a month."""
    principal.require(MANAGE)
    if await Kpi.count().where(Kpi.id == kpi_id) == 0:
        raise NotFound(f"No KPI {kpi_id}")
    period = values.get("period")
    try:
        periods.bounds("month", period)
    except ValueError:
        raise ValidationFailed.field("period", "must be a month: YYYY-MM") from None
    user_id, team_id = values.get("user_id"), values.get("team_id")
    if user_id is not None and team_id is not None:
        raise ValidationFailed.field("team_id", "a target is for a user, a team or the company, not both")
    try:
        target = Decimal(str(values.get("target")))
    except ArithmeticError:
        raise ValidationFailed.field("target", "must be a number") from None
    if not target.is_finite() or target < 0 or target > Decimal("1e15"):
        raise ValidationFailed.field("target", "must be a number from 0")
    same = (
        (KpiTarget.kpi_id == kpi_id)
        & (KpiTarget.period == period)
        & (KpiTarget.user_id.is_null() if user_id is None else KpiTarget.user_id == user_id)
        & (KpiTarget.team_id.is_null() if team_id is None else KpiTarget.team_id == team_id)
    )
    async with events.unit_of_work():
        await KpiTarget.delete().where(same)
        row = (
            await KpiTarget.insert(
                KpiTarget(kpi_id=kpi_id, user_id=user_id, team_id=team_id, period=period, target=target)
            ).returning(*KpiTarget.all_columns())
        )[0]
        await audit.record("update", "kpi", kpi_id, {"target": [None, f"{period} {target}"]})
    return {**row, "target": _money(row["target"])}


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


async def _actual(
    pm: Any, principal: Principal, kpi: dict[str, Any], period: str, user_id: int | None, team_id: int | None
) -> Any:
    report = catalog.registry(pm).get(kpi["report_key"])
    if report is None:
        return None
    start, end = periods.bounds("month", period)
    params = dict(kpi["params"])
    filters = dict(params.pop("filters", {}) or {})
    if user_id is not None:
        filters[kpi["person_dimension"]] = user_id
    elif team_id is not None and kpi["team_dimension"]:
        filters[kpi["team_dimension"]] = team_id
    # Only the KPI's measure: an activity KPI then reads the pre-computed summary
    # (tessera.reports.summary) when the reader sees every activity.
    params.update(group_by=[], filters=filters, measures=[kpi["measure"]])
    if report.period_column:
        last = (end - timedelta(days=1)).date()
        params.update(date_from=start.date().isoformat(), date_to=last.isoformat())
    result = await framework.run_report(report, principal, params)
    return result["totals"].get(kpi["measure"])


async def panel(
    pm: Any,
    principal: Principal,
    *,
    period: str,
    user_id: int | None = None,
    team_id: int | None = None,
    history: int = 6,
) -> list[dict[str, Any]]:
    """Every KPI for a user, a team or the company (neither) in ``period``: target, actual (the
    reader's visibility), percent of plan, and the last ``history`` months."""
    try:
        periods.bounds("month", period)
    except ValueError:
        raise ValidationFailed.field("period", "must be a month: YYYY-MM") from None
    months = [period]
    for _ in range(max(0, min(history, 24) - 1)):
        year, month = int(months[-1][:4]), int(months[-1][5:7])
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        months.append(f"{year:04d}-{month:02d}")
    who = (
        (KpiTarget.user_id == user_id)
        if user_id is not None
        else (KpiTarget.team_id == team_id)
        if team_id is not None
        else (KpiTarget.user_id.is_null() & KpiTarget.team_id.is_null())
    )
    targets = {
        (t["kpi_id"], t["period"]): _money(t["target"])
        for t in await KpiTarget.select().where(who & KpiTarget.period.is_in(months))
    }
    out = []
    for kpi in await list_kpis():
        rows = []
        for month in months:
            actual = await _actual(pm, principal, kpi, month, user_id, team_id)
            target = targets.get((kpi["id"], month))
            percent = round(float(actual) / float(target) * 100, 1) if target and actual is not None else None
            rows.append({"period": month, "target": target, "actual": actual, "percent": percent})
        out.append({"kpi": kpi, **rows[0], "history": rows})
    return out


async def manager_load(pm: Any, principal: Principal) -> list[dict[str, Any]]:
    """Per person (as the reader may see): open and overdue tasks, planned activities."""
    registry = catalog.registry(pm)
    tasks = await framework.run_report(registry["tasks.discipline"], principal, {"group_by": ["assignee"]})
    planned = await framework.run_report(
        registry["activities"],
        principal,
        {"group_by": ["owner"], "filters": {"status": "planned"}, "measures": ["activities"]},
    )
    people: dict[Any, dict[str, Any]] = {}

    def person(row: dict[str, Any], key: str) -> dict[str, Any]:
        empty = {"open_tasks": 0, "overdue_tasks": 0, "planned_activities": 0}
        uid = row["values"][key]
        return people.setdefault(uid, {"user_id": uid, "name": row["labels"][key], **empty})

    for r in tasks["rows"]:
        p = person(r, "assignee")
        p["open_tasks"] = r["values"]["open"]
        p["overdue_tasks"] = r["values"]["overdue"]
    for r in planned["rows"]:
        person(r, "owner")["planned_activities"] = r["values"]["activities"]
    return sorted((p for p in people.values() if p["user_id"] is not None), key=lambda p: p["name"])
