"""Security gaps closed in issue 7 (the rest of the security model is tested in test_auth.py,
test_web.py and test_visibility.py; docs/security.md lists where each property is proven):

* sign-in throttling per (client address, login) that treats unknown logins exactly like real
  accounts, so neither the status, the body nor the lockout reveals which e-mails exist;
* sessions that end after an idle period (sliding) and at an absolute lifetime;
* meeting participants read the activity they take part in (lists, counts, search), and only it;
* refused exports are audited and reported to the administrators like successful ones;
* the OpenAPI documents the error body every route actually answers with.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PASSWORD = "correct-horse-battery"


def _client_from(crm: Any, address: str) -> httpx.AsyncClient:
    """An HTTP client whose requests come from ``address`` (the ASGI peer address)."""
    transport = httpx.ASGITransport(app=crm.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    client.cookies.clear()
    return await client.post("/api/auth/login", json={"email": email, "password": password})


def _shape(response: httpx.Response) -> tuple[int, Any, str | None, bool]:
    """What a client can observe: status, body, whether Retry-After is sent, a cookie."""
    return (
        response.status_code,
        response.json(),
        "retry-after" in response.headers and "present",
        "tessera_session" in response.cookies,
    )


# --------------------------------------------------------------------------- login throttling


async def test_unknown_and_known_logins_are_indistinguishable_through_lockout(
    crm: Any, frozen_clock: Any
) -> None:
    user = await crm.user("manager")
    ghost = "nobody-here@example.com"
    limit = crm.settings.login_max_failures
    async with _client_from(crm, "203.0.113.7") as attacker:
        for attempt in range(limit):
            known = await _login(attacker, user["email"], "wrong-password")
            unknown = await _login(attacker, ghost, "wrong-password")
            assert _shape(known) == _shape(unknown), attempt
            assert known.status_code == 401
        known = await _login(attacker, user["email"], "wrong-password")
        unknown = await _login(attacker, ghost, "wrong-password")
        assert known.status_code == unknown.status_code == 429
        assert _shape(known) == _shape(unknown)
        assert known.json()["detail"] == unknown.json()["detail"]
        assert int(known.headers["retry-after"]) == int(unknown.headers["retry-after"]) > 0
        # Locked means locked: even the right password from that address is refused.
        assert (await _login(attacker, user["email"], PASSWORD)).status_code == 429


async def test_lockout_is_per_address_and_login(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    other = await crm.user("manager")
    async with _client_from(crm, "203.0.113.7") as attacker, _client_from(crm, "198.51.100.2") as office:
        for _ in range(crm.settings.login_max_failures):
            await _login(attacker, user["email"], "wrong-password")
        assert (await _login(attacker, user["email"], PASSWORD)).status_code == 429
        # The real user at another address signs in; the attacker's address may still try others.
        assert (await _login(office, user["email"], PASSWORD)).status_code == 200
        assert (await _login(attacker, other["email"], PASSWORD)).status_code == 200
        frozen_clock.advance(seconds=crm.settings.login_lockout_seconds + 1)
        assert (await _login(attacker, user["email"], PASSWORD)).status_code == 200


async def test_a_login_guessed_from_many_addresses_is_locked_everywhere(crm: Any) -> None:
    crm.app.state.settings = crm.settings.with_(login_max_failures_any_address=6)
    user = await crm.user("manager")
    for i in range(6):  # 2 per address: no single address reaches its own limit of 5
        async with _client_from(crm, f"192.0.2.{i // 2 + 1}") as bot:
            assert (await _login(bot, user["email"], "wrong-password")).status_code == 401
    async with _client_from(crm, "192.0.2.200") as fresh:
        assert (await _login(fresh, user["email"], PASSWORD)).status_code == 429
        unknown = await _login(fresh, "ghost@example.com", "wrong-password")
        assert unknown.status_code == 401  # other logins are untouched


async def test_failures_within_the_window_count_older_ones_expire(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    limit = crm.settings.login_max_failures
    async with _client_from(crm, "203.0.113.9") as client:
        for _ in range(limit - 1):
            await _login(client, user["email"], "wrong-password")
        frozen_clock.advance(seconds=crm.settings.login_lockout_seconds + 1)
        for _ in range(limit - 1):  # a new window: still below the limit
            assert (await _login(client, user["email"], "wrong-password")).status_code == 401
        assert (await _login(client, user["email"], PASSWORD)).status_code == 200


async def test_failed_and_locked_logins_are_audited_with_the_address(crm: Any) -> None:
    admin = await crm.user("admin")
    async with _client_from(crm, "203.0.113.50") as client:
        for _ in range(crm.settings.login_max_failures + 1):
            await _login(client, "ghost@example.com", "wrong-password")
    failed = (await crm.get("/api/audit", admin, params={"action": "login_failed"})).json()
    locked = (await crm.get("/api/audit", admin, params={"action": "login_locked"})).json()
    assert len(failed) == crm.settings.login_max_failures
    assert all("203.0.113.50" in e["detail"] for e in failed + locked)
    assert len(locked) == 1


# --------------------------------------------------------------------------- session lifetime


async def _session(crm: Any, user: dict[str, Any]) -> str:
    crm.client.cookies.clear()
    r = await crm.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    crm.client.cookies.clear()
    return str(r.cookies["tessera_session"])


async def _me(crm: Any, session: str) -> int:
    crm.client.cookies.clear()
    crm.client.cookies.set("tessera_session", session)
    try:
        return int((await crm.get("/api/auth/me")).status_code)
    finally:
        crm.client.cookies.clear()


async def test_idle_session_ends_after_the_idle_timeout(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    session = await _session(crm, user)
    frozen_clock.advance(seconds=crm.settings.session_idle - 5)
    assert await _me(crm, session) == 200  # used: the idle deadline slides
    frozen_clock.advance(seconds=crm.settings.session_idle - 5)
    assert await _me(crm, session) == 200
    frozen_clock.advance(seconds=crm.settings.session_idle + 1)
    assert await _me(crm, session) == 401


async def test_busy_session_still_ends_at_its_absolute_lifetime(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    session = await _session(crm, user)
    step = crm.settings.session_idle // 2
    used = 0
    while used + step < crm.settings.session_ttl:
        frozen_clock.advance(seconds=step)
        used += step
        assert await _me(crm, session) == 200, used
    frozen_clock.advance(seconds=crm.settings.session_ttl - used + 1)
    assert await _me(crm, session) == 401


async def test_web_pages_slide_and_end_the_session_too(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    session = await _session(crm, user)
    crm.client.cookies.set("tessera_session", session)
    try:
        assert (await crm.get("/app")).status_code == 200
        frozen_clock.advance(seconds=crm.settings.session_idle + 1)
        r = await crm.get("/app")
        assert r.status_code in (302, 303) and r.headers["location"].endswith("/login")
    finally:
        crm.client.cookies.clear()


async def test_login_reports_the_absolute_end_and_the_cookie_flags(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    crm.app.state.settings = crm.settings.with_(secure_cookies=True)
    crm.client.cookies.clear()
    r = await crm.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    crm.client.cookies.clear()
    assert r.status_code == 200
    flags = [part.strip().lower() for part in r.headers["set-cookie"].split(";")]
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= set(flags)
    assert f"max-age={crm.settings.session_ttl}" in flags
    from datetime import datetime, timedelta

    ends = datetime.fromisoformat(r.json()["expires_at"])
    assert ends == frozen_clock() + timedelta(seconds=crm.settings.session_ttl)


# --------------------------------------------------------------------------- participants


async def _meeting(crm: Any, owner: dict[str, Any], participants: list[int], marker: str) -> dict[str, Any]:
    party = (await crm.post("/api/parties", owner, json={"name": f"Client of {marker}"})).json()
    r = await crm.post(
        "/api/activities",
        owner,
        json={
            "type": "meeting",
            "subject": f"Meeting {marker}",
            "agreements": f"agreed {marker}",
            "starts_at": "2026-03-03T10:00:00Z",
            "party_id": party["id"],
            "participant_user_ids": participants,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_meeting_participant_reads_the_activity_and_nothing_else(crm: Any) -> None:
    team_a = await crm.team()
    team_b = await crm.team()
    owner = await crm.user("manager", team_id=team_a["id"])
    guest = await crm.user("manager", team_id=team_b["id"])
    outsider = await crm.user("manager", team_id=team_b["id"])
    meeting = await _meeting(crm, owner, [guest["id"]], "zqxparticipant")

    assert (await crm.get(f"/api/activities/{meeting['id']}", guest)).status_code == 200
    listed = (await crm.get("/api/activities", guest)).json()
    assert [a["id"] for a in listed["items"]] == [meeting["id"]]
    assert (await crm.get("/api/activities/count", guest)).json()["count"] == 1
    hits = (await crm.get("/api/search", guest, params={"q": "zqxparticipant"})).json()
    assert [h["id"] for h in hits["hits"] if h["type"] == "activity"] == [meeting["id"]]
    # Taking part in a meeting does not open the client or the rest of its history.
    assert (await crm.get(f"/api/parties/{meeting['party_id']}", guest)).status_code == 404
    assert (await crm.get(f"/api/parties/{meeting['party_id']}/card", guest)).status_code == 404
    # ... nor may the guest change or delete the owner's activity beyond reading it? They may
    # not delete it: deleting needs activity.delete, which managers do not hold.
    assert (await crm.delete(f"/api/activities/{meeting['id']}", guest)).status_code in (403, 404)

    assert (await crm.get(f"/api/activities/{meeting['id']}", outsider)).status_code == 404
    assert (await crm.get("/api/activities/count", outsider)).json()["count"] == 0
    hits = (await crm.get("/api/search", outsider, params={"q": "zqxparticipant"})).json()
    assert hits["hits"] == [] and hits["total"] == 0 and hits["facets"]["type"] == {}


async def test_removing_the_participant_removes_the_visibility(crm: Any) -> None:
    owner = await crm.user("manager")
    guest = await crm.user("manager")
    meeting = await _meeting(crm, owner, [guest["id"]], "zqxremoved")
    assert (await crm.get(f"/api/activities/{meeting['id']}", guest)).status_code == 200
    r = await crm.patch(
        f"/api/activities/{meeting['id']}",
        owner,
        json={"participant_user_ids": []},
        headers={"If-Match": str(meeting["version"])},
    )
    assert r.status_code == 200, r.text
    assert (await crm.get(f"/api/activities/{meeting['id']}", guest)).status_code == 404
    hits = (await crm.get("/api/search", guest, params={"q": "zqxremoved"})).json()
    assert hits["hits"] == []


async def test_substitute_of_a_participant_reads_the_meeting_during_the_absence(
    crm: Any, frozen_clock: Any
) -> None:
    admin = await crm.user("admin")
    owner = await crm.user("manager")
    guest = await crm.user("manager")
    deputy = await crm.user("manager")
    meeting = await _meeting(crm, owner, [guest["id"]], "zqxdeputy")
    assert (await crm.get(f"/api/activities/{meeting['id']}", deputy)).status_code == 404
    now = frozen_clock()
    r = await crm.post(
        "/api/substitutions",
        admin,
        json={
            "absent_user_id": guest["id"],
            "substitute_id": deputy["id"],
            "starts_at": now.isoformat(),
            "ends_at": (now.replace(day=now.day + 2)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    assert (await crm.get(f"/api/activities/{meeting['id']}", deputy)).status_code == 200


# --------------------------------------------------------------------------- exports


@pytest.mark.parametrize("rows", [3])
async def test_export_over_the_limit_is_refused_audited_and_reported(crm: Any, rows: int) -> None:
    admin = await crm.user("admin")
    head = await crm.user("head", name="Departing Head")
    for i in range(rows):
        await crm.post("/api/parties", head, json={"name": f"Client {i}"})
    crm.app.state.settings = crm.settings.with_(export_row_limit=rows - 1)
    r = await crm.get("/api/parties/export", head)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "filters"
    assert "Client 0" not in r.text
    audit = (await crm.get("/api/audit", admin, params={"action": "export_refused"})).json()
    assert [(e["user_id"], e["changes"]["rows"]) for e in audit] == [(head["id"], [None, rows])]
    inbox = (await crm.get("/api/notifications", admin)).json()
    assert any("Departing Head" in n["title"] and "refused" in n["title"] for n in inbox)

    crm.app.state.settings = crm.settings.with_(export_row_limit=rows)
    assert (await crm.get("/api/parties/export", head)).status_code == 200
    inbox = (await crm.get("/api/notifications", admin)).json()
    assert any(n["kind"] == "export" and f"exported clients: {rows}" in n["title"] for n in inbox)


# --------------------------------------------------------------------------- errors in the OpenAPI


async def test_openapi_documents_the_error_body_routes_answer_with(crm: Any) -> None:
    schema = (await crm.get("/schema/openapi.json")).json()
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"status", "detail", "errors"}
    party = schema["paths"]["/api/parties/{record_id}"]
    assert {"401", "403", "404", "409", "422"} <= set(party["patch"]["responses"])
    assert "content" not in party["delete"]["responses"]["204"]
    login = schema["paths"]["/api/auth/login"]["post"]["responses"]
    assert "429" in login and "401" in login
    for path, item in schema["paths"].items():
        for method, op in item.items():
            for code, response in op.get("responses", {}).items():
                if code >= "400":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, code)
    # ... and the bodies are what the schema says, for a malformed body too.
    admin = await crm.user("admin")
    r = await crm.post("/api/parties", admin, content=b"\x00", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["errors"] == [{"field": "body", "message": r.json()["detail"], "source": "body"}]


async def test_out_of_range_ids_are_422_naming_the_parameter(crm: Any) -> None:
    admin = await crm.user("admin")
    r = await crm.delete("/api/auth/tokens/99999999999999999999", admin)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "token_id"


@pytest.mark.plugins("sales")
async def test_database_refusals_are_4xx_naming_the_field(crm: Any) -> None:
    """Constraints and integer ranges the database enforces (found by the fuzzer as 500s)."""
    admin = await crm.user("admin")
    r = await crm.post("/api/sales/loss-reasons", admin, json={"name": "Too far", "position": 2**70})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["position"]
    assert (await crm.post("/api/sales/loss-reasons", admin, json={"name": "Too far"})).status_code == 201
    r = await crm.post("/api/sales/loss-reasons", admin, json={"name": "Too far"})
    assert r.status_code in (409, 422), r.text
    assert [e["field"] for e in r.json()["errors"]] == ["name"]
    party = (await crm.post("/api/parties", admin, json={"name": "Referenced"})).json()
    deal = await crm.post("/api/sales/deals", admin, json={"party_id": party["id"], "title": "d"})
    assert deal.status_code == 201, deal.text
    r = await crm.delete(f"/api/parties/{party['id']}", admin)
    assert r.status_code == 409, r.text
    assert r.json()["status"] == 409 and "referenced" in r.json()["detail"]
    assert (await crm.get(f"/api/parties/{party['id']}", admin)).status_code == 200


async def test_nul_characters_postgresql_cannot_store_are_422_naming_the_field(crm: Any) -> None:
    """Found by the fuzzer on PostgreSQL (text cannot hold U+0000); SQLite stores them."""
    admin = await crm.user("admin")
    listed = await crm.get("/api/parties", admin, params={"q": "a\x00b"})
    created = await crm.post("/api/parties", admin, json={"name": "Nul\x00Ltd"})
    if crm.backend == "postgres":
        assert listed.status_code == 422, listed.text
        assert [(e["field"], e["source"]) for e in listed.json()["errors"]] == [("q", "query")]
        assert created.status_code == 422, created.text
        assert [e["field"] for e in created.json()["errors"]] == ["name"]
    else:
        assert listed.status_code == 200
        assert created.status_code == 201


async def test_export_notices_reach_each_administrator_in_their_own_language(crm: Any) -> None:
    english = await crm.user("admin")
    ukrainian = await crm.user("admin")
    assert (await crm.patch("/api/auth/me", ukrainian, json={"locale": "uk"})).status_code == 200
    head = await crm.user("head", name="Olha Head")
    await crm.post("/api/parties", head, json={"name": "Client"})
    assert (await crm.get("/api/parties/export", head)).status_code == 200
    uk = [
        n["title"] for n in (await crm.get("/api/notifications", ukrainian)).json() if n["kind"] == "export"
    ]
    en = [n["title"] for n in (await crm.get("/api/notifications", english)).json() if n["kind"] == "export"]
    assert uk == ["Olha Head вивантажив(ла) клієнтів: 1"]
    assert en == ["Olha Head exported clients: 1"]
