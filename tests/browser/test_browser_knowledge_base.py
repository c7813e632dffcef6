"""The knowledge base in a real browser (issue 20): an agent walks a decision tree from a
ticket's page and opens the article it recommends. Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

from typing import Any

from browser_helpers import Site, sign_in


async def test_agent_runs_a_decision_tree_from_a_ticket(page: Any, site: Site, shoot: Any) -> None:
    from tessera.demo import system_principal
    from tessera.entities import service
    from tessera.permissions import build_principal
    from tessera_knowledge_base import articles, trees
    from tessera_service import services

    user = await site.user("manager")
    party = await site.party(user, "Journey Printer Ltd")
    async with site.kernel():
        admin = system_principal()
        article = await service.create(
            articles.ARTICLE,
            admin,
            {"title": "Clearing a paper jam", "body": "1. Open the back cover.", "audience": "public"},
        )
        await articles.submit(admin, article["id"])
        await articles.publish(admin, article["id"])
        definition = {
            "start": "power",
            "nodes": {
                "power": {
                    "question": "Does the printer turn on?",
                    "answers": [
                        {"key": "yes", "label": "It turns on", "next": "jam"},
                        {"key": "no", "label": "It stays dark", "next": "cable"},
                    ],
                },
                "jam": {"recommendation": "Clear the jammed paper", "article_id": article["id"]},
                "cable": {"recommendation": "Check the power cable"},
            },
        }
        await service.create(trees.TREE, admin, {"name": "Printer does not print", "definition": definition})
        ticket = await service.create(
            services.TICKET,
            await build_principal(user["id"]),
            {"party_id": party["id"], "subject": "Printer does not print", "category": "incident"},
        )
    await sign_in(page, user["email"])
    await page.goto(f"/service/tickets/{ticket['id']}")
    await page.click(f"a[href='/knowledge_base/trees?kind=ticket&record_id={ticket['id']}']")
    async with page.expect_navigation():
        await page.click("form[action$='/start'] button")
    assert "Does the printer turn on?" in await page.inner_text(".kb-question")
    async with page.expect_navigation():
        await page.click("button[value=yes]")
    assert "Clear the jammed paper" in await page.inner_text(".kb-outcome")
    await shoot(page, "knowledge-base-tree-outcome")
    async with page.expect_navigation():
        await page.click("a.kb-outcome-article")
    assert "Clearing a paper jam" in await page.inner_text("h1")
    # The path stays on the ticket.
    await page.goto(f"/service/tickets/{ticket['id']}")
    blocks = " ".join(await page.locator(".widget-knowledge_base").all_inner_texts())
    assert "Does the printer turn on? → It turns on" in blocks
