"""The report builder (issue 21, item 2): a user picks an entity declared through
``tessera_reports`` (:class:`Entity`), filters, group-by fields and aggregates; the definition
is compiled into a :class:`~tessera.reports.framework.Report` and runs (and drills down) like
any report, with the caller's visibility in SQL.

No SQL text from the user reaches the database: fields are looked up in the entity's
whitelist (unknown: 422; declared but not readable by the caller: 400), operators in
``OPERATORS``, and every value is type-checked and sent as a bound parameter. Custom fields
(``custom.<name>``) come from the entity's custom-field schema.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from jsonschema import Draft202012Validator
from piccolo.columns.combination import WhereRaw
from piccolo.querystring import QueryString

from tessera import audit, customfields, i18n
from tessera.entities import service
from tessera.entities.tables import SavedReport
from tessera.errors import DomainError, FieldError, NotFound, PermissionDenied, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.reports import framework, periods
from tessera.reports.framework import Dimension, Measure, Report

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "is_null", "not_null")
FIELD_TYPES = ("text", "int", "decimal", "datetime", "date", "bool", "user", "team", "party")
MAX_FILTERS = 20
MAX_MEASURES = 10


@dataclass(frozen=True)
class Field:
    key: str
    #: A msgid.
    label: str
    #: The column of the entity's table (default: ``key``).
    column: str | None = None
    type: str = "text"
    #: ``tessera.i18n.register_labels`` group naming the codes of a text field.
    labels: str = ""
    #: Needed (besides the entity's read permission) to filter, group or aggregate by it.
    permission: str | None = None
    #: The entity list page's parameter selecting one value (drill-down links).
    list_param: str | None = None


@dataclass
class Entity:
    """An entity the builder offers: its records' spec (permission, visibility) and fields."""

    key: str
    label: str
    #: The ``service.EntitySpec`` name (``activity``, ``sales.deal``).
    entity: str
    fields: list[Field]
    #: The custom-field entity type whose fields the builder adds (``custom.<name>``).
    custom_fields: str | None = None
    list_url: str | None = None
    plugin: str = ""

    def field(self, key: str) -> Field:
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)


DEFINITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entity": {"type": "string", "maxLength": 100},
        "filters": {
            "type": "array",
            "maxItems": MAX_FILTERS,
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "maxLength": 100},
                    "op": {"enum": list(OPERATORS)},
                    "value": {},
                },
                "required": ["field", "op"],
                "additionalProperties": False,
            },
        },
        "group_by": {
            "type": "array",
            "maxItems": framework.MAX_GROUP_BY,
            "uniqueItems": True,
            "items": {"type": "string", "maxLength": 120},
        },
        "measures": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_MEASURES,
            "items": {
                "type": "object",
                "properties": {
                    "agg": {"enum": list(framework.AGGREGATES)},
                    "field": {"type": ["string", "null"], "maxLength": 100},
                },
                "required": ["agg"],
                "additionalProperties": False,
            },
        },
        "chart": {"enum": ["bar", "line", "pie", None]},
    },
    "required": ["entity", "measures"],
    "additionalProperties": False,
}


def _check_schema(definition: Any) -> dict[str, Any]:
    if not isinstance(definition, dict):
        raise ValidationFailed.field("definition", "must be an object")
    errors = []
    for error in Draft202012Validator(DEFINITION_SCHEMA).iter_errors(definition):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            declared = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - declared):
                errors.append(FieldError(".".join(p for p in (path, name) if p), "unknown key"))
            continue
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    errors.append(FieldError(".".join(p for p in (path, name) if p), "is required"))
            continue
        errors.append(FieldError(path or "definition", error.message))
    if errors:
        raise ValidationFailed(N_("Invalid report definition"), list(dict.fromkeys(errors)))
    return definition


async def fields_for(entity: Entity, pm: Any) -> list[Field]:
    """The entity's declared fields plus its custom fields."""
    out = list(entity.fields)
    if entity.custom_fields:
        schema = await customfields.effective_schema(pm, entity.custom_fields)
        for name, prop in sorted(schema.get("properties", {}).items()):
            # A field a plugin computes (readOnly) is not in the custom column the builder reads.
            if not framework.CUSTOM_NAME.match(name) or prop.get("readOnly"):
                continue
            kind = {"integer": "int", "number": "decimal", "boolean": "bool"}.get(prop.get("type"), "text")
            out.append(Field(f"custom.{name}", prop.get("title") or name, column=f"custom.{name}", type=kind))
    return out


async def offered(
    pm: Any, entities: dict[str, Entity], principal: Principal
) -> list[tuple[Entity, list[Field]]]:
    """The entities the caller may read, each with the fields they may use (the API's
    ``/entities`` and the builder page offer the same)."""
    out = []
    for entity in entities.values():
        spec = service.specs().get(entity.entity)
        if spec is None:
            continue
        try:
            spec.require(principal, "read")
        except PermissionDenied:
            continue
        fields = [f for f in await fields_for(entity, pm) if not f.permission or principal.can(f.permission)]
        out.append((entity, fields))
    return out


def _readable(principal: Principal, f: Field, where: str) -> Field:
    if f.permission and not principal.can(f.permission):
        raise DomainError(
            f"{where}: you may not read the field {f.key!r}",
            [FieldError(where, f"you may not read {f.key!r}")],
        )
    return f


def _value(f: Field, value: Any, where: str) -> Any:
    """A filter value of the field's type, or a 422."""
    kind = f.type
    if kind in ("int", "user", "team", "party"):
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
            raise ValidationFailed.field(where, "must be an integer")
        return value
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValidationFailed.field(where, "must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValidationFailed.field(where, "must be a number") from None
        if not number.is_finite():
            raise ValidationFailed.field(where, "must be a number")
        return number
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValidationFailed.field(where, "must be true or false")
        return value
    if kind in ("datetime", "date"):
        if not isinstance(value, str):
            raise ValidationFailed.field(where, "must be an ISO 8601 date or time")
        try:
            if kind == "date":
                return dt.date.fromisoformat(value)
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed.field(where, "must be an ISO 8601 date or time") from None
        if moment.tzinfo is None:
            raise ValidationFailed.field(where, "must carry a time zone")
        return moment
    if not isinstance(value, str) or len(value) > 200:
        raise ValidationFailed.field(where, "must be a text of at most 200 characters")
    return value


def _condition(report: Report, f: Field, op: str, value: Any, where: str) -> Any:
    column = framework.expr(report, f.column or f.key)
    custom = isinstance(column, QueryString)
    if op == "is_null":
        return WhereRaw("{} IS NULL", column) if custom else column.is_null()
    if op == "not_null":
        return WhereRaw("{} IS NOT NULL", column) if custom else column.is_not_null()
    if op == "in":
        if not isinstance(value, list) or not 1 <= len(value) <= 100:
            raise ValidationFailed.field(where, "must be a list of 1 to 100 values")
        values = [_value(f, v, f"{where}.{i}") for i, v in enumerate(value)]
        if custom:
            marks = ", ".join("{}" for _ in values)
            return WhereRaw(f"{{}} IN ({marks})", column, *[_custom_arg(v) for v in values])
        return column.is_in(values)
    if op == "contains":
        if f.type != "text":
            raise ValidationFailed.field(where, "contains applies to text fields only")
        text = _value(f, value, where)
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        return WhereRaw("LOWER({}) LIKE LOWER({}) ESCAPE '\\'", column, pattern)
    typed = _value(f, value, where)
    sql = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
    if custom:
        if f.type in ("int", "decimal") and op != "eq" and op != "ne":
            return WhereRaw(f"{{}} {sql} {{}}", framework.numeric(column), typed)
        return WhereRaw(f"{{}} {sql} {{}}", column, _custom_arg(typed))
    return {
        "eq": column.__eq__,
        "ne": column.__ne__,
        "lt": column.__lt__,
        "le": column.__le__,
        "gt": column.__gt__,
        "ge": column.__ge__,
    }[op](typed)


def _custom_arg(value: Any) -> Any:
    from tessera import db

    if db.is_postgres():
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


KIND_OF = {"user": "user", "team": "team", "party": "party"}
MEASURE_TYPES = {"int": "int", "decimal": "decimal", "user": "int", "team": "int", "party": "int"}


async def compile_definition(
    pm: Any, entities: dict[str, Entity], principal: Principal, definition: Any
) -> tuple[Report, dict[str, Any]]:
    """The report a builder definition stands for and its run parameters; 422 for what is not
    in the whitelist, 400 for a field the caller may not read, 403 without the entity's read
    permission."""
    definition = _check_schema(definition)
    entity = entities.get(definition["entity"])
    if entity is None:
        raise ValidationFailed.field("entity", f"no entity {definition['entity']!r} in the report builder")
    spec = service.specs().get(entity.entity)
    if spec is None:
        raise ValidationFailed.field("entity", N_("is not available in the report builder"))
    spec.require(principal, "read")
    fields = {f.key: f for f in await fields_for(entity, pm)}

    def lookup(key: str, where: str) -> Field:
        if key not in fields:
            raise ValidationFailed.field(where, f"no field {key!r} in {entity.key}")
        return _readable(principal, fields[key], where)

    report = Report(
        key="builder",
        title=N_("Custom report"),
        entity=entity.entity,
        chart=definition.get("chart", "bar"),
        list_url=entity.list_url,
    )
    group_keys: list[str] = []
    grain = None
    for i, raw in enumerate(definition.get("group_by", [])):
        where = f"group_by.{i}"
        key, _, maybe_grain = raw.partition(":")
        f = lookup(key, where)
        if f.type in ("datetime", "date"):
            if maybe_grain not in periods.GRAINS:
                raise ValidationFailed.field(where, "a time field groups by field:day|week|month|quarter")
            if grain is not None:
                raise ValidationFailed.field(where, "one time field at most")
            grain = maybe_grain
            report.period_column = f.column or f.key
            report.dimensions.append(Dimension("period", f.label, kind="period"))
            group_keys.append("period")
            continue
        if maybe_grain:
            raise ValidationFailed.field(where, "only time fields take a period")
        report.dimensions.append(
            Dimension(
                f.key,
                f.label,
                f.column or f.key,
                kind=KIND_OF.get(f.type, "value"),
                labels=f.labels,
                list_param=f.list_param,
            )
        )
        group_keys.append(f.key)
    for i, m in enumerate(definition["measures"]):
        where = f"measures.{i}"
        agg, key = m["agg"], m.get("field")
        if agg == "count":
            if key:
                raise ValidationFailed.field(f"{where}.field", "count counts records: leave the field out")
            report.measures.append(Measure(f"m{i}", N_("Records"), "count"))
            continue
        if not key:
            raise ValidationFailed.field(f"{where}.field", f"{agg} needs a field")
        f = lookup(key, f"{where}.field")
        if agg in ("sum", "avg") and f.type not in ("int", "decimal"):
            raise ValidationFailed.field(f"{where}.field", f"{agg} needs a number field")
        if agg in ("min", "max") and f.type not in ("int", "decimal", "datetime", "date"):
            raise ValidationFailed.field(f"{where}.field", f"{agg} needs a number or time field")
        kind = (
            "int"
            if agg == "count_distinct"
            else ("float" if agg == "avg" else MEASURE_TYPES.get(f.type, "text"))
        )
        report.measures.append(Measure(f"m{i}", f.label, agg, column=f.column or f.key, type=kind))
    conditions = []
    # A drill-down opens the entity's list page only when the list can apply every filter
    # too (an ``eq`` on a field with a list parameter); otherwise it lists the records' ids.
    list_filters: dict[str, str] = {}
    for i, flt in enumerate(definition.get("filters", [])):
        where = f"filters.{i}"
        f = lookup(flt["field"], f"{where}.field")
        if flt["op"] not in ("is_null", "not_null") and "value" not in flt:
            raise ValidationFailed.field(f"{where}.value", "is required")
        conditions.append(_condition(report, f, flt["op"], flt.get("value"), f"{where}.value"))
        value = flt.get("value")
        if (
            flt["op"] == "eq"
            and f.list_param
            and isinstance(value, str | int)
            and not isinstance(value, bool)
        ):
            list_filters[f.list_param] = str(value)
        else:
            report.list_url = None
    report.where = lambda principal, params: conditions
    if list_filters:
        report.list_params = lambda params: dict(list_filters)
    params: dict[str, Any] = {"group_by": group_keys}
    if grain:
        params["period"] = grain
    return report, params


def measure_labels(definition: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Column labels that say the aggregate ("Sum: Duration")."""
    words = {
        "count": N_("Count"),
        "sum": N_("Sum"),
        "avg": N_("Average"),
        "min": N_("Minimum"),
        "max": N_("Maximum"),
        "count_distinct": N_("Distinct"),
    }
    for i, m in enumerate(definition["measures"]):
        for c in result["columns"]:
            if c["key"] == f"m{i}" and m["agg"] != "count":
                c["label"] = f"{i18n.gettext(words[m['agg']])}: {c['label']}"
    return result


# --------------------------------------------------------------------------- saved reports


def _json_list(text: str) -> list[Any]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


async def _role_names(principal: Principal) -> set[str]:
    from tessera.entities.tables import UserRole

    rows = await UserRole.select(UserRole.role_id.name.as_alias("name")).where(
        UserRole.user_id == principal.user_id
    )
    return {r["name"] for r in rows}


def saved_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "owner_id": row["owner_id"],
        "definition": json.loads(row["definition"] or "{}"),
        "shared_roles": _json_list(row["shared_roles"]),
        "shared_teams": _json_list(row["shared_teams"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def visible_saved(principal: Principal) -> list[dict[str, Any]]:
    """Saved reports the caller owns or that are shared with one of their roles or teams."""
    roles = await _role_names(principal)
    teams = {principal.team_id} if principal.team_id else set()
    out = []
    for row in await SavedReport.select().order_by(SavedReport.id):
        shared = set(_json_list(row["shared_roles"])) & roles or set(_json_list(row["shared_teams"])) & teams
        if row["owner_id"] == principal.user_id or shared:
            out.append(saved_out(row))
    return out


async def get_saved(principal: Principal, report_id: int) -> dict[str, Any]:
    for row in await visible_saved(principal):
        if row["id"] == report_id:
            return row
    raise NotFound(f"No saved report {report_id}")


async def _check_shares(roles: Any, teams: Any) -> tuple[list[str], list[int]]:
    from tessera.entities.tables import Role, Team

    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles) or len(roles) > 50:
        raise ValidationFailed.field("shared_roles", "must be a list of role names")
    if not isinstance(teams, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in teams):
        raise ValidationFailed.field("shared_teams", "must be a list of team ids")
    known_roles = {r["name"] for r in await Role.select(Role.name)}
    for i, name in enumerate(roles):
        if name not in known_roles:
            raise ValidationFailed.field(f"shared_roles.{i}", f"no role {name!r}")
    known_teams = {t["id"] for t in await Team.select(Team.id)}
    for i, team in enumerate(teams):
        if team not in known_teams:
            raise ValidationFailed.field(f"shared_teams.{i}", f"no team {team}")
    return sorted(set(roles)), sorted(set(teams))


async def save(
    pm: Any,
    entities: dict[str, Entity],
    principal: Principal,
    values: dict[str, Any],
    report_id: int | None = None,
) -> dict[str, Any]:
    """Create (or, as its owner, replace) a saved report; the definition must compile for the
    caller. Audited."""
    name = values.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationFailed.field("name", "is required (at most 200 characters)")
    await compile_definition(pm, entities, principal, values.get("definition"))
    roles, teams = await _check_shares(values.get("shared_roles", []), values.get("shared_teams", []))
    from tessera import clock, db

    now = clock.now()
    data = {
        "name": name.strip(),
        "definition": json.dumps(values["definition"], sort_keys=True),
        "shared_roles": json.dumps(roles),
        "shared_teams": json.dumps(teams),
        "updated_at": now,
    }
    async with db.transaction():
        if report_id is None:
            row = (
                await SavedReport.insert(
                    SavedReport(owner_id=principal.user_id, created_at=now, **data)
                ).returning(*SavedReport.all_columns())
            )[0]
            await audit.record("create", "saved_report", row["id"], {"name": [None, row["name"]]})
        else:
            existing = await SavedReport.select().where(SavedReport.id == report_id).first()
            if existing is None or existing["owner_id"] != principal.user_id:
                if existing is not None and any(r["id"] == report_id for r in await visible_saved(principal)):
                    raise PermissionDenied("Only the owner changes a saved report")
                raise NotFound(f"No saved report {report_id}")
            await SavedReport.update(data).where(SavedReport.id == report_id)
            row = {**existing, **data}
            await audit.record("update", "saved_report", report_id, audit.diff(existing, row))
    return saved_out(row)


async def delete(principal: Principal, report_id: int) -> None:
    from tessera import db

    async with db.transaction():
        existing = await SavedReport.select().where(SavedReport.id == report_id).first()
        if existing is None or existing["owner_id"] != principal.user_id:
            raise NotFound(f"No saved report {report_id}")
        await SavedReport.delete().where(SavedReport.id == report_id)
        await audit.record("delete", "saved_report", report_id, {"name": [existing["name"], None]})


__all__ = ["Entity", "Field", "compile_definition"]
