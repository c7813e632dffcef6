"""Collection in a real browser (issue 19): a collector opens the worklist from the menu, sees
their overdue client, records a promise to pay from a call, and the client's card shows it.
Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

from browser_helpers import Site, sign_in


async def test_collector_records_a_promise_from_the_worklist(page: Any, site: Site, shoot: Any) -> None:
    from decimal import Decimal

    from tessera import clock
    from tessera.demo import system_principal
    from tessera.entities import admin, service
    from tessera.errors import Conflict, ValidationFailed
    from tessera_receivables import services

    async with site.kernel():
        try:
            await service.create(
                admin.ROLE,
                system_principal(),
                {
                    "name": "collector",
                    "description": "Own clients' receivables",
                    "permissions": [
                        "party.read",
                        "party.write",
                        "receivables.read",
                        "receivables.collect",
                        "task.read",
                    ],
                    "scope": "own",
                },
            )
        except (Conflict, ValidationFailed):
            pass  # made by this test on the other run of the same site
    user = await site.user("collector")
    party = await site.party(user, "Journey Debtor Ltd")
    today = clock.now().date()
    async with site.kernel():
        await service.create(
            services.INVOICE,
            system_principal(),
            {
                "party_id": party["id"],
                "number": "J-1",
                "issue_date": today - dt.timedelta(days=40),
                "due_date": today - dt.timedelta(days=10),
                "amount": Decimal("2500"),
            },
        )
    await sign_in(page, user["email"])

    # From the "More" menu to the worklist: the overdue client is there.
    await page.goto("/app")
    await page.click("header nav details.menu > summary")
    async with page.expect_navigation():
        await page.click("header nav details a[href='/receivables/worklist']")
    overdue = await page.inner_text("main")
    assert "Journey Debtor Ltd" in overdue and "2,500.00" in overdue.replace("\u00a0", " "), overdue[:1500]

    # The call went well: a promise to pay by Friday.
    promised = today + dt.timedelta(days=3)
    form = page.locator("form.promise-form")
    await form.locator("select[name=party_id]").select_option(str(party["id"]))
    await form.locator("input[name=amount]").fill("2500")
    await form.locator("input[name=promised_on]").fill(promised.isoformat())
    await form.locator("input[name=notes]").fill("Accountant pays on Friday")
    async with page.expect_navigation():
        await form.locator("button[type=submit]").click()
    assert page.url.endswith("/receivables/worklist"), page.url
    assert await page.locator(".error, .field-error").count() == 0
    assert promised.isoformat() in await page.inner_text("table.promises")
    await shoot(page, "receivables-worklist-promise")

    # The client's card shows the promise on its timeline.
    await page.goto(f"/app/parties/{party['id']}")
    timeline = await page.inner_text(".timeline")
    assert "Promise to pay" in timeline and promised.isoformat() in timeline, timeline[:1500]
    assert "Accountant pays on Friday" in timeline
    await shoot(page, "receivables-card-promise")
