"""Bad input gets a JSON 4xx naming the field, never a 500; the OpenAPI schema lists every
route with an operation_id."""

from __future__ import annotations

import pytest
from entity_helpers import field_errors, new_party, table_counts

BIG = 2**40  # a well-formed integer no primary key can reach


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({}, "name"),
        ({"name": "X", "colour": "red"}, "colour"),
        ({"name": "X", "kind": "alien"}, "kind"),
        ({"name": "X", "relations": ["friend"]}, "relations"),
        ({"name": "X", "status": "eternal"}, "status"),
        ({"name": "X", "phones": [{"number": "call me"}]}, "phones.0.number"),
        ({"name": "X", "phones": [{"number": "+74951234567", "ext": "1"}]}, "phones.0.ext"),
        ({"name": "X", "emails": [{"address": "a@b"}]}, "emails.0.address"),
        ({"name": "X", "emails": "a@b.example"}, "emails"),
        ({"name": "X", "owner_id": "me"}, "owner_id"),
        ({"name": "X", "tags": [""]}, "tags"),
        ({"name": "X" * 301}, "name"),
        ({"name": "X", "custom": []}, "custom"),
    ],
)
async def test_bad_party_body_is_422_with_field(crm, body, field):
    admin = await crm.user("admin")
    r = await crm.post("/api/parties", admin, json=body)
    assert r.status_code == 422, r.text
    errors = field_errors(r)
    assert any(f == field or f.startswith(field + ".") for f in errors), errors
    assert (await crm.get("/api/parties/count", admin)).json() == {"count": 0}


async def test_body_that_is_not_an_object(crm):
    admin = await crm.user("admin")
    for content in (b"{not json", b"[1, 2]", b"null", b""):
        r = await crm.post(
            "/api/parties", admin, content=content, headers={"Content-Type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (content, r.text)
        assert r.json()["status"] == r.status_code


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/api/parties", {"status": "eternal"}, "status"),
        ("/api/parties", {"owner_id": "me"}, "owner_id"),
        ("/api/parties", {"created_after": "yesterday"}, "created_after"),
        ("/api/parties", {"created_after": "2026-03-01T00:00:00"}, "created_after"),
        ("/api/activities", {"starts_before": "2026-03-01T00:00:00"}, "starts_before"),
        ("/api/tasks", {"deadline_before": "2026-03-01T00:00:00"}, "deadline_before"),
        ("/api/tasks", {"overdue": "perhaps"}, "overdue"),
        ("/api/parties", {"owner_id": str(BIG)}, "owner_id"),
        ("/api/contacts", {"party_id": str(BIG)}, "party_id"),
    ],
)
async def test_bad_query_is_422_with_field(crm, url, params, field):
    admin = await crm.user("admin")
    await new_party(crm, admin)
    r = await crm.get(url, admin, params=params)
    assert r.status_code == 422, r.text
    assert field in field_errors(r)
    r = await crm.get(f"{url}/count", admin, params=params)
    assert r.status_code == 422, r.text


async def test_huge_or_odd_ids_are_404_or_422_not_500(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    for path in ("parties", "contacts", "activities", "tasks", "notes", "attachments", "users"):
        r = await crm.get(f"/api/{path}/{BIG}", admin)
        assert r.status_code == 404, (path, r.text)
        assert (await crm.get(f"/api/{path}/0", admin)).status_code == 404
        assert (await crm.get(f"/api/{path}/-1", admin)).status_code == 404
        assert (await crm.delete(f"/api/{path}/{BIG}", admin)).status_code in (403, 404)
    assert (await crm.patch(f"/api/parties/{BIG}", admin, json={"name": "x"})).status_code == 404
    assert (await crm.get(f"/api/parties/{BIG}/card", admin)).status_code == 404
    assert (await crm.get(f"/api/tasks/{BIG}/handoffs", admin)).status_code == 404
    assert (await crm.get(f"/api/attachments/{BIG}/content", admin)).status_code == 404
    assert (await crm.get("/api/parties/abc", admin)).status_code in (404, 405)
    # References to impossible ids are a 422 on the field.
    before = await table_counts()
    cases = [
        ("/api/parties", {"name": "X", "owner_id": BIG}, "owner_id"),
        ("/api/parties", {"name": "X", "team_id": BIG}, "team_id"),
        ("/api/contacts", {"name": "X", "party_id": BIG}, "party_id"),
        ("/api/tasks", {"title": "X", "assignee_id": BIG}, "assignee_id"),
        ("/api/tasks", {"title": "X", "party_id": BIG}, "party_id"),
        ("/api/notes", {"body": "X", "party_id": BIG}, "party_id"),
        (
            "/api/activities",
            {
                "type": "call",
                "subject": "s",
                "starts_at": "2026-03-02T09:00:00Z",
                "participant_user_ids": [BIG],
            },
            "participant_user_ids",
        ),
        (
            "/api/activities",
            {"type": "call", "subject": "s", "starts_at": "2026-03-02T09:00:00Z", "contact_id": BIG},
            "contact_id",
        ),
    ]
    for url, body, field in cases:
        r = await crm.post(url, admin, json=body)
        assert r.status_code == 422, (url, body, r.text)
        assert any(f == field or f.startswith(field + ".") for f in field_errors(r)), (url, r.json())
    assert await table_counts() == before
    r = await crm.post(f"/api/tasks/{BIG}/handoff", admin, json={"to_user_id": admin["id"]})
    assert r.status_code == 404
    r = await crm.post("/api/tasks", admin, json={"title": "T"})
    r = await crm.post(f"/api/tasks/{r.json()['id']}/handoff", admin, json={"to_user_id": BIG})
    assert r.status_code == 422
    assert "to_user_id" in field_errors(r)
    assert (
        await crm.get(f"/api/parties/{party['id']}", admin, headers={"If-Match": "99999999999999"})
    ).status_code == 200
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"name": "Y", "version": BIG})
    assert r.status_code == 409


async def test_unauthenticated_and_forbidden_are_json(crm):
    r = await crm.get("/api/parties")
    assert r.status_code == 401
    assert r.json()["status"] == 401
    r = await crm.get("/api/parties", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    manager = await crm.user("manager")
    r = await crm.get("/api/audit", manager)
    assert r.status_code == 403
    assert r.json()["status"] == 403


async def test_openapi_lists_every_route_with_operation_id(crm):
    r = await crm.get("/schema/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    operations = {}
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                assert op.get("operationId"), (method, path)
                operations[op["operationId"]] = (method, path)
    assert len(operations) == sum(
        1 for item in schema["paths"].values() for m in item if m in {"get", "post", "put", "patch", "delete"}
    ), "operation ids must be unique"
    expected = {
        "list_party": ("get", "/api/parties"),
        "create_party": ("post", "/api/parties"),
        "count_party": ("get", "/api/parties/count"),
        "get_party": ("get", "/api/parties/{record_id}"),
        "update_party": ("patch", "/api/parties/{record_id}"),
        "delete_party": ("delete", "/api/parties/{record_id}"),
        "client_card": ("get", "/api/parties/{party_id}/card"),
        "party_participants": ("get", "/api/parties/{party_id}/participants"),
        "party_status_history": ("get", "/api/parties/{party_id}/status-history"),
        "list_contact": ("get", "/api/contacts"),
        "list_activity": ("get", "/api/activities"),
        "create_task": ("post", "/api/tasks"),
        "handoff_task": ("post", "/api/tasks/{task_id}/handoff"),
        "task_handoffs": ("get", "/api/tasks/{task_id}/handoffs"),
        "complete_task": ("post", "/api/tasks/{task_id}/complete"),
        "create_note": ("post", "/api/notes"),
        "upload_attachment": ("post", "/api/attachments/upload"),
        "download_attachment": ("get", "/api/attachments/{attachment_id}/content"),
        "set_custom_fields": ("put", "/api/custom-fields/{entity_type}"),
        "list_audit": ("get", "/api/audit"),
        "list_notifications": ("get", "/api/notifications"),
    }
    for op_id, where in expected.items():
        assert operations.get(op_id) == where, op_id
    # Filters are documented as query parameters.
    params = {p["name"] for p in schema["paths"]["/api/parties"]["get"]["parameters"]}
    assert {"q", "status", "relation", "tag", "phone_or_email", "cursor", "limit", "order"} <= params


async def test_values_longer_than_their_columns_are_422(crm):
    admin = await crm.user("admin")
    before = await table_counts()
    r = await crm.post("/api/parties", admin, json={"name": "X"}, headers={"Idempotency-Key": "k" * 201})
    assert r.status_code == 422, r.text
    assert "Idempotency-Key" in field_errors(r)
    long_name = "x" * 301 + ".txt"
    r = await crm.post("/api/attachments/upload", admin, files={"file": (long_name, b"x", "text/plain")})
    assert r.status_code == 422, r.text
    assert "file" in field_errors(r)
    r = await crm.post(
        "/api/attachments/upload",
        admin,
        files={"file": ("a.txt", b"x", "text/plain")},
        data={"subject_ref": "deal:" + "9" * 200},
    )
    assert r.status_code == 422, r.text
    assert "subject_ref" in field_errors(r)
    assert await table_counts() == before
    r = await crm.post(
        "/api/users", admin, json={"email": "tz@example.com", "name": "Tz", "timezone": "Mars/Olympus_Mons"}
    )
    assert r.status_code == 422, r.text
    assert "timezone" in field_errors(r)
    for params in ({"entity_id": str(BIG)}, {"before_id": str(BIG)}, {"user_id": "0"}):
        r = await crm.get("/api/audit", admin, params=params)
        assert r.status_code == 422, (params, r.text)
    assert (await crm.post(f"/api/notifications/{BIG}/read", admin)).status_code == 404


@pytest.mark.plugins("sales")
async def test_a_missing_query_parameter_is_named(crm) -> None:
    admin = await crm.user("admin")
    r = await crm.get("/api/sales/reports/funnel?date_from=2026-01-01", admin)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "date_to", "message": "is required", "source": "query"}]
