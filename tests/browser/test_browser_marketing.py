"""Marketing in a real browser (issue 18), one journey: a marketer builds a segment and sees
its count change as the rules change (the page's script asks the API), creates a campaign with
a cost, opens a deal linked to it from the campaign card, and once the deal is won sees the campaign's ROI
change. Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

from typing import Any

from browser_helpers import Site, sign_in
from playwright.async_api import expect


async def test_segment_count_campaign_and_its_roi(page: Any, site: Site, shoot: Any) -> None:
    user = await site.user("admin")
    await site.party(user, "Journey Marketing Ltd", tags=["journey-vip"], status="current")
    await site.party(user, "Journey Other Ltd", tags=["journey-vip"])
    await sign_in(page, user["email"])

    async def submit(selector: str) -> None:
        async with page.expect_navigation():
            await page.click(selector)
        errors = page.locator(".error, .field-error")
        assert await errors.count() == 0, await errors.all_inner_texts()

    # A segment: the live count follows the rules as they are typed.
    await page.goto("/marketing/segments/new")
    await page.fill("input[name=name]", "Journey VIP")
    await page.select_option("select[name=rule-0-field]", "tag")
    await page.select_option("select[name=rule-0-op]", "has")
    await page.fill("input[name=rule-0-value]", "journey-vip")
    count = page.locator("#segment-count")
    await expect(count).to_have_text("2")
    await page.select_option("select[name=rule-1-field]", "status")
    await page.select_option("select[name=rule-1-op]", "eq")
    await page.fill("input[name=rule-1-value]", "current")
    await expect(count).to_have_text("1")
    await shoot(page, "marketing-segment-editor")
    await submit("button[value=save]")
    assert (await count.inner_text()).strip() == "1"
    assert "Journey VIP" in await page.inner_text("h1")

    # A campaign aimed at it, with a cost: no revenue yet, the ROI is -100 %.
    await page.goto("/marketing/campaigns/new")
    await page.fill("input[name=name]", "Journey expo")
    await page.select_option("select[name=channel]", "exhibition")
    await page.select_option("select[name=segment_id]", label="Journey VIP")
    await page.fill("input[name=budget]", "1000")
    await submit("form[action='/marketing/campaigns/new'] button")
    await page.fill("input[name=amount]", "1000")
    await page.fill("input[name=description]", "Stand")
    await submit("form[action$='/costs'] button")
    card_url = page.url
    assert (await page.inner_text("[data-figure=roi]")).strip() == "-100 %"

    # A deal opened from the campaign card (the campaign chosen), then won.
    await page.click("a[data-new-deal]")
    await page.fill("input[name=title]", "Journey stand deal")
    await page.select_option("select[name=party_id]", label="Journey Marketing Ltd")
    await page.fill("input[name=amount]", "3000")
    assert await page.input_value("select[name=campaign_id]") == card_url.rsplit("/", 1)[1]
    await submit("form[action='/sales/deals/new'] button")
    deal_id = int(page.url.split("?")[0].rsplit("/", 1)[1])
    await page.goto(card_url)
    assert (await page.inner_text("[data-figure=leads]")).strip() == "1"
    assert (await page.inner_text("[data-figure=roi]")).strip() == "-100 %"
    # Won (its stage checklist, a logged call, is the sales journeys' subject, not this one's).
    from tessera import clock
    from tessera_sales.tables import Deal

    async with site.kernel():
        await Deal.update({Deal.status: "won", Deal.closed_at: clock.now()}).where(Deal.id == deal_id)

    # The campaign's return now has the won deal: ROI (3000 - 1000) / 1000 = 200 %.
    await page.goto(card_url)
    assert (await page.inner_text("[data-figure=revenue]")).strip() == "3\u00a0000.00"
    assert (await page.inner_text("[data-figure=roi]")).strip() == "200 %"
    assert await page.get_attribute("#campaign-roi rect.datum", "data-value") == "200"
    await shoot(page, "marketing-campaign-card")


async def test_web_form_defined_embedded_and_its_lead_distributed(page: Any, site: Site, shoot: Any) -> None:
    """An admin defines a web form on its page, copies the embed snippet, a visitor's browser
    posts the snippet from another page, and the lead shows on the form's page with the manager
    it was handed to."""
    admin = await site.user("admin")
    manager = await site.user("manager", name="Journey Form Manager")
    await sign_in(page, admin["email"])
    await page.goto("/marketing/forms/new")
    await page.fill("input[name=name]", "Journey form")
    await page.fill("input[name=key]", "journey-form")
    await page.check(f"input[name=user-{manager['id']}]")
    async with page.expect_navigation():
        await page.click("form[action='/marketing/forms/new'] button[type=submit]")
    assert await page.locator(".field-error").count() == 0
    form_url = page.url
    copy = page.locator("button[data-copy]")
    await expect(copy).to_be_visible()
    await copy.click()
    await expect(copy).to_have_text("Copied")
    snippet = await page.input_value("#snippet")
    await shoot(page, "marketing-web-form")

    # The snippet on a page of its own (another origin), filled and sent by the visitor.
    visitor = await page.context.new_page()
    await visitor.set_content(f"<!doctype html><html><body>{snippet}</body></html>")
    await visitor.fill("input[name=name]", "Journey Visitor")
    await visitor.fill("input[name=email]", "journey.visitor@example.com")
    await visitor.fill("textarea[name=message]", "Call me back")
    trap = await visitor.locator("input[name=website_url]").bounding_box()
    assert trap is not None and trap["x"] < 0  # the honeypot is off screen, left empty
    async with visitor.expect_navigation():
        await visitor.click("button[type=submit]")
    assert '"accepted":true' in (await visitor.content()).replace(" ", "")
    await visitor.close()

    await page.goto(form_url)
    row = page.locator("tr[data-lead]").first
    await expect(row).to_contain_text("Journey Visitor")
    await expect(row.locator("[data-assignee]")).to_have_text("Journey Form Manager")
