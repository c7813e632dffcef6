"""The knowledge base's pages: search within the base, the reader, the editor's preview (safe),
versions and their diff, the rule editor's "test on this record", the tree runner."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from kb_helpers import article, ok

pytestmark = pytest.mark.plugins("knowledge_base")


async def test_pages_of_the_base(crm: Any) -> None:
    admin = await crm.user("admin", name="Admin")
    client = crm.client
    client.cookies.clear()
    client.headers["Accept-Language"] = "ru"
    r = await client.post("/login", data={"email": admin["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    try:
        root = await ok(
            await crm.post("/api/knowledge_base/categories", admin, json={"name": "Продажи"}), 201
        )
        row = await article(
            crm, admin, admin, title="Работа с возражениями", body="Слушать клиента", category_id=root["id"]
        )
        await ok(
            await crm.patch(
                f"/api/knowledge_base/articles/{row['id']}", admin, json={"body": "Слушать\nи отвечать"}
            )
        )

        text = html.unescape((await client.get("/knowledge_base/", params={"q": "возражений"})).text)
        assert "База знаний" in text and "Работа с возражениями" in text and "Продажи" in text
        text = html.unescape((await client.get(f"/knowledge_base/articles/{row['id']}")).text)
        assert "и отвечать" in text and "Изменения" in text  # the working copy; the diff link
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        diff = html.unescape((await client.get(f"/knowledge_base/articles/{row['id']}/diff?a=1&b=2")).text)
        assert "строка 1" in diff and "и отвечать" in diff

        form = {
            "csrf_token": csrf,
            "title": "X",
            "body": "**жирно** <script>alert(1)</script>",
            "action": "preview",
        }
        r = await client.post("/knowledge_base/articles/new", data=form)
        assert r.status_code == 200 and "<strong>жирно</strong>" in r.text and "<script>alert" not in r.text
        r = await client.post("/knowledge_base/articles/new", data={**form, "action": "save"})
        assert r.status_code == 303

        rule = {
            "key": "k",
            "when": {"fact": "party.status", "op": "eq", "value": "current"},
            "then": [{"type": "next_step", "text": "Позвонить"}],
        }
        rules = json.dumps([rule], ensure_ascii=False)
        party = await ok(
            await crm.post("/api/parties", admin, json={"name": "ООО Тест", "status": "current"}), 201
        )
        r = await client.post(
            "/knowledge_base/rules/save",
            data={
                "csrf_token": csrf,
                "name": "S",
                "target": "party",
                "rules": rules,
                "record_id": str(party["id"]),
                "action": "test",
            },
        )
        assert r.status_code == 200 and "Позвонить" in html.unescape(r.text) and "party.status" in r.text
        r = await client.post(
            "/knowledge_base/rules/save",
            data={
                "csrf_token": csrf,
                "name": "S",
                "target": "party",
                "rules": rules.replace("party.status", "party.nope"),
                "action": "save",
            },
        )
        assert r.status_code == 422 and "party.nope" in html.unescape(r.text)
    finally:
        client.cookies.clear()


async def test_demo_data_loads_once(crm: Any) -> None:
    import random

    from tessera.demo import DemoContext, system_principal
    from tessera_knowledge_base import demo
    from tessera_knowledge_base.tables import Article, Link, RuleSet, Tree

    ctx = DemoContext(random=random.Random(3), admin=system_principal())
    await demo.load(ctx)
    await demo.load(ctx)
    assert await Article.count() == 10 and await Tree.count() == 1 and await RuleSet.count() == 1
    stages = {r["key"] for r in await Link.select(Link.key).where(Link.kind == "stage")}
    assert stages == {"qualification", "needs", "proposal", "negotiation", "offer"}
    assert await Article.count().where(Article.published_revision.is_null()) == 1


async def test_accept_and_reject_recommendations_on_the_record_page(crm: Any) -> None:
    """The client card shows the expert system's advice with Accept / Reject (the session's CSRF
    token); accepting a task recommendation shows it accepted with a link to the created task."""
    admin = await crm.user("admin", name="Admin")
    body = {"name": "ООО Совет", "status": "current"}
    party = await ok(await crm.post("/api/parties", admin, json=body), 201)
    when = {"fact": "party.status", "op": "eq", "value": "current"}
    rules = [
        {"key": "call", "when": when, "then": [{"type": "task", "title": "Позвонить клиенту"}]},
        {"key": "offer", "when": when, "then": [{"type": "next_step", "text": "Предложить скидку"}]},
    ]  # fmt: skip
    body = {"name": "Card", "target": "party", "rules": rules}
    await ok(await crm.post("/api/knowledge_base/rule-sets", admin, json=body), 201)
    card = f"/app/parties/{party['id']}"
    try:
        csrf = await crm.sign_in(admin)
        assert "No recommendations for it yet." in await crm.page(card)
        form = {"csrf_token": csrf, "kind": "party", "record_id": str(party["id"])}
        r = await crm.client.post("/knowledge_base/advise", data=form)
        assert r.status_code == 303 and r.headers["location"].startswith(card)
        text = await crm.page(card)
        assert "Позвонить клиенту" in text and "Предложить скидку" in text and "party.status" in text
        ids = dict(re.findall(r'kb-recommendation-(\d+)">.*?(Позвонить|Предложить)', text, re.S))
        task_rec, step_rec = ({v: int(k) for k, v in ids.items()}[w] for w in ("Позвонить", "Предложить"))

        url = "/knowledge_base/recommendations/{}/feedback"
        r = await crm.client.post(url.format(task_rec), data={"csrf_token": "stale", "accepted": "true"})
        assert r.status_code == 403  # a forged form is refused, nothing decided
        r = await crm.client.post(url.format(task_rec), data={"csrf_token": csrf, "accepted": "maybe"})
        assert r.status_code == 422 and "accepted" in r.text
        r = await crm.client.post(url.format(99999), data={"csrf_token": csrf, "accepted": "true"})
        assert r.status_code == 404
        r = await crm.client.post(url.format(task_rec), data={"csrf_token": csrf, "accepted": "true"})
        assert r.status_code == 303 and r.headers["location"].startswith(card)
        r = await crm.client.post(url.format(step_rec), data={"csrf_token": csrf, "accepted": "false"})
        assert r.status_code == 303

        task = (await ok(await crm.get("/api/tasks", admin, params={"party_id": party["id"]})))["items"]
        assert [t["title"] for t in task] == ["Позвонить клиенту"]
        text = await crm.page(card)
        assert "Accepted" in text and f'href="/app/tasks/{task[0]["id"]}"' in text and "Rejected" in text
        assert f"recommendations/{task_rec}/feedback" not in text  # decided: no buttons left
    finally:
        crm.client.cookies.clear()


@pytest.mark.plugins("knowledge_base", "sales", "service")
@pytest.mark.parametrize("kind", ["deal", "ticket"])
async def test_accept_and_reject_on_deal_and_ticket_pages(crm: Any, kind: str) -> None:
    """The deal and ticket pages carry the same advice block as the card: "Ask for advice" stores
    the recommendations, Accept creates the task on the record's client, Reject only records the
    decision, and the decided block shows no buttons."""
    admin = await crm.user("admin", name="Admin")
    party = await ok(await crm.post("/api/parties", admin, json={"name": "ООО Сделка"}), 201)
    if kind == "deal":
        body = {"title": "Поставка", "party_id": party["id"], "amount": "100"}
        record = await ok(await crm.post("/api/sales/deals", admin, json=body), 201)
        when = {"fact": "deal.stage", "op": "eq", "value": record["stage"]}
        url = f"/sales/deals/{record['id']}"
    else:
        body = {"party_id": party["id"], "subject": "Не печатает", "category": "claim"}
        record = await ok(await crm.post("/api/service/tickets", admin, json=body), 201)
        when = {"fact": "ticket.category", "op": "eq", "value": "claim"}
        url = f"/service/tickets/{record['id']}"
    rules = [
        {"key": "call", "when": when, "then": [{"type": "task", "title": "Позвонить клиенту"}]},
        {"key": "offer", "when": when, "then": [{"type": "next_step", "text": "Предложить скидку"}]},
    ]  # fmt: skip
    body = {"name": "Records", "target": kind, "rules": rules}
    await ok(await crm.post("/api/knowledge_base/rule-sets", admin, json=body), 201)
    try:
        csrf = await crm.sign_in(admin)
        assert "Позвонить клиенту" not in await crm.page(url)
        form = {"csrf_token": csrf, "kind": kind, "record_id": str(record["id"])}
        r = await crm.client.post("/knowledge_base/advise", data=form)
        assert r.status_code == 303 and r.headers["location"].startswith(url)
        text = await crm.page(url)
        ids = dict(re.findall(r'kb-recommendation-(\d+)">.*?(Позвонить|Предложить)', text, re.S))
        by_text = {v: int(k) for k, v in ids.items()}
        assert set(by_text) == {"Позвонить", "Предложить"}, text
        feedback = "/knowledge_base/recommendations/{}/feedback"
        for rec, accepted in ((by_text["Позвонить"], "true"), (by_text["Предложить"], "false")):
            r = await crm.client.post(feedback.format(rec), data={"csrf_token": csrf, "accepted": accepted})
            assert r.status_code == 303 and r.headers["location"].startswith(url)
        tasks = (await ok(await crm.get("/api/tasks", admin, params={"party_id": party["id"]})))["items"]
        assert [t["title"] for t in tasks if t["title"] == "Позвонить клиенту"] == ["Позвонить клиенту"]
        text = await crm.page(url)
        task_id = next(t["id"] for t in tasks if t["title"] == "Позвонить клиенту")
        assert "Accepted" in text and "Rejected" in text and f'href="/app/tasks/{task_id}"' in text
        assert "/feedback" not in text  # both decided: no buttons left
    finally:
        crm.client.cookies.clear()
