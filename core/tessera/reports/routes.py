"""Report API: list the reports a user may run, run one, drill down from a cell to its
records, export a result as CSV or XLSX (streamed)."""

from __future__ import annotations

import json
import tempfile
from typing import Annotated, Any, Literal

from litestar import Request, Router, get, post
from litestar.params import Parameter
from litestar.response import Stream
from msgspec import Struct

from tessera import audit, clock, exports
from tessera.api.openapi import download
from tessera.errors import ValidationFailed
from tessera.permissions import Principal
from tessera.reports import framework

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
    return framework.get_report(_pm(request), key, principal)


@get("/", operation_id="list_reports")
async def list_reports(request: Request[Any, Any, Any], principal: Principal) -> list[ReportInfo]:
    """The reports you may run (kernel and plugins): parameters (JSON schema), dimensions,
    measures with types and units, chart kind and whether cells drill down."""
    import msgspec

    return [
        msgspec.convert(framework.describe(r), ReportInfo)
        for r in framework.visible_reports(_pm(request), principal)
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


def report_router() -> Router:
    return Router(
        path="/api/reports",
        route_handlers=[list_reports, run_report, drill_report, export_report],
        tags=["reports"],
    )


__all__ = ["report_router", "stream_result"]
