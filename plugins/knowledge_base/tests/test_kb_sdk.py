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
