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
