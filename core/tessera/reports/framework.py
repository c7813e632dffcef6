"""The report framework (issue 21): reports declared by the kernel and by plugins through
``tessera_reports()``, run with the caller's visibility inside the SQL, grouped by the
dimensions the data has (manager, team, period, type ...), with a drill-down from any cell to
exactly the records behind it, and exports.

A report is a :class:`Report` over one table (an entity's, or a table whose rows are visible
through an entity). Its query is built with Piccolo's query builder from the declaration only:
the columns, aggregates and conditions are named by the report's author; what the caller sends
(group-by keys, a period grain, dates, filter values) is checked against the declaration's JSON
schema and reaches the database as bound values. A report may instead compute its rows itself
(``run``: the sales plugin's fixed reports); it then declares its columns and offers a
drill-down only when it brings one (``drill``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from jsonschema import Draft202012Validator
from piccolo.columns import Column
from piccolo.columns.combination import WhereRaw
from piccolo.query.functions.aggregate import Count
from piccolo.querystring import QueryString
from piccolo.table import Table

from tessera import db, i18n
from tessera.entities import service
from tessera.entities.tables import CrmUser, Party, Team
from tessera.errors import DomainError, FieldError, PermissionDenied, ValidationFailed
from tessera.permissions import Principal
from tessera.plugins import PluginError
from tessera.reports import periods

Condition = Any
Params = dict[str, Any]

AGGREGATES = ("count", "sum", "avg", "min", "max", "count_distinct")
#: Column types a report declares; they decide number formats in exports and pages.
TYPES = ("text", "int", "decimal", "float", "percent", "days", "user", "team", "party", "period", "date")
#: Dimension kinds: a plain value (codes shown through ``labels``), a user, a team, a party or
#: the period of the report's time column.
KINDS = ("value", "user", "team", "party", "period")
#: Record ids a drill-down returns at most (``count`` always says how many there are).
MAX_DRILL_IDS = 10_000
MAX_GROUP_BY = 3


@dataclass(frozen=True)
class Dimension:
    """A group-by dimension: ``column`` of the report's table (not for ``period``)."""

    key: str
    #: A msgid of the declaring package's catalogue.
    label: str
    column: str | None = None
    kind: str = "value"
    #: For ``value``: the ``tessera.i18n.register_labels`` group naming its codes.
    labels: str = ""
    #: The parameter of the entity's list page (and API filters) that selects one value.
    list_param: str | None = None


@dataclass(frozen=True)
class Measure:
    """An aggregate: ``agg`` of ``column`` (``count`` needs none), over the rows meeting
    ``where`` only when given (a conditional measure: "overdue tasks" among tasks)."""

    key: str
    label: str
    agg: str = "count"
    column: str | None = None
    #: (principal, params) -> a Piccolo condition on the report's table, or None.
    where: Callable[[Principal, Params], Condition] | None = None
    type: str = "int"
    #: A unit shown beside the figure and in export headers ("min", "days", "EUR").
    unit: str = ""
    #: List-page parameters selecting the same rows as ``where`` (for the drill-down link).
    list_params: Callable[[Params], dict[str, str]] | None = None


@dataclass(frozen=True)
class Ratio:
    """A figure derived from two measures of the same row: ``numerator / denominator``
    (a percent by default); its drill-down is the numerator's."""

    key: str
    label: str
    numerator: str
    denominator: str
    type: str = "percent"
    unit: str = "%"


@dataclass(frozen=True)
class Summary:
    """A pre-computed table a report reads instead of its own when the result is the same by
    construction (``tessera.reports.summary``): the reader sees every record (no visibility
    condition), the report has no fixed conditions, and every dimension, filter and measure
    asked for is here. Its measures are sums of counters (``Measure(agg="sum", column=...)``,
    optionally with ``where`` on the summary table)."""

    table: type[Table]
    #: The summary's day column (midnight UTC), standing for the report's ``period_column``.
    period_column: str
    #: Report dimension key -> the summary's column.
    dimensions: dict[str, str]
    #: Report measure key -> the measure over the summary.
    measures: dict[str, Measure]
    #: Dimensions whose missing value the summary stores as 0.
    zero_is_null: tuple[str, ...] = ()


@dataclass
class Report:
    key: str
    #: msgids (translated when the report is listed or run).
    title: str
    description: str = ""
    #: The entity whose read permission and visibility apply (``activity``, ``sales.deal``).
    entity: str = ""
    #: The table the report aggregates; default: the entity's table.
    table: type[Table] | None = None
    #: (principal) -> the visibility condition on ``table``; default: the entity's.
    visibility: Callable[[Principal], Condition | None] | None = None
    #: Permission to run it; default: ``<entity permission>.read``.
    permission: str | None = None
    dimensions: list[Dimension] = field(default_factory=list)
    measures: list[Measure | Ratio] = field(default_factory=list)
    #: The timestamp column the period dimension and ``date_from``/``date_to`` apply to.
    period_column: str | None = None
    default_group_by: list[str] = field(default_factory=list)
    default_period: str = "month"
    #: JSON schema properties of the report's own parameters (``{"days": {"type": "integer"}}``).
    params: dict[str, Any] = field(default_factory=dict)
    #: (principal, params) -> conditions from those parameters (and fixed ones).
    where: Callable[[Principal, Params], list[Condition]] | None = None
    #: bar | line | pie | funnel | None
    chart: str | None = "bar"
    #: The entity's list page (``/activities``) and the parameters the report's own params add.
    list_url: str | None = None
    list_params: Callable[[Params], dict[str, str]] | None = None
    #: The column holding the ids of the records a drill-down returns (default: the table's
    #: primary key) and their entity (default: ``entity``): the status changes of the client
    #: base dynamics drill down to the clients.
    record_column: str | None = None
    record_entity: str | None = None
    #: A report that computes its rows itself: (principal, params) -> {"columns", "rows"}.
    run: Callable[[Principal, Params], Awaitable[dict[str, Any]]] | None = None
    #: Its drill-down: (principal, params, cell, measure) -> {"entity", "ids", "list_url"}.
    drill: Callable[[Principal, Params, dict[str, Any], str], Awaitable[dict[str, Any]]] | None = None
    #: Columns of a ``run`` report: [{"key", "label", "type", "unit"}].
    columns: list[dict[str, Any]] = field(default_factory=list)
    plugin: str = ""
    #: A pre-computed table read instead when the run allows it (:class:`Summary`).
    summary: Summary | None = None
    #: Dimension keys whose missing value the table stores as 0 (a summary's).
    zero_is_null: tuple[str, ...] = ()

    def dimension(self, key: str) -> Dimension:
        for d in self.dimensions:
            if d.key == key:
                return d
        raise KeyError(key)

    def measure(self, key: str) -> Measure | Ratio:
        for m in self.measures:
            if m.key == key:
                return m
        raise KeyError(key)

    @property
    def spec(self) -> service.EntitySpec | None:
        return service.specs().get(self.entity) if self.entity else None

    @property
    def source(self) -> type[Table]:
        if self.table is not None:
            return self.table
        spec = self.spec
        if spec is None:
            raise PluginError(f"Report {self.key!r}: entity {self.entity!r} is not known")
        return spec.table


# --------------------------------------------------------------------------- registry


def check(report: Report, plugin: str) -> Report:
    where = f"Plugin {plugin!r}, report {report.key!r}"
    if not isinstance(report, Report):
        raise PluginError(f"Plugin {plugin!r}: tessera_reports must return tessera.reports.Report objects")
    if report.run is None:
        for d in report.dimensions:
            if d.kind not in KINDS:
                raise PluginError(f"{where}: dimension {d.key!r} has an unknown kind {d.kind!r}")
            if d.kind == "period" and not report.period_column:
                raise PluginError(f"{where}: a period dimension needs period_column")
        for m in report.measures:
            if isinstance(m, Measure) and m.agg not in AGGREGATES:
                raise PluginError(f"{where}: measure {m.key!r} has an unknown aggregate {m.agg!r}")
    report.plugin = plugin
    return report


def permission_of(report: Report) -> str:
    if report.permission:
        return report.permission
    spec = report.spec
    return f"{spec.permission}.read" if spec else "report.read"


def describe(report: Report) -> dict[str, Any]:
    """The report's declaration as JSON (for ``GET /api/reports``)."""
    return {
        "key": report.key,
        "title": i18n.gettext(report.title),
        "description": i18n.gettext(report.description) if report.description else "",
        "plugin": report.plugin,
        "entity": report.entity,
        "chart": report.chart,
        "params_schema": params_schema(report),
        "dimensions": [
            {"key": d.key, "label": i18n.gettext(d.label), "kind": d.kind} for d in report.dimensions
        ],
        "measures": [
            {"key": m.key, "label": i18n.gettext(m.label), "type": m.type, "unit": m.unit}
            for m in report.measures
        ],
        "columns": [_column_out(c) for c in report.columns],
        "drill_down": report.run is None or report.drill is not None,
    }


def column(
    key: str, label: str, type: str = "int", unit: str = "", dimension: bool = False
) -> dict[str, Any]:
    """A column of a report that computes its own rows (``Report.run``): ``label`` and ``unit``
    are msgids, translated when the report is run."""
    return {"key": key, "label": label, "type": type, "unit": unit, "dimension": dimension}


def percent(share: float | None) -> float | None:
    """A share (0.25) as the percent a ``"percent"`` column shows (25.0)."""
    return None if share is None else round(share * 100, 2)


def _column_out(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": c["key"],
        "label": i18n.gettext(c["label"]),
        "type": c.get("type", "text"),
        "unit": i18n.gettext(c["unit"]) if c.get("unit") else "",
        "dimension": bool(c.get("dimension", False)),
    }


# --------------------------------------------------------------------------- parameters

DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}


def params_schema(report: Report) -> dict[str, Any]:
    """The JSON schema the report's parameters must meet: the framework's own (group-by,
    period, dates, filters by dimension) plus the report's."""
    properties: dict[str, Any] = {}
    if report.run is None:
        keys = [d.key for d in report.dimensions]
        properties["group_by"] = {
            "type": "array",
            "items": {"enum": keys},
            "uniqueItems": True,
            "maxItems": MAX_GROUP_BY,
        }
        properties["filters"] = {
            "type": "object",
            "properties": {
                d.key: {"type": ["integer", "string", "null"], "maxLength": 100}
                for d in report.dimensions
                if d.kind != "period"
            },
            "additionalProperties": False,
        }
        if report.period_column:
            properties["period"] = {"enum": list(periods.GRAINS)}
        properties["measures"] = {
            "type": "array",
            "items": {"enum": [m.key for m in report.measures]},
            "uniqueItems": True,
            "minItems": 1,
        }
    if report.period_column or report.run is not None:
        properties["date_from"] = DATE
        properties["date_to"] = DATE
    properties.update(report.params)
    return {"type": "object", "properties": properties, "additionalProperties": False}


def validate_params(report: Report, raw: Any) -> Params:
    """The parameters as the report reads them, with defaults; a 422 naming each bad field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationFailed.field("params", "must be an object")
    validator = Draft202012Validator(params_schema(report))
    errors: list[FieldError] = []
    for error in sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path]):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            declared = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - declared):
                errors.append(FieldError(".".join([*path, name]), "unknown parameter"))
            continue
        errors.append(FieldError(".".join(path) or "params", error.message))
    if errors:
        raise ValidationFailed("Invalid report parameters", list(dict.fromkeys(errors)))
    params = dict(raw)
    for name in ("date_from", "date_to"):
        if params.get(name) is not None:
            try:
                params[name] = dt.date.fromisoformat(params[name])
            except ValueError as exc:
                raise ValidationFailed.field(name, "is not a date (YYYY-MM-DD)") from exc
    if params.get("date_from") and params.get("date_to") and params["date_to"] < params["date_from"]:
        raise ValidationFailed.field("date_to", "must not be before date_from")
    if report.run is None:
        params.setdefault("group_by", list(report.default_group_by))
        params.setdefault("filters", {})
        if report.period_column:
            params.setdefault("period", report.default_period)
    for name, prop in report.params.items():
        if "default" in prop:
            params.setdefault(name, prop["default"])
    return params


def params_json(params: Params) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in params.items()}


# --------------------------------------------------------------------------- query building


def _col(report: Report, name: str) -> Column:
    column = report.source._meta.get_column_by_name(name)
    return column


CUSTOM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def expr(report: Report, name: str) -> Column | QueryString:
    """A column of the report's table, or ``custom.<field>``: the custom field's value (the
    name is checked against ``CUSTOM_NAME`` and written into the SQL, so SELECT and GROUP BY
    read the same expression on PostgreSQL)."""
    if not name.startswith("custom."):
        return _col(report, name)
    key = name.removeprefix("custom.")
    if not CUSTOM_NAME.match(key):
        raise ValidationFailed.field("field", f"not a custom field name: {key!r}")
    column = _col(report, "custom")
    if db.is_postgres():
        return QueryString(f"({{}}->>'{key}')", column)
    return QueryString(f"json_extract({{}}, '$.{key}')", column)


def numeric(value: Column | QueryString) -> Column | QueryString:
    """A custom field's value as a number (PostgreSQL reads JSON values as text)."""
    if isinstance(value, QueryString) and db.is_postgres():
        return QueryString("CAST({} AS NUMERIC)", value)
    return value


def _conditions(report: Report, principal: Principal, params: Params) -> list[Condition]:
    """Visibility, the report's fixed and parameter conditions, dates and dimension filters."""
    out: list[Condition] = []
    visibility = report.visibility or (report.spec.visibility if report.spec else None)
    if visibility is None:
        raise PluginError(f"Report {report.key!r} declares no visibility")
    visible = visibility(principal)
    if visible is not None:
        out.append(visible)
    if report.where is not None:
        out.extend(c for c in report.where(principal, params) if c is not None)
    if report.period_column:
        column = _col(report, report.period_column)
        if params.get("date_from"):
            out.append(column >= periods._utc(params["date_from"]))
        if params.get("date_to"):
            out.append(column < periods._utc(params["date_to"] + dt.timedelta(days=1)))
    for key, value in (params.get("filters") or {}).items():
        out.append(_equals(report, report.dimension(key), value, params, f"filters.{key}"))
    return out


def _equals(report: Report, dim: Dimension, value: Any, params: Params, field_name: str) -> Condition:
    if dim.kind == "period":
        try:
            start, end = periods.bounds(params.get("period") or report.default_period, value)
        except (ValueError, KeyError) as exc:
            raise ValidationFailed.field(field_name, str(exc)) from exc
        column = _col(report, report.period_column or "")
        return (column >= start) & (column < end)
    column = expr(report, dim.column or dim.key)
    if dim.kind in ("user", "team", "party") and value is not None and not isinstance(value, int):
        raise ValidationFailed.field(field_name, "must be an id (integer) or null")
    if isinstance(value, str) and len(value) > 200:
        raise ValidationFailed.field(field_name, "is too long")
    if isinstance(column, QueryString):
        if value is None:
            return WhereRaw("{} IS NULL", column)
        if db.is_postgres():
            value = str(value).lower() if isinstance(value, bool) else str(value)
        return WhereRaw("{} = {}", column, value)
    if value is None:
        return column == 0 if dim.key in report.zero_is_null else column.is_null()
    return column == value


def _dimension_expr(report: Report, dim: Dimension, params: Params) -> Any:
    if dim.kind == "period":
        return periods.expression(_col(report, report.period_column or ""), params["period"])
    return expr(report, dim.column or dim.key)


def _measure_expr(
    report: Report, principal: Principal, m: Measure, params: Params, alias: str
) -> QueryString:
    condition = m.where(principal, params) if m.where is not None else None
    column: Any = expr(report, m.column) if m.column else None
    if column is not None and (m.agg in ("sum", "avg") or m.type in ("int", "decimal", "float")):
        column = numeric(column)
    if condition is None:
        if m.agg == "count":
            return Count(alias=alias)
        if m.agg == "count_distinct":
            return QueryString("COUNT(DISTINCT {})", column, alias=alias)
        func = {"sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX"}[m.agg]
        return QueryString(f"{func}({{}})", column, alias=alias)
    cond = condition.querystring
    if m.agg == "count":
        return QueryString("SUM(CASE WHEN {} THEN 1 ELSE 0 END)", cond, alias=alias)
    if m.agg == "count_distinct":
        return QueryString("COUNT(DISTINCT CASE WHEN {} THEN {} END)", cond, column, alias=alias)
    sql = {"sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX"}[m.agg]
    return QueryString(f"{sql}(CASE WHEN {{}} THEN {{}} END)", cond, column, alias=alias)


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return 0 if kind == "int" else None
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return Decimal(str(value)).quantize(Decimal("0.01"))
    if kind in ("float", "days", "percent"):
        return round(float(value), 2)
    return value


async def names(kind: str, ids: set[Any]) -> dict[Any, str]:
    """Display names of users, teams or parties (one query)."""
    ids = {i for i in ids if isinstance(i, int)}
    if not ids:
        return {}
    table, column = {
        "user": (CrmUser, CrmUser.name),
        "team": (Team, Team.name),
        "party": (Party, Party.name),
    }[kind]
    rows = await table.select(table._meta.primary_key, column).where(
        table._meta.primary_key.is_in(sorted(ids))
    )
    return {r["id"]: r["name"] for r in rows}


# --------------------------------------------------------------------------- run


async def run_report(
    report: Report, principal: Principal, raw_params: Any, *, use_summary: bool = True
) -> dict[str, Any]:
    """Run ``report`` for ``principal``: columns, rows (values and their display labels),
    totals over every visible row, and the chart kind. The report's summary table is read
    when it gives the same result (``use_summary=False``: never; tests compare both)."""
    params = validate_params(report, raw_params)
    principal.require(permission_of(report))
    if report.run is not None:
        body = await report.run(principal, params)
        return {
            "report": report.key,
            "title": i18n.gettext(report.title),
            "params": params_json(params),
            "columns": [_column_out(c) for c in body.get("columns", report.columns)],
            "rows": body["rows"],
            "totals": body.get("totals", {}),
            "chart": report.chart,
            "drill_down": report.drill is not None,
        }
    chosen = _chosen_measures(report, params)
    source = (_summary_source(report, principal, params, chosen) if use_summary else None) or report
    return await _grouped(source, report, principal, params, chosen)


def _chosen_measures(report: Report, params: Params) -> list[Measure | Ratio]:
    """The measures asked for (``measures``; default all), with the parts of a ratio."""
    wanted = params.get("measures")
    if not wanted:
        return list(report.measures)
    keys = set(wanted)
    for m in report.measures:
        if isinstance(m, Ratio) and m.key in keys:
            keys |= {m.numerator, m.denominator}
    return [m for m in report.measures if m.key in keys]


def _summary_source(
    report: Report, principal: Principal, params: Params, chosen: list[Measure | Ratio]
) -> Report | None:
    """The report over its summary table when that gives the same result, else None."""
    summary = report.summary
    if summary is None or report.where is not None:
        return None
    visibility = report.visibility or (report.spec.visibility if report.spec else None)
    if visibility is None or visibility(principal) is not None:
        return None
    asked = set(params["group_by"]) | set(params.get("filters") or {})
    if not asked <= set(summary.dimensions) | {"period"}:
        return None
    plain = [m for m in chosen if isinstance(m, Measure)]
    if any(m.key not in summary.measures for m in plain):
        return None
    from dataclasses import replace

    return Report(
        key=report.key,
        title=report.title,
        entity=report.entity,
        table=summary.table,
        visibility=lambda principal: None,
        dimensions=[
            replace(d, column=summary.dimensions[d.key]) if d.kind != "period" else d
            for d in report.dimensions
            if d.key in summary.dimensions or d.kind == "period"
        ],
        measures=[summary.measures[m.key] if isinstance(m, Measure) else m for m in chosen],
        period_column=summary.period_column,
        default_period=report.default_period,
        chart=report.chart,
        zero_is_null=summary.zero_is_null,
    )


async def _grouped(
    report: Report, shown: Report, principal: Principal, params: Params, chosen: list[Measure | Ratio]
) -> dict[str, Any]:
    """Run the grouped query of ``report`` (the declared one or its summary); labels and
    units of ``shown`` (the declared report)."""
    dims = [report.dimension(k) for k in params["group_by"]]
    if report is not shown:
        chosen = list(report.measures)
    plain = [m for m in chosen if isinstance(m, Measure)]
    conditions = _conditions(report, principal, params)
    table = report.source
    selects: list[Any] = []
    groups: list[Any] = []
    for i, d in enumerate(dims):
        expr = _dimension_expr(report, d, params)
        if isinstance(expr, Column):
            selects.append(expr.as_alias(f"g{i}"))
        else:
            selects.append(QueryString("{}", expr, alias=f"g{i}"))
        groups.append(expr)
    for i, m in enumerate(plain):
        selects.append(_measure_expr(report, principal, m, params, f"m{i}"))
    query = table.select(*selects)
    if conditions:
        query = query.where(*conditions)
    if groups:
        query = query.group_by(*groups)
    raw_rows = await query
    total_query = table.select(
        *[_measure_expr(report, principal, m, params, f"m{i}") for i, m in enumerate(plain)]
    )
    if conditions:
        total_query = total_query.where(*conditions)
    total_row = (await total_query)[0]

    def figures(row: dict[str, Any]) -> dict[str, Any]:
        out = {m.key: _typed(row.get(f"m{i}"), m.type) for i, m in enumerate(plain)}
        for m in chosen:
            if isinstance(m, Ratio):
                num, den = out.get(m.numerator), out.get(m.denominator)
                out[m.key] = round(100 * float(num) / float(den), 2) if num is not None and den else None
        return out

    lookups: dict[str, dict[Any, str]] = {}
    for i, d in enumerate(dims):
        if d.kind in ("user", "team", "party"):
            found = await names(d.kind, {r[f"g{i}"] for r in raw_rows})
            lookups[d.key] = {**lookups.get(d.key, {}), **found}
    rows = []
    for r in raw_rows:
        values: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for i, d in enumerate(dims):
            value = r[f"g{i}"]
            if value == 0 and d.key in report.zero_is_null:
                value = None
            if isinstance(value, dt.datetime | dt.date):
                value = value.isoformat()
            values[d.key] = value
            labels[d.key] = _value_label(d, value, lookups.get(d.key, {}))
        values.update(figures(r))
        rows.append({"values": values, "labels": labels})
    rows.sort(key=lambda row: [_sort_key(row["values"][d.key]) for d in dims])
    declared = {m.key: m for m in shown.measures}
    columns = [
        {"key": d.key, "label": d.label, "type": d.kind if d.kind != "value" else "text", "dimension": True}
        for d in dims
    ] + [
        {"key": m.key, "label": m.label, "type": m.type, "unit": m.unit}
        for m in (declared.get(c.key, c) for c in chosen)
    ]
    return {
        "report": shown.key,
        "title": i18n.gettext(shown.title),
        "params": params_json(params),
        "columns": [_column_out(c) for c in columns],
        "rows": rows,
        "totals": figures(total_row),
        "chart": report.chart,
        "drill_down": True,
    }


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value))


def _value_label(d: Dimension, value: Any, found: dict[Any, str]) -> str:
    if value is None:
        return i18n.gettext(i18n.N_("(none)"))
    if d.kind in ("user", "team", "party"):
        return found.get(value, f"#{value}")
    if d.kind == "value" and d.labels:
        return i18n.label(d.labels, value)
    return str(value)


# --------------------------------------------------------------------------- drill-down


async def drill_down(
    report: Report, principal: Principal, raw_params: Any, cell: Any, measure: str | None
) -> dict[str, Any]:
    """The records behind one cell: the report's conditions, the cell's dimension values and
    the measure's own condition; ``ids`` (up to ``MAX_DRILL_IDS``), their ``count``, and the
    entity's list page filtered to them where the list has parameters for every part."""
    params = validate_params(report, raw_params)
    principal.require(permission_of(report))
    if not isinstance(cell, dict):
        raise ValidationFailed.field("cell", "must be an object of dimension values")
    if report.run is not None:
        if report.drill is None:
            raise DomainError("This report has no drill-down", [FieldError("report", "has no drill-down")])
        return await report.drill(principal, params, cell, measure or "")
    keys = {d.key for d in report.dimensions}
    for key in cell:
        if key not in keys:
            raise ValidationFailed.field(f"cell.{key}", "is not a dimension of this report")
    chosen: Measure | Ratio | None = None
    if measure:
        try:
            chosen = report.measure(measure)
        except KeyError:
            raise ValidationFailed.field("measure", f"no measure {measure!r} in this report") from None
    if isinstance(chosen, Ratio):
        chosen = report.measure(chosen.numerator)
    conditions = _conditions(report, principal, params)
    list_query: dict[str, str] = dict(report.list_params(params) if report.list_params else {})
    linkable = report.list_url is not None
    if report.period_column and linkable:
        if params.get("date_from"):
            list_query.update(_list_dates(report, periods._utc(params["date_from"]), None))
        if params.get("date_to"):
            list_query.update(
                _list_dates(report, None, periods._utc(params["date_to"] + dt.timedelta(days=1)))
            )
    for key, value in [*(params.get("filters") or {}).items(), *cell.items()]:
        d = report.dimension(key)
        conditions.append(_equals(report, d, value, params, f"cell.{key}"))
        if d.kind == "period":
            start, end = periods.bounds(params["period"], value)
            start = max(start, periods._utc(params["date_from"])) if params.get("date_from") else start
            list_query.update(_list_dates(report, start, end))
        elif d.list_param and value is not None:
            list_query[d.list_param] = str(value)
        else:
            linkable = False
    if isinstance(chosen, Measure) and chosen.where is not None:
        extra = chosen.where(principal, params)
        if extra is not None:
            conditions.append(extra)
            if chosen.list_params is not None:
                list_query.update(chosen.list_params(params))
            else:
                linkable = False
    if isinstance(chosen, Measure) and chosen.agg != "count" and chosen.column:
        measured = expr(report, chosen.column)
        if isinstance(measured, QueryString):
            conditions.append(WhereRaw("{} IS NOT NULL", measured))
        else:
            conditions.append(measured.is_not_null())
    table = report.source
    key = _col(report, report.record_column) if report.record_column else table._meta.primary_key
    query = table.select(key.as_alias("rid")).distinct()
    count_query = table.select(Count(distinct=[key], alias="n"))
    if conditions:
        query = query.where(*conditions)
        count_query = count_query.where(*conditions)
    ids = [r["rid"] for r in await query.order_by(key).limit(MAX_DRILL_IDS)]
    count = int((await count_query)[0]["n"] or 0)
    from urllib.parse import urlencode

    url = None
    if linkable and report.list_url:
        url = report.list_url + ("?" + urlencode(sorted(list_query.items())) if list_query else "")
    return {
        "report": report.key,
        "entity": report.record_entity or report.entity,
        "count": count,
        "ids": ids,
        "truncated": count > len(ids),
        "list_url": url,
    }


def _list_dates(report: Report, start: dt.datetime | None, end: dt.datetime | None) -> dict[str, str]:
    """The list-page parameters of a time range on the report's period column."""
    names_ = _LIST_DATE_PARAMS.get((report.entity, report.period_column or ""))
    if names_ is None:
        return {}
    out = {}
    if start is not None:
        out[names_[0]] = start.isoformat().replace("+00:00", "Z")
    if end is not None:
        out[names_[1]] = end.isoformat().replace("+00:00", "Z")
    return out


#: (entity, column) -> (list parameter "from", list parameter "before") for the date range.
_LIST_DATE_PARAMS: dict[tuple[str, str], tuple[str, str]] = {}


def register_list_dates(entity: str, column: str, after: str, before: str) -> None:
    """Declare the list parameters (``starts_after``, ``starts_before``) that select a time
    range of ``column`` on the entity's list page: the drill-down links use them."""
    _LIST_DATE_PARAMS[(entity, column)] = (after, before)


# --------------------------------------------------------------------------- export


def export_table(result: dict[str, Any]) -> tuple[list[str], list[str], list[list[Any]]]:
    """Header (with units), column types and rows of a run report, ready for a file."""
    columns = result["columns"]
    header = [c["label"] + (f", {c['unit']}" if c.get("unit") else "") for c in columns]
    types = [c["type"] for c in columns]
    rows = []
    for row in result["rows"]:
        values = row.get("values", row)
        labels = row.get("labels", {})
        rows.append([labels.get(c["key"], values.get(c["key"])) for c in columns])
    return header, types, rows


def require_export(principal: Principal) -> None:
    if not principal.can("report.export"):
        raise PermissionDenied("Permission 'report.export' is required", missing_permission="report.export")


__all__: Sequence[str] = [
    "Dimension",
    "Measure",
    "Ratio",
    "Report",
    "drill_down",
    "run_report",
]
