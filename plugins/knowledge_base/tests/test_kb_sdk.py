"""The SDK's typed knowledge-base methods against a running kernel."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.plugins("knowledge_base")


async def test_sdk_articles_and_advice(api_client: Any) -> None:
    from tessera_sdk import models as m

    kb = api_client.knowledge_base
    row = await kb.articles.create(m.KbArticleIn(title="Памятка", body="one\ntwo"))
    await kb.articles.update(row.id, m.KbArticlePatch(body="one\nthree"))
    await kb.submit(row.id)
    published = await kb.publish(row.id)
    assert isinstance(published, m.KbArticleOut) and published.published_revision == 2
    diff = await kb.diff(row.id, 1, 2)
    assert [(line.op, line.line) for line in diff.lines] == [("removed", 2), ("added", 2)]
    party = await api_client.parties.create({"name": "ООО Тест", "status": "current"})
    rules = [{"key": "call", "when": {"fact": "party.status", "op": "eq", "value": "current"},
              "then": [{"type": "article", "article_id": row.id}]}]  # fmt: skip
    await kb.rule_sets.create(m.KbRuleSetIn(name="S", target="party", rules=rules))
    advice = await kb.advise("party", party.id)
    assert advice.recommendations[0].article_title == "Памятка"
    assert advice.recommendations[0].explanation.facts[0].fact == "party.status"


@pytest.mark.plugins("knowledge_base", "sales", "service")
async def test_sdk_with_sales_and_service(api_client: Any) -> None:
    """Advice on a deal whose accepted task becomes a kernel task, a tree walked on a ticket, and
    the "articles that close tickets faster" report, through the typed client."""
    from tessera_sdk import models as m

    kb = api_client.knowledge_base
    party = await api_client.parties.create({"name": "ООО Сделка", "status": "current"})
    deal = await api_client.request(
        "POST", "/api/sales/deals", json={"title": "CRM", "party_id": party.id, "amount": "100"}
    )
    rules = [{"key": "proposal", "when": {"fact": "deal.stage", "op": "eq", "value": deal["stage"]},
              "then": [{"type": "task", "title": "Prepare the proposal", "due_days": 3}]}]  # fmt: skip
    await kb.rule_sets.create(m.KbRuleSetIn(name="Deals", target="deal", rules=rules))
    advice = await kb.advise("deal", deal["id"])
    [rec] = advice.recommendations
    assert rec.explanation.facts[0].fact == "deal.stage"
    done = await kb.feedback(rec.id, accepted=True)
    assert isinstance(done, m.KbStoredRecommendationOut) and done.task_id
    task = await api_client.tasks.get(done.task_id)
    assert task.title == "Prepare the proposal" and task.party_id == party.id

    article = await kb.articles.create(m.KbArticleIn(title="Перезагрузка", body="Выключить и включить"))
    await kb.submit(article.id)
    await kb.publish(article.id)
    definition = {"start": "q", "nodes": {
        "q": {"question": "Перезагружали?", "answers": [{"key": "no", "label": "Нет", "next": "r"}]},
        "r": {"recommendation": "Перезагрузить", "article_id": article.id}}}  # fmt: skip
    tree = await kb.trees.create(m.KbTreeIn(name="Перезагрузка", definition=definition))
    ticket = await api_client.request(
        "POST", "/api/service/tickets", json={"party_id": party.id, "subject": "Не работает"}
    )
    run = await kb.start_tree(tree.id, "ticket", ticket["id"])
    run = await kb.answer(run.id, "no")
    assert run.status == "done" and run.step.article_id == article.id
    assert [p.answer for p in (await kb.runs("ticket", ticket["id"]))[0].path] == ["no"]
    await api_client.request(
        "POST", f"/api/service/tickets/{ticket['id']}/status", json={"status": "resolved"}
    )
    result = await api_client.reports.run("knowledge_base.faster_tickets")
    assert [r["values"]["tickets_with"] for r in result.rows] == [1]
