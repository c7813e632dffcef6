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
from tessera.reports import builder, catalog, dashboards, framework, kpis, periods
from tessera.web import charts
from tessera.web.pages import _require, render

PAGE_PARAMS = ("group_by", "period", "date_from", "date_to", "measures")


def _params(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The report's parameters from the page's query string (unknown ones: 400)."""
    out: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name in ("group_by", "measures"):
            if value:
                out.setdefault(name, []).append(value)
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


def _table(
    result: dict[str, Any] | None, drill: str, keep: list[tuple[str, str]], limit: int = 500
) -> tuple[list[dict[str, Any]], Any]:
    """Rows of a result for a page (each figure a link to its drill-down) and its bar chart."""
    chart = None
    rows: list[dict[str, Any]] = []
    if result is None:
        return rows, chart
    dims = [c for c in result["columns"] if c["dimension"]]
    figures = [c for c in result["columns"] if not c["dimension"]]
    for row in result["rows"][:limit]:
        values, labels = row["values"], row["labels"]
        cells = [labels.get(c["key"], values.get(c["key"])) for c in dims]
        links = []
        for c in figures:
            href = None
            if result["drill_down"]:
                query = list(keep) + [(f"cell.{d['key']}", json.dumps(values.get(d["key"]))) for d in dims]
                query.append(("measure", c["key"]))
                href = f"{drill}?{urlencode(query)}"
            links.append((_format(values.get(c["key"]), c["type"], c["unit"]), href))
        rows.append(
            {"cells": cells, "figures": links, "value": values.get(figures[0]["key"]) if figures else None}
        )
    if dims and figures and rows:
        data = [
            charts.Datum(
                " · ".join(str(x) for x in row["cells"]), row["value"], href=row["figures"][0][1], key=str(i)
            )
            for i, row in enumerate(rows[:50])
            if isinstance(row["value"], int | float)
            or row["value"] is None
            or hasattr(row["value"], "quantize")
        ]
        chart = charts.bar_chart(f"{result['title']}: {figures[0]['label']}", data, table=False)
    return rows, chart


@get("/app/reports", include_in_schema=False)
async def reports_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _require(request)
    pm = request.app.state.pm
    reports = [framework.describe(r) for r in catalog.visible_reports(pm, principal)]
    saved = await builder.visible_saved(principal)
    # Each saved report names its records by their label, never the entity's code.
    labels = {key: i18n.gettext(e.label) for key, e in catalog.entities(pm).items()}
    for s in saved:
        entity = (s.get("definition") or {}).get("entity")
        s["records_label"] = labels.get(entity, "")
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
    keep = [(k, v) for k, v in request.query_params.multi_items() if k in PAGE_PARAMS]
    rows, chart = _table(result, f"/app/reports/{key}/drill", keep)
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
    cell = _cell(request)
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


@get("/app/saved-reports/{report_id:int}", include_in_schema=False)
async def saved_report_page(
    request: Request[Any, Any, Any], report_id: int, dashboard_error: str | None = None
) -> Response[Any]:
    principal = await _require(request)
    pm = request.app.state.pm
    saved = await builder.get_saved(principal, report_id)
    report, params = await builder.compile_definition(
        pm, catalog.entities(pm), principal, saved["definition"]
    )
    result = builder.measure_labels(
        saved["definition"], await framework.run_report(report, principal, params)
    )
    result["title"] = saved["name"]
    rows, chart = _table(result, f"/app/saved-reports/{report_id}/drill", [])
    return render(
        request,
        "report.html",
        principal=principal,
        report={"key": None, "title": saved["name"], "description": "", "dimensions": []},
        result=result,
        rows=rows,
        chart=chart,
        errors={},
        form={},
        grains=[],
        export_query="",
        saved_export=f"/api/report-builder/saved/{report_id}/export",
        may_export=principal.can("report.export"),
        saved=saved,
        my_dashboards=[d for d in await dashboards.visible(principal) if d["owner_id"] == principal.user_id],
        dashboard_error=i18n.translate_message(dashboard_error) if dashboard_error else "",
    )


@get("/app/saved-reports/{report_id:int}/drill", include_in_schema=False)
async def saved_drill_page(request: Request[Any, Any, Any], report_id: int) -> Response[Any]:
    principal = await _require(request)
    pm = request.app.state.pm
    saved = await builder.get_saved(principal, report_id)
    report, params = await builder.compile_definition(
        pm, catalog.entities(pm), principal, saved["definition"]
    )
    cell = _cell(request)
    out = await framework.drill_down(report, principal, params, cell, request.query_params.get("measure"))
    if out["list_url"]:
        return Redirect(out["list_url"], status_code=303)
    report_info = {"title": saved["name"]}
    return render(request, "report_drill.html", principal=principal, report=report_info, drill=out)


def _cell(request: Request[Any, Any, Any]) -> dict[str, Any]:
    cell: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("cell."):
            try:
                cell[name[5:]] = json.loads(value)
            except ValueError:
                raise ValidationFailed.field(name, "is not a value") from None
    return cell


@get("/app/dashboards", include_in_schema=False)
async def dashboards_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _require(request)
    boards = await dashboards.visible(principal)
    return render(request, "dashboards.html", principal=principal, boards=boards, board=None, tiles=[])


@get("/app/dashboards/{dashboard_id:int}", include_in_schema=False)
async def dashboard_page(
    request: Request[Any, Any, Any], dashboard_id: int, period: str | None = None
) -> Response[Any]:
    principal = await _require(request)
    pm = request.app.state.pm
    board = await dashboards.get(principal, dashboard_id)
    period = period or clock.now().strftime("%Y-%m")
    tiles = []
    for tile in await dashboards.render_tiles(pm, principal, board, period):
        chart = None
        if tile["result"] is not None:
            drill = tile["href"].split("?")[0] + "/drill" if tile["href"] else ""
            keep = []
            if tile["kind"] == "report":
                params = tile["result"]["params"]
                keep = [(k, str(params[k])) for k in ("period", "date_from", "date_to") if params.get(k)]
                keep += [("group_by", g) for g in params.get("group_by", [])]
            _rows, chart = _table(tile["result"], drill, keep, limit=50)
        tiles.append({**tile, "chart": chart})
    return render(request, "dashboards.html", principal=principal, boards=[], board=board, tiles=tiles)


REPORT_PAGES = [
    reports_page,
    report_page,
    report_drill_page,
    kpi_page,
    saved_report_page,
    saved_drill_page,
    dashboards_page,
    dashboard_page,
]

__all__ = ["REPORT_PAGES"]
