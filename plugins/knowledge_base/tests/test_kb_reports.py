"""The report "articles that close tickets faster" on the kernel's report framework, computed
by hand: tickets that used an article against the same category without it."""

from __future__ import annotations

from typing import Any

import pytest
from kb_helpers import article, ok

API = "/api/knowledge_base"
REPORT = "/api/reports/knowledge_base.faster_tickets"


@pytest.mark.plugins("knowledge_base", "service")
async def test_articles_that_close_tickets_faster(crm: Any, frozen_clock: Any) -> None:
    head = await crm.user("head", name="Head")
    agent = await crm.user("manager", name="Agent")
    party = await ok(await crm.post("/api/parties", agent, json={"name": "ООО Печать"}), 201)
    jam = await article(crm, head, head, title="Замятие бумаги", body="Открыть крышку")
    other = await article(crm, head, head, title="Драйвер принтера", body="Переустановить")
    tree = {
        "start": "jammed",
        "nodes": {
            "jammed": {
                "question": "Бумага замята?",
                "answers": [{"key": "yes", "label": "Да", "next": "fix"}],
            },
            "fix": {"recommendation": "Извлечь бумагу", "article_id": jam["id"]},
        },
    }
    tree = await ok(await crm.post(f"{API}/trees", head, json={"name": "Замятие", "definition": tree}), 201)
    rules = [{"key": "jam", "when": {"fact": "ticket.category", "op": "eq", "value": "incident"},
              "then": [{"type": "article", "article_id": jam["id"]}]}]  # fmt: skip
    await ok(
        await crm.post(
            f"{API}/rule-sets", head, json={"name": "Incidents", "target": "ticket", "rules": rules}
        ),
        201,
    )

    async def ticket(subject: str, category: str) -> int:
        body = {"party_id": party["id"], "subject": subject, "category": category}
        return int((await ok(await crm.post("/api/service/tickets", agent, json=body), 201))["id"])

    # All opened at 09:00; resolved after 2, 4, 8, 12 and 30 hours; one stays open.
    walked = await ticket("Замяло бумагу", "incident")
    accepted = await ticket("Опять замяло", "incident")
    plain_8 = await ticket("Не печатает", "incident")
    pending_12 = await ticket("Полосы", "incident")
    request_30 = await ticket("Нужен картридж", "request")
    still_open = await ticket("Замяло снова", "incident")
    # Used the article: a tree walk that ended on it, a recommendation of it accepted. The
    # recommendation on the 12-hour ticket was never accepted: it counts as "without".
    for used in (walked, still_open):
        run = await ok(
            await crm.post(
                f"{API}/trees/{tree['id']}/runs", agent, json={"kind": "ticket", "record_id": used}
            ),
            201,
        )
        await ok(await crm.post(f"{API}/runs/{run['id']}/answer", agent, json={"answer": "yes"}))
    advice = await ok(await crm.post(f"{API}/advise", agent, json={"kind": "ticket", "record_id": accepted}))
    rec = advice["recommendations"][0]
    await ok(await crm.post(f"{API}/recommendations/{rec['id']}/feedback", agent, json={"accepted": True}))
    await ok(await crm.post(f"{API}/advise", agent, json={"kind": "ticket", "record_id": pending_12}))
    # The other article was accepted on the request ticket only: nothing of its category without it.
    await ok(
        await crm.post(
            f"{API}/rule-sets",
            head,
            json={
                "name": "Requests",
                "target": "ticket",
                "rules": [
                    {
                        "key": "driver",
                        "when": {"fact": "ticket.category", "op": "eq", "value": "request"},
                        "then": [{"type": "article", "article_id": other["id"]}],
                    }
                ],
            },
        ),
        201,
    )
    advice = await ok(
        await crm.post(f"{API}/advise", agent, json={"kind": "ticket", "record_id": request_30})
    )
    rec = advice["recommendations"][0]
    await ok(await crm.post(f"{API}/recommendations/{rec['id']}/feedback", agent, json={"accepted": True}))
    for hours, ticket_id in ((2, walked), (2, accepted), (4, plain_8), (4, pending_12), (18, request_30)):
        frozen_clock.advance(hours=hours)
        await ok(
            await crm.post(f"/api/service/tickets/{ticket_id}/status", agent, json={"status": "resolved"})
        )

    result = await ok(await crm.post(f"{REPORT}/run", agent, json={}))
    rows = {r["labels"]["article"]: r["values"] for r in result["rows"]}
    # With: 2 h and 4 h (3 h on average); without, same category: 8 h and 12 h (10 h): 7 h faster.
    assert rows["Замятие бумаги"] == {
        "article": jam["id"],
        "tickets_with": 2,
        "hours_with": 3.0,
        "tickets_without": 2,
        "hours_without": 10.0,
        "hours_faster": 7.0,
    }
    assert rows["Драйвер принтера"]["tickets_with"] == 1 and rows["Драйвер принтера"]["hours_with"] == 30.0
    assert rows["Драйвер принтера"]["hours_faster"] is None
    assert [r["labels"]["article"] for r in result["rows"]] == ["Замятие бумаги", "Драйвер принтера"]
    # Listed with the kernel's reports; a period that holds none of the tickets is empty, and
    # so is the report for someone who reads none of them.
    listed = await ok(await crm.get("/api/reports", agent))
    assert "knowledge_base.faster_tickets" in {r["key"] for r in listed}
    period = {"date_from": "2026-01-01", "date_to": "2026-02-01"}
    assert (await ok(await crm.post(f"{REPORT}/run", agent, json=period)))["rows"] == []
    stranger = await crm.user("manager", name="Stranger")
    assert (await ok(await crm.post(f"{REPORT}/run", stranger, json={})))["rows"] == []
