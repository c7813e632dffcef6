"""Administration pages (/app/admin): each writes through the API's structs and services, is
guarded by the API's permission, and shows what the API would."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from mail_helpers import MailServer, _free_port
from tessera import email as mail
from tessera import events, jobs, scheduler
from tessera.api.security import SESSION_COOKIE

PASSWORD = "correct-horse-battery"

ADMIN_PAGES = [
    "/app/admin",
    "/app/admin/users",
    "/app/admin/teams",
    "/app/admin/roles",
    "/app/admin/substitutions",
    "/app/admin/custom-fields",
    "/app/admin/custom-fields/party",
    "/app/admin/plugins",
    "/app/admin/workflows",
    "/app/admin/jobs",
    "/app/admin/background-jobs",
    "/app/admin/audit",
]


async def _sign_in(crm: Any, user: dict[str, Any], password: str = PASSWORD) -> Any:
    crm.client.cookies.clear()
    return await crm.client.post("/login", data={"email": user["email"], "password": password})


async def _as(crm: Any, user: dict[str, Any]) -> str:
    """Sign ``user`` in on the web client; returns the session's CSRF token."""
    r = await _sign_in(crm, user)
    assert r.status_code == 303, r.text
    page = await crm.client.get("/app")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def _text(page: Any) -> str:
    return html.unescape(page.text)


def _field_error(text: str, field: str) -> str | None:
    for block in re.findall(r'<p class="field">(.*?)</p>', text, re.S):
        if f'name="{field}"' in block:
            match = re.search(r'class="field-error"[^>]*>([^<]+)<', block)
            return html.unescape(match.group(1)) if match else None
    raise AssertionError(f"no field {field} on the page")


async def test_admin_creates_a_user_on_the_page_who_then_signs_in(crm: Any) -> None:
    admin = await crm.user("admin")
    team = await crm.team("North")
    token = await _as(crm, admin)
    dash = await crm.client.get("/app")
    assert 'href="/app/admin"' in dash.text
    form = {
        "csrf_token": token,
        "name": "Ivan Newcomer",
        "email": "Ivan.New@Example.com",
        "password": "a-long-enough-secret",
        "team_id": str(team["id"]),
        "roles": ["manager", "head"],
    }
    # Refused as the API refuses it: beside the field, input kept, nothing stored.
    bad = await crm.client.post("/app/admin/users", data={**form, "email": "x"})
    assert bad.status_code == 422
    assert _field_error(bad.text, "email") and 'value="Ivan Newcomer"' in bad.text
    r = await crm.client.post("/app/admin/users", data=form)
    assert r.status_code == 303, r.text
    users = (await crm.get("/api/users", admin, params={"limit": 500})).json()["items"]
    [created] = [u for u in users if u["name"] == "Ivan Newcomer"]
    assert created["email"] == "ivan.new@example.com"
    assert created["roles"] == ["head", "manager"] and created["team_id"] == team["id"]
    page = await crm.client.get(r.headers["location"])
    assert page.status_code == 200 and "Saved." in page.text
    signed = await _sign_in(crm, created, "a-long-enough-secret")
    assert signed.status_code == 303 and signed.headers["location"] == "/app"
    assert "Ivan Newcomer" in (await crm.client.get("/app")).text


async def test_invited_user_gets_a_one_time_link_to_choose_a_password(crm: Any) -> None:
    admin = await crm.user("admin")
    token = await _as(crm, admin)
    r = await crm.client.post(
        "/app/admin/users",
        data={"csrf_token": token, "name": "Invited", "email": "invited@example.com", "roles": "manager"},
    )
    # No SMTP configured: the link is shown to the admin, once.
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    link = re.search(r'value="(http[^"]*/password-reset\?token=[^"]+)"', r.text)
    assert link, r.text
    reset_url = html.unescape(link.group(1)).removeprefix("http://testserver")
    page = await crm.client.get(reset_url)
    assert page.status_code == 200
    crm.client.cookies.clear()
    done = await crm.client.post(
        "/password-reset",
        data={
            "token": reset_url.split("token=")[1],
            "new_password": "chosen-by-myself",
            "new_password_again": "chosen-by-myself",
        },
    )
    assert done.status_code in (200, 303), done.text
    signed = await _sign_in(crm, {"email": "invited@example.com"}, "chosen-by-myself")
    assert signed.status_code == 303


async def test_a_deactivated_user_cannot_sign_in_until_reactivated(crm: Any) -> None:
    admin = await crm.user("admin")
    manager = await crm.user("manager", name="Leaving Manager")
    await _as(crm, manager)
    open_session = crm.client.cookies.get(SESSION_COOKIE)
    token = await _as(crm, admin)
    r = await crm.client.post(
        f"/app/admin/users/{manager['id']}/active", data={"csrf_token": token, "is_active": "false"}
    )
    assert r.status_code == 303
    page = await crm.client.get(f"/app/admin/users/{manager['id']}")
    assert "this user cannot sign in" in page.text
    inactive = await crm.client.get("/app/admin/users", params={"state": "inactive"})
    assert (
        "Leaving Manager" in inactive.text and f'href="/app/admin/users/{admin["id"]}"' not in inactive.text
    )
    active = await crm.client.get("/app/admin/users", params={"state": "active", "q": "leaving"})
    assert "Leaving Manager" not in active.text
    # The session they had open ends with it.
    crm.client.cookies.clear()
    crm.client.cookies.set(SESSION_COOKIE, open_session)
    assert (await crm.client.get("/app")).headers.get("location") == "/login"
    refused = await _sign_in(crm, manager)
    assert refused.status_code == 401
    assert (await crm.get("/api/auth/me", manager)).status_code == 401  # their API token too
    token = await _as(crm, admin)
    again = await crm.client.post(
        f"/app/admin/users/{manager['id']}/active", data={"csrf_token": token, "is_active": "true"}
    )
    assert again.status_code == 303
    assert (await _sign_in(crm, manager)).status_code == 303


async def test_a_manager_gets_403_on_every_admin_page_and_sees_no_admin_link(crm: Any) -> None:
    manager = await crm.user("manager")
    other = await crm.user("manager")
    token = await _as(crm, manager)
    assert 'href="/app/admin"' not in (await crm.client.get("/app")).text
    for url in ADMIN_PAGES:
        r = await crm.client.get(url)
        assert r.status_code == 403, url
        assert "text/html" in r.headers["content-type"]
    posts = {
        "/app/admin/users": {"name": "Sneaky", "email": "sneaky@example.com", "roles": "admin"},
        f"/app/admin/users/{other['id']}/active": {"is_active": "false"},
        "/app/admin/custom-fields/party": {"name": "sneaky", "type": "string"},
        "/app/admin/teams": {"name": "Sneaky team"},
    }
    for url, body in posts.items():
        r = await crm.client.post(url, data={"csrf_token": token, **body})
        assert r.status_code == 403, url
    assert (await _sign_in(crm, other)).status_code == 303  # still active
    # Without the form token even an admin's POST is refused.
    admin = await crm.user("admin")
    await _as(crm, admin)
    forged = await crm.client.post("/app/admin/teams", data={"name": "Forged"})
    assert forged.status_code == 403
    teams = (await crm.get("/api/teams", admin)).json()["items"]
    assert "Forged" not in [t["name"] for t in teams] and "Sneaky team" not in [t["name"] for t in teams]


async def test_every_admin_page_opens_for_an_admin(crm: Any) -> None:
    admin = await crm.user("admin")
    await _as(crm, admin)
    for url in ADMIN_PAGES:
        r = await crm.client.get(url)
        assert r.status_code == 200, (url, r.text[:300])
    roles = _text(await crm.client.get("/app/admin/roles"))
    # Permissions in words, their names only beside them.
    assert "Manage users, teams, roles and substitutions" in roles and "Account manager" in roles
    token = await _as(crm, admin)
    await crm.client.post("/app/language", data={"csrf_token": token, "locale": "ru", "next": "/app"})
    russian = _text(await crm.client.get("/app/admin/roles"))
    assert "Управлять пользователями, командами, ролями и замещениями" in russian
    assert ">Администрирование<" in russian and "Manage users" not in russian


async def test_substitution_created_on_the_page_gives_the_substitute_visibility(crm: Any) -> None:
    admin = await crm.user("admin")
    absent = await crm.user("manager", name="On Holiday")
    substitute = await crm.user("manager", name="Stands In")
    party = (await crm.post("/api/parties", absent, json={"name": "Holiday Client"})).json()
    assert (await crm.get(f"/api/parties/{party['id']}", substitute)).status_code == 404
    # The admin works in Moscow time: the times typed are Moscow times (UTC+3).
    moscow = ZoneInfo("Europe/Moscow")
    moved = await crm.patch(f"/api/users/{admin['id']}", admin, json={"timezone": "Europe/Moscow"})
    assert moved.status_code == 200
    token = await _as(crm, admin)
    now = datetime.now(UTC).astimezone(moscow).replace(second=0, microsecond=0)
    form = {
        "csrf_token": token,
        "absent_user_id": str(absent["id"]),
        "substitute_id": str(substitute["id"]),
        "starts_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "reason": "Holiday",
    }
    bad = await crm.client.post("/app/admin/substitutions", data=form)
    assert bad.status_code == 422 and _field_error(bad.text, "ends_at")
    form["ends_at"] = (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    r = await crm.client.post("/app/admin/substitutions", data=form)
    assert r.status_code == 303, r.text
    listing = await crm.client.get("/app/admin/substitutions")
    assert "On Holiday" in listing.text and "Stands In" in listing.text
    seen = await crm.get(f"/api/parties/{party['id']}", substitute)
    assert seen.status_code == 200 and seen.json()["name"] == "Holiday Client"
    # Ended from the page: the access goes with it.
    [sub] = (await crm.get("/api/substitutions", admin)).json()["items"]
    starts = datetime.fromisoformat(sub["starts_at"])
    assert starts == now - timedelta(hours=1)  # an aware comparison: the same instant
    ended = await crm.client.post(f"/app/admin/substitutions/{sub['id']}/end", data={"csrf_token": token})
    assert ended.status_code == 303
    assert (await crm.get(f"/api/parties/{party['id']}", substitute)).status_code == 404


async def test_custom_field_added_on_the_page_is_accepted_by_the_api(crm: Any) -> None:
    admin = await crm.user("admin")
    token = await _as(crm, admin)
    url = "/app/admin/custom-fields/party"
    bad = await crm.client.post(url, data={"csrf_token": token, "name": "Loyalty Level", "type": "integer"})
    assert bad.status_code == 422 and _field_error(bad.text, "name")
    assert 'value="Loyalty Level"' in bad.text
    r = await crm.client.post(
        url, data={"csrf_token": token, "name": "loyalty_level", "title": "Loyalty level", "type": "integer"}
    )
    assert r.status_code == 303, r.text
    page = _text(await crm.client.get(url))
    assert "Loyalty level" in page and "Whole number" in page
    ok = await crm.post("/api/parties", admin, json={"name": "Loyal", "custom": {"loyalty_level": 3}})
    assert ok.status_code == 201, ok.text
    refused = await crm.post("/api/parties", admin, json={"name": "Bad", "custom": {"loyalty_level": "high"}})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["custom.loyalty_level"]
    schema = (await crm.get("/api/custom-fields/party", admin)).json()
    assert schema["properties"]["loyalty_level"] == {"type": "integer", "title": "Loyalty level"}


async def test_audit_viewer_filters_and_hides_what_the_reader_may_not_read(crm: Any) -> None:
    north, south = await crm.team("North"), await crm.team("South")
    head = await crm.user("head", team_id=north["id"])
    mine = await crm.user("manager", team_id=north["id"], name="North Seller")
    theirs = await crm.user("manager", team_id=south["id"])
    alpha = (await crm.post("/api/parties", mine, json={"name": "Alpha Marker"})).json()
    beta = (await crm.post("/api/parties", theirs, json={"name": "Beta Marker"})).json()
    changed = await crm.patch(f"/api/parties/{alpha['id']}", mine, json={"name": "Alpha Renamed"})
    assert changed.status_code == 200
    await _as(crm, head)
    page = _text(await crm.client.get("/app/admin/audit", params={"entity": "party"}))
    assert "Alpha Marker" in page and "Alpha Renamed" in page and "Beta Marker" not in page
    assert "Changed" in page and "North Seller" in page
    words = re.sub(r"<[^>]+>", "", page)  # stored codes in words, as on the card
    assert "Status: Potential" in words and "Relations: Client" in words
    assert "Status: potential" not in words
    one = _text(
        await crm.client.get("/app/admin/audit", params={"entity": "party", "entity_id": alpha["id"]})
    )
    assert one.count('class="entry"') == 2
    hidden = _text(
        await crm.client.get("/app/admin/audit", params={"entity_id": beta["id"], "entity": "party"})
    )
    assert "Beta Marker" not in hidden and hidden.count('class="entry"') == 0
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = _text(await crm.client.get("/app/admin/audit", params={"date_from": tomorrow}))
    assert later.count('class="entry"') == 0
    wrong = await crm.client.get("/app/admin/audit", params={"date_from": "31.12.2026"})
    assert _field_error(wrong.text, "date_from") == "is not a valid date"
    admin = await crm.user("admin")
    await _as(crm, admin)
    everything = _text(await crm.client.get("/app/admin/audit", params={"entity": "party"}))
    assert "Alpha Marker" in everything and "Beta Marker" in everything


async def test_audit_viewer_pages_back_and_forth(crm: Any) -> None:
    admin = await crm.user("admin")
    for n in range(55):
        await crm.post("/api/parties", admin, json={"name": f"Paged {n:02d}"})
    await _as(crm, admin)
    first = await crm.client.get("/app/admin/audit", params={"entity": "party"})
    assert first.text.count('class="entry"') == 50 and "Paged 54" in first.text
    older = re.search(r'href="(\?[^"]*before=\d+)"', first.text)
    assert older
    second = await crm.client.get("/app/admin/audit" + html.unescape(older.group(1)))
    assert second.text.count('class="entry"') == 5 and "Paged 00" in second.text
    newer = re.search(r'href="(\?[^"]*after=\d+)"', second.text)
    assert newer
    back = await crm.client.get("/app/admin/audit" + html.unescape(newer.group(1)))
    assert back.text.count('class="entry"') == 50 and "Paged 54" in back.text


async def test_job_runs_are_visible_and_a_job_can_be_switched_off(crm: Any) -> None:
    admin = await crm.user("admin")
    await scheduler.sync_jobs(crm.pm)
    ran = await scheduler.tick(crm.pm, crm.settings, node="admin-page-node")
    assert ran
    token = await _as(crm, admin)
    page = _text(await crm.client.get("/app/admin/jobs"))
    assert "admin-page-node" in page and "Succeeded" in page
    assert page.count('class="run"') == len(ran)
    name = ran[0]
    r = await crm.client.post(
        f"/app/admin/jobs/{name}/switch", data={"csrf_token": token, "enabled": "false"}
    )
    assert r.status_code == 303
    listed = {j["name"]: j for j in (await crm.get("/api/jobs", admin)).json()}
    assert listed[name]["enabled"] is False


async def test_background_jobs_listed_cancelled_and_retried(crm: Any) -> None:
    admin = await crm.user("admin")
    async with events.unit_of_work():
        job_id = await jobs.enqueue("test.report", {"n": 1})
    token = await _as(crm, admin)
    page = await crm.client.get("/app/admin/background-jobs")
    assert f"#{job_id}" in page.text and "Queued" in page.text
    r = await crm.client.post(f"/app/admin/background-jobs/{job_id}/cancel", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await crm.get(f"/api/jobs/background/{job_id}", admin)).json()["status"] == "cancelled"
    r = await crm.client.post(f"/app/admin/background-jobs/{job_id}/retry", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await crm.get(f"/api/jobs/background/{job_id}", admin)).json()["status"] == "queued"


TEMPLATE = {
    "key": "onboarding",
    "name": "Client onboarding",
    "subject": "party",
    "stages": [
        {"key": "welcome", "name": "Welcome call", "responsible": {"owner": True}, "norm": {"hours": 4}},
        {"key": "done", "name": "Onboarded", "responsible": {"owner": True}, "final": True},
    ],
}


async def test_publish_a_workflow_template_version_from_the_page(crm: Any) -> None:
    import json

    admin = await crm.user("admin")
    created = await crm.post("/api/workflow/templates", admin, json={"definition": TEMPLATE})
    assert created.status_code == 201, created.text
    party = (await crm.post("/api/parties", admin, json={"name": "Onboarded Ltd"})).json()
    started = await crm.post(
        "/api/workflow/instances", admin, json={"template": "onboarding", "party_id": party["id"]}
    )
    assert started.status_code == 201, started.text
    instance = started.json()["id"]
    token = await _as(crm, admin)
    page = _text(await crm.client.get("/app/admin/workflows/onboarding"))
    assert "Welcome call" in page and "4 h (business time)" in page and "The record's owner" in page
    url = "/app/admin/workflows/onboarding/versions"
    wrong = await crm.client.post(url, data={"csrf_token": token, "definition": "{not json"})
    assert wrong.status_code == 422 and "is not valid JSON" in _text(wrong)
    v2 = json.loads(json.dumps(TEMPLATE))
    v2["stages"][0]["norm"] = {"hours": 8}
    v2["stages"][0]["name"] = "Welcome call and demo"
    r = await crm.client.post(url, data={"csrf_token": token, "definition": json.dumps(v2)})
    assert r.status_code == 303, r.text
    current = (await crm.get("/api/workflow/templates/onboarding", admin)).json()
    assert current["version"] == 2 and current["definition"]["stages"][0]["norm"] == {"hours": 8}
    shown = _text(await crm.client.get(r.headers["location"]))
    assert "A new version has been published." in shown and "Welcome call and demo" in shown
    # An invalid definition is refused as the API refuses it, naming the path.
    v2["stages"][0]["norm"] = {"hours": -1}
    bad = await crm.client.post(url, data={"csrf_token": token, "definition": json.dumps(v2)})
    assert bad.status_code == 422 and "stages" in _text(bad)
    assert (await crm.get("/api/workflow/templates/onboarding", admin)).json()["version"] == 2
    # The running process stayed on version 1; moved onto version 3 when asked to.
    running = f"/api/workflow/instances/{instance}"
    assert (await crm.get(running, admin)).json()["template_version"] == 1
    v3 = json.loads(json.dumps(TEMPLATE))
    v3["stages"][0]["norm"] = {"hours": 6}
    form = {"csrf_token": token, "definition": json.dumps(v3), "migrate": "true", "comment": "norm changed"}
    moved = await crm.client.post(url, data=form)
    assert moved.status_code == 303, moved.text
    assert (await crm.get(running, admin)).json()["template_version"] == 3
    assert "running processes moved onto it" in (await crm.client.get(moved.headers["location"])).text


async def test_roles_page_changes_a_roles_permissions(crm: Any) -> None:
    admin = await crm.user("admin")
    clerk = await crm.user("auditor")
    token = await _as(crm, admin)
    [role] = [r for r in (await crm.get("/api/roles", admin)).json()["items"] if r["name"] == "auditor"]
    r = await crm.client.post(
        f"/app/admin/roles/{role['id']}",
        data={
            "csrf_token": token,
            "name": "auditor",
            "scope": "all",
            "description": role["description"],
            "permissions": ["audit.read", "party.read"],
        },
    )
    assert r.status_code == 303, r.text
    assert (await crm.get("/api/parties", clerk)).status_code == 200
    bad = await crm.client.post(
        f"/app/admin/roles/{role['id']}",
        data={"csrf_token": token, "name": "auditor", "scope": "all", "permissions": ["no.such"]},
    )
    assert bad.status_code == 422 and "unknown permissions" in _text(bad)


@pytest.mark.plugins("sales")
async def test_plugins_page_lists_enabled_plugins_with_versions(crm: Any) -> None:
    admin = await crm.user("admin")
    await _as(crm, admin)
    page = _text(await crm.client.get("/app/admin/plugins"))
    assert "sales" in page and "Enabled" in page and "restart" in page


@pytest.fixture
async def smtp(crm: Any) -> Any:
    """A real SMTP server on loopback, and the deployment configured to send through it."""
    box = MailServer(port=_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    configured = crm.settings.with_(
        smtp_host="127.0.0.1", smtp_port=box.port, smtp_security="none", mail_from="crm@example.com"
    )
    crm.app.state.settings = configured
    mail.configure(configured)
    try:
        yield box, configured
    finally:
        crm.app.state.settings = crm.settings
        mail.configure(crm.settings)
        controller.stop()


async def test_password_reset_by_an_admin_is_mailed_when_email_is_set_up(crm: Any, smtp: Any) -> None:
    box, settings = smtp
    admin = await crm.user("admin")
    user = await crm.user("manager", name="Forgetful")
    token = await _as(crm, admin)
    r = await crm.client.post(f"/app/admin/users/{user['id']}/password-reset", data={"csrf_token": token})
    assert r.status_code == 303
    page = await crm.client.get(r.headers["location"])
    assert "sent by e-mail" in page.text and "password-reset?token=" not in page.text
    [(_job, status)] = await jobs.work(crm.pm, settings)
    assert status == "done"
    [(rcpt, message, _)] = box.received
    assert rcpt == [user["email"]]
    link = re.search(r"/password-reset\?token=(\S+)", message.get_content())
    assert link
    crm.client.cookies.clear()
    new = "mailed-and-chosen"
    done = await crm.client.post(
        "/password-reset", data={"token": link.group(1), "new_password": new, "new_password_again": new}
    )
    assert done.status_code == 303
    assert (await _sign_in(crm, user, new)).status_code == 303


async def test_admin_edits_a_users_roles_and_team_and_manages_teams(crm: Any) -> None:
    admin = await crm.user("admin")
    seller = await crm.user("manager", name="Seller")
    token = await _as(crm, admin)
    r = await crm.client.post("/app/admin/teams", data={"csrf_token": token, "name": "East"})
    assert r.status_code == 303
    [east] = [t for t in (await crm.get("/api/teams", admin)).json()["items"] if t["name"] == "East"]
    clash = await crm.client.post("/app/admin/teams", data={"csrf_token": token, "name": "East"})
    assert clash.status_code == 422 and _field_error(clash.text, "name") == "another team has this name"
    renamed = await crm.client.post(
        f"/app/admin/teams/{east['id']}", data={"csrf_token": token, "name": "East and Centre"}
    )
    assert renamed.status_code == 303
    added = await crm.client.post(
        f"/app/admin/teams/{east['id']}/members", data={"csrf_token": token, "user_id": str(seller["id"])}
    )
    assert added.status_code == 303
    team_page = _text(await crm.client.get(f"/app/admin/teams/{east['id']}"))
    assert "East and Centre" in team_page and "Seller" in team_page
    assert (await crm.get(f"/api/users/{seller['id']}", admin)).json()["team_id"] == east["id"]
    # The user's page: roles and team changed together; unknown roles refused beside the field.
    url = f"/app/admin/users/{seller['id']}"
    form = {"csrf_token": token, "name": "Seller", "email": seller["email"], "team_id": ""}
    bad = await crm.client.post(url, data={**form, "roles": ["head", "nonexistent"]})
    assert bad.status_code == 422 and "unknown roles" in (_text(bad))
    r = await crm.client.post(url, data={**form, "roles": ["head"]})
    assert r.status_code == 303
    after = (await crm.get(f"/api/users/{seller['id']}", admin)).json()
    assert after["roles"] == ["head"] and after["team_id"] is None
    assert (await crm.get("/api/audit", seller)).status_code == 200  # head reads the audit log now
