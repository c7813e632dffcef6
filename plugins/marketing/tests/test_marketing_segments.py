"""Segments: rules compile to SQL whose members equal hand-written SQL, counts follow the
caller's party visibility, unknown fields are refused by name, static segments freeze."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from tessera import db
from tessera.entities.tables import Role

pytestmark = pytest.mark.plugins("marketing")

FIELDS = {
    "properties": {
        "industry": {"type": "string", "enum": ["retail", "horeca", "it"]},
        "employees": {"type": "integer"},
    }
}


async def _post(crm: Any, url: str, user: dict[str, Any], body: dict[str, Any], status: int = 201) -> Any:
    r = await crm.post(url, user, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def _world(crm: Any) -> dict[str, Any]:
    team = await crm.team("North")
    await Role.insert(
        Role(
            name="marketer-own",
            description="own",
            permissions=["party.read", "party.write", "activity.*", "marketing.*"],
            scope="own",
        )
    )
    w: dict[str, Any] = {"admin": await crm.user("admin")}
    w["m1"] = await crm.user("marketer-own", team_id=team["id"], name="M1")
    w["m2"] = await crm.user("marketer-own", team_id=team["id"], name="M2")
    r = await crm.put("/api/custom-fields/party", w["admin"], json=FIELDS)
    assert r.status_code == 200, r.text
    specs = [
        ("m1", "current", ["vip"], {"industry": "retail", "employees": 50}, "A"),
        ("m1", "current", ["vip", "north"], {"industry": "it", "employees": 5}, "B"),
        ("m1", "potential", [], {"industry": "retail"}, "C"),
        ("m1", "former", ["north"], {}, None),
        ("m2", "current", ["vip"], {"industry": "horeca", "employees": 300}, "A"),
        ("m2", "potential", ["vip2"], {"employees": 12}, None),
    ]
    w["parties"] = []
    for i, (owner, status, tags, custom, abc) in enumerate(specs):
        p = await _post(
            crm,
            "/api/parties",
            w[owner],
            {"name": f"Client {i}", "status": status, "tags": tags, "custom": custom},
        )
        w["parties"].append(p)
        if abc:  # the class as classes.recompute keeps it (not in the party row)
            await db.raw(
                "INSERT INTO marketing_party_class (party_id, abc_class, xyz_class, revenue, computed_on) "
                "VALUES ({}, {}, 'X', 100, {})",
                p["id"],
                abc,
                dt.date(2026, 3, 2),
            )
    # A meeting 30 days ago with clients 0 and 4; a call (not a meeting) with client 1.
    now = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    for idx, kind in ((0, "meeting"), (4, "meeting"), (1, "call")):
        owner = w["m1"] if idx < 4 else w["m2"]
        await _post(
            crm,
            "/api/activities",
            owner,
            {
                "type": kind,
                "status": "done",
                "subject": "visit",
                "party_id": w["parties"][idx]["id"],
                "starts_at": (now - dt.timedelta(days=30)).isoformat(),
            },
        )
    return w


async def _members(crm: Any, user: dict[str, Any], rules: dict[str, Any]) -> set[int]:
    seg = await _post(crm, "/api/marketing/segments", user, {"name": "s", "rules": rules})
    r = await crm.get(f"/api/marketing/segments/{seg['id']}/members", user, params={"limit": 500})
    assert r.status_code == 200, r.text
    count = (await crm.get(f"/api/marketing/segments/{seg['id']}/members/count", user)).json()["count"]
    live = (await _post(crm, "/api/marketing/segments/preview", user, {"rules": rules}, 200))["count"]
    ids = {p["id"] for p in r.json()["items"]}
    assert count == live == len(ids)
    return ids


async def _sql_ids(sql: str) -> set[int]:
    return {r["id"] for r in await db.raw(sql)}


async def test_segment_members_equal_hand_written_sql(crm: Any, frozen_clock: Any) -> None:
    w = await _world(crm)
    admin = w["admin"]
    pg = db.is_postgres()
    industry = "custom->>'industry'" if pg else "json_extract(custom, '$.industry')"
    employees = "(custom->>'employees')::int" if pg else "json_extract(custom, '$.employees')"
    has_vip = "'vip' = ANY(tags)" if pg else "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = 'vip')"
    abc = "(SELECT c.abc_class FROM marketing_party_class c WHERE c.party_id = party.id)"

    def has(tag: str) -> str:
        return (
            f"'{tag}' = ANY(tags)" if pg else f"EXISTS (SELECT 1 FROM json_each(tags) WHERE value = '{tag}')"
        )

    cases = [
        (
            {
                "all": [
                    {"field": "status", "op": "eq", "value": "current"},
                    {"field": "tag", "op": "has", "value": "vip"},
                ]
            },
            f"SELECT id FROM party WHERE status = 'current' AND {has_vip}",
        ),
        (
            {
                "any": [
                    {"field": "custom.industry", "op": "in", "value": ["retail", "horeca"]},
                    {"field": "custom.employees", "op": "gte", "value": 10},
                ]
            },
            f"SELECT id FROM party WHERE {industry} IN ('retail', 'horeca') OR {employees} >= 10",
        ),
        (
            {
                "all": [
                    {"field": "activity", "op": "none_within_days", "value": 90, "type": "meeting"},
                    {"not": {"field": "status", "op": "eq", "value": "former"}},
                ]
            },
            "SELECT id FROM party WHERE status <> 'former' AND id NOT IN (SELECT party_id FROM activity "
            "WHERE type = 'meeting' AND party_id IS NOT NULL)",
        ),
        (
            {
                "all": [
                    {"field": "tag", "op": "has_none", "value": ["vip"]},
                    {"field": "custom.employees", "op": "empty"},
                ]
            },
            f"SELECT id FROM party WHERE NOT ({has_vip}) AND {employees} IS NULL",
        ),
        # Tags and text custom fields go through the GIN indexes on PostgreSQL (containment and
        # overlap instead of ANY / ->>): the same rows as the plain test.
        (
            {
                "all": [
                    {"field": "tag", "op": "has_any", "value": ["north", "vip2"]},
                    {"field": "custom.industry", "op": "eq", "value": "retail"},
                ]
            },
            f"SELECT id FROM party WHERE ({has('north')} OR {has('vip2')}) AND {industry} = 'retail'",
        ),
        (
            {"any": [{"field": "tag", "op": "has_any", "value": ["north", "vip2"]}]},
            f"SELECT id FROM party WHERE {has('north')} OR {has('vip2')}",
        ),
        (
            {"all": [{"field": "abc_class", "op": "eq", "value": "A"}]},
            f"SELECT id FROM party WHERE {abc} = 'A'",
        ),
        (
            {
                "all": [
                    {"field": "abc_class", "op": "in", "value": ["B", "C"]},
                    {"not": {"field": "custom.industry", "op": "in", "value": ["it"]}},
                ]
            },
            f"SELECT id FROM party WHERE {abc} IN ('B', 'C') AND NOT COALESCE({industry} IN ('it'), FALSE)",
        ),
        (
            {
                "all": [
                    {"field": "abc_class", "op": "empty"},
                    {"field": "tag", "op": "has_none", "value": ["x"]},
                ]
            },
            f"SELECT id FROM party WHERE {abc} IS NULL",
        ),
    ]
    for rules, sql in cases:
        assert await _members(crm, admin, rules) == await _sql_ids(sql), rules

    # Own scope: the same rules count only the caller's own clients.
    rules = {"all": [{"field": "tag", "op": "has", "value": "vip"}]}
    mine = await _members(crm, w["m1"], rules)
    assert mine == await _sql_ids(f"SELECT id FROM party WHERE {has_vip} AND owner_id = {int(w['m1']['id'])}")
    assert len(mine) == 2 and len(await _members(crm, admin, rules)) == 3

    # A static segment keeps its frozen members.
    rules = {"all": [{"field": "status", "op": "eq", "value": "current"}]}
    seg = await _post(
        crm, "/api/marketing/segments", admin, {"name": "Frozen", "kind": "static", "rules": rules}
    )
    assert seg["frozen_at"] is not None
    before = (await crm.get(f"/api/marketing/segments/{seg['id']}/members/count", admin)).json()["count"]
    assert before == 3
    await _post(crm, "/api/parties", admin, {"name": "Late current", "status": "current"})
    assert (await crm.get(f"/api/marketing/segments/{seg['id']}/members/count", admin)).json()["count"] == 3
    # Members still follow the reader's visibility: m2 sees only their own frozen member.
    assert (await crm.get(f"/api/marketing/segments/{seg['id']}/members/count", w["m2"])).json()["count"] == 1
    await _post(crm, f"/api/marketing/segments/{seg['id']}/freeze", admin, {}, 200)
    assert (await crm.get(f"/api/marketing/segments/{seg['id']}/members/count", admin)).json()["count"] == 4
    # A static segment can be nested in another segment's rules.
    nested = {
        "all": [
            {"field": "segment", "op": "in", "value": [seg["id"]]},
            {"field": "tag", "op": "has", "value": "vip"},
        ]
    }
    assert (await _post(crm, "/api/marketing/segments/preview", admin, {"rules": nested}, 200))["count"] == 3


async def test_tag_and_text_field_rules_are_answered_by_the_party_indexes(crm: Any) -> None:
    """PostgreSQL: the compiled tag and text custom-field tests are the very expressions the
    kernel's GIN indexes hold (``party_tags``, ``party_custom_pairs``); were either rewritten,
    a segment over a million parties would fall back to reading every row (bench/marketing.py)."""
    if not db.is_postgres():
        pytest.skip("PostgreSQL indexes")
    from tessera.entities.tables import Party
    from tessera_marketing import segments

    admin = await crm.user("admin")
    r = await crm.put("/api/custom-fields/party", admin, json=FIELDS)
    assert r.status_code == 200, r.text
    for rules, index in (
        ({"all": [{"field": "tag", "op": "has", "value": "vip"}]}, "party_tags"),
        ({"all": [{"field": "tag", "op": "has_any", "value": ["vip", "north"]}]}, "party_tags"),
        (
            {"all": [{"field": "custom.industry", "op": "in", "value": ["retail", "it"]}]},
            "party_custom_pairs",
        ),
    ):
        query = Party.count().where(await segments.compile_rules(rules))
        async with db.transaction():
            await db.raw("SET LOCAL enable_seqscan = off")
            plan = "\n".join(next(iter(row.values())) for row in await db.raw(f"EXPLAIN {query}"))
        assert f"Bitmap Index Scan on {index}" in plan, (rules, plan)
    # The class is read from the class table, never from the party's custom fields.
    for field in ("abc_class", "custom.abc_class"):
        where = str(await segments.compile_rules({"all": [{"field": field, "op": "eq", "value": "A"}]}))
        assert "marketing_party_class" in where and "custom" not in where, where
    # A custom document holding an escaped NUL (which ``json`` stores and no text can hold)
    # is still written: the index function leaves it without pairs instead of failing.
    party = await crm.post("/api/parties", admin, json={"name": "Nul", "custom": {"industry": "it"}})
    assert party.status_code == 201, party.text
    await db.raw(
        "UPDATE party SET custom = {}::json WHERE id = {}",
        '{"industry": "it", "memo": "a\\u0000b"}',
        party.json()["id"],
    )
    assert (await db.raw("SELECT custom::text AS c FROM party WHERE id = {}", party.json()["id"]))[0][
        "c"
    ].endswith('"a\\u0000b"}')


async def test_unknown_field_and_bad_rules_are_422_naming_them(crm: Any) -> None:
    admin = await crm.user("admin")
    bad = [
        (
            {"all": [{"field": "custom.ghost", "op": "eq", "value": "x"}]},
            "rules.all[0].field",
            "custom.ghost",
        ),
        ({"all": [{"field": "shoe_size", "op": "eq", "value": 3}]}, "rules.all[0].field", "shoe_size"),
        ({"all": [{"field": "status", "op": "gt", "value": "x"}]}, "rules.all[0].op", "operators"),
        (
            {"any": [{"field": "status", "op": "eq", "value": "x'; DROP TABLE party; --"}]},
            "rules.any[0].value",
            "one of",
        ),
        ({"all": "x"}, "rules.all", "list"),
    ]
    for rules, field, word in bad:
        for url in ("/api/marketing/segments/preview", "/api/marketing/segments"):
            r = await crm.post(
                url,
                admin,
                json={"rules": rules, "name": "x"} if url.endswith("segments") else {"rules": rules},
            )
            assert r.status_code == 422, r.text
            errors = r.json()["errors"]
            assert errors[0]["field"] == field and word in errors[0]["message"], errors
