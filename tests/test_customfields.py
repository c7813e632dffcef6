"""Custom fields declared by an admin (no plugin), validated with jsonschema on every write."""

from __future__ import annotations

import pytest
from entity_helpers import field_errors, new_party, table_counts

SCHEMA = {
    "properties": {
        "industry": {"type": "string", "enum": ["retail", "manufacturing", "it"]},
        "employees": {"type": "integer", "minimum": 1},
        "billing_email": {"type": "string", "format": "email"},
    },
    "required": [],
}


async def _declare(crm, admin, entity="party", schema=SCHEMA):
    r = await crm.put(f"/api/custom-fields/{entity}", admin, json=schema)
    assert r.status_code == 200, r.text
    return r.json()


async def test_admin_declares_fields_and_valid_values_are_stored(crm):
    admin = await crm.user("admin")
    effective = await _declare(crm, admin)
    assert set(effective["properties"]) == {"industry", "employees", "billing_email"}
    assert effective["additionalProperties"] is False
    assert (await crm.get("/api/custom-fields/party", admin)).json() == effective
    targets = (await crm.get("/api/custom-fields", admin)).json()
    assert {"party", "contact", "activity", "task"} <= set(targets)
    assert targets["party"] == effective

    party = await new_party(crm, admin, custom={"industry": "it", "employees": 40})
    assert party["custom"] == {"industry": "it", "employees": 40}
    r = await crm.get(f"/api/parties/{party['id']}", admin)
    assert r.json()["custom"] == {"industry": "it", "employees": 40}


@pytest.mark.parametrize(
    ("custom", "field", "rule"),
    [
        ({"employees": 0}, "custom.employees", "minimum"),
        ({"employees": "many"}, "custom.employees", "type"),
        ({"industry": "farming"}, "custom.industry", "enum"),
        ({"billing_email": "not-an-email"}, "custom.billing_email", "format"),
        ({"colour": "red"}, "custom.colour", "unknown custom field"),
    ],
)
async def test_invalid_custom_value_is_422_naming_field_and_rule(crm, custom, field, rule):
    admin = await crm.user("admin")
    await _declare(crm, admin)
    before = await table_counts()
    r = await crm.post("/api/parties", admin, json={"name": "X", "custom": custom})
    assert r.status_code == 422, r.text
    errors = field_errors(r)
    assert field in errors, errors
    assert rule in errors[field]
    assert await table_counts() == before  # nothing half-written


async def test_custom_fields_validated_on_update_and_merged(crm):
    admin = await crm.user("admin")
    await _declare(crm, admin)
    party = await new_party(crm, admin, custom={"industry": "it", "employees": 40})
    url = f"/api/parties/{party['id']}"
    before = await table_counts()
    r = await crm.patch(url, admin, json={"name": "Renamed", "custom": {"employees": -1}})
    assert r.status_code == 422
    assert "custom.employees" in field_errors(r)
    assert await table_counts() == before
    assert (await crm.get(url, admin)).json() == party

    # PATCH changes the custom fields it names and keeps the others; null removes one.
    r = await crm.patch(url, admin, json={"custom": {"employees": 41}})
    assert r.status_code == 200, r.text
    assert r.json()["custom"] == {"industry": "it", "employees": 41}
    r = await crm.patch(url, admin, json={"custom": {"industry": None}})
    assert r.json()["custom"] == {"employees": 41}


async def test_required_custom_field(crm):
    admin = await crm.user("admin")
    await _declare(crm, admin, schema={**SCHEMA, "required": ["industry"]})
    r = await crm.post("/api/parties", admin, json={"name": "X"})
    assert r.status_code == 422
    errors = field_errors(r)
    assert "custom.industry" in errors
    assert "required" in errors["custom.industry"]
    party = await new_party(crm, admin, custom={"industry": "retail"})
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"custom": {"industry": None}})
    assert r.status_code == 422
    assert "custom.industry" in field_errors(r)


async def test_custom_fields_on_other_kernel_entities(crm):
    admin = await crm.user("admin")
    await _declare(crm, admin, "task", {"properties": {"hours": {"type": "number", "maximum": 100}}})
    await _declare(crm, admin, "activity", {"properties": {"channel": {"type": "string"}}})
    await _declare(crm, admin, "contact", {"properties": {"birthday": {"type": "string", "format": "date"}}})
    r = await crm.post("/api/tasks", admin, json={"title": "T", "custom": {"hours": 101}})
    assert r.status_code == 422
    assert "custom.hours" in field_errors(r)
    r = await crm.post("/api/tasks", admin, json={"title": "T", "custom": {"hours": 2.5}})
    assert r.status_code == 201
    r = await crm.post(
        "/api/activities",
        admin,
        json={"type": "call", "subject": "s", "starts_at": "2026-03-02T09:00:00Z", "custom": {"channel": 5}},
    )
    assert r.status_code == 422
    assert "custom.channel" in field_errors(r)
    party = await new_party(crm, admin)
    r = await crm.post(
        "/api/contacts",
        admin,
        json={"party_id": party["id"], "name": "C", "custom": {"birthday": "1990-02-31"}},
    )
    assert r.status_code == 422
    assert "custom.birthday" in field_errors(r)
    # Without a declaration, any custom key is unknown.
    r = await crm.post("/api/parties", admin, json={"name": "X", "custom": {"anything": 1}})
    assert r.status_code == 422
    assert "custom.anything" in field_errors(r)


async def test_declaring_fields_needs_permission_and_a_valid_schema(crm):
    admin = await crm.user("admin")
    manager = await crm.user("manager")
    r = await crm.put("/api/custom-fields/party", manager, json=SCHEMA)
    assert r.status_code == 403
    r = await crm.put("/api/custom-fields/party", admin, json={"properties": {"x": {"type": "colour"}}})
    assert r.status_code == 422
    assert any(f.startswith("properties") for f in field_errors(r))
    r = await crm.put("/api/custom-fields/party", admin, json={"properties": {}, "required": ["ghost"]})
    assert r.status_code == 422
    assert "required" in field_errors(r)
    r = await crm.put("/api/custom-fields/spaceship", admin, json={"properties": {}})
    assert r.status_code in (404, 422)
    r = await crm.put("/api/custom-fields/party", admin, json={"props": {}})
    assert r.status_code == 422
    # Nothing was declared by the failed attempts.
    assert (await crm.get("/api/custom-fields/party", admin)).json()["properties"] == {}


async def test_object_valued_custom_field_is_checked_inside(crm):
    admin = await crm.user("admin")
    schema = {
        "properties": {
            "bank": {
                "type": "object",
                "properties": {
                    "bic": {"type": "string", "pattern": "^[0-9]{9}$"},
                    "name": {"type": "string"},
                },
                "required": ["bic"],
                "additionalProperties": False,
            }
        }
    }
    await _declare(crm, admin, schema=schema)
    cases = [
        ({"bank": {"bic": "044525225", "iban": "x"}}, "custom.bank.iban", "unknown custom field"),
        ({"bank": {"name": "Sber"}}, "custom.bank.bic", "required"),
        ({"bank": {"bic": "12"}}, "custom.bank.bic", "pattern"),
    ]
    for custom, field, rule in cases:
        r = await crm.post("/api/parties", admin, json={"name": "X", "custom": custom})
        assert r.status_code == 422, (custom, r.text)
        errors = field_errors(r)
        assert field in errors, errors
        assert rule in errors[field]
    assert (await crm.get("/api/parties/count", admin)).json() == {"count": 0}
    party = await new_party(crm, admin, custom={"bank": {"bic": "044525225", "name": "Sber"}})
    assert party["custom"]["bank"]["bic"] == "044525225"


async def test_declarations_are_audited(crm):
    admin = await crm.user("admin")
    await _declare(crm, admin)
    await _declare(
        crm, admin, schema={"properties": {"industry": {"type": "string"}}, "required": ["industry"]}
    )
    r = await crm.get("/api/audit", admin, params={"entity": "custom_field_schema"})
    update, create = r.json()
    assert (create["action"], update["action"]) == ("create", "update")
    assert create["user_id"] == update["user_id"] == admin["id"]
    assert create["detail"] == "party"
    assert create["changes"]["properties"][1] == SCHEMA["properties"]
    assert update["changes"]["properties"] == [SCHEMA["properties"], {"industry": {"type": "string"}}]
    assert update["changes"]["required"] == [[], ["industry"]]
