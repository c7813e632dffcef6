"""The report builder page (issue 21, item 2): pick an entity, filters, group-by fields and
aggregates over its standard and custom fields, see the table and the chart, save the report
and share it with roles and teams; add a saved report to a dashboard.

The form is turned into the very definition ``POST /api/report-builder/run`` and ``/saved``
take, and goes through the same ``tessera.reports.builder`` checks: a refusal is shown beside
the field it names (``filters.0.value``, ``group_by.1``, ``measures.0.field``, ``name``).
What the page adds is only the browser's way of sending things: every value is a text (a
number field's value is read as a number, ``in`` takes values separated by commas, a date
alone means midnight UTC).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import i18n
from tessera.entities.tables import Role, Team
from tessera.errors import DomainError, FieldError, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.reports import builder, catalog, dashboards, framework, periods
from tessera.web import fields as form_fields
from tessera.web.forms import field_errors
from tessera.web.pages import _require, check_csrf, render
from tessera.web.records import refused
from tessera.web.report_pages import _cell, _table

FILTER_ROWS = 3
GROUP_ROWS = 2
MEASURE_ROWS = 3
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

i18n.register_labels(
    "report.op",
    {
        "eq": N_("equals"),
        "ne": N_("does not equal"),
        "lt": N_("less than"),
        "le": N_("at most"),
        "gt": N_("greater than"),
        "ge": N_("at least"),
        "in": N_("one of (comma-separated)"),
        "contains": N_("contains"),
        "is_null": N_("is empty"),
        "not_null": N_("is not empty"),
    },
)
i18n.register_labels(
    "report.agg",
    {
        "count": N_("Count of records"),
        "sum": N_("Sum"),
        "avg": N_("Average"),
        "min": N_("Minimum"),
        "max": N_("Maximum"),
        "count_distinct": N_("Distinct values"),
    },
)
i18n.register_labels("report.chart", {"bar": N_("Bars"), "line": N_("Line"), "pie": N_("Pie")})


def _typed(f: builder.Field | None, text: str) -> Any:
    """A filter value typed in a form, as the JSON the API would carry."""
    text = text.strip()
    if f is None:
        return text
    if f.type in ("int", "user", "team", "party"):
        try:
            return int(text)
        except ValueError:
            return text  # the builder says "must be an integer" beside the field
    if f.type == "bool":
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            text.lower(), text
        )
    if f.type == "datetime" and _DATE.match(text):
        return f"{text}T00:00:00+00:00"
    return text


def definition_from_form(form: dict[str, Any], fields: dict[str, builder.Field]) -> dict[str, Any]:
    """The builder definition of a submitted form (rows left blank are not part of it)."""
    definition: dict[str, Any] = {"entity": form.get("entity", "")}
    filters = []
    for i in range(FILTER_ROWS):
        key = form.get(f"filters.{i}.field", "")
        if not key:
            continue
        op = form.get(f"filters.{i}.op", "eq")
        row: dict[str, Any] = {"field": key, "op": op}
        if op not in ("is_null", "not_null"):
            raw = form.get(f"filters.{i}.value", "")
            f = fields.get(key)
            row["value"] = (
                [_typed(f, part) for part in raw.split(",") if part.strip()] if op == "in" else _typed(f, raw)
            )
        filters.append(row)
    if filters:
        definition["filters"] = filters
    group_by = [form.get(f"group_by.{i}", "") for i in range(GROUP_ROWS)]
    definition["group_by"] = [g for g in group_by if g]
    measures = []
    for i in range(MEASURE_ROWS):
        agg = form.get(f"measures.{i}.agg", "")
        if not agg:
            continue
        key = form.get(f"measures.{i}.field", "")
        measures.append({"agg": agg, "field": key} if key else {"agg": agg})
    definition["measures"] = measures
    if form.get("chart"):
        definition["chart"] = form["chart"]
    return definition


def form_from_definition(definition: dict[str, Any]) -> dict[str, Any]:
    form: dict[str, Any] = {"entity": definition.get("entity", ""), "chart": definition.get("chart") or ""}
    for i, flt in enumerate(definition.get("filters", [])[:FILTER_ROWS]):
        form[f"filters.{i}.field"] = flt["field"]
        form[f"filters.{i}.op"] = flt["op"]
        value = flt.get("value")
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        form[f"filters.{i}.value"] = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
    for i, g in enumerate(definition.get("group_by", [])[:GROUP_ROWS]):
        form[f"group_by.{i}"] = g
    for i, m in enumerate(definition.get("measures", [])[:MEASURE_ROWS]):
        form[f"measures.{i}.agg"] = m["agg"]
        form[f"measures.{i}.field"] = m.get("field") or ""
    return form


def _form_names() -> set[str]:
    names = {"entity", "chart", "name", "shared_roles", "shared_teams", "measures", "group_by", "filters"}
    for i in range(FILTER_ROWS):
        names |= {f"filters.{i}.field", f"filters.{i}.op", f"filters.{i}.value", f"filters.{i}"}
    names |= {f"group_by.{i}" for i in range(GROUP_ROWS)}
    for i in range(MEASURE_ROWS):
        names |= {f"measures.{i}.agg", f"measures.{i}.field", f"measures.{i}"}
    return names


#: The builder's refusals (``tessera.reports.builder``) in words a person reads, translated.
_WORDS = [
    (re.compile(r"^must be an integer$"), N_("must be a whole number")),
    (re.compile(r"^must be true or false$"), N_("must be true or false")),
    (re.compile(r"^must be an ISO 8601 date or time$"), N_("must be a date (YYYY-MM-DD) or a date and time")),
    (re.compile(r"^must carry a time zone$"), N_("must carry a time zone")),
    (re.compile(r"^must be a text of at most (\d+) characters$"), N_("must be at most {0} characters")),
    (re.compile(r"^must be a list of 1 to (\d+) values$"), N_("must be a list of 1 to {0} values")),
    (re.compile(r"^contains applies to text fields only$"), N_("contains applies to text fields only")),
    (re.compile(r"^\w+ needs a number field$"), N_("needs a number field")),
    (re.compile(r"^\w+ needs a number or time field$"), N_("needs a number or time field")),
    (re.compile(r"^\w+ needs a field$"), N_("choose a field")),
    (re.compile(r"^count counts records"), N_("a count counts records: leave the field empty")),
    (re.compile(r"^no field .* in \S+$"), N_("is not a field of these records")),
    (re.compile(r"^a time field groups by"), N_("choose a period for a time field")),
    (re.compile(r"^one time field at most$"), N_("group by one time field at most")),
    (re.compile(r"^only time fields take a period$"), N_("only time fields take a period")),
    (re.compile(r"^is required \(at most (\d+) characters\)$"), N_("is required (at most {0} characters)")),
    (re.compile(r"^you may not read "), N_("you may not read this field")),
    (re.compile(r"^no (role|team) "), N_("is not known")),
]


def _words(message: str) -> str:
    for pattern, text in _WORDS:
        match = pattern.match(message)
        if match:
            return i18n.gettext(text).format(*match.groups())
    return message


def _errors(exc: DomainError) -> dict[str, str]:
    """The refusal beside its field, in words: a list item's error beside the list
    (``shared_roles.0`` → ``shared_roles``, an ``in`` value → the filter's value)."""
    renamed = []
    for e in exc.errors:
        name = e.field
        name = re.sub(r"^(shared_roles|shared_teams)\.\d+$", r"\1", name)
        name = re.sub(r"^(filters\.\d+\.value)\.\d+$", r"\1", name)
        renamed.append(FieldError(name, _words(e.message)))
    return field_errors(type(exc)(exc.detail, renamed), _form_names())


async def _choices(principal: Principal, pm: Any, entity_key: str) -> dict[str, Any]:
    offered = await builder.offered(pm, catalog.entities(pm), principal)
    entity, fields = next(
        ((e, f) for e, f in offered if e.key == entity_key), offered[0] if offered else (None, [])
    )
    field_choices = [(f.key, i18n.gettext(f.label)) for f in fields]
    group_choices: list[tuple[str, str]] = []
    for f in fields:
        if f.type in ("datetime", "date"):
            group_choices += [
                (f"{f.key}:{g}", f"{i18n.gettext(f.label)}: {i18n.label('report.period', g)}")
                for g in periods.GRAINS
            ]
        else:
            group_choices.append((f.key, i18n.gettext(f.label)))
    return {
        "entities": [(e.key, i18n.gettext(e.label)) for e, _f in offered],
        "entity": entity,
        "field_map": {f.key: f for f in fields},
        "fields": field_choices,
        "group_fields": group_choices,
        "ops": [(o, i18n.label("report.op", o)) for o in builder.OPERATORS],
        "aggs": [(a, i18n.label("report.agg", a)) for a in framework.AGGREGATES],
        "charts": [(c, i18n.label("report.chart", c)) for c in ("bar", "line", "pie")],
        "roles": [(r["name"], r["name"]) for r in await Role.select(Role.name).order_by(Role.name)],
        "teams": [(t["id"], t["name"]) for t in await Team.select(Team.id, Team.name).order_by(Team.name)],
    }


async def _view(
    request: Request[Any, Any, Any],
    principal: Principal,
    form: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    result: dict[str, Any] | None = None,
    definition: dict[str, Any] | None = None,
    saved_id: int | None = None,
    status: int = 200,
) -> Response[str]:
    pm = request.app.state.pm
    choices = await _choices(principal, pm, form.get("entity", ""))
    if choices["entity"] is not None:
        form.setdefault("entity", choices["entity"].key)
    rows, chart = [], None
    if result is not None and definition is not None:
        keep = [("definition", json.dumps(definition, sort_keys=True))]
        rows, chart = _table(result, "/app/report-builder/drill", keep)
    errors = dict(errors or {})
    return render(
        request,
        "report_builder.html",
        status=status,
        principal=principal,
        form=form,
        error=errors.pop("", None),
        errors=errors,
        result=result,
        rows=rows,
        chart=chart,
        saved_id=saved_id,
        filter_rows=range(FILTER_ROWS),
        group_rows=range(GROUP_ROWS),
        measure_rows=range(MEASURE_ROWS),
        **choices,
    )


@get("/app/report-builder", include_in_schema=False)
async def builder_page(
    request: Request[Any, Any, Any], entity: str | None = None, saved: int | None = None
) -> Response[Any]:
    """An empty builder (for ``entity``), or a saved report to change (``saved``: its owner)."""
    principal = await _require(request)
    if saved is not None:
        try:
            row = await builder.get_saved(principal, saved)
        except DomainError as exc:
            return refused(request, principal, exc)
        form = form_from_definition(row["definition"])
        form.update(name=row["name"], shared_roles=row["shared_roles"], shared_teams=row["shared_teams"])
        return await _view(
            request, principal, form, saved_id=saved if row["owner_id"] == principal.user_id else None
        )
    form: dict[str, Any] = {
        "entity": entity or "",
        "measures.0.agg": "count",
        "shared_roles": [],
        "shared_teams": [],
    }
    return await _view(request, principal, form)


@post("/app/report-builder", include_in_schema=False, status_code=200)
async def builder_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    """``action=show``: run the definition and show it; ``action=save``: save it (``saved_id``:
    replace the caller's saved report) and open it; ``action=entity``: start over on another
    entity."""
    principal = await _require(request)
    pm = request.app.state.pm
    form = form_fields.form_state(await request.form(), ("shared_roles", "shared_teams"))
    check_csrf(principal, form)
    saved_id = int(form["saved_id"]) if form.get("saved_id", "").isdigit() else None
    if form.get("action") == "entity":
        fresh = {
            "entity": form.get("entity", ""),
            "measures.0.agg": "count",
            "shared_roles": [],
            "shared_teams": [],
        }
        return await _view(request, principal, fresh, saved_id=saved_id)
    choices = await _choices(principal, pm, form.get("entity", ""))
    definition = definition_from_form(form, choices["field_map"])
    try:
        if form.get("action") == "save":
            teams = []
            for i, t in enumerate(form.get("shared_teams", [])):
                if not t.isdigit():
                    raise ValidationFailed.field(f"shared_teams.{i}", "must be a team id")
                teams.append(int(t))
            values = {
                "name": form.get("name", ""),
                "definition": definition,
                "shared_roles": form.get("shared_roles", []),
                "shared_teams": teams,
            }
            row = await builder.save(pm, catalog.entities(pm), principal, values, saved_id)
            return Redirect(f"/app/saved-reports/{row['id']}", status_code=303)
        report, params = await builder.compile_definition(pm, catalog.entities(pm), principal, definition)
        result = builder.measure_labels(definition, await framework.run_report(report, principal, params))
    except DomainError as exc:
        if exc.status not in (400, 422):
            return refused(request, principal, exc)
        return await _view(
            request, principal, form, errors=_errors(exc), saved_id=saved_id, status=exc.status
        )
    return await _view(request, principal, form, result=result, definition=definition, saved_id=saved_id)


@get("/app/report-builder/drill", include_in_schema=False)
async def builder_drill_page(request: Request[Any, Any, Any], definition: str) -> Response[Any]:
    """The records behind a figure of a definition shown on the builder page."""
    principal = await _require(request)
    pm = request.app.state.pm
    try:
        parsed = json.loads(definition)
    except ValueError:
        raise ValidationFailed.field("definition", "is not JSON") from None
    report, params = await builder.compile_definition(pm, catalog.entities(pm), principal, parsed)
    out = await framework.drill_down(
        report, principal, params, _cell(request), request.query_params.get("measure")
    )
    if out["list_url"]:
        return Redirect(out["list_url"], status_code=303)
    return render(
        request,
        "report_drill.html",
        principal=principal,
        report={"title": i18n.gettext(report.title)},
        drill=out,
    )


@post("/app/saved-reports/{report_id:int}/dashboard", include_in_schema=False, status_code=303)
async def saved_to_dashboard(request: Request[Any, Any, Any], report_id: int) -> Response[Any]:
    """Add a saved report as a tile to one of the caller's dashboards, or to a new one."""
    principal = await _require(request)
    pm = request.app.state.pm
    form = form_fields.form_state(await request.form())
    check_csrf(principal, form)
    tile = {"kind": "saved", "id": report_id}
    try:
        if form.get("dashboard_id", "").isdigit():
            board = await dashboards.add_tile(pm, principal, int(form["dashboard_id"]), tile)
        else:
            board = await dashboards.create(
                pm, principal, {"name": form.get("new_name", ""), "tiles": [tile]}
            )
    except DomainError as exc:
        if exc.status != 422:
            return refused(request, principal, exc)
        query = urlencode({"dashboard_error": "; ".join(e.message for e in exc.errors) or exc.detail})
        return Redirect(f"/app/saved-reports/{report_id}?{query}", status_code=303)
    return Redirect(f"/app/dashboards/{board['id']}", status_code=303)


BUILDER_PAGES = [builder_page, builder_submit, builder_drill_page, saved_to_dashboard]

__all__ = ["BUILDER_PAGES", "definition_from_form"]
