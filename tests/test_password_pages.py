"""Password pages (issue 14.7): "Forgot password?" sends a reset link through the kernel e-mail
service (a real aiosmtpd server), the link's page sets a new password once and ends every
session, and "Change password" needs the current password and ends the other sessions."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from entity_helpers import new_party
from mail_helpers import MailServer, _free_port
from tessera import email as mail
from tessera import jobs
from tessera.api.security import SESSION_COOKIE
from tessera.entities.tables import Activity, BackgroundJob

PASSWORD = "correct-horse-battery"
NEW = "new-horse-battery-staple"
LINK = re.compile(r"(\S+)/password-reset\?token=(tsr_reset_[A-Za-z0-9_-]+)")


@pytest.fixture
async def smtp() -> AsyncIterator[MailServer]:
    """A plain SMTP server on a free loopback port."""
    box = MailServer(port=_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def _with_smtp(crm: Any, smtp: MailServer, **more: Any) -> Iterator[Any]:
    configured = crm.settings.with_(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        mail_from="Tessera CRM <crm@example.com>",
        **more,
    )
    crm.app.state.settings = configured
    mail.configure(configured)
    yield configured
    crm.app.state.settings = crm.settings
    mail.configure(crm.settings)


@pytest.fixture
def settings(crm: Any, smtp: MailServer) -> Iterator[Any]:
    """SMTP configured and the deployment's public address set."""
    yield from _with_smtp(crm, smtp, public_url="https://crm.example.com/")


@pytest.fixture
def settings_without_public_url(crm: Any, smtp: MailServer) -> Iterator[Any]:
    yield from _with_smtp(crm, smtp)


async def _session(crm: Any, email: str, password: str = PASSWORD) -> str:
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": email, "password": password})
    assert r.status_code == 303, r.text
    session = r.cookies[SESSION_COOKIE]
    crm.client.cookies.clear()
    return str(session)


async def _me(crm: Any, session: str) -> int:
    crm.client.cookies.clear()
    crm.client.cookies.set(SESSION_COOKIE, session)
    try:
        return int((await crm.client.get("/api/auth/me")).status_code)
    finally:
        crm.client.cookies.clear()


def _error_after(page: str, field: str) -> str | None:
    """The field error shown right after the input named ``field``."""
    match = re.search(rf'name="{field}"[^>]*>[^<]*</label>\s*<span class="field-error">([^<]+)</span>', page)
    return match.group(1) if match else None


async def test_forgotten_password_link_arrives_by_email_and_works_once(
    crm: Any, smtp: MailServer, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await crm.user("manager", name="Olga Manager")
    # Her address is also a client's: the reset mail must not land on the client's card.
    party = await new_party(crm, user, name="Olga's shop", emails=[{"address": user["email"]}])
    other_session = await _session(crm, user["email"])

    login = await crm.client.get("/login")
    assert 'href="/password-reset/request"' in login.text and "Forgot password?" in login.text
    form = await crm.client.get("/password-reset/request")
    assert form.status_code == 200 and 'name="email"' in form.text
    r = await crm.client.post("/password-reset/request", data={"email": user["email"]})
    assert r.status_code == 200 and "a password reset has been arranged" in r.text
    assert smtp.received == []  # sent by the background job, not in the request

    [(job_id, status)] = await jobs.work(crm.pm, settings)
    assert status == "done"
    [(rcpt, message, _)] = smtp.received
    assert rcpt == [user["email"]] and message["Subject"] == "Reset your Tessera CRM password"
    text = message.get_content()
    assert "Hello Olga Manager" in text
    base, token = LINK.search(text).groups()  # type: ignore[union-attr]
    assert base == "https://crm.example.com"  # public_url, its trailing slash dropped
    assert token not in caplog.text  # neither our logs nor the SMTP client's
    job = await BackgroundJob.select(BackgroundJob.payload).where(BackgroundJob.id == job_id).first()
    assert token not in str(job["payload"])  # wiped from the job once sent
    assert await Activity.count().where(Activity.party_id == party["id"]) == 0

    page = await crm.client.get("/password-reset", params={"token": token})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert f'name="token" value="{token}"' in page.text and 'action="/password-reset"' in page.text

    typo = {"token": token, "new_password": NEW, "new_password_again": NEW + "x"}
    r = await crm.client.post("/password-reset", data=typo)
    assert (
        r.status_code == 422
        and _error_after(r.text, "new_password_again") == "does not match the new password"
    )
    short = {"token": token, "new_password": "short", "new_password_again": "short"}
    r = await crm.client.post("/password-reset", data=short)
    assert r.status_code == 422 and _error_after(r.text, "new_password") == "must be at least 8 characters"

    good = {"token": token, "new_password": NEW, "new_password_again": NEW}
    r = await crm.client.post("/password-reset", data=good)
    assert r.status_code == 303 and r.headers["location"] == "/login?done=password-reset"
    signin = await crm.client.get(r.headers["location"])
    assert "Your password has been changed" in signin.text
    assert await _me(crm, other_session) == 401  # every session of the account ended

    again = await crm.client.post("/password-reset", data=good)
    assert again.status_code == 422 and "invalid, expired or already used" in again.text

    old = await crm.client.post("/login", data={"email": user["email"], "password": PASSWORD})
    assert old.status_code == 401
    assert await _me(crm, await _session(crm, user["email"], NEW)) == 200


async def test_unknown_address_gets_the_same_page_and_no_email(
    crm: Any, smtp: MailServer, settings: Any
) -> None:
    user = await crm.user("manager")
    known = await crm.client.post("/password-reset/request", data={"email": user["email"]})
    unknown = await crm.client.post("/password-reset/request", data={"email": "nobody@example.com"})
    assert unknown.status_code == known.status_code == 200
    assert unknown.text == known.text
    assert len(await jobs.work(crm.pm, settings)) == 1
    assert [rcpt for rcpt, _, _ in smtp.received] == [[user["email"]]]  # only the known one


async def test_reset_link_uses_the_request_address_without_public_url(
    crm: Any, smtp: MailServer, settings_without_public_url: Any
) -> None:
    user = await crm.user("manager")
    await crm.client.post("/password-reset/request", data={"email": user["email"]})
    await jobs.work(crm.pm, settings_without_public_url)
    [(_, message, _)] = smtp.received
    base, _token = LINK.search(message.get_content()).groups()  # type: ignore[union-attr]
    assert base == "http://testserver"


async def test_change_password_page_needs_the_current_password_and_ends_other_sessions(crm: Any) -> None:
    user = await crm.user("manager")
    elsewhere = await _session(crm, user["email"])
    here = await _session(crm, user["email"])
    crm.client.cookies.set(SESSION_COOKIE, here)
    page = await crm.client.get("/app/password")
    assert page.status_code == 200 and 'name="current_password"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    body = {"csrf_token": csrf, "new_password": NEW, "new_password_again": NEW, "revoke_tokens": "true"}

    assert (await crm.client.post("/app/password", data={**body, "csrf_token": "forged"})).status_code == 403
    wrong = await crm.client.post("/app/password", data={**body, "current_password": "not-my-password"})
    assert wrong.status_code == 422
    assert _error_after(wrong.text, "current_password") == "is not your current password"
    assert await _me(crm, elsewhere) == 200  # a refused change changes nothing
    crm.client.cookies.set(SESSION_COOKIE, here)

    r = await crm.client.post("/app/password", data={**body, "current_password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/app/password?done=1"
    done = await crm.client.get(r.headers["location"])
    assert done.status_code == 200 and "Your password has been changed" in done.text  # still signed in
    assert await _me(crm, here) == 200
    assert await _me(crm, elsewhere) == 401
    assert (await crm.get("/api/auth/me", user)).status_code == 401  # "also revoke my API tokens"
    assert await _me(crm, await _session(crm, user["email"], NEW)) == 200


def test_public_url_comes_from_the_environment_and_must_be_a_web_address(tmp_path: Any) -> None:
    from tessera.config import load_settings

    missing = tmp_path / "none.toml"
    env = {"TESSERA_PUBLIC_URL": "https://crm.example.com"}
    assert load_settings(missing, env=env).public_url == "https://crm.example.com"
    with pytest.raises(ValueError, match="public_url"):
        load_settings(missing, env={"TESSERA_PUBLIC_URL": "crm.example.com"})


async def test_the_reset_email_speaks_the_users_language(crm: Any, smtp: MailServer, settings: Any) -> None:
    user = await crm.user("manager", name="Оксана")
    assert (await crm.patch("/api/auth/me", user, json={"locale": "uk"})).status_code == 200
    r = await crm.client.post("/password-reset/request", data={"email": user["email"]})
    assert r.status_code == 200
    await jobs.work(crm.pm, settings)
    [(_rcpt, message, _)] = smtp.received
    assert message["Subject"] == "Скидання пароля Tessera CRM"
    text = message.get_content()
    assert "Вітаємо, Оксана!" in text and LINK.search(text)
