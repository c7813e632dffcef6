"""Generic list pages (issue 15, item 2): quick filters, sorting by column, previous/next keyset
paging, totals ("about N" where counting is expensive), saved views, bulk actions and CSV/XLSX
export, for the kernel's lists and for plugins' (the sales deal list uses it too).

A list is declared once as a :class:`ListSpec` and registered by name. Its filters are the API's
own filter function (``tessera.api.filters.party_filters`` ...): the query string of a list page
is checked against that function's parameters, with their types and limits, so the page and the
API accept and refuse the same filters. An unknown parameter or an invalid value is reported on
the page (400 / 422), never ignored. Every row comes through ``tessera.entities.service`` (the
same visibility as the API); bulk changes go through ``service.update`` in one transaction.
"""

from __future__ import annotations

import inspect
import io
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Response
from litestar.params import ParameterKwarg
from piccolo.columns.combination import And, Or
from piccolo.querystring import QueryString

from tessera import audit, clock, db, events, exports, i18n
from tessera.entities import service
from tessera.entities.tables import CrmUser, Party, SavedView, Team
from tessera.errors import DomainError, FieldError, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.plugins import PluginError, await_me_maybe, call_each

#: Query parameters every list understands besides its filters.
RESERVED = frozenset({"order", "after", "before"})
#: Totals are counted exactly up to this many rows; above it the page says "about N" (the
#: planner's estimate on PostgreSQL, the cap on SQLite), so a list of a million rows is not
#: counted on every page view (docs/ui.md, "Totals").
COUNT_CAP = 10_000
#: Rows one bulk action may change (a page holds at most 500).
MAX_BULK = 500
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

i18n.register_labels("party.kind", {"organisation": N_("Organisation"), "person": N_("Person")})


# --------------------------------------------------------------------------- declarations


@dataclass
class Cell:
    """A table cell: text, optionally a link, or tags shown as pills."""

    text: str = ""
    href: str | None = None
    pills: Sequence[str] = ()
    css: str = ""


@dataclass
class ListColumn:
    key: str
    #: A msgid (``N_("Name")``), translated when the page is rendered.
    label: str
    #: The displayed value of a row: a string or a :class:`Cell`.
    cell: Callable[[dict[str, Any], dict[str, Any]], Any]
    #: The exported value (numbers and dates keep their type); default: the cell's text.
    export: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None
    #: The ``order`` field clicking the header sorts by (one of the entity's ``order_fields``).
    sort: str | None = None


@dataclass
class QuickFilter:
    """A control of the filter form; ``param`` is a parameter of the list's API filters."""

    param: str
    label: str
    #: choice (``choices`` or the label ``group``), user, team, text, date, flag
    kind: str = "text"
    choices: Sequence[str] = ()
    group: str = ""


@dataclass
class BulkAction:
    """An action on every selected row: a change through ``service.update`` (``changes``), or
    something done for the row (``apply``: a task about it ...)."""

    key: str
    label: str
    #: user (a user select) or text
    kind: str
    #: The form field carrying the chosen value.
    field: str
    #: The changes for one row from its current values and what the user chose.
    changes: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
    #: Instead of a change: (principal, row, value) -> done for that row, in the transaction.
    apply: Callable[[Principal, dict[str, Any], Any], Awaitable[None]] | None = None


Loader = Callable[[Principal, list[dict[str, Any]]], Awaitable[dict[str, Any]]]


@dataclass
class ListSpec:
    name: str
    title: str
    url: str
    entity: service.EntitySpec
    #: The API's filter function (its parameters are the list's filters).
    filters: Callable[..., list[Any]]
    columns: list[ListColumn]
    quick: list[QuickFilter] = field(default_factory=list)
    row_href: Callable[[dict[str, Any]], str | None] = lambda row: None
    default_order: str = "-id"
    #: Extra context for the cells (names of users, parties ...), one query per kind.
    load: Loader | None = None
    bulk: list[BulkAction] = field(default_factory=list)
    #: Permission needed to export (None: reading is enough).
    export_permission: str | None = "party.export"
    #: Buttons above the list: (href, msgid).
    actions: list[tuple[str, str]] = field(default_factory=list)
    page_size: int = 50
    empty: str = N_("Nothing matches.")
    #: Ready-made filters shown as links ("My clients"): (msgid, principal -> query parameters).
    presets: list[tuple[str, Callable[[Principal], dict[str, str]]]] = field(default_factory=list)
    #: The plugin that declares the list (its name): the list exists only while it is enabled.
    plugin: str = ""


LISTS: dict[str, ListSpec] = {}


def register(spec: ListSpec) -> ListSpec:
    """Make a list known (saved views, bulk and export routes find it by name)."""
    LISTS[spec.name] = spec
    return spec


def available() -> dict[str, ListSpec]:
    """The lists of the kernel and of the enabled plugins, by name."""
    pm = service.plugin_manager()
    return {
        name: spec
        for name, spec in LISTS.items()
        if not spec.plugin or pm.get_plugin(spec.plugin) is not None
    }


def find_list(name: str) -> ListSpec | None:
    return available().get(name)


def get_list(name: str) -> ListSpec:
    spec = find_list(name)
    if spec is None:
        from tessera.errors import NotFound

        raise NotFound(f"list {name} not found")
    return spec


# --------------------------------------------------------------------------- filters


class FilterErrors(ValidationFailed):
    """Filters a list refused: ``status`` 400 when one is unknown, else 422."""


def _filter_params(func: Callable[..., Any]) -> dict[str, tuple[Any, ParameterKwarg | None]]:
    hints = typing.get_type_hints(func, include_extras=True)
    out: dict[str, tuple[Any, ParameterKwarg | None]] = {}
    for name in inspect.signature(func).parameters:
        hint = hints.get(name, str)
        meta = None
        if get_origin(hint) is typing.Annotated:
            hint, *extras = get_args(hint)
            meta = next((e for e in extras if isinstance(e, ParameterKwarg)), None)
        args = [a for a in get_args(hint) if a is not type(None)]
        if args and get_origin(hint) is not Literal:
            hint = args[0]  # X | None -> X
        if get_origin(hint) is typing.Annotated:
            hint = get_args(hint)[0]
        out[name] = (hint, meta)
    return out


def _convert(name: str, raw: str, hint: Any, meta: ParameterKwarg | None, tz: str | None) -> Any:
    """``raw`` as the API would read it for the parameter, or ValueError with the reason."""
    if get_origin(hint) is Literal:
        allowed = [str(a) for a in get_args(hint)]
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw
    if hint is bool:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(N_("must be true or false"))
    if hint is int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(N_("must be a whole number")) from None
        if meta is not None and (
            (meta.ge is not None and value < meta.ge) or (meta.le is not None and value > meta.le)
        ):
            raise ValueError(f"must be between {meta.ge} and {meta.le}")
        return value
    if hint is datetime:
        try:
            if len(raw) == 10:
                # A date picker's day (the page's convenience): that day's start in the user's zone.
                day = date.fromisoformat(raw)
                return datetime.combine(day, time(0), ZoneInfo(tz or "UTC"))
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except (ValueError, KeyError):
            raise ValueError(
                N_("must be a date (2026-03-02) or a time with a zone (2026-03-02T09:00:00Z)")
            ) from None
    if hint is date:
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ValueError(N_("must be a date (2026-03-02)")) from None
    if meta is not None and meta.max_length is not None and len(raw) > meta.max_length:
        raise ValueError(f"must be at most {meta.max_length} characters")
    return raw


@dataclass
class Query:
    """A list's parsed query string."""

    values: dict[str, Any]
    #: The filters as sent (non-empty), for links and saved views.
    raw: dict[str, str]
    conditions: list[Any]
    order: str
    after: str | None = None
    before: str | None = None


#: Query parameters that links from mailings and ads carry (campaign tags): never filters, and a
#: page opened from such a link shows the list instead of refusing it.
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "yclid", "msclkid", "mc_cid", "mc_eid", "_ga", "ref"})


def _is_tracking(name: str) -> bool:
    return name.startswith("utm_") or name in TRACKING_PARAMS


def parse_query(spec: ListSpec, params: Sequence[tuple[str, str]], tz: str | None = None) -> Query:
    """Check ``params`` against the list's API filters: an unknown one is a 400 naming it, an
    invalid value a 422 naming the filter (``FilterErrors``); empty values count as absent."""
    known = _filter_params(spec.filters)
    raw: dict[str, str] = {}
    values: dict[str, Any] = {}
    unknown: list[FieldError] = []
    invalid: list[FieldError] = []
    order, after, before = spec.default_order, None, None
    for name, value in params:
        value = value.strip()
        if name == "order":
            order = value or spec.default_order
            continue
        if name in ("after", "before"):
            after, before = (value or None, before) if name == "after" else (after, value or None)
            continue
        if name not in known and _is_tracking(name):
            continue
        if name not in known:
            unknown.append(FieldError(name, N_("is not a filter of this list")))
            continue
        if not value:
            continue
        hint, meta = known[name]
        try:
            values[name] = _convert(name, value, hint, meta, tz)
            raw[name] = value
        except ValueError as exc:
            invalid.append(FieldError(name, str(exc)))
    if unknown or invalid:
        names = ", ".join(e.field for e in unknown) if unknown else ", ".join(e.field for e in invalid)
        error = FilterErrors(
            f"unknown filter: {names}" if unknown else f"invalid filter: {names}", [*unknown, *invalid]
        )
        error.status = 400 if unknown else 422
        raise error
    try:
        service.parse_order(spec.entity, order)
    except ValidationFailed as exc:
        raise FilterErrors(exc.detail, exc.errors) from None
    try:
        conditions = spec.filters(**values)
    except ValidationFailed as exc:
        raise FilterErrors(exc.detail, exc.errors) from None
    return Query(values=values, raw=raw, conditions=conditions, order=order, after=after, before=before)


def check_query_string(spec: ListSpec, query: str) -> str:
    """A saved view's query string, checked like a page's (``FilterErrors`` if refused); the
    paging cursors are dropped (a view is filters and an order)."""
    from urllib.parse import parse_qsl

    pairs = [
        (k, v)
        for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=True)
        if k not in ("after", "before")
    ]
    parsed = parse_query(spec, pairs)
    kept = dict(parsed.raw)
    if parsed.order != spec.default_order:
        kept["order"] = parsed.order
    return urlencode(kept)


# --------------------------------------------------------------------------- rows and totals


def _conditions(spec: ListSpec, principal: Principal, conditions: Sequence[Any]) -> list[Any]:
    return [c for c in (spec.entity.visibility(principal), *conditions) if c is not None]


@dataclass
class Total:
    count: int
    exact: bool


async def total(
    spec: ListSpec, principal: Principal, conditions: Sequence[Any], cap: int | None = None
) -> Total:
    """The number of rows the user may see: exact up to ``cap`` (a count that stops there);
    above it an estimate, the planner's on PostgreSQL (never below ``cap``), ``cap`` on SQLite."""
    cap = COUNT_CAP if cap is None else cap
    spec.entity.require(principal, "read")
    table = spec.entity.table
    pk = table._meta.primary_key
    where = _conditions(spec, principal, conditions)
    query = table.select(pk)
    if where:
        query = query.where(*where)
    inner = query.limit(cap + 1).querystrings[0]
    rows = await table._meta.db.run_querystring(
        QueryString("SELECT COUNT(*) AS n FROM ({}) AS capped", inner)
    )
    n = int(rows[0]["n"])
    if n <= cap:
        return Total(n, True)
    estimate = cap
    if db.is_postgres():
        plain = table.select(pk)
        if where:
            plain = plain.where(*where)
        plan = await table._meta.db.run_querystring(
            QueryString("EXPLAIN (FORMAT JSON) {}", plain.querystrings[0])
        )
        try:
            found = plan[0]["QUERY PLAN"]
            if isinstance(found, str):
                import json

                found = json.loads(found)
            estimate = max(cap, int(found[0]["Plan"]["Plan Rows"]))
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return Total(_round(estimate), False)


def _round(n: int) -> int:
    """Two significant digits: an estimate should not look exact (123 456 -> 120 000)."""
    digits = len(str(n))
    if digits <= 2:
        return n
    step = 10 ** (digits - 2)
    return (n // step) * step


def _reverse(order: str) -> str:
    return order[1:] if order.startswith("-") else f"-{order}"


@dataclass
class Rows:
    items: list[dict[str, Any]]
    prev: str | None  # "before" cursor of the previous page
    next: str | None  # "after" cursor of the next page


def _cursor_of(spec: ListSpec, row: dict[str, Any], order: str) -> str:
    name = order.lstrip("-")
    pk = spec.entity.table._meta.primary_key._meta.name
    return service.encode_cursor(row[name], row[pk], order)


async def fetch_rows(spec: ListSpec, principal: Principal, query: Query, limit: int | None = None) -> Rows:
    """One page in ``query.order``: after a row (next), before a row (previous: the reversed
    order read from that row, turned round), or the first page."""
    limit = limit or spec.page_size
    if query.before:
        back = await service.list_page(
            spec.entity,
            principal,
            query.conditions,
            order=_reverse(query.order),
            cursor=query.before,
            limit=limit,
        )
        items = list(reversed(back.items))
        prev = _cursor_of(spec, items[0], _reverse(query.order)) if items and back.next_cursor else None
        nxt = _cursor_of(spec, items[-1], query.order) if items else None
        return Rows(items, prev, nxt)
    page = await service.list_page(
        spec.entity, principal, query.conditions, order=query.order, cursor=query.after, limit=limit
    )
    prev = _cursor_of(spec, page.items[0], _reverse(query.order)) if query.after and page.items else None
    return Rows(page.items, prev, page.next_cursor)


async def plugin_columns(pm: Any, spec: ListSpec) -> list[dict[str, Any]]:
    """Columns plugins add to the list (hook ``tessera_list_columns``)."""
    found = []
    for name, items in call_each(pm, "tessera_list_columns", list_name=spec.name):
        for item in items or []:
            if not isinstance(item, Mapping) or not {"key", "label", "values"} <= set(item):
                raise PluginError(
                    f"Plugin {name!r}: tessera_list_columns must return dicts with key, label, values"
                )
            if not callable(item["values"]):
                raise PluginError(f"Plugin {name!r}: tessera_list_columns 'values' must be callable")
            found.append(dict(item))
    return found


async def _plugin_values(
    principal: Principal, columns: list[dict[str, Any]], ids: list[int]
) -> dict[str, dict[int, Any]]:
    out: dict[str, dict[int, Any]] = {}
    for column in columns:
        out[column["key"]] = dict(await await_me_maybe(column["values"](principal, ids)) or {}) if ids else {}
    return out


async def _context(
    request: Request[Any, Any, Any], spec: ListSpec, principal: Principal, rows: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[ListColumn]]:
    ctx = await spec.load(principal, rows) if spec.load else {}
    extra = await plugin_columns(request.app.state.pm, spec)
    ids = [r[spec.entity.table._meta.primary_key._meta.name] for r in rows]
    values = await _plugin_values(principal, extra, ids)
    columns = list(spec.columns)
    for declared in extra:
        key = declared["key"]
        columns.append(
            ListColumn(
                key=key,
                label=declared["label"],
                cell=lambda row, c, key=key: _plain(values[key].get(row["id"], "")),
            )
        )
    return ctx, columns


def _plain(value: Any) -> Any:
    return "" if value is None else value


def cell_of(column: ListColumn, row: dict[str, Any], ctx: dict[str, Any]) -> Cell:
    value = column.cell(row, ctx)
    return value if isinstance(value, Cell) else Cell(text="" if value is None else str(value))


def export_value(column: ListColumn, row: dict[str, Any], ctx: dict[str, Any]) -> Any:
    if column.export is not None:
        value = column.export(row, ctx)
    else:
        value = column.cell(row, ctx)
        if isinstance(value, Cell):
            value = "; ".join(value.pills) if value.pills else value.text
    if isinstance(value, datetime | date | Decimal | int | float) or value is None:
        return value
    return str(value)


# --------------------------------------------------------------------------- helpers for cells


async def names(
    user_ids: set[Any] = frozenset(), party_ids: set[Any] = frozenset(), team_ids: set[Any] = frozenset()
) -> dict[str, dict[int, str]]:
    """Names of users, parties and teams by id (one query each): users and teams are the
    directory everyone sees; party names are only asked for rows the user may already see."""
    users = {i for i in user_ids if i}
    parties = {i for i in party_ids if i}
    teams = {i for i in team_ids if i}
    out: dict[str, dict[int, str]] = {"users": {}, "parties": {}, "teams": {}}
    if users:
        out["users"] = {
            u["id"]: u["name"]
            for u in await CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.id.is_in(list(users)))
        }
    if parties:
        out["parties"] = {
            p["id"]: p["name"]
            for p in await Party.select(Party.id, Party.name).where(Party.id.is_in(list(parties)))
        }
    if teams:
        out["teams"] = {
            t["id"]: t["name"]
            for t in await Team.select(Team.id, Team.name).where(Team.id.is_in(list(teams)))
        }
    return out


def user_cell(key: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    return lambda row, ctx: ctx.get("users", {}).get(row.get(key), "")


def labelled(group: str, key: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    return lambda row, ctx: i18n.label(group, row.get(key))


def when(key: str) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    return lambda row, ctx: i18n.format_datetime(row[key]) if isinstance(row.get(key), datetime) else ""


def raw(key: str) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    return lambda row, ctx: row.get(key)


# --------------------------------------------------------------------------- the page


def _link(spec: ListSpec, raw_filters: Mapping[str, str], **extra: str | None) -> str:
    params = {**raw_filters, **{k: v for k, v in extra.items() if v}}
    return spec.url + ("?" + urlencode(params) if params else "")


async def _directory() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    users = (
        await CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.is_active == True).order_by(CrmUser.name)  # noqa: E712
    )
    teams = await Team.select(Team.id, Team.name).order_by(Team.name)
    return users, teams


def filter_message(exc: DomainError) -> str:
    parts = [f"{e.field}: {i18n.translate_message(e.message)}" for e in exc.errors] if exc.errors else []
    if exc.status == 400:
        head = i18n.gettext("This list has no such filter; it was not applied and nothing is shown:")
    else:
        head = i18n.gettext("A filter has a value this list cannot use; nothing is shown:")
    return f"{head} {'; '.join(parts) or i18n.translate_message(exc.detail)}"


async def list_response(
    request: Request[Any, Any, Any],
    spec: ListSpec,
    *,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response[Any]:
    """The list page of ``spec`` for the request's query string (kernel and plugin pages)."""
    from litestar.response import Redirect

    from tessera.web.pages import current_principal, error_page, render

    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    tz = getattr(request.state, "timezone", None)
    sent = list(request.query_params.multi_items())
    raw_sent = {k: v for k, v in sent if k not in RESERVED}
    query: Query | None = None
    rows = Rows([], None, None)
    count: Total | None = None
    try:
        query = parse_query(spec, sent, tz)
        rows = await fetch_rows(spec, principal, query)
        count = await total(spec, principal, query.conditions)
    except FilterErrors as exc:
        error, status = filter_message(exc), exc.status
    except ValidationFailed as exc:  # a cursor of another order, a stale link
        error, status = filter_message(exc), exc.status
    except DomainError as exc:
        return error_page(request, principal, exc)
    ctx, columns = await _context(request, spec, principal, rows.items)
    users, teams = await _directory()
    views = await views_for(principal, spec.name)
    filters = query.raw if query else raw_sent
    order = query.order if query else spec.default_order
    keep = dict(filters)
    if order != spec.default_order:
        keep["order"] = order
    body = [
        {
            "id": row["id"],
            "href": spec.row_href(row),
            "cells": [cell_of(c, row, ctx) for c in columns],
        }
        for row in rows.items
    ]
    headers = [
        {
            "label": c.label,
            "href": _link(spec, filters, order=(f"-{c.sort}" if order == c.sort else c.sort))
            if c.sort
            else None,
            "sorted": "asc" if order == c.sort else "desc" if c.sort and order == f"-{c.sort}" else "",
        }
        for c in columns
    ]
    query_string = urlencode(keep)
    return render(
        request,
        "list.html",
        status=status,
        principal=principal,
        spec=spec,
        headers=headers,
        rows=body,
        total=count,
        filters=filters,
        order=order,
        error=error,
        notice=notice,
        quick=spec.quick,
        users=users,
        teams=teams,
        prev_href=_link(spec, keep, before=rows.prev) if rows.prev else None,
        next_href=_link(spec, keep, after=rows.next) if rows.next else None,
        views=views,
        presets=[(text, _link(spec, make(principal))) for text, make in spec.presets],
        query_string=query_string,
        current_url=_link(spec, keep),
        can_export=spec.export_permission is None or principal.can(spec.export_permission),
        can_bulk=bool(spec.bulk) and principal.can(f"{spec.entity.permission}.write"),
        now=clock.now(),
    )


# --------------------------------------------------------------------------- saved views


def visible_views(principal: Principal) -> Any:
    """Saved views ``principal`` sees: their own, and those shared with their team."""
    mine = SavedView.owner_id == principal.user_id
    if principal.team_id is None:
        return mine
    return Or(mine, And(SavedView.team_id.is_not_null(), SavedView.team_id == principal.team_id))


async def views_for(principal: Principal, list_name: str | None = None) -> list[dict[str, Any]]:
    """The saved views ``principal`` sees (of one list), each with its link."""
    query = SavedView.select().where(visible_views(principal))
    if list_name:
        query = query.where(SavedView.list_name == list_name)
    rows = await query.order_by(SavedView.title).order_by(SavedView.id)
    for row in rows:
        row["mine"] = row["owner_id"] == principal.user_id
        spec = find_list(row["list_name"])
        row["href"] = (spec.url + ("?" + row["query"] if row["query"] else "")) if spec else ""
    return rows


# --------------------------------------------------------------------------- export


async def export_rows(
    request: Request[Any, Any, Any], spec: ListSpec, principal: Principal, fmt: str
) -> Response[Any]:
    """Every row of the list the user may see with the current filters and order, as CSV or
    XLSX (formula-safe, ``tessera.exports``); refused above the ``export_row_limit`` setting."""
    if spec.export_permission:
        principal.require(spec.export_permission)
    if fmt not in ("csv", "xlsx"):
        raise ValidationFailed.field("format", N_("must be csv or xlsx"))
    tz = getattr(request.state, "timezone", None)
    sent = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
    query = parse_query(spec, [(k, v) for k, v in sent if k not in ("after", "before")], tz)
    limit = request.app.state.settings.export_row_limit
    counted = await total(spec, principal, query.conditions, cap=limit)
    if not counted.exact:
        raise ValidationFailed.field(
            "filters", f"more than {limit} rows match; exports are limited to {limit}: narrow the filters"
        )
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await service.list_page(
            spec.entity, principal, query.conditions, order=query.order, cursor=cursor, limit=500
        )
        items.extend(page.items)
        if page.next_cursor is None or len(items) >= limit:
            break
        cursor = page.next_cursor
    ctx, columns = await _context(request, spec, principal, items)
    header = [i18n.translate_message(c.label) for c in columns]
    table = [[export_value(c, row, ctx) for c in columns] for row in items]
    async with events.unit_of_work():
        await audit.record(
            "export",
            spec.entity.name,
            None,
            {"rows": [None, len(items)]},
            detail=str(request.url.query or ""),
        )
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    filename = f"{spec.name}-{stamp}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "xlsx":
        return Response(
            exports.xlsx_bytes(header, table, title=spec.name), media_type=XLSX, headers=disposition
        )
    buffer = io.StringIO()
    writer = exports.csv_writer(buffer)
    writer.writerow(header)
    writer.writerows(
        [
            [v.isoformat() if isinstance(v, datetime | date) else ("" if v is None else v) for v in r]
            for r in table
        ]
    )
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=disposition)


# --------------------------------------------------------------------------- bulk


@dataclass
class BulkOutcome:
    changed: int
    refused: list[tuple[int, str]]


async def apply_bulk(
    spec: ListSpec, principal: Principal, action_key: str, ids: Sequence[int], value: Any
) -> BulkOutcome:
    """Apply a bulk action to ``ids``: every row is checked with the same rules as a single
    change (``service.get_for_write``) first; if any is refused nothing changes and the refusals
    are returned; otherwise every change runs through ``service.update`` in one transaction
    (a failure there undoes them all)."""
    action = next((a for a in spec.bulk if a.key == action_key), None)
    if action is None:
        raise ValidationFailed.field("action", N_("is not a bulk action of this list"))
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ValidationFailed.field("ids", N_("select at least one row"))
    if len(ids) > MAX_BULK:
        raise ValidationFailed.field("ids", f"at most {MAX_BULK} rows at a time")
    spec.entity.require(principal, "write")
    refused: list[tuple[int, str]] = []
    current: dict[int, dict[str, Any]] = {}
    for record_id in ids:
        try:
            current[record_id] = await service.get_for_write(spec.entity, principal, record_id)
        except DomainError as exc:
            refused.append((record_id, exc.detail))
    if refused:
        return BulkOutcome(0, refused)
    async with events.unit_of_work():
        for record_id in ids:
            if action.apply is not None:
                await action.apply(principal, current[record_id], value)
            elif action.changes is not None:
                await service.update(
                    spec.entity, principal, record_id, action.changes(current[record_id], value)
                )
    return BulkOutcome(len(ids), [])


__all__ = [
    "BulkAction",
    "Cell",
    "ListColumn",
    "ListSpec",
    "QuickFilter",
    "apply_bulk",
    "export_rows",
    "list_response",
    "parse_query",
    "register",
    "total",
]
