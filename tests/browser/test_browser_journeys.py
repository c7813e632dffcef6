"""Journeys of issue 15 in a real browser (chromium) against the real server, on SQLite and
PostgreSQL: what a sales manager does all day, as they would do it (fields, buttons, links).
Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

from typing import Any

from browser_helpers import PASSWORD, Site, sign_in


async def test_sign_in(page: Any, site: Site, shoot: Any) -> None:
    """A wrong password is refused on the form; the right one opens the dashboard with the
    user's name."""
    user = await site.user("manager", name="Olena Sign-in")
    await page.goto("/app")
    assert page.url.endswith("/login")  # not signed in: sent to the sign-in page
    await shoot(page, "login")
    await page.fill("input[name=email]", user["email"])
    await page.fill("input[name=password]", "not-the-password")
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_load_state()
    assert page.url.endswith("/login")
    assert "Wrong e-mail or password" in await page.inner_text(".error")
    assert await page.input_value("input[name=email]") == user["email"]  # input kept

    await sign_in(page, user["email"], PASSWORD)
    assert "Olena Sign-in" in await page.inner_text("header")


async def test_log_a_call_on_the_card(page: Any, site: Site, shoot: Any) -> None:
    """A manager opens their client's card, logs a call, and sees it on the timeline with
    its label (not the code ``activity.call``)."""
    user = await site.user("manager")
    party = await site.party(user, "Journey Call Ltd")
    await sign_in(page, user["email"])
    await page.goto("/app/parties")
    await page.click("text=Journey Call Ltd")
    await page.wait_for_url(f"**/app/parties/{party['id']}")
    await page.select_option("select[name=type]", "call")
    await page.fill("input[name=subject]", "Asked about the spring price list")
    await page.fill("textarea[name=outcome]", "Sends the list tomorrow")
    async with page.expect_navigation():
        await page.click(f"form[action='/app/parties/{party['id']}/activities'] button")
    timeline = page.locator(".timeline li", has_text="Asked about the spring price list")
    await timeline.wait_for()
    text = await timeline.inner_text()
    assert "Call" in text and "activity.call" not in text
    assert "Done" in text  # logged now: done, not planned
    assert "Sends the list tomorrow" in text
    await shoot(page, "card-after-call")


async def test_switch_language_to_ukrainian(page: Any, site: Site) -> None:
    """The language switcher stores Ukrainian in the profile: the navigation, the list and the
    card are in Ukrainian, and stay so on the next page and the next sign-in."""
    user = await site.user("manager")
    party = await site.party(user, "Journey Language Ltd")
    await sign_in(page, user["email"])
    assert "Clients" in await page.inner_text("header nav")
    await page.select_option("select[name=locale]", "uk")
    async with page.expect_navigation():
        await page.click("form.lang button")
    assert page.url.endswith("/app")
    assert await page.get_attribute("html", "lang") == "uk"
    nav = await page.inner_text("header nav")
    assert "Клієнти" in nav and "Clients" not in nav
    await page.goto(f"/app/parties/{party['id']}")
    body = await page.inner_text("main")
    assert "Потенційний" in body  # the status label, in Ukrainian
    assert "Зберегти" in await page.inner_text("form[action$='/activities'] button")
    # The next session of the same user (another browser) is in Ukrainian too.
    await page.context.clear_cookies()
    await sign_in(page, user["email"])
    assert "Клієнти" in await page.inner_text("header nav")


async def test_own_scope_manager_sees_only_own_clients(page: Any, site: Site) -> None:
    """A manager (scope "own") finds neither a colleague's client in the list (nor by search
    in it) nor its card by URL: the card answers the "no such record" page."""
    mine_owner = await site.user("manager")
    other = await site.user("manager")
    mine = await site.party(mine_owner, "Journey Scope Mine")
    theirs = await site.party(other, "Journey Scope Theirs")
    await sign_in(page, mine_owner["email"])
    await page.goto("/app/parties?q=Journey Scope")
    listing = await page.inner_text("main")
    assert "Journey Scope Mine" in listing
    assert "Journey Scope Theirs" not in listing
    response = await page.goto(f"/app/parties/{theirs['id']}")
    assert response is not None and response.status == 404
    body = await page.inner_text("main")
    assert "Journey Scope Theirs" not in body
    assert "There is no such record, or you may not see it." in body
    response = await page.goto(f"/app/parties/{mine['id']}")
    assert response is not None and response.status == 200


async def test_sign_out(page: Any, site: Site) -> None:
    """Signing out ends the session: the dashboard sends the browser back to sign in."""
    user = await site.user("manager")
    await sign_in(page, user["email"])
    async with page.expect_navigation():
        await page.click("form[action='/logout'] button")
    assert page.url.endswith("/login")
    await page.goto("/app")
    assert page.url.endswith("/login")
    assert await page.locator("form[action='/logout']").count() == 0
