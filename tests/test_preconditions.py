"""HTTP preconditions on writes (RFC 9110 / RFC 6585): a stale ``If-Match`` is 412 with the
current version, a stale ``version`` in the body stays 409, and the ``require_preconditions``
setting turns a blind change or delete of a versioned record into 428. Checked on every
versioned entity route, kernel and plugin alike (they share ``tessera.api.crud``)."""

from __future__ import annotations

from typing import Any

import pytest
from entity_helpers import field_errors, new_party

#: A text field each entity can change.
FIELD = {
    "parties": "name",
    "contacts": "name",
    "tasks": "title",
    "notes": "body",
    "activities": "subject",
    "deals": "title",
}


def _change(url: str, value: str) -> dict[str, str]:
    return {FIELD[url.split("/")[-2]]: value}


async def _records(crm: Any, user: dict[str, Any]) -> list[str]:
    """One record of each versioned entity; their URLs."""
    party = await new_party(crm, user, name="Precondition Ltd")
    bodies = {
        "/api/parties": None,
        "/api/contacts": {"party_id": party["id"], "name": "Ann"},
        "/api/tasks": {"title": "Call back", "party_id": party["id"]},
        "/api/notes": {"party_id": party["id"], "body": "note"},
        "/api/activities": {
            "type": "call",
            "subject": "Hi",
            "starts_at": "2026-03-02T10:00:00Z",
            "party_id": party["id"],
        },
        "/api/sales/deals": {"party_id": party["id"], "title": "Deal", "amount": "100.00"},
    }
    urls = []
    for base, body in bodies.items():
        if body is None:
            urls.append(f"{base}/{party['id']}")
            continue
        r = await crm.post(base, user, json=body)
        assert r.status_code == 201, r.text
        urls.append(f"{base}/{r.json()['id']}")
    return urls


@pytest.mark.plugins("sales")
async def test_stale_if_match_is_412_and_stale_body_version_is_409(crm):
    admin = await crm.user("admin")
    for url in reversed(await _records(crm, admin)):  # the party last: the others refer to it
        assert (await crm.get(url, admin)).headers["etag"] == '"1"', url
        r = await crm.patch(url, admin, json=_change(url, "one"), headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.json()["version"] == 2, (url, r.text)

        r = await crm.patch(url, admin, json=_change(url, "two"), headers={"If-Match": '"1"'})
        assert r.status_code == 412, (url, r.text)
        assert r.json()["current_version"] == 2
        assert "If-Match" in field_errors(r)

        r = await crm.patch(url, admin, json=_change(url, "two") | {"version": 1})
        assert r.status_code == 409, (url, r.text)
        assert r.json()["current_version"] == 2

        r = await crm.delete(url, admin, headers={"If-Match": '"1"'})
        assert r.status_code == 412, (url, r.text)
        assert r.json()["current_version"] == 2
        current = (await crm.get(url, admin)).json()
        assert current["version"] == 2 and current[FIELD[url.split("/")[-2]]] == "one"  # nothing was written
        assert (await crm.delete(url, admin, headers={"If-Match": '"2"'})).status_code == 204


@pytest.mark.plugins("sales")
async def test_required_preconditions_refuse_blind_writes_with_428(crm):
    admin = await crm.user("admin")
    urls = await _records(crm, admin)
    # Off (the default): an unconditional change applies.
    assert (await crm.patch(urls[0], admin, json=_change(urls[0], "blind"))).status_code == 200

    crm.app.state.settings = crm.settings.with_(require_preconditions=True)
    for url in urls:
        version = (await crm.get(url, admin)).json()["version"]
        r = await crm.patch(url, admin, json=_change(url, "five"))
        assert r.status_code == 428, (url, r.text)
        assert "If-Match" in field_errors(r)
        assert (await crm.delete(url, admin)).status_code == 428
        assert (await crm.get(url, admin)).json()["version"] == version  # nothing was written

        r = await crm.patch(url, admin, json=_change(url, "six"), headers={"If-Match": f'"{version}"'})
        assert r.status_code == 200, r.text
        r = await crm.patch(url, admin, json=_change(url, "seven") | {"version": version + 1})
        assert r.status_code == 200, r.text
    # Records without a version (teams, users ...) have nothing to be stale against.
    team = await crm.team("Blind")
    assert (await crm.patch(f"/api/teams/{team['id']}", admin, json={"name": "Renamed"})).status_code == 200
    assert (await crm.delete(urls[1], admin, headers={"If-Match": '"3"'})).status_code == 204


@pytest.mark.plugins("sales")
async def test_openapi_declares_412_and_428_on_every_conditional_write(crm):
    schema = (await crm.get("/schema/openapi.json")).json()
    conditional = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            headers = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
            if "if-match" not in headers:
                continue
            conditional += 1
            assert method in {"patch", "put", "delete"}, (method, path)
            responses = operation["responses"]
            for code in ("409", "412", "428"):
                assert code in responses, (method, path, code)
                body = responses[code]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/Error"}
    assert conditional >= 12  # PATCH and DELETE of parties, contacts, tasks, notes, activities, deals
