"""Authentication and session security: password login with a session cookie, CSRF on cookie
writes, session fixation, lockout, API tokens (hashed, scoped, expiring, revocable), audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tessera.config import load_settings
from tessera.entities.tables import ApiToken, WebSession

PASSWORD = "correct-horse-battery"


async def _login(crm: Any, email: str, password: str = PASSWORD, cookie: str | None = None) -> Any:
    crm.client.cookies.clear()
    if cookie is not None:
        crm.client.cookies.set("tessera_session", cookie)
    response = await crm.post("/api/auth/login", json={"email": email, "password": password})
    return response


def _session_cookie(response: Any) -> str | None:
    return response.cookies.get("tessera_session")


async def _with_cookie(crm: Any, method: str, url: str, session: str, **kwargs: Any) -> Any:
    crm.client.cookies.clear()
    crm.client.cookies.set("tessera_session", session)
    try:
        return await crm.call(method, url, **kwargs)
    finally:
        crm.client.cookies.clear()


async def _audit(crm: Any, action: str) -> list[dict[str, Any]]:
    admin = await crm.user("admin")
    r = await crm.get("/api/audit", admin, params={"action": action})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- password login


async def test_login_sets_httponly_session_cookie_and_me_works(crm: Any) -> None:
    user = await crm.user("manager", name="Olga")
    r = await _login(crm, user["email"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == user["id"]
    assert body["csrf_token"]
    set_cookie = r.headers["set-cookie"]
    assert "HttpOnly" in set_cookie
    assert "samesite=lax" in set_cookie.lower()
    session = _session_cookie(r)
    assert session

    me = await _with_cookie(crm, "GET", "/api/auth/me", session)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "Olga"
    assert me.json()["csrf_token"] == body["csrf_token"]


async def test_login_email_is_case_insensitive(crm: Any) -> None:
    user = await crm.user("manager")
    r = await _login(crm, "  " + user["email"].upper())
    assert r.status_code == 200, r.text


async def test_wrong_password_and_unknown_email_look_the_same(crm: Any) -> None:
    user = await crm.user("manager")
    wrong = await _login(crm, user["email"], "not-the-password")
    unknown = await _login(crm, "nobody@example.com", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert _session_cookie(wrong) is None


async def test_password_is_stored_as_argon2_hash(crm: Any) -> None:
    from tessera.entities.tables import CrmUser

    user = await crm.user("manager")
    row = await CrmUser.select(CrmUser.password_hash).where(CrmUser.id == user["id"]).first()
    assert row["password_hash"].startswith("$argon2")
    assert PASSWORD not in row["password_hash"]
    r = await crm.get(f"/api/users/{user['id']}", user)
    assert r.status_code == 200
    assert "password_hash" not in r.json()


async def test_a_hash_of_another_cost_is_renewed_at_sign_in(crm: Any) -> None:
    """A password hashed with other argon2 parameters (an older default, or before the
    administrator changed ``argon2_*``) still signs in, and that sign-in stores a hash of the
    configured cost; the next one changes nothing."""
    from argon2 import PasswordHasher
    from tessera.entities.tables import CrmUser

    user = await crm.user("manager")
    older = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash(PASSWORD)
    await CrmUser.update({CrmUser.password_hash: older}).where(CrmUser.id == user["id"])
    cost = crm.settings
    configured = f"m={cost.argon2_memory_kib},t={cost.argon2_time_cost},p={cost.argon2_parallelism}"

    async def stored() -> str:
        row = await CrmUser.select(CrmUser.password_hash).where(CrmUser.id == user["id"]).first()
        return str(row["password_hash"])

    assert (await _login(crm, user["email"])).status_code == 200
    renewed = await stored()
    assert renewed != older and f"${configured}$" in renewed
    assert (await _login(crm, user["email"])).status_code == 200
    assert await stored() == renewed
    details = [e["detail"] for e in await _audit(crm, "login") if e["entity_id"] == user["id"]]
    assert sum("password hash renewed" in d for d in details) == 1, details


def test_the_password_cost_is_a_setting(tmp_path: Any) -> None:
    missing = tmp_path / "none.toml"
    default = load_settings(missing, env={})
    assert (default.argon2_time_cost, default.argon2_memory_kib, default.argon2_parallelism) == (3, 65536, 4)
    env = {
        "TESSERA_ARGON2_TIME_COST": "4",
        "TESSERA_ARGON2_MEMORY_KIB": "131072",
        "TESSERA_ARGON2_PARALLELISM": "2",
    }
    tuned = load_settings(missing, env=env)
    assert (tuned.argon2_time_cost, tuned.argon2_memory_kib, tuned.argon2_parallelism) == (4, 131072, 2)
    # A cost argon2 refuses stops start-up with the settings named, not the first sign-in.
    from tessera import auth

    with pytest.raises(ValueError, match="argon2_memory_kib=4"):
        auth.configure_password_hashing(1, 4, 1)


async def test_no_credentials_is_401(crm: Any) -> None:
    r = await crm.get("/api/parties")
    assert r.status_code == 401
    assert r.json()["status"] == 401


async def test_logout_ends_the_session(crm: Any) -> None:
    user = await crm.user("manager")
    session = _session_cookie(await _login(crm, user["email"]))
    assert session
    r = await _with_cookie(crm, "POST", "/api/auth/logout", session)
    assert r.status_code == 204
    r = await _with_cookie(crm, "GET", "/api/auth/me", session)
    assert r.status_code == 401


async def test_session_expires_after_idle_time(crm: Any, frozen_clock: Any) -> None:
    # Idle timeout and absolute lifetime: tests/test_security.py.
    user = await crm.user("manager")
    session = _session_cookie(await _login(crm, user["email"]))
    assert session
    frozen_clock.advance(seconds=crm.settings.session_idle - 60)
    assert (await _with_cookie(crm, "GET", "/api/auth/me", session)).status_code == 200
    frozen_clock.advance(seconds=crm.settings.session_idle + 1)
    assert (await _with_cookie(crm, "GET", "/api/auth/me", session)).status_code == 401


async def test_deactivated_user_loses_session_and_tokens_with_401(crm: Any) -> None:
    admin = await crm.user("admin")
    user = await crm.user("manager")
    session = _session_cookie(await _login(crm, user["email"]))
    assert session
    r = await crm.patch(f"/api/users/{user['id']}", admin, json={"is_active": False})
    assert r.status_code == 200, r.text
    assert (await crm.get("/api/parties", user)).status_code == 401
    assert (await _with_cookie(crm, "GET", "/api/parties", session)).status_code == 401
    assert (await _login(crm, user["email"])).status_code == 401


# --------------------------------------------------------------------------- session fixation


async def test_planted_session_cookie_is_never_adopted(crm: Any) -> None:
    user = await crm.user("manager")
    planted = "attacker-chosen-session-id-0123456789"
    r = await _login(crm, user["email"], cookie=planted)
    assert r.status_code == 200
    issued = _session_cookie(r)
    assert issued and issued != planted
    # The planted id does not authenticate anybody; the issued one does.
    assert (await _with_cookie(crm, "GET", "/api/auth/me", planted)).status_code == 401
    assert (await _with_cookie(crm, "GET", "/api/auth/me", issued)).status_code == 200


async def test_login_again_replaces_the_previous_session_id(crm: Any) -> None:
    user = await crm.user("manager")
    first = _session_cookie(await _login(crm, user["email"]))
    assert first
    r = await _login(crm, user["email"], cookie=first)
    second = _session_cookie(r)
    assert second and second != first
    assert (await _with_cookie(crm, "GET", "/api/auth/me", first)).status_code == 401
    assert (await _with_cookie(crm, "GET", "/api/auth/me", second)).status_code == 200


async def test_session_id_is_stored_hashed(crm: Any) -> None:
    user = await crm.user("manager")
    session = _session_cookie(await _login(crm, user["email"]))
    assert session
    rows = await WebSession.select(WebSession.session_hash).where(WebSession.user_id == user["id"])
    assert len(rows) == 1
    assert rows[0]["session_hash"] != session


# --------------------------------------------------------------------------- CSRF


async def test_cookie_write_needs_csrf_header(crm: Any) -> None:
    user = await crm.user("manager")
    r = await _login(crm, user["email"])
    session, csrf = _session_cookie(r), r.json()["csrf_token"]
    assert session
    refused = await _with_cookie(crm, "POST", "/api/parties", session, json={"name": "Forged"})
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.json()["detail"]
    wrong = await _with_cookie(
        crm, "POST", "/api/parties", session, json={"name": "Forged"}, headers={"X-CSRF-Token": "nope"}
    )
    assert wrong.status_code == 403
    ok = await _with_cookie(
        crm, "POST", "/api/parties", session, json={"name": "Real"}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status_code == 201, ok.text
    # Nothing was written by the refused requests.
    listed = await _with_cookie(crm, "GET", "/api/parties", session)
    assert [p["name"] for p in listed.json()["items"]] == ["Real"]


async def test_bearer_token_writes_need_no_csrf_header(crm: Any) -> None:
    user = await crm.user("manager")
    r = await crm.post("/api/parties", user, json={"name": "Via token"})
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- cookie flags


async def test_secure_cookie_flag_follows_settings(crm: Any) -> None:
    user = await crm.user("manager")
    r = await _login(crm, user["email"])
    assert "secure" not in r.headers["set-cookie"].lower().split("; ")
    crm.app.state.settings = crm.settings.with_(secure_cookies=True)
    r = await _login(crm, user["email"])
    assert "secure" in r.headers["set-cookie"].lower().split("; ")


def test_secure_cookies_default_on_and_env_switch(tmp_path: Any) -> None:
    missing = tmp_path / "none.toml"
    assert load_settings(missing, env={}).secure_cookies is True
    assert load_settings(missing, env={"TESSERA_SECURE_COOKIES": "0"}).secure_cookies is False
    toml = tmp_path / "tessera.toml"
    toml.write_text("[tessera]\nsecure_cookies = false\n", encoding="utf-8")
    assert load_settings(toml, env={}).secure_cookies is False
    assert load_settings(toml, env={"TESSERA_SECURE_COOKIES": "yes"}).secure_cookies is True


# --------------------------------------------------------------------------- lockout


async def test_repeated_failures_lock_the_account_with_retry_after(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    max_failures = crm.settings.login_max_failures
    for _ in range(max_failures):
        assert (await _login(crm, user["email"], "wrong-password")).status_code == 401
    locked = await _login(crm, user["email"])  # even the right password is refused now
    assert locked.status_code == 429
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= crm.settings.login_lockout_seconds
    assert _session_cookie(locked) is None

    frozen_clock.advance(seconds=crm.settings.login_lockout_seconds - 1)
    assert (await _login(crm, user["email"])).status_code == 429
    frozen_clock.advance(seconds=2)
    assert (await _login(crm, user["email"])).status_code == 200

    events = [e["action"] for e in await _audit(crm, "login_locked")]
    assert events.count("login_locked") == 2


async def test_successful_login_resets_failure_count(crm: Any) -> None:
    user = await crm.user("manager")
    max_failures = crm.settings.login_max_failures
    for _ in range(max_failures - 1):
        assert (await _login(crm, user["email"], "wrong-password")).status_code == 401
    assert (await _login(crm, user["email"])).status_code == 200
    for _ in range(max_failures - 1):
        assert (await _login(crm, user["email"], "wrong-password")).status_code == 401
    assert (await _login(crm, user["email"])).status_code == 200


async def test_lockout_of_one_user_does_not_touch_another(crm: Any) -> None:
    victim = await crm.user("manager")
    other = await crm.user("manager")
    for _ in range(crm.settings.login_max_failures):
        await _login(crm, victim["email"], "wrong-password")
    assert (await _login(crm, victim["email"])).status_code == 429
    assert (await _login(crm, other["email"])).status_code == 200


# --------------------------------------------------------------------------- API tokens


async def test_token_is_shown_once_and_stored_hashed(crm: Any) -> None:
    user = await crm.user("manager")
    r = await crm.post("/api/auth/tokens", user, json={"name": "integration"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    listed = await crm.get("/api/auth/tokens", user)
    assert listed.status_code == 200
    assert all("token" not in t for t in listed.json())
    assert token[:12] in [t["prefix"] for t in listed.json()]
    stored = await ApiToken.select(ApiToken.token_hash).where(ApiToken.id == r.json()["id"]).first()
    assert stored["token_hash"] != token and token not in stored["token_hash"]
    me = await crm.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["user_id"] == user["id"]


async def test_unknown_token_is_401(crm: Any) -> None:
    r = await crm.get("/api/parties", headers={"Authorization": "Bearer tsr_made-up"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].lower().startswith("bearer")


async def test_expired_token_is_401(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    expires = (frozen_clock() + timedelta(hours=1)).isoformat()
    r = await crm.post("/api/auth/tokens", user, json={"name": "short", "expires_at": expires})
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await crm.get("/api/parties", headers=headers)).status_code == 200
    frozen_clock.advance(hours=1)
    assert (await crm.get("/api/parties", headers=headers)).status_code == 401


async def test_token_expiry_must_be_future_and_timezone_aware(crm: Any, frozen_clock: Any) -> None:
    user = await crm.user("manager")
    past = (frozen_clock() - timedelta(days=1)).isoformat()
    r = await crm.post("/api/auth/tokens", user, json={"name": "x", "expires_at": past})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "expires_at"
    naive = await crm.post("/api/auth/tokens", user, json={"name": "x", "expires_at": "2031-01-01T00:00:00"})
    assert naive.status_code == 422, naive.text
    assert naive.json()["errors"][0]["field"] == "expires_at"


async def test_revoked_token_is_401(crm: Any) -> None:
    user = await crm.user("manager")
    r = await crm.post("/api/auth/tokens", user, json={"name": "to revoke"})
    token_id, headers = r.json()["id"], {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await crm.get("/api/parties", headers=headers)).status_code == 200
    assert (await crm.delete(f"/api/auth/tokens/{token_id}", user)).status_code == 204
    assert (await crm.get("/api/parties", headers=headers)).status_code == 401
    # The user's other token is untouched.
    assert (await crm.get("/api/parties", user)).status_code == 200


async def test_cannot_revoke_someone_elses_token_without_user_manage(crm: Any) -> None:
    owner = await crm.user("manager")
    stranger = await crm.user("manager")
    admin = await crm.user("admin")
    r = await crm.post("/api/auth/tokens", owner, json={"name": "mine"})
    token_id, headers = r.json()["id"], {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await crm.delete(f"/api/auth/tokens/{token_id}", stranger)).status_code == 404
    assert (await crm.get("/api/parties", headers=headers)).status_code == 200
    assert (await crm.delete(f"/api/auth/tokens/{token_id}", admin)).status_code == 204
    assert (await crm.get("/api/parties", headers=headers)).status_code == 401


async def test_token_scopes_narrow_permissions(crm: Any) -> None:
    user = await crm.user("manager")
    await crm.post("/api/parties", user, json={"name": "Existing"})
    r = await crm.post("/api/auth/tokens", user, json={"name": "read-only", "scopes": ["party.read"]})
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    listed = await crm.get("/api/parties", headers=headers)
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()["items"]] == ["Existing"]
    denied = await crm.post("/api/parties", json={"name": "Nope"}, headers=headers)
    assert denied.status_code == 403
    assert (await crm.get("/api/tasks", headers=headers)).status_code == 403
    assert (await crm.get("/api/parties/count", user)).json()["count"] == 1
    # /me tells the integration what this token may do, not everything the user may do.
    assert (await crm.get("/api/auth/me", headers=headers)).json()["permissions"] == ["party.read"]
    assert "party.write" in (await crm.get("/api/auth/me", user)).json()["permissions"]


async def test_token_scopes_cannot_exceed_the_users_permissions(crm: Any) -> None:
    user = await crm.user("manager")
    r = await crm.post("/api/auth/tokens", user, json={"name": "greedy", "scopes": ["user.manage"]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "scopes"


async def test_scoped_token_cannot_mint_a_wider_token(crm: Any) -> None:
    user = await crm.user("manager")
    r = await crm.post("/api/auth/tokens", user, json={"name": "read-only", "scopes": ["party.read"]})
    narrow = {"Authorization": f"Bearer {r.json()['token']}"}
    wider = await crm.post("/api/auth/tokens", json={"name": "escalate"}, headers=narrow)
    if wider.status_code == 201:
        minted = {"Authorization": f"Bearer {wider.json()['token']}"}
        escalated = await crm.post("/api/parties", json={"name": "Escalated"}, headers=minted)
        assert escalated.status_code == 403, "a read-only token minted a token that can write"
    else:
        assert wider.status_code in (403, 422)
    explicit = await crm.post(
        "/api/auth/tokens", json={"name": "escalate", "scopes": ["party.write"]}, headers=narrow
    )
    assert explicit.status_code in (403, 422)


# --------------------------------------------------------------------------- audit


async def test_logins_and_failures_are_audited(crm: Any) -> None:
    user = await crm.user("manager")
    await _login(crm, user["email"], "wrong-password")
    await _login(crm, user["email"])
    logins = await _audit(crm, "login")
    assert [e["user_id"] for e in logins] == [user["id"]]
    failures = await _audit(crm, "login_failed")
    assert [e["entity_id"] for e in failures] == [user["id"]]
    await _login(crm, "ghost@example.com", "whatever-pass")
    failures = await _audit(crm, "login_failed")
    assert len(failures) == 2


async def test_audit_log_needs_audit_read(crm: Any) -> None:
    manager = await crm.user("manager")
    assert (await crm.get("/api/audit", manager)).status_code == 403


@pytest.mark.parametrize("action", ["export"])
async def test_exports_are_audited(crm: Any, action: str) -> None:
    admin = await crm.user("admin")
    await crm.post("/api/parties", admin, json={"name": "Acme"})
    r = await crm.get("/api/parties/export", admin)
    assert r.status_code == 200, r.text
    entries = await _audit(crm, action)
    assert len(entries) == 1
    assert entries[0]["user_id"] == admin["id"]
    assert entries[0]["changes"]["rows"] == [None, 1]


async def test_access_changes_take_effect_on_the_next_request(crm: Any) -> None:
    """Requests reuse a user's principal for a moment (it costs four queries); a change of the
    user's roles, of a role's permissions or the user's deactivation must still count at once."""
    admin = await crm.user("admin")
    manager = await crm.user("manager")
    assert (await crm.get("/api/audit", manager)).status_code == 403  # principal now cached

    r = await crm.patch(f"/api/users/{manager['id']}", admin, json={"roles": ["manager", "head"]})
    assert r.status_code == 200, r.text
    assert (await crm.get("/api/audit", manager)).status_code == 200

    roles = {r["name"]: r for r in (await crm.get("/api/roles", admin)).json()["items"]}
    head = roles["head"]
    without_audit = [p for p in head["permissions"] if p != "audit.read"]
    r = await crm.patch(f"/api/roles/{head['id']}", admin, json={"permissions": without_audit})
    assert r.status_code == 200, r.text
    assert (await crm.get("/api/audit", manager)).status_code == 403

    r = await crm.patch(f"/api/users/{manager['id']}", admin, json={"is_active": False})
    assert r.status_code == 200, r.text
    assert (await crm.get("/api/parties", manager)).status_code == 401
