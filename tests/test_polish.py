"""Web UI polish (issue 15): the error page in the signed-in user's language and with their
navigation; the audit log with pipeline and stage names; deals found by words, not codes."""

from __future__ import annotations


async def test_error_page_speaks_the_signed_in_users_language_with_navigation(crm):
    manager = await crm.user("manager", name="Оксана Менеджер")
    token = await crm.sign_in(manager)
    await crm.client.post("/app/language", data={"csrf_token": token, "locale": "uk", "next": "/app"})
    # The browser asks for English; the user's profile says Ukrainian.
    r = await crm.client.get("/app/no-such-page", headers={"accept-language": "en"})
    assert r.status_code == 404
    assert '<html lang="uk">' in r.text
    assert "Такої сторінки немає." in r.text, r.text[-800:]
    assert "There is no such page" not in r.text
    assert 'href="/app/parties"' in r.text  # the navigation
    assert "Оксана Менеджер" in r.text  # the header with the user's name
    assert "/logout" in r.text
    # Signed out: the browser's language and no navigation.
    crm.client.cookies.clear()
    anon = await crm.client.get("/app/no-such-page", headers={"accept-language": "en"})
    assert anon.status_code == 404 and "There is no such page" in anon.text
    assert 'href="/app/parties"' not in anon.text and "/logout" not in anon.text
