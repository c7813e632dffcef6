"""The report builder in a real browser (issue 21): a manager builds a report of their calls
by manager, saves it, adds it to a new dashboard, clicks the bar on the dashboard and lands
on the list of exactly those calls (with the list's bulk actions). Fixtures:
tests/browser/conftest.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from browser_helpers import Site, sign_in


async def test_build_save_dashboard_and_drill_down(page: Any, site: Site, shoot: Any) -> None:
    from tessera.entities import activities, service
    from tessera.permissions import build_principal

    user = await site.user("manager")
    party = await site.party(user, "Journey Reports Ltd")
    ids = []
    async with site.kernel():
        me = await build_principal(user["id"])
        for kind in ("call", "call", "meeting"):
            body = {"type": kind, "subject": f"Journey {kind}", "party_id": party["id"]}
            row = await service.create(
                activities.ACTIVITY, me, body | {"starts_at": datetime(2026, 3, 2, 10, tzinfo=UTC)}
            )
            if kind == "call":
                ids.append(row["id"])
    await sign_in(page, user["email"])

    async def submit(selector: str) -> None:
        async with page.expect_navigation():
            await page.click(selector)

    # Build: the manager's calls, grouped by manager, counted.
    await page.goto("/app/report-builder?entity=activity")
    await page.select_option("select[name='filters.0.field']", "type")
    await page.select_option("select[name='filters.0.op']", "eq")
    await page.fill("input[name='filters.0.value']", "call")
    await page.select_option("select[name='group_by.0']", "owner")
    await page.select_option("select[name='measures.0.agg']", "count")
    await submit("button[value=show]")
    assert await page.locator(".field-error").count() == 0
    assert user["name"] in await page.inner_text("table.report")
    # Save it, then add it to a new dashboard from its page.
    await page.fill("input[name=name]", "Journey calls")
    await submit("button[value=save]")
    assert "Journey calls" in await page.inner_text("h1")
    await page.fill("input[name=new_name]", "Journey board")
    await submit("form[action$='/dashboard'] button")
    assert "Journey board" in await page.inner_text("h1")
    await shoot(page, "report-dashboard")
    # The bar drills down to the list of exactly those calls, with the list's bulk actions.
    await submit(".tile svg a")
    assert page.url.split("?")[0].endswith("/app/activities")
    shown = await page.locator("tr[data-id]").evaluate_all("rows => rows.map(r => Number(r.dataset.id))")
    assert sorted(shown) == sorted(ids)
    assert await page.locator("button[name=action][value=owner]").count() == 1
