"""The segment editor (``/marketing/segments/new``, ``/marketing/segments/{id}``): name, kind and
rules as rows (field, operator, value; all or any of them) or, for nested rules, as the JSON
document itself; the live count beside them.

The form is decoded through the API's ``SegmentIn`` and saved by the same service as
``POST /api/marketing/segments``, so a rule the API refuses is refused here for the same reason,
shown beside its row. The live count is the API's own ``POST /api/marketing/segments/preview``
(called by ``static/segments.js`` as the rules change; without JavaScript the "Count" button
asks the same service through the page).

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

import json
import re
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import events, i18n
from tessera.entities import service
from tessera.entities.dto import set_fields
from tessera.errors import DomainError, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.web.forms import human
from tessera.web.plugin_pages import Form, check_csrf, current_principal, decode_form, error_page, render

from tessera_marketing import segments, services
from tessera_marketing.routes import SegmentIn

#: Empty rule rows offered below the segment's own.
SPARE_ROWS = 2
RULE_FIELDS = {
    "status": N_("Status"),
    "kind": N_("Kind of party"),
    "name": N_("Name"),
    "tag": N_("Tag"),
    "relation": N_("Relation"),
    "owner_id": N_("Responsible (user id)"),
    "team_id": N_("Team (id)"),
    "created_at": N_("Created"),
    "updated_at": N_("Changed"),
    "status_changed_at": N_("Status changed"),
    "abc_class": N_("ABC class"),
    "xyz_class": N_("XYZ class"),
    "activity": N_("Activity"),
    "revenue": N_("Revenue, last 12 months"),
    "segment": N_("Segment (id)"),
}
OPERATORS = {
    "eq": N_("is"),
    "ne": N_("is not"),
    "in": N_("is one of"),
    "not_in": N_("is none of"),
    "contains": N_("contains"),
    "empty": N_("is empty"),
    "not_empty": N_("is not empty"),
    "has": N_("has"),
    "has_any": N_("has any of"),
    "has_none": N_("has none of"),
    "gt": N_("more than"),
    "gte": N_("at least"),
    "lt": N_("less than"),
    "lte": N_("at most"),
    "before": N_("before"),
    "after": N_("after"),
    "within_days": N_("within the last N days"),
    "older_than_days": N_("more than N days ago"),
    "some_within_days": N_("some in the last N days"),
    "none_within_days": N_("none in the last N days"),
}
#: Refusals of the page's own (translated by ``human``).
MESSAGES = (N_("is not valid JSON"),)
LIST_OPS = frozenset({"in", "not_in", "has_any", "has_none"})
i18n.register_labels("marketing.rule.field", RULE_FIELDS)
i18n.register_labels("marketing.rule.op", OPERATORS)
ROW = re.compile(r"^rules\.(all|any)\[(\d+)\](?:\.(field|op|value))?")


def rule_value(text: str, op: str) -> Any:
    """A row's value as the API takes it (``static/segments.js`` does the same): JSON when it
    reads as JSON (90, "A", ["a", "b"]), else the text; a list operator splits text at commas."""
    text = text.strip()
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    if op in LIST_OPS and not isinstance(value, list):
        value = [part.strip() for part in str(value).split(",") if part.strip()]
    return value


def _shown_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def rows_of(rules: Any) -> tuple[str, list[dict[str, str]]] | None:
    """``(all|any, rows)`` when the rules are one flat group of simple rules, else None."""
    if not isinstance(rules, dict) or len(rules) != 1:
        return None
    match = next(iter(rules))
    items = rules[match]
    if match not in ("all", "any") or not isinstance(items, list):
        return None
    out = []
    for item in items:
        if not isinstance(item, dict) or not set(item) <= {"field", "op", "value"} or "field" not in item:
            return None
        out.append(
            {
                "field": str(item["field"]),
                "op": str(item.get("op", "")),
                "value": _shown_value(item.get("value")),
            }
        )
    return match, out


def rules_from_form(data: dict[str, str]) -> tuple[Any, list[int]]:
    """The rules the form describes and, for mapping errors back, the form row of each rule."""
    if data.get("rules_json", "").strip():
        try:
            return json.loads(data["rules_json"]), []
        except ValueError:
            raise ValidationFailed.field("rules_json", "is not valid JSON") from None
    match = data.get("match", "all") if data.get("match") in ("all", "any") else "all"
    items, rows = [], []
    for i in range(200):
        if f"rule-{i}-field" not in data:
            break
        field = data.get(f"rule-{i}-field", "").strip()
        if not field:
            continue
        op = data.get(f"rule-{i}-op", "").strip()
        item: dict[str, Any] = {"field": field, "op": op}
        text = data.get(f"rule-{i}-value", "")
        if text.strip() or op not in ("empty", "not_empty"):
            item["value"] = rule_value(text, op)
        items.append(item)
        rows.append(i)
    return {match: items}, rows


def form_errors(exc: DomainError, rows: list[int]) -> dict[str, str]:
    """The refusal beside the form's fields: ``rules.all[1].op`` is the second rule sent."""
    out: dict[str, str] = {}
    for error in exc.errors:
        key = error.field
        match = ROW.match(key)
        if key == "rules_json":
            pass
        elif match and rows and int(match.group(2)) < len(rows):
            key = f"rule-{rows[int(match.group(2))]}-{match.group(3) or 'field'}"
        elif key.startswith("rules") and not rows:
            key = "rules_json"
        elif key not in ("name", "description", "kind"):
            key = ""
        text = human(error.message)
        out[key] = f"{out[key]}; {text}" if key in out else text
    if not out:
        out[""] = exc.detail
    return out


async def _custom_fields() -> dict[str, str]:
    schema = await segments.party_custom_schema()
    return {f"custom.{k}": str((v or {}).get("title") or k) for k, v in sorted(schema.items())}


async def _view(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    segment: dict[str, Any] | None,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    count: int | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    sent = []
    while f"rule-{len(sent)}-field" in form:
        sent.append({k: form.get(f"rule-{len(sent)}-{k}", "") for k in ("field", "op", "value")})
    # After a refusal every sent row keeps its place (the errors name the form's rows).
    rows = sent if errors else [r for r in sent if r["field"]]
    rows += [{"field": "", "op": "", "value": ""} for _ in range(SPARE_ROWS)]
    custom = await _custom_fields()
    return render(
        request,
        "marketing/segment_edit.html",
        status=status,
        principal=principal,
        segment=segment,
        form=form,
        rows=rows,
        fields=RULE_FIELDS,
        custom_fields=custom,
        operators=OPERATORS,
        field_ops={**segments.FIELDS, **{k: segments.CUSTOM_OPS for k in custom}},
        error=errors.pop("", None),
        errors=errors,
        count=count,
    )


def _form_of(segment: dict[str, Any]) -> dict[str, str]:
    rules = segment["rules"]
    if isinstance(rules, str):
        rules = json.loads(rules)
    form = {"name": segment["name"], "description": segment["description"], "kind": segment["kind"]}
    flat = rows_of(rules)
    if flat is None:
        form["rules_json"] = json.dumps(rules, ensure_ascii=False, indent=2)
        return form
    form["match"] = flat[0]
    for i, row in enumerate(flat[1]):
        for key, value in row.items():
            form[f"rule-{i}-{key}"] = value
    return form


@get("/segments/new")
async def new_segment_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """A new segment: its rules, with the live count of the parties you read that match."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        services.SEGMENT.require(principal, "write")
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _view(request, principal, segment=None, form={"kind": "dynamic", "match": "all"}, count=None)


@get("/segments/{segment_id:int}")
async def segment_page(request: Request[Any, Any, Any], segment_id: int) -> Response[Any]:
    """A segment's rules and its member count (editable with marketing.segment.manage)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        segment = await service.get(services.SEGMENT, principal, segment_id)
        count = await services.count_segment(principal, segment_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _view(request, principal, segment=segment, form=_form_of(segment), count=count)


async def _submit(
    request: Request[Any, Any, Any], data: dict[str, str], segment_id: int | None
) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    segment = None
    rows: list[int] = []
    try:
        if segment_id is not None:
            segment = await service.get(services.SEGMENT, principal, segment_id)
        rules, rows = rules_from_form(data)
        if data.get("action") == "count":
            count = await services.count_rules(principal, rules)
            return await _view(request, principal, segment=segment, form=dict(data), count=count)
        fields = {k: data.get(k, "") for k in ("name", "description", "kind") if k in data}
        body = decode_form(SegmentIn, fields, rules=rules)
        values = set_fields(body)
        async with events.unit_of_work():
            if segment is None:
                row = await service.create(services.SEGMENT, principal, values)
            else:
                values.pop("kind", None)
                row = await service.update(services.SEGMENT, principal, segment["id"], values)
    except DomainError as exc:
        if exc.status != 422:
            return error_page(request, principal, exc)
        return await _view(
            request,
            principal,
            segment=segment,
            form=dict(data),
            errors=form_errors(exc, rows),
            status=422,
        )
    return Redirect(f"/marketing/segments/{row['id']}", status_code=303)


@post("/segments/new", status_code=303)
async def new_segment_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Save a new segment (``SegmentIn``, the API's create) or count its rules (``action=count``)."""
    return await _submit(request, data, None)


@post("/segments/{segment_id:int}", status_code=303)
async def segment_submit(request: Request[Any, Any, Any], segment_id: int, data: Form) -> Response[Any]:
    """Save a segment's changes (the API's update) or count its rules (``action=count``)."""
    return await _submit(request, data, segment_id)


HANDLERS = [new_segment_page, segment_page, new_segment_submit, segment_submit]
