"""Every list of the API (kernel and plugins) pages correctly by every column it may be sorted
by, in both directions: decimals, dates, times, nullable columns, text with ties.

The lists are found from the app itself (route handlers built by ``entity_router`` carry their
``EntitySpec``; every OpenAPI operation taking a ``cursor`` must be one of them), so a
new list, or a new sortable column, is covered without touching this test. Each table gets a
dozen rows whose sort values tie and (where the column allows it) are NULL; the expected order
is computed here in Python, by (value, id) with NULLs last, from the table itself.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from entity_helpers import new_party, walk
from piccolo.columns import Text, Varchar

ROWS = 12
PAGE = 5
#: Text values for the sort columns: ASCII lower case (the same order under every collation),
#: few enough to tie.
WORDS = ["bravo", "alpha", "charlie"]


def _list_routes(app: Any) -> dict[str, Any]:
    """``{path: EntitySpec}`` of every list route, checked against the OpenAPI."""
    found = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            spec = handler.opt.get("entity_spec")
            if spec is not None and "GET" in handler.http_methods:
                found[route.path] = spec
    openapi = app.openapi_schema.to_schema()
    for path, item in openapi["paths"].items():
        params = (item.get("get") or {}).get("parameters", [])
        query = {p["name"]: p for p in params if p["in"] == "query"}
        if "cursor" in query:
            assert path in found, f"{path} pages but is not built by entity_router: cover it here"
            schema = query["order"]["schema"]
            options = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
            allowed = next(s["enum"] for s in options if "enum" in s)
            fields = list(found[path].order_fields)
            assert sorted(allowed) == sorted(fields + [f"-{f}" for f in fields]), (path, allowed)
    return found


async def _seed(crm: Any, admin: dict[str, Any]) -> None:
    """One record of each kernel and plugin list, through the API."""
    party = await new_party(crm, admin)
    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    creates = [
        ("/api/contacts", {"name": "Ann", "party_id": party["id"]}),
        ("/api/activities", {"type": "call", "subject": "s", "starts_at": now.isoformat()}),
        ("/api/tasks", {"title": "T", "deadline": now.isoformat()}),
        ("/api/notes", {"body": "n", "party_id": party["id"]}),
        ("/api/teams", {"name": "Team A"}),
        ("/api/sales/deals", {"title": "D", "party_id": party["id"], "amount": "100.50"}),
    ]
    for url, body in creates:
        r = await crm.post(url, admin, json=body)
        assert r.status_code == 201, (url, r.text)
    other = await crm.user("manager")
    r = await crm.post(
        "/api/substitutions",
        admin,
        json={
            "absent_user_id": other["id"],
            "substitute_id": admin["id"],
            "starts_at": now.isoformat(),
            "ends_at": (now + dt.timedelta(days=2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    if "service" in crm.settings.plugins:
        r = await crm.post("/api/service/queues", admin, json={"name": "Q"})
        assert r.status_code == 201, r.text
        r = await crm.post(
            "/api/service/sla-policies",
            admin,
            json={"name": "P", "first_response_hours": "4", "resolution_hours": "8", "is_default": True},
        )
        assert r.status_code == 201, r.text
        policy = r.json()["id"]
        for url, body in (
            ("/api/service/tickets", {"party_id": party["id"], "subject": "S"}),
            (
                "/api/service/agreements",
                {"party_id": party["id"], "policy_id": policy, "valid_from": now.isoformat()},
            ),
        ):
            r = await crm.post(url, admin, json=body)
            assert r.status_code == 201, (url, r.text)
    r = await crm.post(
        "/api/attachments/upload",
        admin,
        data={"party_id": str(party["id"])},
        files={"file": ("a.txt", b"x", "text/plain")},
    )
    assert r.status_code == 201, r.text


def _unique(column: Any) -> bool:
    return bool(column._meta.unique) or column._meta.primary_key


async def _fill(table: Any) -> list[int]:
    """Copies of the table's first row up to ``ROWS`` rows (unique text made unique)."""
    pk = table._meta.primary_key
    rows = await table.select().order_by(pk)
    assert rows, f"no {table._meta.tablename} row to page through: seed one in _seed"
    template = rows[0]
    for n in range(len(rows), ROWS):
        values = {}
        for column in table._meta.columns:
            name = column._meta.name
            if column._meta.primary_key:
                continue
            value = template[name]
            if _unique(column) and isinstance(value, str):
                value = f"{value}~{n}"
            values[name] = value
        await table.insert(table(**values))
    return [r[pk._meta.name] for r in await table.select(pk).order_by(pk)]


async def _shape(table: Any, name: str, ids: list[int]) -> None:
    """Make the column's values tie (and be NULL where allowed), varied otherwise."""
    column = table._meta.get_column_by_name(name)
    if _unique(column):
        return
    pk = table._meta.primary_key
    rows = {r[pk._meta.name]: r[name] for r in await table.select(pk, column)}
    for i, record_id in enumerate(ids):
        value = rows[record_id]
        if isinstance(column, Varchar | Text):
            value = WORDS[i % len(WORDS)]
        elif isinstance(value, Decimal):
            value = Decimal(i % 4) * Decimal("1000.25")
        elif isinstance(value, dt.datetime):
            value = dt.datetime(2026, 3, 2, tzinfo=dt.UTC) + dt.timedelta(hours=i % 4)
        elif isinstance(value, dt.date):
            value = dt.date(2026, 3, 2) + dt.timedelta(days=i % 4)
        elif value is None and column.value_type is dt.datetime:
            value = dt.datetime(2026, 3, 2, tzinfo=dt.UTC) + dt.timedelta(hours=i % 4)
        elif value is None and column.value_type is dt.date:
            value = dt.date(2026, 3, 2) + dt.timedelta(days=i % 4)
        if column._meta.null and i % 5 == 2:
            value = None
        await table.update({column: value}).where(pk == record_id)


def _expected(rows: list[dict[str, Any]], name: str, descending: bool) -> list[int]:
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        value = row[name]
        return (value is None, value if value is not None else 0, row["id"])

    ordered = [r["id"] for r in sorted(rows, key=key)]
    return ordered[::-1] if descending else ordered


@pytest.mark.plugins("sales", "service")
async def test_every_list_pages_by_every_column_both_ways(crm):
    admin = await crm.user("admin")
    await _seed(crm, admin)
    lists = _list_routes(crm.app)
    assert {"/api/parties", "/api/tasks", "/api/sales/deals"} <= set(lists)
    nullable_checked = decimal_checked = False
    for path, spec in sorted(lists.items()):
        table = spec.table
        ids = await _fill(table)
        for name in spec.order_fields:
            await _shape(table, name, ids)
            column = table._meta.get_column_by_name(name)
            pk = table._meta.primary_key
            rows = await table.select(pk.as_alias("id"), column)
            values = [r[name] for r in rows]
            if name != "id" and not _unique(column):
                assert len(set(values)) < len(values), (path, name, "no ties to page across")
            nullable_checked |= None in values
            decimal_checked |= any(isinstance(v, Decimal) for v in values)
            for order in (name, f"-{name}"):
                expected = _expected(rows, name, order.startswith("-"))
                r = await crm.get(path, admin, params={"order": order, "limit": 500})
                assert r.status_code == 200, (path, order, r.text)
                assert [i["id"] for i in r.json()["items"]] == expected, (path, order)
                paged = await walk(crm, admin, path, order=order, limit=PAGE)
                assert [i["id"] for i in paged] == expected, (path, order)
    assert nullable_checked and decimal_checked


async def test_nullable_sort_column_pages_the_same_on_every_engine(crm):
    """A column with NULLs (a task's deadline): NULLs last ascending, first descending, and a
    cursor taken on a NULL row continues where it stopped."""
    admin = await crm.user("admin")
    base = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    made = []
    for i in range(7):
        body: dict[str, Any] = {"title": f"T{i}"}
        if i % 3:
            body["deadline"] = (base + dt.timedelta(days=i % 2)).isoformat()
        r = await crm.post("/api/tasks", admin, json=body)
        assert r.status_code == 201, r.text
        made.append(r.json())
    with_deadline = sorted((t for t in made if t["deadline"]), key=lambda t: (t["deadline"], t["id"]))
    without = sorted(t["id"] for t in made if not t["deadline"])
    expected = [t["id"] for t in with_deadline] + without
    for order, want in (("deadline", expected), ("-deadline", expected[::-1])):
        for limit in (1, 2, 3):
            paged = await walk(crm, admin, "/api/tasks", order=order, limit=limit)
            assert [t["id"] for t in paged] == want, (order, limit)


@pytest.mark.plugins("sales")
async def test_deals_sorted_by_amount_page_past_the_first_page(crm):
    """The reported bug: a Decimal in the cursor made the second page a 500."""
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    for amount in ("10.50", "10.50", "99.99", "5.00"):
        r = await crm.post(
            "/api/sales/deals", admin, json={"title": "D", "party_id": party["id"], "amount": amount}
        )
        assert r.status_code == 201, r.text
    first = await crm.get("/api/sales/deals", admin, params={"order": "amount", "limit": 2})
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    second = await crm.get(
        "/api/sales/deals", admin, params={"order": "amount", "limit": 2, "cursor": cursor}
    )
    assert second.status_code == 200, second.text
    amounts = [Decimal(d["amount"]) for d in first.json()["items"] + second.json()["items"]]
    assert amounts == sorted(amounts) and len(amounts) == 4
