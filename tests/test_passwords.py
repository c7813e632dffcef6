"""Password changes end the other sessions; self-service change; single-use, expiring reset
tokens (admin-created or requested), throttled like sign-ins; tokens kept or revoked by choice."""

from __future__ import annotations

from typing import Any

from entity_helpers import field_errors
from tessera.entities.tables import Notification, PasswordReset

PASSWORD = "correct-horse-battery"
NEW = "new-horse-battery-staple"


async def _login(crm: Any, email: str, password: str = PASSWORD) -> tuple[str, str]:
    crm.client.cookies.clear()
    r = await crm.post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    crm.client.cookies.clear()
    return r.cookies["tessera_session"], r.json()["csrf_token"]


async def _with_cookie(crm: Any, method: str, url: str, session: str, **kwargs: Any) -> Any:
    crm.client.cookies.clear()
    crm.client.cookies.set("tessera_session", session)
    try:
        return await crm.call(method, url, **kwargs)
    finally:
        crm.client.cookies.clear()


async def _me(crm: Any, session: str) -> int:
    return (await _with_cookie(crm, "GET", "/api/auth/me", session)).status_code  # type: ignore[no-any-return]


async def test_self_service_change_ends_other_sessions_and_keeps_tokens_by_default(crm):
    user = await crm.user("manager")
    here, csrf = await _login(crm, user["email"])
    elsewhere, _ = await _login(crm, user["email"])
    body = {"current_password": "wrong-password", "new_password": NEW}
    r = await _with_cookie(crm, "POST", "/api/auth/password", here, json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and "current_password" in field_errors(r)
    assert await _me(crm, elsewhere) == 200  # a refused change changes nothing

    body["current_password"] = PASSWORD
    r = await _with_cookie(crm, "POST", "/api/auth/password", here, json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204, r.text
    assert await _me(crm, elsewhere) == 401  # the other session ended
    assert await _me(crm, here) == 200  # the one that changed it stays
    assert (await crm.get("/api/auth/me", user)).status_code == 200  # API token kept
    crm.client.cookies.clear()
    old = await crm.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert old.status_code == 401
    await _login(crm, user["email"], NEW)


async def test_self_service_change_can_revoke_tokens_in_the_same_call(crm):
    user = await crm.user("manager")
    session, _ = await _login(crm, user["email"])
    body = {"current_password": PASSWORD, "new_password": NEW, "revoke_tokens": True}
    r = await crm.post("/api/auth/password", user, json=body)  # with the API token itself
    assert r.status_code == 204, r.text
    assert (await crm.get("/api/auth/me", user)).status_code == 401
    assert await _me(crm, session) == 401  # called with a token: every session ends


async def test_wrong_current_passwords_are_throttled_like_sign_ins(crm):
    user = await crm.user("manager")
    body = {"current_password": "guess-guess", "new_password": NEW}
    codes = [(await crm.post("/api/auth/password", user, json=body)).status_code for _ in range(6)]
    assert codes == [422] * 5 + [429]
    body["current_password"] = PASSWORD  # locked: even the right one is refused for now
    assert (await crm.post("/api/auth/password", user, json=body)).status_code == 429


async def test_admin_password_change_ends_sessions_and_offers_token_revocation(crm):
    admin = await crm.user("admin")
    user = await crm.user("manager")
    session, _ = await _login(crm, user["email"])
    r = await crm.patch(f"/api/users/{user['id']}", admin, json={"password": NEW})
    assert r.status_code == 200, r.text
    assert await _me(crm, session) == 401
    assert (await crm.get("/api/auth/me", user)).status_code == 200  # tokens kept by default
    session, _ = await _login(crm, user["email"], NEW)
    r = await crm.patch(f"/api/users/{user['id']}", admin, json={"password": PASSWORD, "revoke_tokens": True})
    assert r.status_code == 200, r.text
    assert await _me(crm, session) == 401
    assert (await crm.get("/api/auth/me", user)).status_code == 401
    # Other changes of a user do not end their sessions.
    session, _ = await _login(crm, user["email"])
    assert (await crm.patch(f"/api/users/{user['id']}", admin, json={"name": "Renamed"})).status_code == 200
    assert await _me(crm, session) == 200


async def test_admin_reset_token_is_single_use_hashed_and_ends_every_session(crm):
    admin = await crm.user("admin")
    user = await crm.user("manager")
    manager = await crm.user("manager")
    url = f"/api/users/{user['id']}/password-reset"
    assert (await crm.post(url, manager)).status_code == 403  # needs user.manage
    r = await crm.post(url, admin)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    stored = await PasswordReset.select().where(PasswordReset.user_id == user["id"])
    assert len(stored) == 1 and token not in str(stored)  # only a hash is kept
    session, _ = await _login(crm, user["email"])

    crm.client.cookies.clear()
    short = await crm.post("/api/auth/password-reset", json={"token": token, "new_password": "short"})
    assert short.status_code == 422 and "new_password" in field_errors(short)
    r = await crm.post("/api/auth/password-reset", json={"token": token, "new_password": NEW})
    assert r.status_code == 204, r.text
    assert await _me(crm, session) == 401
    assert (await crm.get("/api/auth/me", user)).status_code == 200  # tokens kept by default
    await _login(crm, user["email"], NEW)
    again = await crm.post("/api/auth/password-reset", json={"token": token, "new_password": "x" * 12})
    assert again.status_code == 422 and "token" in field_errors(again)
    await _login(crm, user["email"], NEW)  # the reused token changed nothing


async def test_reset_token_expires(crm, frozen_clock):
    admin = await crm.user("admin")
    user = await crm.user("manager")
    token = (await crm.post(f"/api/users/{user['id']}/password-reset", admin)).json()["token"]
    frozen_clock.advance(seconds=crm.settings.password_reset_ttl + 1)
    crm.client.cookies.clear()
    r = await crm.post("/api/auth/password-reset", json={"token": token, "new_password": NEW})
    assert r.status_code == 422 and "token" in field_errors(r)
    await _login(crm, user["email"])


async def test_reset_can_revoke_tokens(crm):
    admin = await crm.user("admin")
    user = await crm.user("manager")
    token = (await crm.post(f"/api/users/{user['id']}/password-reset", admin)).json()["token"]
    crm.client.cookies.clear()
    body = {"token": token, "new_password": NEW, "revoke_tokens": True}
    assert (await crm.post("/api/auth/password-reset", json=body)).status_code == 204
    assert (await crm.get("/api/auth/me", user)).status_code == 401


async def test_wrong_reset_tokens_are_throttled_per_address(crm):
    crm.client.cookies.clear()
    body = {"token": "tsr_reset_guess", "new_password": NEW}
    codes = [(await crm.post("/api/auth/password-reset", json=body)).status_code for _ in range(6)]
    assert codes == [422] * 5 + [429]
    assert "Retry-After" in (await crm.post("/api/auth/password-reset", json=body)).headers


async def test_reset_request_answers_alike_and_hands_the_case_to_admins(crm):
    admin = await crm.user("admin")
    user = await crm.user("manager")
    crm.client.cookies.clear()
    known = await crm.post("/api/auth/password-reset/request", json={"email": user["email"].upper()})
    unknown = await crm.post("/api/auth/password-reset/request", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert await PasswordReset.count().where(PasswordReset.user_id == user["id"]) == 1
    # No e-mail service yet: the administrators are told (without the secret token).
    notes = await Notification.select().where(
        Notification.user_id == admin["id"], Notification.kind == "password_reset"
    )
    assert len(notes) == 1 and user["email"] in notes[0]["title"]
    assert "tsr_reset_" not in notes[0]["title"] + notes[0]["body"]
    # Flooding one address is refused alike for known and unknown e-mails.
    for email in (user["email"], "nobody@example.com"):
        codes = [
            (await crm.post("/api/auth/password-reset/request", json={"email": email})).status_code
            for _ in range(5)
        ]
        assert codes[-1] == 429, codes


async def test_reset_link_goes_to_the_delivery_hook_when_a_plugin_delivers(crm):
    from tessera.hookspecs import hookimpl

    sent: list[tuple[str, str]] = []

    class Mailer:
        @hookimpl
        def tessera_password_reset_link(self, user, token, expires_at):
            sent.append((user["email"], token))
            return True

    user = await crm.user("manager")
    admin = await crm.user("admin")
    crm.pm.register(Mailer(), name="test-mailer")
    try:
        crm.client.cookies.clear()
        r = await crm.post("/api/auth/password-reset/request", json={"email": user["email"]})
        assert r.status_code == 202
    finally:
        crm.pm.unregister(name="test-mailer")
    assert [email for email, _ in sent] == [user["email"]]
    assert not await Notification.exists().where(Notification.user_id == admin["id"])
    r = await crm.post("/api/auth/password-reset", json={"token": sent[0][1], "new_password": NEW})
    assert r.status_code == 204
    await _login(crm, user["email"], NEW)
