"""Request input every route inherits from the kernel (``tessera.api.input.InputGuard``):
nasty bodies are a 4xx with the JSON error shape on every route, blank required text is
refused and the rest trimmed, and a query parameter a route does not take is a 400 naming it.

Routes are enumerated from the app's OpenAPI (kernel, the sales plugin and the test-only probe
plugin), so a new route is covered without touching this test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from entity_helpers import field_errors, new_party, table_counts

PLUGINS = ("sales", "probe")
DEEP = 5000
#: Litestar refuses bodies over 10 MB (``request_max_body_size``): 413.
HUGE = b'{"name": "' + b"x" * 10_000_001 + b'"}'


def _operations(app: Any, with_body: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, operation) of every /api operation; path parameters filled with 1."""
    out = []
    for path, item in app.openapi_schema.to_schema()["paths"].items():
        if not path.startswith("/api/"):
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            if with_body and "requestBody" not in operation:
                continue
            out.append((method.upper(), url, operation))
    return out


def _nasty_bodies() -> list[tuple[str, bytes, str]]:
    deep_array = b"[" * DEEP + b"]" * DEEP
    deep_object = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    deep_inside = b'{"name": "x", "custom": {"k": ' + deep_array + b"}}"
    return [
        ("deep array", deep_array, "application/json"),
        ("deep object", deep_object, "application/json"),
        ("deep value inside a valid object", deep_inside, "application/json"),
        ("deep, sent as text/plain", deep_inside, "text/plain"),
        ("deep, sent as a form", deep_array, "application/x-www-form-urlencoded"),
        ("deep, sent as multipart", deep_array, "multipart/form-data; boundary=xyz"),
        ("huge", HUGE, "application/json"),
        ("wide", b"[" + b"[]," * 20_000 + b"[]]", "application/json"),
        ("not UTF-8", b'{"name": "\xff\xfe\xc3("}', "application/json"),
        ("not UTF-8, no type", b"\xff\xfe\x00\x01", ""),
        ("not JSON", b"{not json", "application/json"),
        ("empty", b"", "application/json"),
        ("blank", b"  \n ", "application/json"),
        ("null", b"null", "application/json"),
    ]


def _assert_client_error(r: Any, what: str) -> None:
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:300])
    field_errors(r)  # the documented {status, detail, errors} shape


@pytest.mark.plugins(*PLUGINS)
async def test_every_route_with_a_body_refuses_nasty_bodies_with_a_4xx(crm):
    admin = await crm.user("admin")
    await new_party(crm, admin)
    before = await table_counts()
    operations = _operations(crm.app, with_body=True)
    assert any(url == "/api/auth/login" for _, url, _ in operations)
    assert any(url.startswith("/api/sales/") for _, url, _ in operations)
    for method, url, operation in operations:
        users = [admin, None] if url.startswith("/api/auth/") else [admin]
        for user in users:
            for what, content, content_type in _nasty_bodies():
                if what in ("empty", "blank") and not operation["requestBody"].get("required"):
                    continue  # a body the route may go without: not an error
                headers = {"Content-Type": content_type} if content_type else {}
                r = await crm.call(method, url, user, content=content, headers=headers)
                _assert_client_error(r, f"{method} {url} {what}")
    assert await table_counts() == before


@pytest.mark.parametrize("url", ["/api/parties", "/api/tasks", "/api/auth/login"])
async def test_deeply_nested_json_is_a_400_not_a_recursion_error(crm, url):
    admin = await crm.user("admin")
    body = b'{"name": "x", "title": "x", "custom": {"k": ' + b"[" * 1000 + b"]" * 1000 + b"}}"
    for user in (admin, None):
        r = await crm.post(url, user, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert "nested deeper" in r.json()["detail"]
    # Nesting a real body needs (a custom field holding a small JSON document) still works.
    r = await crm.post("/api/parties", admin, json={"name": "Acme", "custom": {}})
    assert r.status_code == 201, r.text


async def test_a_missing_body_says_so(crm):
    admin = await crm.user("admin")
    for url in ("/api/parties", "/api/tasks", "/api/auth/login"):
        r = await crm.post(url, admin, content=b"", headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert field_errors(r) == {"body": r.json()["detail"]}
        assert "body is missing" in r.json()["detail"]
        assert "data" not in r.text


async def test_invalid_utf8_is_a_400_naming_the_body(crm):
    admin = await crm.user("admin")
    r = await crm.post(
        "/api/parties", admin, content=b'{"name": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert "UTF-8" in r.json()["detail"] and "body" in field_errors(r)


# --------------------------------------------------------------------------- required text


@pytest.mark.plugins("sales")
async def test_blank_required_text_is_refused_everywhere(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    before = await table_counts()
    cases = [
        ("POST", "/api/parties", {"name": "   "}, "name"),
        ("POST", "/api/parties", {"name": "\t\n "}, "name"),
        ("POST", "/api/parties", {"name": "Acme", "phones": [{"number": "  "}]}, "phones.0.number"),
        ("POST", "/api/parties", {"name": "Acme", "tags": ["ok", " "]}, "tags.1"),
        ("PATCH", f"/api/parties/{party['id']}", {"name": "  "}, "name"),
        ("POST", "/api/contacts", {"name": " ", "party_id": party["id"]}, "name"),
        ("POST", "/api/tasks", {"title": "  "}, "title"),
        ("POST", "/api/notes", {"body": "\n\n", "party_id": party["id"]}, "body"),
        ("POST", "/api/teams", {"name": " "}, "name"),
        ("POST", "/api/sales/deals", {"title": "   ", "party_id": party["id"]}, "title"),
    ]
    for method, url, body, field in cases:
        r = await crm.call(method, url, admin, json=body)
        assert r.status_code == 422, (url, body, r.text)
        assert field_errors(r).get(field) == "must not be blank", (url, r.json())
    assert await table_counts() == before
    assert (await crm.get(f"/api/parties/{party['id']}", admin)).json()["name"] == "Acme"


@pytest.mark.plugins("sales")
async def test_required_text_is_trimmed(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin, name="  Acme Ltd \n", phones=[{"number": " +74951234567 "}])
    assert party["name"] == "Acme Ltd"
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"name": " Acme Group "})
    assert r.json()["name"] == "Acme Group"
    r = await crm.post("/api/sales/deals", admin, json={"title": "  Big deal  ", "party_id": party["id"]})
    assert r.status_code == 201, r.text
    assert r.json()["title"] == "Big deal"
    # Text a client may leave empty is not refused.
    r = await crm.post("/api/parties", admin, json={"name": "B", "tax_id": "   "})
    assert r.status_code == 201, r.text


async def test_passwords_are_not_trimmed(crm):
    admin = await crm.user("admin")
    email = "spaces@example.com"
    r = await crm.post(
        "/api/users",
        admin,
        json={"email": email, "name": "Spaces", "password": "  padded secret  ", "roles": ["manager"]},
    )
    assert r.status_code == 201, r.text
    ok = await crm.post("/api/auth/login", json={"email": email, "password": "  padded secret  "})
    assert ok.status_code == 200, ok.text
    trimmed = await crm.post("/api/auth/login", json={"email": email, "password": "padded secret"})
    assert trimmed.status_code == 401, trimmed.text
    blank = await crm.post("/api/auth/login", json={"email": email, "password": "   "})
    assert blank.status_code == 422 and field_errors(blank) == {"password": "must not be blank"}


# --------------------------------------------------------------------------- query parameters


async def test_a_misspelt_filter_is_a_400_naming_it(crm):
    admin = await crm.user("admin")
    await new_party(crm, admin, name="Client")
    await new_party(crm, admin, name="Rival", relations=["competitor"])
    r = await crm.get("/api/parties", admin, params={"relations": "competitor"})
    assert r.status_code == 400, r.text
    assert field_errors(r) == {"relations": "is not a parameter of this route"}
    assert "relation," in r.json()["detail"]  # the parameters it does take are listed
    r = await crm.get("/api/parties", admin, params={"relation": "competitor", "limit": 10, "order": "name"})
    assert r.status_code == 200 and [p["name"] for p in r.json()["items"]] == ["Rival"]
    r = await crm.get("/api/parties/count", admin, params={"relations": "competitor"})
    assert r.status_code == 400, r.text


@pytest.mark.plugins(*PLUGINS)
async def test_every_api_route_refuses_a_query_parameter_it_does_not_take(crm):
    admin = await crm.user("admin")
    before = await table_counts()
    for method, url, operation in _operations(crm.app, with_body=False):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert "zz_unknown" not in declared
        r = await crm.call(method, url, admin, params={"zz_unknown": "1"})
        assert r.status_code == 400, (method, url, r.text)
        assert "zz_unknown" in field_errors(r), (method, url, r.json())
    assert await table_counts() == before


@pytest.mark.plugins("sales")
async def test_html_pages_keep_their_own_and_foreign_query_parameters(crm):
    manager = await crm.user("manager")
    await new_party(crm, manager, name="Findable Ltd")
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": manager["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303, r.text
    page = await crm.client.get("/app/parties", params={"q": "Findable", "utm_source": "mail"})
    assert page.status_code == 200 and "Findable Ltd" in page.text
    page = await crm.client.get("/sales/deals", params={"stage": "qualification", "utm_source": "mail"})
    assert page.status_code == 200, page.text[:300]
