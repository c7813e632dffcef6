"""Articles: sanitised Markdown, drafts invisible to readers until a publisher approves them
after review, every version kept, diffs naming the changed lines, restore, votes and views,
search by audience with Russian and Ukrainian inflected forms, the same visibility as reading."""

from __future__ import annotations

from typing import Any

import pytest
from kb_helpers import article, ok, role_user

pytestmark = pytest.mark.plugins("knowledge_base")

API = "/api/knowledge_base"
HOSTILE = """# Памятка

Click <script>alert("x")</script> here.

[bad link](javascript:alert(1)) and <a href="JaVaScRiPt:alert(2)">another</a>

<img src="/knowledge_base/files/1" onerror="alert(3)"> <b onclick="steal()">bold</b>
"""


async def test_article_review_versions_diff_and_sanitising(crm: Any) -> None:
    editor = await role_user(crm, "kb_editor", ["knowledge_base.read", "knowledge_base.write"])
    head = await crm.user("head", name="Head")  # knowledge_base.*: publishes
    reader = await crm.user("manager", name="Reader")  # knowledge_base.read

    row = await article(crm, editor, None, title="Памятка", body=HOSTILE, tags=["безопасность"])
    html = row["html"]
    assert "<script" not in html and "alert(&quot;x&quot;)" not in html and 'alert("x")' not in html
    assert "javascript:" not in html.lower().replace("[bad link](javascript:alert(1))", "")
    assert 'href="javascript' not in html.lower() and "onerror" not in html and "onclick" not in html
    assert "<b>bold</b>" in html and '<img src="/knowledge_base/files/1">' in html
    preview = await ok(await crm.post(f"{API}/preview", editor, json={"body": HOSTILE}))
    assert preview["html"] == html

    # A draft is invisible to readers (single read, list, count of the list).
    aid = row["id"]
    assert (await crm.get(f"{API}/articles/{aid}", reader)).status_code == 404
    assert (await ok(await crm.get(f"{API}/articles", reader)))["items"] == []
    # Publication goes through review, by a publisher.
    r = await crm.post(f"{API}/articles/{aid}/publish", head, json={})
    assert r.status_code == 409, r.text
    await ok(await crm.post(f"{API}/articles/{aid}/submit", editor, json={}))
    assert (await crm.post(f"{API}/articles/{aid}/publish", editor, json={})).status_code == 403
    published = await ok(await crm.post(f"{API}/articles/{aid}/publish", head, json={}))
    assert published["status"] == "published" and published["published_revision"] == 1
    seen = await ok(await crm.get(f"{API}/articles/{aid}", reader, params={"view": "true"}))
    assert seen["title"] == "Памятка" and seen["views"] == 1 and "<script" not in seen["html"]

    # An edit is a new version; readers keep the published text until it passes review.
    lines = ["Шаг 1: позвонить", "Шаг 2: отправить КП", "Шаг 3: встреча"]
    v2 = await ok(await crm.patch(f"{API}/articles/{aid}", editor, json={"body": "\n".join(lines)}))
    assert v2["revision"] == 2 and v2["status"] == "draft" and v2["published_revision"] == 1
    lines[1] = "Шаг 2: отправить договор"
    body = {"body": "\n".join(lines), "version": v2["version"]}
    v3 = await ok(await crm.patch(f"{API}/articles/{aid}", editor, json=body))
    assert v3["revision"] == 3
    stale = await crm.patch(f"{API}/articles/{aid}", editor, json={"body": "x", "version": v2["version"]})
    assert stale.status_code == 409
    assert (await ok(await crm.get(f"{API}/articles/{aid}", reader)))["body"] == HOSTILE
    assert (await crm.get(f"{API}/articles/{aid}/versions", reader)).status_code == 403

    diff = await ok(await crm.get(f"{API}/articles/{aid}/diff", editor, params={"from": 2, "to": 3}))
    assert diff["lines"] == [
        {"op": "removed", "line": 2, "text": "Шаг 2: отправить КП"},
        {"op": "added", "line": 2, "text": "Шаг 2: отправить договор"},
    ]
    assert "-Шаг 2: отправить КП" in diff["unified"]
    bad = await crm.get(f"{API}/articles/{aid}/diff", editor, params={"from": 2, "to": 9})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "to"

    # Every version is kept and restorable (as a new version).
    restored = await ok(await crm.post(f"{API}/articles/{aid}/restore", editor, json={"revision": 1}))
    assert restored["revision"] == 4 and restored["body"] == HOSTILE
    versions = await ok(await crm.get(f"{API}/articles/{aid}/versions", editor))
    assert [v["revision"] for v in versions] == [4, 3, 2, 1]
    assert "1" in versions[0]["note"]

    # Votes: one per reader, changeable.
    await ok(await crm.post(f"{API}/articles/{aid}/vote", reader, json={"helpful": False}))
    votes = await ok(await crm.post(f"{API}/articles/{aid}/vote", reader, json={"helpful": True}))
    assert (votes["helpful"], votes["not_helpful"]) == (1, 0)

    # Every write is in the audit log.
    params = {"entity": "knowledge_base.article", "limit": 100}
    audit = await ok(await crm.get("/api/audit", head, params=params))
    actions = [e["action"] for e in audit]
    # submit, publish, two edits, restore; the refused moves left nothing.
    assert actions.count("update") == 5 and "create" in actions and "vote" in actions


async def test_search_by_audience_drafts_and_inflected_forms(crm: Any) -> None:
    editor = await role_user(crm, "kb_editor", ["knowledge_base.*", "search.use"])
    staff = await crm.user("manager", name="Staff reader")  # knowledge_base.read, search.use
    agent = await role_user(crm, "kb_agent", ["knowledge_base.read", "knowledge_base.service", "search.use"])
    portal = await role_user(crm, "kb_portal", ["knowledge_base.public", "search.use"])
    nobody = await role_user(crm, "kb_none", ["search.use"])

    ru = await article(crm, editor, editor, title="Договор поставки", body="Согласовать с юристами")
    uk = await article(
        crm, editor, editor, title="Договір оренди", body="Підписання договору", audience="service"
    )
    public = await article(
        crm, editor, editor, title="Гарантия", body="Возврат по договору", audience="public"
    )
    draft = await article(crm, editor, None, title="Черновик договоров", body="Не готово")

    async def found(user: dict[str, Any], q: str) -> set[int]:
        r = await ok(await crm.get("/api/search", user, params={"q": q, "limit": 100}))
        assert all(h["type"].startswith("kb_") for h in r["hits"]), r
        return {h["id"] for h in r["hits"]}

    async def readable(user: dict[str, Any]) -> set[int]:
        return {a["id"] for a in (await ok(await crm.get(f"{API}/articles", user)))["items"]}

    # Inflected forms: «договора» finds the Russian «договор»; «договору» the Ukrainian «договір».
    assert ru["id"] in await found(staff, "договора")
    assert uk["id"] in await found(agent, "договорів")
    # Each audience searches exactly what it reads.
    expected = {
        "staff": (staff, {ru["id"], public["id"]}),
        "agent": (agent, {ru["id"], uk["id"], public["id"]}),
        "portal": (portal, {public["id"]}),
        "nobody": (nobody, set()),
        "editor": (editor, {ru["id"], uk["id"], public["id"], draft["id"]}),
    }
    for who, (user, ids) in expected.items():
        assert await found(user, "договор") == ids, who
        assert await readable(user) == ids, who
    # Withdrawn: gone from readers' search and reading alike.
    await ok(await crm.post(f"{API}/articles/{public['id']}/withdraw", editor, json={}))
    assert await found(portal, "договор") == set() and await readable(portal) == set()
