"""The expert system (rules as data, refused at save when they name an unknown field, every
recommendation explained, conflicts by priority, feedback) and decision trees walked on a
ticket, with guides on deals and tickets through ``tessera_record_widgets``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from kb_helpers import article, ok, page, role_user

API = "/api/knowledge_base"

CLASS_A_RULES = [
    {
        "key": "class_a_no_meeting",
        "name": "Key client without a meeting",
        "priority": 50,
        "when": {
            "all": [
                {"fact": "party.custom.abc_class", "op": "eq", "value": "A"},
                {"fact": "history.last_meeting", "op": "older_than_days", "value": 60},
            ]
        },
        "then": [
            {"type": "product", "product": "SUPPORT-PLUS"},
            {"type": "next_step", "text": "Arrange a meeting"},
        ],
    },
    {
        "key": "any_client_call",
        "priority": 10,
        "when": {"fact": "party.status", "op": "eq", "value": "current"},
        "then": [{"type": "next_step", "text": "Call the client"}],
    },
]


async def _party(crm: Any, user: dict[str, Any], name: str, abc: str, met_days_ago: int | None) -> int:
    from tessera import clock

    body = {"name": name, "status": "current", "custom": {"abc_class": abc}}
    party = await ok(await crm.post("/api/parties", user, json=body), 201)
    if met_days_ago is not None:
        at = clock.now() - dt.timedelta(days=met_days_ago)
        meeting = {"type": "meeting", "subject": "Встреча", "status": "done", "starts_at": at.isoformat()}
        await ok(await crm.post("/api/activities", user, json={**meeting, "party_id": party["id"]}), 201)
    return int(party["id"])


@pytest.mark.plugins("knowledge_base")
async def test_rule_for_class_a_without_a_meeting_explains_itself(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin", name="Admin")
    seller = await crm.user("manager", name="Seller")
    schema = {"properties": {"abc_class": {"type": "string", "enum": ["A", "B", "C"]}}}
    await ok(await crm.put("/api/custom-fields/party", admin, json=schema))
    stale_a = await _party(crm, seller, "ООО Альфа", "A", met_days_ago=70)
    fresh_a = await _party(crm, seller, "ООО Бета", "A", met_days_ago=10)
    class_b = await _party(crm, seller, "ООО Гамма", "B", met_days_ago=None)

    # A rule naming an unknown field is refused when saved, naming the place.
    bad = [
        {**CLASS_A_RULES[0], "when": {"all": [{"fact": "party.custom.abc_klass", "op": "eq", "value": "A"}]}}
    ]
    r = await crm.post(f"{API}/rule-sets", admin, json={"name": "Bad", "target": "party", "rules": bad})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "rules[0].when.all[0].fact"
    assert "party.custom.abc_klass" in r.json()["errors"][0]["message"]
    r = await crm.post(
        f"{API}/rule-sets", admin, json={"name": "Bad", "target": "party", "rules": [{"key": "x"}]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("rules[0]")
    # Managing rules needs its permission.
    body = {"name": "Key accounts", "target": "party", "rules": CLASS_A_RULES}
    assert (await crm.post(f"{API}/rule-sets", seller, json=body)).status_code == 403
    rule_set = await ok(await crm.post(f"{API}/rule-sets", admin, json=body), 201)
    # A change of a client is advised on by the active rules (pending until someone answers).
    from tessera_knowledge_base.tables import Recommendation

    await ok(await crm.patch(f"/api/parties/{class_b}", seller, json={"website": "gamma.example"}))
    stored = await Recommendation.select(Recommendation.rule_key).where(Recommendation.record_id == class_b)
    assert [r["rule_key"] for r in stored] == ["any_client_call"]

    advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": stale_a}))
    recs = advice["recommendations"]
    assert [r["action"] for r in recs] == [
        {"type": "product", "product": "SUPPORT-PLUS"},
        {"type": "next_step", "text": "Arrange a meeting"},
    ]
    why = recs[0]["explanation"]
    assert why["rule_key"] == "class_a_no_meeting" and why["rule_set_id"] == rule_set["id"]
    assert [f["fact"] for f in why["facts"]] == ["party.custom.abc_class", "history.last_meeting"]
    assert why["facts"][0]["actual"] == "A" and "70" not in why["facts"][1]["text"]
    # The lower-priority rule's next step lost the conflict, and says to which rule.
    assert advice["overridden"][0]["overridden_by"] == "class_a_no_meeting"
    assert advice["overridden"][0]["explanation"]["rule_key"] == "any_client_call"

    for other in (fresh_a, class_b):
        advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": other}))
        assert [r["explanation"]["rule_key"] for r in advice["recommendations"]] == ["any_client_call"]

    # Feedback per recommendation; asking again keeps one pending recommendation per action.
    rec_id = recs[0]["id"]
    done = await ok(
        await crm.post(f"{API}/recommendations/{rec_id}/feedback", seller, json={"accepted": True})
    )
    assert done["status"] == "accepted"
    used = await ok(await crm.get(f"{API}/reports/rules", admin))
    assert {u["key"]: u["accepted"] for u in used}["class_a_no_meeting"] == 1
    # Someone who cannot read the client gets nothing about it.
    other = await crm.user("manager", name="Other")
    r = await crm.post(f"{API}/advise", other, json={"kind": "party", "record_id": stale_a})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "record_id"
    r = await crm.post(f"{API}/recommendations/{rec_id}/feedback", other, json={"accepted": False})
    assert r.status_code == 404
    # "Test on this record" with unsaved rules stores nothing.
    test = {
        "record_id": class_b,
        "rules": [{**CLASS_A_RULES[1], "then": [{"type": "priority", "value": "p1"}]}],
    }
    tried = await ok(await crm.post(f"{API}/rule-sets/{rule_set['id']}/test", admin, json=test))
    assert tried["recommendations"][0]["action"] == {"type": "priority", "value": "p1"}
    assert tried["recommendations"][0]["id"] is None
    # Deals are not advised on without the sales plugin: refused, naming the field.
    r = await crm.post(f"{API}/advise", seller, json={"kind": "deal", "record_id": 1})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"


TREE = {
    "start": "power",
    "nodes": {
        "power": {
            "question": "Принтер включается?",
            "answers": [
                {"key": "yes", "label": "Да", "next": "paper"},
                {"key": "no", "label": "Нет", "next": "cable"},
            ],
        },
        "paper": {
            "question": "Бумага замята?",
            "answers": [
                {"key": "yes", "label": "Да", "next": "jam"},
                {"key": "no", "label": "Нет", "next": "cable"},
            ],
        },
        "jam": {"recommendation": "Извлечь бумагу по инструкции", "article_id": 1},
        "cable": {"recommendation": "Проверить кабель питания"},
    },
}


@pytest.mark.plugins("knowledge_base", "sales", "service")
async def test_tree_path_on_ticket_and_guides_follow_stage_and_category(crm: Any, frozen_clock: Any) -> None:
    head = await crm.user("head", name="Head")  # knowledge_base.*, sales.*, service.*
    agent = await crm.user("manager", name="Agent")
    party = await ok(
        await crm.post("/api/parties", agent, json={"name": "ООО Ромашка", "status": "current"}), 201
    )
    guide = await article(
        crm,
        head,
        head,
        title="Как квалифицировать лида",
        body="Спросить о бюджете",
        links=[{"kind": "stage", "key": "qualification"}],
    )
    jam = await article(
        crm,
        head,
        head,
        title="Замятие бумаги",
        body="Открыть крышку",
        links=[{"kind": "ticket_category", "key": "incident"}],
    )
    assert jam["links"] == [{"kind": "ticket_category", "key": "incident"}]
    # The tree refers to the article; a tree with a loop or a missing node is refused.
    loop = {
        "start": "a",
        "nodes": {"a": {"question": "?", "answers": [{"key": "x", "label": "x", "next": "a"}]}},
    }
    r = await crm.post(f"{API}/trees", head, json={"name": "Loop", "definition": loop})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "definition.nodes.a"
    TREE["nodes"]["jam"]["article_id"] = jam["id"]
    tree = await ok(await crm.post(f"{API}/trees", head, json={"name": "Принтер", "definition": TREE}), 201)

    ticket = await ok(
        await crm.post(
            "/api/service/tickets",
            agent,
            json={"party_id": party["id"], "subject": "Не печатает", "category": "incident"},
        ),
        201,
    )
    run = await ok(
        await crm.post(
            f"{API}/trees/{tree['id']}/runs", agent, json={"kind": "ticket", "record_id": ticket["id"]}
        ),
        201,
    )
    assert run["step"]["question"] == "Принтер включается?"
    bad = await crm.post(f"{API}/runs/{run['id']}/answer", agent, json={"answer": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "answer"
    await ok(await crm.post(f"{API}/runs/{run['id']}/answer", agent, json={"answer": "yes"}))
    done = await ok(await crm.post(f"{API}/runs/{run['id']}/answer", agent, json={"answer": "yes"}))
    assert done["status"] == "done" and done["step"]["article_id"] == jam["id"]
    assert [(p["node"], p["answer"]) for p in done["path"]] == [("power", "yes"), ("paper", "yes")]
    stored = await ok(
        await crm.get(f"{API}/runs", agent, params={"kind": "ticket", "record_id": ticket["id"]})
    )
    assert [r["id"] for r in stored] == [run["id"]] and stored[0]["path"] == done["path"]

    # The ticket's page shows the category's article and the path; the client card the walk.
    text = await page(crm, agent, f"/service/tickets/{ticket['id']}")
    assert "Замятие бумаги" in text and "Бумага замята? → Да" in text
    card = await ok(await crm.get(f"/api/parties/{party['id']}/card", agent))
    assert any(i["kind"] == "knowledge_base.tree_run" for i in card["timeline"]), card["timeline"]

    # A guide appears on a deal in its stage and disappears when the deal leaves it.
    deal = await ok(
        await crm.post(
            "/api/sales/deals", agent, json={"title": "CRM", "party_id": party["id"], "amount": "100"}
        ),
        201,
    )
    assert deal["stage"] == "qualification"
    assert "Как квалифицировать лида" in await page(crm, agent, f"/sales/deals/{deal['id']}")
    call = {"type": "call", "subject": "Звонок", "status": "done", "party_id": party["id"]}
    await ok(
        await crm.post("/api/activities", agent, json={**call, "starts_at": "2026-03-02T09:00:00Z"}), 201
    )
    moved = await ok(await crm.post(f"/api/sales/deals/{deal['id']}/move", agent, json={}))
    assert moved["stage"] == "needs"
    assert "Как квалифицировать лида" not in await page(crm, agent, f"/sales/deals/{deal['id']}")
    assert guide["id"] != jam["id"]
    # A reopened ticket that used an article makes it due for review.
    for status in ("resolved", "in_progress"):
        await ok(
            await crm.post(f"/api/service/tickets/{ticket['id']}/status", agent, json={"status": status})
        )
    due = await ok(await crm.get(f"{API}/reports/stale", head))
    assert [(d["id"], d["reason"]) for d in due] == [(jam["id"], "review_due")]


@pytest.mark.plugins("knowledge_base", "sales", "service")
async def test_a_reader_without_the_service_audience_sees_no_service_guides(crm: Any) -> None:
    admin = await crm.user("admin", name="Admin")
    staff = await role_user(
        crm, "kb_staff", ["party.*", "service.ticket.*", "knowledge_base.read"], scope="all"
    )
    await article(
        crm,
        admin,
        admin,
        title="Скрипт для агентов",
        audience="service",
        links=[{"kind": "ticket_category", "key": "request"}],
    )
    party = await ok(await crm.post("/api/parties", staff, json={"name": "ООО Вектор"}), 201)
    body = {"party_id": party["id"], "subject": "Вопрос", "category": "request"}
    ticket = await ok(await crm.post("/api/service/tickets", staff, json=body), 201)
    assert "Скрипт для агентов" not in await page(crm, staff, f"/service/tickets/{ticket['id']}")
    assert "Скрипт для агентов" in await page(crm, admin, f"/service/tickets/{ticket['id']}")
