"""HTTP-level protections of every route (issue 14.5, 14.6, 13.8, 13.9; docs/security.md):

* every response of every GET route, pages and downloads included (enumerated from the app),
  carries the security headers and one well-formed Content-Type, and no page has an inline
  script (the CSP forbids them);
* an unsafe request from another origin is refused even with the right CSRF token;
* the client address behind the sign-in throttle comes from ``X-Forwarded-For`` only when the
  peer is a configured trusted proxy, in-process and through the real ``tessera serve``;
* the OpenAPI pages load their viewers from the package, not from a CDN;
* an unknown page answers the HTML error page, not the API's JSON.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from litestar.routes import HTTPRoute
from tessera_sdk.live import LiveServer

PASSWORD = "correct-horse-battery"
pytestmark = pytest.mark.plugins("sales")


async def _sign_in(crm: Any, user: dict[str, Any]) -> str:
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 303, r.text
    page = await crm.client.get("/app")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def _header_problems(url: str, response: httpx.Response) -> list[str]:
    h = response.headers
    problems = []
    csp = h.get("content-security-policy", "")
    script_src = re.search(r"(?:^|;)\s*script-src ([^;]*)", csp)
    if not script_src or "'unsafe-inline'" in script_src.group(1) or "'unsafe-eval'" in csp:
        problems.append(f"{url}: CSP without a strict script-src: {csp!r}")
    if "frame-ancestors 'none'" not in csp or h.get("x-frame-options") != "DENY":
        problems.append(f"{url}: may be framed")
    if h.get("x-content-type-options") != "nosniff":
        problems.append(f"{url}: no nosniff")
    if h.get("referrer-policy") != "same-origin":
        problems.append(f"{url}: no Referrer-Policy")
    types = h.get_list("content-type")
    if response.content and len(types) != 1:
        problems.append(f"{url}: {len(types)} Content-Type headers")
    for value in types:
        params = [p.split("=")[0].strip().lower() for p in value.split(";")[1:]]
        if len(params) != len(set(params)) or value.count("/") != 1:
            problems.append(f"{url}: malformed Content-Type {value!r}")
    if "text/html" in h.get("content-type", "") and "attachment" not in h.get("content-disposition", ""):
        inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
        if inline:
            problems.append(f"{url}: inline script {inline[:2]}")
    return problems


def _fill(path: str, ids: dict[str, int]) -> str:
    def value(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2)
        if kind == "path":
            return "/openapi/swagger-init.js"
        if kind in ("int", "integer"):
            return str(ids.get(name, ids["any"]))
        return "x"

    return re.sub(r"\{(\w+):(\w+)\}", value, path)


async def test_every_get_route_sends_the_security_headers(crm: Any) -> None:
    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Acme"})).json()
    attachment = (
        await crm.post(
            "/api/attachments/upload",
            admin,
            files={"file": ("notes.html", b"<script>alert(1)</script>", "text/html")},
            data={"party_id": str(party["id"])},
        )
    ).json()
    ids = {"any": party["id"], "attachment_id": attachment["id"], "party_id": party["id"]}
    await _sign_in(crm, admin)

    paths = sorted(
        {route.path for route in crm.app.routes if isinstance(route, HTTPRoute) and "GET" in route.methods}
    )
    assert any(p.startswith("/sales/") for p in paths)  # plugin pages are in the walk
    # An event stream answers by holding the connection for its ``wait`` (55 s by default, most
    # of this test's time): ``wait=0`` sends the same headers at once.
    schema = (await crm.client.get("/schema/openapi.json")).json()
    waits = {
        p
        for p, item in schema["paths"].items()
        if any(q["name"] == "wait" for q in item.get("get", {}).get("parameters", []))
    }
    assert "/api/telephony/stream" in waits
    problems: list[str] = []
    seen: dict[str, int] = {}
    for path in paths:
        url = _fill(path, ids)
        # as the signed-in user (session cookie)
        response = await crm.client.get(url, params={"wait": 0} if path in waits else None)
        seen[url] = response.status_code
        assert response.status_code < 500, (url, response.text[:300])
        problems += _header_problems(url, response)
    # Error answers too (unknown page, unknown API path, signed out).
    for url in ("/app/does-not-exist", "/api/does-not-exist", "/sales/nothing-here"):
        problems += _header_problems(url, await crm.client.get(url))
    crm.client.cookies.clear()
    problems += _header_problems("/app (signed out)", await crm.client.get("/app"))
    assert problems == []

    # The walk really went through pages and downloads, not only through refusals.
    pages = [u for u, s in seen.items() if s == 200 and not u.startswith(("/api/", "/static/"))]
    assert {"/app", "/login", f"/app/parties/{party['id']}", "/sales/deals", "/schema/swagger"} <= set(pages)
    download = f"/api/attachments/{attachment['id']}/content"
    assert seen[download] == 200
    served = await crm.get(download, admin)  # an uploaded HTML file is a download, not a page
    assert served.headers["content-disposition"].startswith("attachment")
    assert seen["/api/parties/export"] == 200


async def test_html_pages_send_one_charset(crm: Any) -> None:
    r = await crm.client.get("/login")
    assert r.headers.get_list("content-type") == ["text/html; charset=utf-8"]


async def test_cross_origin_unsafe_requests_are_refused_despite_the_csrf_token(crm: Any) -> None:
    manager = await crm.user("manager")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    token = await _sign_in(crm, manager)
    url = f"/app/parties/{party['id']}/activities"
    form = {"csrf_token": token, "type": "call", "subject": "Forged from elsewhere"}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        r = await crm.client.post(url, data=form, headers=headers)
        assert r.status_code == 403, headers
        api = await crm.client.post(
            "/api/parties", json={"name": "Forged"}, headers={**headers, "X-CSRF-Token": token}
        )
        assert api.status_code == 403, headers
    login = await crm.client.post(
        "/login",
        data={"email": manager["email"], "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert login.status_code == 403
    acts = (await crm.get("/api/activities", manager, params={"party_id": party["id"]})).json()["items"]
    assert acts == []
    names = [p["name"] for p in (await crm.get("/api/parties", manager)).json()["items"]]
    assert names == ["Acme"]

    # The same requests from our own pages pass; API tokens are not cookies and need no Origin.
    ok = await crm.client.post(
        url, data={**form, "subject": "From the card"}, headers={"Origin": "http://testserver"}
    )
    assert ok.status_code == 303
    same_site = await crm.client.post(
        "/api/parties",
        json={"name": "Same origin"},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": token},
    )
    assert same_site.status_code == 201
    crm.client.cookies.clear()
    bearer = await crm.post(
        "/api/parties", manager, json={"name": "Script"}, headers={"Origin": "https://tool.example"}
    )
    assert bearer.status_code == 201


# --------------------------------------------------------------------------- client address


async def _failures_then_attempt(client: httpx.AsyncClient, email: str, limit: int) -> int:
    """``limit`` wrong passwords, each claiming another X-Forwarded-For, then one more: its status."""
    for attempt in range(limit):
        r = await client.post(
            "/api/auth/login",
            json={"email": email, "password": "wrong-password"},
            headers={"X-Forwarded-For": f"198.51.100.{attempt + 1}"},
        )
        assert r.status_code == 401, r.text
    last = await client.post(
        "/api/auth/login",
        json={"email": email, "password": "wrong-password"},
        headers={"X-Forwarded-For": "198.51.100.250"},
    )
    return last.status_code


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    crm: Any, frozen_clock: Any
) -> None:
    user = await crm.user("manager")
    other = await crm.user("manager")
    limit = crm.settings.login_max_failures

    def client() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=crm.app, client=("127.0.0.1", 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async with client() as local:
        # Default: no trusted proxy. Rotating the header does not make a new client.
        assert await _failures_then_attempt(local, user["email"], limit) == 429
    crm.app.state.settings = crm.settings.with_(trusted_proxies=("127.0.0.0/8",))
    try:
        async with client() as proxy:
            # Behind a configured proxy each forwarded address is its own client ...
            assert await _failures_then_attempt(proxy, other["email"], limit) == 401
            # ... and a client cannot hide behind an address it prepends itself.
            for _ in range(limit):
                await proxy.post(
                    "/api/auth/login",
                    json={"email": other["email"], "password": "wrong-password"},
                    headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.5"},
                )
            r = await proxy.post(
                "/api/auth/login",
                json={"email": other["email"], "password": "wrong-password"},
                headers={"X-Forwarded-For": "10.1.1.1, 203.0.113.5"},
            )
            assert r.status_code == 429
    finally:
        crm.app.state.settings = crm.settings


async def test_tessera_serve_does_not_trust_forwarded_for_by_default(crm: Any) -> None:
    """The real server (uvicorn) on loopback: it used to believe X-Forwarded-For from 127.0.0.1."""
    user = await crm.user("manager")
    other = await crm.user("manager")
    limit = crm.settings.login_max_failures
    server = LiveServer(crm.settings.resolved_database_url, crm.settings.data_dir / "live")
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            assert await _failures_then_attempt(client, user["email"], limit) == 429
    finally:
        await asyncio.to_thread(server.stop)
    trusting = LiveServer(
        crm.settings.resolved_database_url,
        crm.settings.data_dir / "live-proxy",
        env={"TESSERA_TRUSTED_PROXIES": "127.0.0.1"},
    )
    await asyncio.to_thread(trusting.start)
    try:
        async with httpx.AsyncClient(base_url=trusting.url, timeout=30) as client:
            assert await _failures_then_attempt(client, other["email"], limit) == 401
    finally:
        await asyncio.to_thread(trusting.stop)


# --------------------------------------------------------------------------- OpenAPI pages, errors


async def test_openapi_pages_load_only_packaged_assets(crm: Any) -> None:
    for url, root in (("/schema", "redoc"), ("/schema/swagger", "swagger-ui"), ("/schema/redoc", "redoc")):
        r = await crm.client.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
        assert f'id="{root}" data-spec-url="/schema/openapi.json"' in r.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets and all(a.startswith("/static/openapi/") for a in assets), assets
        assert "http" not in r.text.lower()  # no CDN, no absolute URL at all
        for asset in assets:
            got = await crm.client.get(asset)
            assert got.status_code == 200 and len(got.content) > 100, asset
            kind = "text/css" if asset.endswith(".css") else "text/javascript"
            assert got.headers["content-type"].startswith(kind), asset
    assert (await crm.client.get("/schema/openapi.json")).json()["info"]["title"] == "Tessera CRM"


async def test_unknown_pages_answer_the_html_error_page(crm: Any) -> None:
    manager = await crm.user("manager")
    await _sign_in(crm, manager)
    for url in ("/app/does-not-exist", "/app/parties/not-a-number", "/sales/nothing-here"):
        r = await crm.client.get(url, headers={"Accept": "text/html,application/xhtml+xml"})
        assert r.status_code == 404, url
        assert r.headers["content-type"] == "text/html; charset=utf-8", url
        assert "There is no such page." in r.text and '"status"' not in r.text
    wrong_method = await crm.client.delete("/app")
    assert wrong_method.status_code == 405 and "text/html" in wrong_method.headers["content-type"]
    # The API keeps its JSON errors.
    api = await crm.client.get("/api/does-not-exist")
    assert api.status_code == 404 and api.json()["status"] == 404


def test_trusted_proxies_setting_is_read_and_checked() -> None:
    from tessera.config import load_settings

    env = {"TESSERA_CONFIG": "/nonexistent.toml", "TESSERA_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"}
    assert load_settings(env=env).trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert load_settings(env={"TESSERA_CONFIG": "/nonexistent.toml"}).trusted_proxies == ()
    with pytest.raises(ValueError, match="trusted_proxies"):
        load_settings(env={"TESSERA_CONFIG": "/nonexistent.toml", "TESSERA_TRUSTED_PROXIES": "proxy.lan"})


async def test_behind_a_trusted_proxy_the_forwarded_host_is_the_origin_to_match(crm: Any) -> None:
    manager = await crm.user("manager")
    token = await _sign_in(crm, manager)
    headers = {
        "Origin": "https://crm.example.com",
        "X-Forwarded-Host": "crm.example.com",
        "X-CSRF-Token": token,
    }
    # From an untrusted peer the header is the client's claim: refused.
    assert (await crm.client.post("/api/parties", json={"name": "A"}, headers=headers)).status_code == 403
    crm.app.state.settings = crm.settings.with_(trusted_proxies=("127.0.0.1",))
    try:
        transport = httpx.ASGITransport(app=crm.app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=crm.client.cookies
        ) as proxy:
            r = await proxy.post("/api/parties", json={"name": "Via the proxy"}, headers=headers)
            assert r.status_code == 201, r.text
            evil = {**headers, "Origin": "https://evil.example"}
            assert (await proxy.post("/api/parties", json={"name": "B"}, headers=evil)).status_code == 403
    finally:
        crm.app.state.settings = crm.settings
