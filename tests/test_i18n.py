"""Languages of the web UI (issue 15.1): Russian, Ukrainian and English chosen per user
(profile setting, then ``Accept-Language``, then ``default_locale``), complete catalogues, and
no internal code where a person reads."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from tessera import i18n

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = [
    ROOT / "core" / "tessera" / "locale",
    ROOT / "plugins" / "sales" / "tessera_sales" / "locale",
    ROOT / "plugins" / "service" / "tessera_service" / "locale",
]


async def _sign_in(crm, user, password="correct-horse-battery"):
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": user["email"], "password": password})
    assert r.status_code == 303, r.text


def visible_text(page: str) -> str:
    """What a person reads: the page without tags, scripts, styles and attribute values."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]*>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda p: p.parent.name)
def test_catalogues_are_complete(catalogue):
    with (catalogue / "messages.pot").open("rb") as fh:
        template = read_po(fh)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}
    assert ids
    for locale in ("ru", "uk", "en"):
        with (catalogue / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            po = read_po(fh, locale=locale)
        by_id = {(m.id if isinstance(m.id, str) else m.id[0]): m for m in po if m.id}
        assert ids <= set(by_id), (locale, sorted(ids - set(by_id)))
        for msgid in ids:
            message = by_id[msgid]
            assert not message.fuzzy, (locale, msgid)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), (locale, msgid)


def test_accept_language_negotiation():
    assert i18n.negotiate("uk-UA,uk;q=0.9,en;q=0.5") == "uk"
    assert i18n.negotiate("de-DE, ru;q=0.4, en;q=0.6") == "en"
    assert i18n.negotiate("de") is None and i18n.negotiate("") is None


NAV = {"ru": ("Главная", "Клиенты"), "uk": ("Головна", "Клієнти"), "en": ("Dashboard", "Clients")}
ENGLISH_WORDS = ("Dashboard", "Clients", "Sign out", "Inbox", "Log a call", "History")


async def _set_locale(crm, user, locale):
    r = await crm.patch("/api/auth/me", user, json={"locale": locale})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("locale", ["ru", "uk", "en"])
async def test_each_page_is_in_the_users_language(crm, locale):
    manager = await crm.user("manager", name="Olga")
    await _set_locale(crm, manager, locale)
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    await _sign_in(crm, manager)
    for url in ("/app", "/app/parties", f"/app/parties/{party['id']}"):
        r = await crm.client.get(url, headers={"Accept-Language": "de"})
        assert r.status_code == 200, r.text[:300]
        text = visible_text(r.text)
        assert all(word in text for word in NAV[locale]), (url, text[:400])
        assert f'<html lang="{locale}">' in r.text
        if locale != "en":
            assert not [w for w in ENGLISH_WORDS if w in text], (url, text[:600])


async def test_without_a_profile_setting_the_browser_language_is_used(crm):
    manager = await crm.user("manager")
    await _sign_in(crm, manager)
    uk = visible_text((await crm.client.get("/app", headers={"Accept-Language": "uk,ru;q=0.8"})).text)
    assert "Головна" in uk and "Dashboard" not in uk
    de = visible_text((await crm.client.get("/app", headers={"Accept-Language": "de"})).text)
    assert "Dashboard" in de  # the deployment default (en)
    login = visible_text((await crm.client.get("/login", headers={"Accept-Language": "ru"})).text)
    assert "Войти" in login and "Sign in" not in login
    refused = await crm.client.post(
        "/login",
        data={"email": manager["email"], "password": "wrong-pass"},
        headers={"Accept-Language": "uk"},
    )
    assert refused.status_code == 401 and "Невірна ел. пошта або пароль" in html.unescape(refused.text)


async def test_switching_the_language_with_the_form_persists(crm):
    manager = await crm.user("manager")
    await _sign_in(crm, manager)
    page = await crm.client.get("/app/parties")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    forged = await crm.client.post("/app/language", data={"locale": "uk", "next": "/app/parties"})
    assert forged.status_code == 403
    r = await crm.client.post(
        "/app/language", data={"csrf_token": token, "locale": "uk", "next": "/app/parties"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/app/parties"
    again = await crm.client.post(
        "/app/language", data={"csrf_token": token, "locale": "uk", "next": "https://evil.example/"}
    )
    assert again.headers["location"] == "/app"  # never to another site
    text = visible_text((await crm.client.get("/app/parties", headers={"Accept-Language": "en"})).text)
    assert "Клієнти" in text and "Clients" not in text
    await _sign_in(crm, manager)  # a new session: the choice is in the profile
    assert "Головна" in visible_text((await crm.client.get("/app")).text)
    bad = await crm.client.post("/app/language", data={"csrf_token": token, "locale": "de"})
    assert bad.status_code in (403, 422)


async def test_the_profile_api_accepts_only_the_ui_languages(crm):
    manager = await crm.user("manager")
    r = await crm.patch("/api/auth/me", manager, json={"locale": "fr"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "locale"
    assert (await crm.patch("/api/auth/me", manager, json={"locale": "ru"})).json()["locale"] == "ru"


#: Internal codes a person must never read on a page.
INTERNAL_CODES = re.compile(
    r"\b(activity\.\w+|party\.status|required\.\w+|lost:|open:|in_progress|claim|potential|current)\b|->"
)


@pytest.mark.parametrize("locale", ["ru", "uk", "en"])
async def test_pages_show_labels_not_internal_codes(crm, locale):
    manager = await crm.user("manager")
    await _set_locale(crm, manager, locale)
    party = (await crm.post("/api/parties", manager, json={"name": "Acme", "status": "potential"})).json()
    r = await crm.patch(f"/api/parties/{party['id']}", manager, json={"status": "current"})
    assert r.status_code == 200, r.text
    r = await crm.post(
        "/api/activities",
        manager,
        json={
            "party_id": party["id"],
            "type": "claim",
            "subject": "Broken delivery",
            "status": "done",
            "starts_at": "2026-01-05T10:00:00+00:00",
        },
    )
    assert r.status_code == 201, r.text
    await _sign_in(crm, manager)
    for url in ("/app", "/app/parties", f"/app/parties/{party['id']}"):
        text = visible_text((await crm.client.get(url)).text)
        found = (
            INTERNAL_CODES.findall(text)
            if locale != "en"
            else re.findall(r"activity\.\w+|party\.status|->", text)
        )
        assert not found, (url, found, text[:800])
    card = visible_text((await crm.client.get(f"/app/parties/{party['id']}")).text)
    claim = {"ru": "Претензия", "uk": "Претензія", "en": "Claim"}[locale]
    change = {"ru": "Потенциальный → Текущий", "uk": "Потенційний → Поточний", "en": "Potential → Current"}
    assert claim in card and change[locale] in card, card[:1500]


def test_money_and_dates_follow_the_locale():
    from datetime import UTC, datetime

    i18n.activate("ru", "Europe/Moscow")
    assert i18n.format_money("125000", "RUB").replace("\xa0", " ") == "125 000,00 ₽"
    assert i18n.format_datetime(datetime(2026, 12, 5, 12, 0, tzinfo=UTC)).endswith("15:00")
    i18n.activate("en")
    assert "125,000.00" in i18n.format_money("125000", "RUB")
    i18n.activate(None)


#: English words of the password pages that a Ukrainian page must not show.
PASSWORD_PAGE_ENGLISH = (
    "Change password",
    "Current password",
    "New password",
    "Forgot password",
    "reset link",
    "Back to sign-in",
    "does not match",
    "API tokens",
    "signed out",
    "Password",
)


async def test_password_pages_are_in_ukrainian(crm):
    """ "Forgot password?" (by the browser's language), its answer, the reset link's page and
    "Change password" (by the user's profile setting, with a field error) speak Ukrainian."""
    uk = {"Accept-Language": "uk"}
    request = visible_text((await crm.client.get("/password-reset/request", headers=uk)).text)
    assert "Забули пароль?" in request and "Надіслати посилання для скидання" in request
    sent = await crm.client.post("/password-reset/request", data={"email": "nobody@example.com"}, headers=uk)
    assert sent.status_code == 200 and "підготовлено скидання пароля" in visible_text(sent.text)
    reset = visible_text((await crm.client.get("/password-reset?token=x", headers=uk)).text)
    assert "Задайте новий пароль" in reset and "Новий пароль ще раз" in reset
    done = visible_text((await crm.client.get("/login?done=password-reset", headers=uk)).text)
    assert "Ваш пароль змінено. Увійдіть із новим паролем." in done

    manager = await crm.user("manager")
    await _set_locale(crm, manager, "uk")
    await _sign_in(crm, manager)
    page = await crm.client.get("/app/password", headers={"Accept-Language": "en"})
    change = visible_text(page.text)
    assert "Змінити пароль" in change and "Поточний пароль" in change and "Пароль" in change
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    typo = {
        "csrf_token": token,
        "current_password": "correct-horse-battery",
        "new_password": "new-horse-battery-staple",
        "new_password_again": "other-horse-battery",
    }
    refused = await crm.client.post("/app/password", data=typo)
    assert refused.status_code == 422 and "не збігається з новим паролем" in visible_text(refused.text)
    wrong = await crm.client.post(
        "/app/password", data={**typo, "current_password": "nope", "new_password_again": typo["new_password"]}
    )
    assert "не збігається з вашим поточним паролем" in visible_text(wrong.text)
    for text in (request, visible_text(sent.text), reset, done, change, visible_text(refused.text)):
        assert not [w for w in PASSWORD_PAGE_ENGLISH if w in text], text[:800]
