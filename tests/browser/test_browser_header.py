"""The header in a real browser: one row on a laptop (1280 px) with the less-used pages in a
"More" menu that opens without JavaScript, usable from the keyboard with a visible focus, and
on a phone (390 px) nothing wider than the screen. Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

from typing import Any

from browser_helpers import Site, sign_in

_ROWS = """() => {
  const tops = new Set();
  const pieces = 'header > .brand, header nav > a, header nav > details > summary, '
    + 'header form.search, header .me > *';
  for (const el of document.querySelectorAll(pieces)) {
    const box = el.getBoundingClientRect();
    if (box.width && box.height) tops.add(Math.round(box.top + box.height / 2));
  }
  return Math.max(...tops) - Math.min(...tops);
}"""


async def test_header_is_one_row_on_a_laptop_and_more_opens_by_keyboard(
    page: Any, site: Site, shoot: Any
) -> None:
    admin = await site.user("admin", name="Header Admin")
    await sign_in(page, admin["email"])
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.goto("/app")
    # Every visible piece of the header sits on one line (their middles within a few pixels).
    assert await page.evaluate(_ROWS) <= 8
    assert await page.evaluate("document.querySelector('header').getBoundingClientRect().height") < 70
    admin_link = page.locator("header nav details a[href='/app/admin']")
    assert not await admin_link.is_visible()  # in the closed "More" menu
    # Keyboard: focus the menu's summary, see the focus ring, open it with Enter, follow a link.
    summary = page.locator("header nav details.menu > summary")
    await summary.focus()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Shift+Tab")
    assert await summary.evaluate("e => e === document.activeElement")
    outline = await summary.evaluate(
        "e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth"
    )
    assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
    await page.keyboard.press("Enter")
    assert await admin_link.is_visible()
    for href in ("/app/activities", "/sales/plans", "/sales/kanban", "/schema/swagger"):
        assert await page.locator(f"header nav details a[href='{href}']").is_visible(), href
    await shoot(page, "header-more-1280")
    async with page.expect_navigation():
        await page.click("header nav details a[href='/sales/plans']")
    assert page.url.endswith("/sales/plans")


async def test_header_fits_a_phone(page: Any, site: Site, shoot: Any) -> None:
    user = await site.user("manager", name="Phone Manager")
    await sign_in(page, user["email"])
    await page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/app", "/app/parties", "/sales/plans"):
        await page.goto(path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    await page.goto("/app")
    await page.click("header nav details.menu > summary")
    panel = page.locator("header nav details.menu > .panel")
    box = await panel.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await shoot(page, "header-more-phone-390")
    # Opening the user's own menu closes "More" (one exclusive group: <details name=...>), so
    # the two panels never cover each other.
    await page.click("header details.menu.end > summary")
    assert await page.locator("form[action='/logout'] button").is_visible()
    assert not await panel.is_visible()
    await shoot(page, "header-phone-390")
