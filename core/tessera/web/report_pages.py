"""Report pages (issue 21): the reports a user may run (kernel and plugins), one report with
its parameters, a table, a chart and a drill-down link in every figure (to the list page of
the records behind it, where the user can act on them: bulk assign, tasks ...), exports, and
the KPI panel. Same services as ``/api/reports`` and ``/api/kpis``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.response import Redirect

from tessera import clock, i18n
from tessera.errors import DomainError, ValidationFailed
from tessera.reports import builder, catalog, framework, kpis, periods
from tessera.web import charts
from tessera.web.pages import _require, render

PAGE_PARAMS = ("group_by", "period", "date_from", "date_to")


def _params(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The report's parameters from the page's query string (unknown ones: 400)."""
    out: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name == "group_by":
            if value:
                out.setdefault("group_by", []).append(value)
        elif name in ("period", "date_from", "date_to"):
            if value:
                out[name] = value
        elif name.startswith("cell.") or name == "measure":
            continue
        else:
            raise DomainError(f"unknown parameter {name!r}", [])
    return out


def _format(value: Any, kind: str, unit: str) -> str:
    if value is None:
        return "—"
    if kind == "percent":
        return i18n.format_number(value, 1) + " %"
    if kind in ("int", "decimal", "float", "days"):
        text = i18n.format_number(value, 2 if kind in ("decimal", "float", "days") else None)
        return f"{text} {unit}".strip()
    return str(value)


@get("/app/reports", include_in_schema=False)
async def reports_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _require(request)
    pm = request.app.state.pm
    reports = [framework.describe(r) for r in catalog.visible_reports(pm, principal)]
    saved = await builder.visible_saved(principal)
    return render(request, "reports.html", principal=principal, reports=reports, saved=saved)


@get("/app/reports/{key:str}", include_in_schema=False)
async def report_page(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    principal = await _require(request)
    report = catalog.get_report(request.app.state.pm, key, principal)
    params = _params(request)
    errors: dict[str, str] = {}
    result = None
    try:
        result = await framework.run_report(report, principal, params)
    except ValidationFailed as exc:
        errors = {e.field: e.message for e in exc.errors}
    chart = None
    rows: list[dict[str, Any]] = []
    if result is not None:
        dims = [c for c in result["columns"] if c["dimension"]]
        figures = [c for c in result["columns"] if not c["dimension"]]
        for row in result["rows"]:
            values, labels = row["values"], row["labels"]
            cells = [labels.get(c["key"], values.get(c["key"])) for c in dims]
            links = []
            for c in figures:
                href = None
                if result["drill_down"]:
                    query = [(k, v) for k, v in request.query_params.multi_items() if k in PAGE_PARAMS]
                    query += [(f"cell.{d['key']}", json.dumps(values.get(d["key"]))) for d in dims]
                    query.append(("measure", c["key"]))
                    href = f"/app/reports/{key}/drill?{urlencode(query)}"
                links.append((_format(values.get(c["key"]), c["type"], c["unit"]), href))
            rows.append({"cells": cells, "figures": links})
        if dims and figures and result["rows"]:
            first = figures[0]
            data = [
                charts.Datum(
                    " · ".join(str(x) for x in row["cells"]),
                    result["rows"][i]["values"].get(first["key"]),
                    href=row["figures"][0][1],
                    key=str(i),
                )
                for i, row in enumerate(rows[:50])
            ]
            chart = charts.bar_chart(f"{result['title']}: {first['label']}", data, table=False)
    export = urlencode({"params": json.dumps({k: v for k, v in params.items()})})
    return render(
        request,
        "report.html",
        principal=principal,
        report=framework.describe(report),
        result=result,
        rows=rows,
        chart=chart,
        errors=errors,
        form=params,
        grains=[(g, i18n.label("report.period", g)) for g in periods.GRAINS],
        export_query=export,
        may_export=principal.can("report.export"),
    )


@get("/app/reports/{key:str}/drill", include_in_schema=False)
async def report_drill_page(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    """The records behind a figure: their list page when the list can show them, else their ids."""
    principal = await _require(request)
    report = catalog.get_report(request.app.state.pm, key, principal)
    params = _params(request)
    cell: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("cell."):
            try:
                cell[name[5:]] = json.loads(value)
            except ValueError:
                raise ValidationFailed.field(name, "is not a value") from None
    out = await framework.drill_down(report, principal, params, cell, request.query_params.get("measure"))
    if out["list_url"]:
        return Redirect(out["list_url"], status_code=303)
    return render(
        request, "report_drill.html", principal=principal, report=framework.describe(report), drill=out
    )


@get("/app/kpis", include_in_schema=False)
async def kpi_page(
    request: Request[Any, Any, Any], period: str | None = None, team_id: int | None = None
) -> Response[Any]:
    principal = await _require(request)
    period = period or clock.now().strftime("%Y-%m")
    pm = request.app.state.pm
    mine = await kpis.panel(pm, principal, period=period, user_id=principal.user_id, history=6)
    company = await kpis.panel(pm, principal, period=period, team_id=team_id, history=6)
    load = await kpis.manager_load(pm, principal)
    return render(
        request, "kpis.html", principal=principal, period=period, mine=mine, company=company, load=load
    )


i18n.register_labels(
    "report.period",
    {
        "day": i18n.N_("Day"),
        "week": i18n.N_("Week"),
        "month": i18n.N_("Month"),
        "quarter": i18n.N_("Quarter"),
    },
)

REPORT_PAGES = [reports_page, report_page, report_drill_page, kpi_page]

__all__ = ["REPORT_PAGES"]
