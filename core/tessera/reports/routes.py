"""Report API: list the reports a user may run, run one, drill down from a cell to its
records, export a result as CSV or XLSX (streamed)."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from litestar import Request, Router, delete, get, post, put
from litestar.params import Parameter
from litestar.response import Stream
from msgspec import Struct

from tessera import audit, clock, exports, i18n
from tessera.api.openapi import download
from tessera.errors import ValidationFailed
from tessera.permissions import Principal
from tessera.reports import builder, catalog, dashboards, framework, kpis, schedules

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ReportColumn(Struct):
    key: str
    label: str
    type: str
    unit: str
    dimension: bool


class ReportDimension(Struct):
    key: str
    label: str
    kind: str


class ReportMeasure(Struct):
    key: str
    label: str
    type: str
    unit: str


class ReportInfo(Struct):
    key: str
    title: str
    description: str
    plugin: str
    entity: str
    chart: str | None
    params_schema: dict[str, Any]
    dimensions: list[ReportDimension]
    measures: list[ReportMeasure]
    columns: list[ReportColumn]
    drill_down: bool


class ReportResult(Struct):
    report: str
    title: str
    params: dict[str, Any]
    columns: list[ReportColumn]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    chart: str | None
    drill_down: bool


class DrillIn(Struct):
    cell: dict[str, Any]
    params: dict[str, Any] | None = None
    measure: str | None = None


class DrillOut(Struct):
    report: str
    entity: str
    count: int
    ids: list[int]
    truncated: bool
    list_url: str | None


def _pm(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.pm


def _report(request: Request[Any, Any, Any], principal: Principal, key: str) -> framework.Report:
    return catalog.get_report(_pm(request), key, principal)


@get("/", operation_id="list_reports")
async def list_reports(request: Request[Any, Any, Any], principal: Principal) -> list[ReportInfo]:
    """The reports you may run (kernel and plugins): parameters (JSON schema), dimensions,
    measures with types and units, chart kind and whether cells drill down."""
    import msgspec

    return [
        msgspec.convert(framework.describe(r), ReportInfo)
        for r in catalog.visible_reports(_pm(request), principal)
    ]


@post("/{key:str}/run", operation_id="run_report", status_code=200)
async def run_report(
    request: Request[Any, Any, Any], principal: Principal, key: str, data: dict[str, Any]
) -> ReportResult:
    """Run a report with parameters (the body, checked against its ``params_schema``: a bad
    one is a 422 naming the field). Only the records you may read are counted."""
    import msgspec

    report = _report(request, principal, key)
    return msgspec.convert(await framework.run_report(report, principal, data), ReportResult)


@post("/{key:str}/drill", operation_id="drill_report", status_code=200)
async def drill_report(
    request: Request[Any, Any, Any], principal: Principal, key: str, data: DrillIn
) -> DrillOut:
    """The records behind one cell (``cell``: the row's dimension values, ``measure``: the
    column): their ids and the list page showing them, where one can."""
    import msgspec

    report = _report(request, principal, key)
    out = await framework.drill_down(report, principal, data.params, data.cell, data.measure)
    return msgspec.convert(out, DrillOut)


@get("/{key:str}/export", operation_id="export_report", opt=download("text/csv", XLSX))
async def export_report(
    request: Request[Any, Any, Any],
    principal: Principal,
    key: str,
    format: Annotated[Literal["csv", "xlsx"], Parameter(description="csv (default) or xlsx")] = "csv",
    params: Annotated[
        str | None, Parameter(description="The report's parameters as a JSON object", max_length=4000)
    ] = None,
) -> Stream:
    """Export a report's result as CSV or XLSX (units in the headers, number formats kept,
    formula-like text neutralised), streamed. Needs report.export; audited."""
    report = _report(request, principal, key)
    framework.require_export(principal)
    try:
        raw = json.loads(params) if params else {}
    except ValueError as exc:
        raise ValidationFailed.field("params", "is not JSON") from exc
    result = await framework.run_report(report, principal, raw)
    await audit.record(
        "export", "report", None, {"report": [None, key]}, detail=f"{len(result['rows'])} rows"
    )
    return stream_result(result, format, key)


def stream_result(result: dict[str, Any], format: str, name: str) -> Stream:
    header, types, rows = framework.export_table(result)
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    filename = f"{name.replace('.', '-')}-{stamp}.{format}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "xlsx":
        handle = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False)
        handle.close()
        exports.xlsx_to_file(handle.name, header, rows, types, title=result["title"])
        return Stream(exports.file_chunks(handle.name), media_type=XLSX, headers=disposition)
    chunks = (c.encode("utf-8") for c in exports.csv_chunks(header, rows))
    return Stream(chunks, media_type="text/csv; charset=utf-8", headers=disposition)


# --------------------------------------------------------------------------- report builder


class BuilderField(Struct):
    key: str
    label: str
    type: str


class BuilderEntity(Struct):
    key: str
    label: str
    plugin: str
    fields: list[BuilderField]


class BuilderRunIn(Struct):
    definition: dict[str, Any]


class BuilderDrillIn(Struct):
    definition: dict[str, Any]
    cell: dict[str, Any]
    measure: str | None = None


class SavedReportIn(Struct):
    name: str
    definition: dict[str, Any]
    shared_roles: list[str] = []
    shared_teams: list[int] = []


class SavedReportOut(Struct):
    id: int
    name: str
    owner_id: int
    definition: dict[str, Any]
    shared_roles: list[str]
    shared_teams: list[int]
    created_at: datetime
    updated_at: datetime


async def _compile(request: Request[Any, Any, Any], principal: Principal, definition: Any) -> Any:
    pm = _pm(request)
    return await builder.compile_definition(pm, catalog.entities(pm), principal, definition)


async def run_definition(
    request: Request[Any, Any, Any], principal: Principal, definition: Any
) -> dict[str, Any]:
    report, params = await _compile(request, principal, definition)
    result = await framework.run_report(report, principal, params)
    return builder.measure_labels(definition, result)


@get("/entities", operation_id="report_builder_entities")
async def builder_entities(request: Request[Any, Any, Any], principal: Principal) -> list[BuilderEntity]:
    """Entities of the report builder you may read, with the fields you may filter, group and
    aggregate by (custom fields as ``custom.<name>``)."""
    pm = _pm(request)
    return [
        BuilderEntity(
            entity.key,
            i18n.gettext(entity.label),
            entity.plugin,
            [BuilderField(f.key, i18n.gettext(f.label), f.type) for f in fields],
        )
        for entity, fields in await builder.offered(pm, catalog.entities(pm), principal)
    ]


@post("/run", operation_id="run_report_definition", status_code=200)
async def builder_run(
    request: Request[Any, Any, Any], principal: Principal, data: BuilderRunIn
) -> ReportResult:
    """Run a builder definition: ``entity``, ``filters`` ([{field, op, value}]), ``group_by``
    (fields; a time field as ``field:month``), ``measures`` ([{agg, field}]). Fields and
    operators are whitelisted (422), a field you may not read is a 400."""
    import msgspec

    return msgspec.convert(await run_definition(request, principal, data.definition), ReportResult)


@post("/drill", operation_id="drill_report_definition", status_code=200)
async def builder_drill(
    request: Request[Any, Any, Any], principal: Principal, data: BuilderDrillIn
) -> DrillOut:
    """The records behind one cell of a builder definition's result."""
    import msgspec

    report, params = await _compile(request, principal, data.definition)
    return msgspec.convert(
        await framework.drill_down(report, principal, params, data.cell, data.measure), DrillOut
    )


@get("/saved", operation_id="list_saved_reports")
async def saved_list(principal: Principal) -> list[SavedReportOut]:
    """Saved reports you own or that are shared with one of your roles or your team."""
    import msgspec

    return [msgspec.convert(r, SavedReportOut) for r in await builder.visible_saved(principal)]


@post("/saved", operation_id="create_saved_report", status_code=201)
async def saved_create(
    request: Request[Any, Any, Any], principal: Principal, data: SavedReportIn
) -> SavedReportOut:
    """Save a builder definition under a name, optionally shared with roles and teams."""
    import msgspec

    pm = _pm(request)
    row = await builder.save(pm, catalog.entities(pm), principal, msgspec.to_builtins(data))
    return msgspec.convert(row, SavedReportOut)


@get("/saved/{report_id:int}", operation_id="get_saved_report")
async def saved_get(principal: Principal, report_id: int) -> SavedReportOut:
    """One saved report you may see."""
    import msgspec

    return msgspec.convert(await builder.get_saved(principal, report_id), SavedReportOut)


@put("/saved/{report_id:int}", operation_id="update_saved_report")
async def saved_update(
    request: Request[Any, Any, Any], principal: Principal, report_id: int, data: SavedReportIn
) -> SavedReportOut:
    """Replace a saved report you own."""
    import msgspec

    pm = _pm(request)
    row = await builder.save(pm, catalog.entities(pm), principal, msgspec.to_builtins(data), report_id)
    return msgspec.convert(row, SavedReportOut)


@delete("/saved/{report_id:int}", operation_id="delete_saved_report", status_code=204)
async def saved_delete(principal: Principal, report_id: int) -> None:
    """Delete a saved report you own."""
    await builder.delete(principal, report_id)


@post("/saved/{report_id:int}/run", operation_id="run_saved_report", status_code=200)
async def saved_run(request: Request[Any, Any, Any], principal: Principal, report_id: int) -> ReportResult:
    """Run a saved report with your own visibility."""
    import msgspec

    saved = await builder.get_saved(principal, report_id)
    result = await run_definition(request, principal, saved["definition"])
    result["title"] = saved["name"]
    return msgspec.convert(result, ReportResult)


@get("/saved/{report_id:int}/export", operation_id="export_saved_report", opt=download("text/csv", XLSX))
async def saved_export(
    request: Request[Any, Any, Any],
    principal: Principal,
    report_id: int,
    format: Annotated[Literal["csv", "xlsx"], Parameter(description="csv (default) or xlsx")] = "csv",
) -> Stream:
    """Export a saved report's result (your visibility) as CSV or XLSX. Needs report.export."""
    saved = await builder.get_saved(principal, report_id)
    framework.require_export(principal)
    result = await run_definition(request, principal, saved["definition"])
    result["title"] = saved["name"]
    await audit.record("export", "saved_report", report_id, {}, detail=f"{len(result['rows'])} rows")
    return stream_result(result, format, f"report-{report_id}")


# --------------------------------------------------------------------------- scheduled reports


class ScheduleIn(Struct):
    cron: str
    format: Literal["csv", "xlsx"] = "xlsx"
    recipient_users: list[int] = []
    recipient_roles: list[str] = []


class ScheduleOut(Struct):
    id: int
    saved_report_id: int
    owner_id: int
    cron: str
    format: str
    recipient_users: list[int]
    recipient_roles: list[str]
    active: bool
    next_run_at: datetime | None
    last_run_at: datetime | None


class ReportDeliveryOut(Struct):
    id: int
    schedule_id: int
    user_id: int | None
    email: str
    rows: int
    status: str
    job_id: int | None
    detail: str
    at: datetime


@post("/saved/{report_id:int}/schedules", operation_id="schedule_saved_report", status_code=201)
async def schedule_create(principal: Principal, report_id: int, data: ScheduleIn) -> ScheduleOut:
    """Send a saved report you own on a cron schedule (UTC) to users and the members of roles,
    as a CSV or XLSX attachment; each recipient gets the rows their own visibility allows."""
    import msgspec

    row = await schedules.create(principal, report_id, msgspec.to_builtins(data))
    return msgspec.convert(row, ScheduleOut)


@get("/schedules", operation_id="list_report_schedules")
async def schedule_list(principal: Principal) -> list[ScheduleOut]:
    """Your report schedules."""
    import msgspec

    return [msgspec.convert(r, ScheduleOut) for r in await schedules.visible(principal)]


@get("/schedules/{schedule_id:int}/deliveries", operation_id="report_schedule_deliveries")
async def schedule_deliveries(principal: Principal, schedule_id: int) -> list[ReportDeliveryOut]:
    """The delivery log of one of your schedules: each recipient's copy, queued or skipped."""
    import msgspec

    return [msgspec.convert(r, ReportDeliveryOut) for r in await schedules.deliveries(principal, schedule_id)]


@delete("/schedules/{schedule_id:int}", operation_id="delete_report_schedule", status_code=204)
async def schedule_delete(principal: Principal, schedule_id: int) -> None:
    """Stop and delete one of your schedules."""
    await schedules.remove(principal, schedule_id)


# --------------------------------------------------------------------------- KPIs


class KpiIn(Struct):
    name: str
    report_key: str
    measure: str
    params: dict[str, Any] = {}
    person_dimension: str = "owner"
    team_dimension: str | None = "team"


class KpiOut(Struct):
    id: int
    name: str
    report_key: str
    measure: str
    params: dict[str, Any]
    person_dimension: str
    team_dimension: str


class KpiTargetIn(Struct):
    period: str
    target: Decimal
    user_id: int | None = None
    team_id: int | None = None


class KpiTargetOut(Struct):
    id: int
    kpi_id: int
    user_id: int | None
    team_id: int | None
    period: str
    target: Decimal


class KpiFigure(Struct):
    period: str
    target: Decimal | None
    actual: Any
    percent: float | None


class KpiPanelItem(Struct):
    kpi: KpiOut
    period: str
    target: Decimal | None
    actual: Any
    percent: float | None
    history: list[KpiFigure]


class LoadOut(Struct):
    user_id: int
    name: str
    open_tasks: int
    overdue_tasks: int
    planned_activities: int


@get("/", operation_id="list_kpis")
async def kpi_list() -> list[KpiOut]:
    """Every KPI defined (indicators; no record data)."""
    import msgspec

    return [msgspec.convert(k, KpiOut) for k in await kpis.list_kpis()]


@post("/", operation_id="create_kpi", status_code=201)
async def kpi_create(request: Request[Any, Any, Any], principal: Principal, data: KpiIn) -> KpiOut:
    """Define a KPI as a measure of a report (needs report.kpi.manage)."""
    import msgspec

    return msgspec.convert(await kpis.create(_pm(request), principal, msgspec.to_builtins(data)), KpiOut)


@put("/{kpi_id:int}/targets", operation_id="set_kpi_target")
async def kpi_target(principal: Principal, kpi_id: int, data: KpiTargetIn) -> KpiTargetOut:
    """Set the plan of a KPI for a user, a team or the company (neither) in a month."""
    import msgspec

    values = {"period": data.period, "target": data.target, "user_id": data.user_id, "team_id": data.team_id}
    return msgspec.convert(await kpis.set_target(principal, kpi_id, values), KpiTargetOut)


@get("/panel", operation_id="kpi_panel")
async def kpi_panel(
    request: Request[Any, Any, Any],
    principal: Principal,
    period: Annotated[str, Parameter(description="A month, YYYY-MM", max_length=7)],
    user_id: Annotated[int | None, Parameter(ge=1)] = None,
    team_id: Annotated[int | None, Parameter(ge=1)] = None,
    history: Annotated[int, Parameter(ge=1, le=24)] = 6,
) -> list[KpiPanelItem]:
    """KPI panel of a user, a team or the company: target, actual (your visibility), percent
    of plan and history by month."""
    import msgspec

    rows = await kpis.panel(
        _pm(request), principal, period=period, user_id=user_id, team_id=team_id, history=history
    )
    return [msgspec.convert(r, KpiPanelItem) for r in rows]


@get("/load", operation_id="manager_load")
async def kpi_load(request: Request[Any, Any, Any], principal: Principal) -> list[LoadOut]:
    """Manager load: open and overdue tasks and planned activities per person you may see."""
    import msgspec

    return [msgspec.convert(r, LoadOut) for r in await kpis.manager_load(_pm(request), principal)]


def kpi_router() -> Router:
    return Router(
        path="/api/kpis",
        route_handlers=[kpi_list, kpi_create, kpi_target, kpi_panel, kpi_load],
        tags=["reports"],
    )


# --------------------------------------------------------------------------- dashboards


class DashboardIn(Struct):
    name: str
    tiles: list[dict[str, Any]] = []
    shared_roles: list[str] = []
    shared_teams: list[int] = []


class DashboardOut(Struct):
    id: int
    name: str
    owner_id: int
    tiles: list[dict[str, Any]]
    shared_roles: list[str]
    shared_teams: list[int]


class TileIn(Struct, omit_defaults=True):
    kind: Literal["report", "saved", "kpi"]
    key: str | None = None
    id: int | None = None
    params: dict[str, Any] | None = None


class TileOut(Struct):
    kind: str
    result: ReportResult | None
    kpi: KpiPanelItem | None
    href: str | None
    error: str


@get("/", operation_id="list_dashboards")
async def dashboard_list(principal: Principal) -> list[DashboardOut]:
    """Dashboards you own or that are shared with one of your roles or your team."""
    import msgspec

    return [msgspec.convert(d, DashboardOut) for d in await dashboards.visible(principal)]


@post("/", operation_id="create_dashboard", status_code=201)
async def dashboard_create(
    request: Request[Any, Any, Any], principal: Principal, data: DashboardIn
) -> DashboardOut:
    """A dashboard of tiles: ``{"kind": "report", "key", "params"}``, ``{"kind": "saved",
    "id"}`` or ``{"kind": "kpi", "id"}``, optionally shared with roles and teams."""
    import msgspec

    row = await dashboards.create(_pm(request), principal, msgspec.to_builtins(data))
    return msgspec.convert(row, DashboardOut)


@get("/{dashboard_id:int}/tiles", operation_id="dashboard_tiles")
async def dashboard_tiles(
    request: Request[Any, Any, Any],
    principal: Principal,
    dashboard_id: int,
    period: Annotated[str | None, Parameter(description="KPI month, YYYY-MM", max_length=7)] = None,
) -> list[TileOut]:
    """The dashboard's tiles computed for you (your visibility), each with its drill-down page."""
    import msgspec

    board = await dashboards.get(principal, dashboard_id)
    tiles = await dashboards.render_tiles(
        _pm(request), principal, board, period or clock.now().strftime("%Y-%m")
    )
    return [msgspec.convert(t, TileOut) for t in tiles]


@post("/{dashboard_id:int}/tiles", operation_id="add_dashboard_tile", status_code=200)
async def dashboard_add_tile(
    request: Request[Any, Any, Any], principal: Principal, dashboard_id: int, data: TileIn
) -> DashboardOut:
    """Add one tile (``{"kind": "saved", "id": 3}`` ...) to a dashboard you own."""
    import msgspec

    row = await dashboards.add_tile(_pm(request), principal, dashboard_id, msgspec.to_builtins(data))
    return msgspec.convert(row, DashboardOut)


def dashboard_router() -> Router:
    return Router(
        path="/api/dashboards",
        route_handlers=[dashboard_list, dashboard_create, dashboard_tiles, dashboard_add_tile],
        tags=["reports"],
    )


def report_router() -> Router:
    return Router(
        path="/api/reports",
        route_handlers=[list_reports, run_report, drill_report, export_report],
        tags=["reports"],
    )


def builder_router() -> Router:
    return Router(
        path="/api/report-builder",
        route_handlers=[
            builder_entities,
            builder_run,
            builder_drill,
            saved_list,
            saved_create,
            saved_get,
            saved_update,
            saved_delete,
            saved_run,
            saved_export,
            schedule_create,
            schedule_list,
            schedule_deliveries,
            schedule_delete,
        ],
        tags=["reports"],
    )


__all__ = ["builder_router", "dashboard_router", "kpi_router", "report_router", "stream_result"]
