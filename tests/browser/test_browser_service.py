"""The service desk in a real browser (issue 17): an agent opens a ticket from the client
card, replies, pauses it waiting on the client, resolves it, and the card shows the whole
exchange. Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

from typing import Any

from browser_helpers import Site, sign_in


async def test_agent_works_a_ticket_from_the_client_card(page: Any, site: Site, shoot: Any) -> None:
    from tessera.demo import system_principal
    from tessera.entities import service
    from tessera_service import services

    async with site.kernel():  # the site has the kernel's and sales' demo, not service's
        await service.create(
            services.POLICY,
            system_principal(),
            {"name": "Journey default", "first_response_hours": 8, "resolution_hours": 40}
            | {"is_default": True},
        )
    user = await site.user("manager")
    party = await site.party(user, "Journey Service Ltd")
    await sign_in(page, user["email"])

    async def submit(selector: str) -> None:
        async with page.expect_navigation():
            await page.click(selector)
        errors = page.locator(".error, .field-error")
        assert await errors.count() == 0, await errors.all_inner_texts()

    # From the card's "Tickets" tab to a new ticket for this client.
    await page.goto(f"/app/parties/{party['id']}")
    await page.click(f"nav.tabs a[href='/service/parties/{party['id']}/tickets']")
    await page.click(f"a[href='/service/tickets/new?party_id={party['id']}']")
    await page.fill("input[name=subject]", "Printer invoice doubled")
    await page.fill("textarea[name=description]", "The March invoice charges twice")
    await page.select_option("select[name=category]", "claim")
    await submit("form[action='/service/tickets/new'] button")
    ticket_url = page.url.split("?")[0]
    assert "Printer invoice doubled" in await page.inner_text("h1")
    assert "First response due" in await page.inner_text("main")

    # Reply, then pause: the SLA clock says it is paused.
    await page.fill("textarea[name=body]", "We are checking the invoice")
    await submit("form[action$='/messages'] button")
    await submit("form[action$='/status']:has(input[value=waiting]) button")
    assert "The clock is paused" in await page.inner_text("main")
    await shoot(page, "service-ticket-paused")
    # Resume and resolve.
    await submit("form[action$='/status']:has(input[value=in_progress]) button")
    await submit("form[action$='/status']:has(input[value=resolved]) button")
    assert "Resolved" in await page.inner_text("h1")
    assert page.url.startswith(ticket_url)

    # The card's history has the whole exchange.
    await page.goto(f"/app/parties/{party['id']}")
    timeline = await page.inner_text(".timeline")
    exchange = ("Printer invoice doubled", "We are checking the invoice", "Waiting on the client", "Resolved")
    for text in exchange:
        assert text in timeline, (text, timeline[:1500])
    await shoot(page, "service-card-after-ticket")
