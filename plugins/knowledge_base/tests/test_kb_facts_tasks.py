"""Facts other plugins offer through the knowledge base's own hooks (survey answers: a test-only
plugin stands in for marketing), an accepted "task" recommendation becoming a kernel task, and
compiled rule sets following every save."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kb_fact_plugin
import pytest
from kb_helpers import ok

pytestmark = pytest.mark.plugins("knowledge_base")
API = "/api/knowledge_base"

DETRACTOR = {
    "key": "detractor",
    "name": "Unhappy client",
    "priority": 10,
    "when": {"all": [{"fact": "survey.nps.score", "op": "lte", "value": 6},
                     {"fact": "party.status", "op": "eq", "value": "current"}]},
    "then": [{"type": "task", "title": "Call the unhappy client", "due_days": 2}],
}  # fmt: skip


@pytest.fixture
def surveys(crm: Any) -> Iterator[Any]:
    kb_fact_plugin.ANSWERS.clear()
    kb_fact_plugin.CALLS.clear()
    crm.pm.register(kb_fact_plugin, name="surveys")
    yield kb_fact_plugin
    crm.pm.unregister(name="surveys")


async def test_survey_answers_are_facts_and_an_accepted_task_is_created(
    crm: Any, frozen_clock: Any, surveys: Any
) -> None:
    from tessera.entities.tables import AuditLog, Task

    admin = await crm.user("admin", name="Admin")
    seller = await crm.user("manager", name="Seller")
    parties = []
    for name in ("ООО Недовольный", "ООО Довольный"):
        body = {"name": name, "status": "current"}
        parties.append((await ok(await crm.post("/api/parties", seller, json=body), 201))["id"])
    unhappy, happy = parties
    surveys.ANSWERS.update({unhappy: {"score": 3, "comment": "Долго отвечаете"}, happy: {"score": 9}})

    # The rule editor offers the survey facts; a rule naming one is saved, a misspelt one refused.
    facts = await ok(await crm.get(f"{API}/facts", admin, params={"target": "party"}))
    assert "survey.nps.score" in {f["fact"] for f in facts}
    misspelt = {**DETRACTOR, "when": {"fact": "survey.nps.scroe", "op": "lte", "value": 6}}
    body = {"name": "Surveys", "target": "party", "rules": [misspelt]}
    r = await crm.post(f"{API}/rule-sets", admin, json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rules[0].when.fact"
    rule_set = await ok(await crm.post(f"{API}/rule-sets", admin, json={**body, "rules": [DETRACTOR]}), 201)

    advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": unhappy}))
    [rec] = advice["recommendations"]
    assert rec["action"]["title"] == "Call the unhappy client"
    survey_fact = rec["explanation"]["facts"][0]
    assert survey_fact["fact"] == "survey.nps.score" and survey_fact["actual"] == 3
    assert survey_fact["text"] == "survey.nps.score lte 6 (is 3)"
    # The plugin was asked about the record as read, with its party.
    kind, record = surveys.CALLS[-1]
    assert kind == "party" and record["party_id"] == unhappy and record["name"] == "ООО Недовольный"
    advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": happy}))
    assert advice["recommendations"] == []

    # Accepting creates the task for the client's owner (the seller, though the admin accepted),
    # on the client, due in two days, audited; accepting again creates no second task.
    done = await ok(
        await crm.post(f"{API}/recommendations/{rec['id']}/feedback", admin, json={"accepted": True})
    )
    assert done["status"] == "accepted" and done["task_id"]
    task = await ok(await crm.get(f"/api/tasks/{done['task_id']}", seller))
    assert task["title"] == "Call the unhappy client"
    assert task["assignee_id"] == seller["id"] and task["party_id"] == unhappy
    assert task["deadline"].startswith("2026-03-04T09:00")
    assert "Unhappy client" in task["description"] and "survey.nps.score lte 6 (is 3)" in task["description"]
    card = await ok(await crm.get(f"/api/parties/{unhappy}/card", seller))
    assert card["open_tasks"] == 1
    audited = (
        await AuditLog.select(AuditLog.entity, AuditLog.changes)
        .where(
            AuditLog.entity.is_in(["task", "knowledge_base.recommendation"]), AuditLog.user_id == admin["id"]
        )
        .output(load_json=True)
    )
    assert {a["entity"] for a in audited} == {"task", "knowledge_base.recommendation"}
    assert any(a["changes"].get("task_id") == [None, done["task_id"]] for a in audited)
    again = await ok(
        await crm.post(f"{API}/recommendations/{rec['id']}/feedback", seller, json={"accepted": True})
    )
    assert again["task_id"] == done["task_id"]
    assert await Task.count().where(Task.source == f"knowledge_base:party:{unhappy}") == 1

    # A rejected task recommendation creates nothing.
    surveys.ANSWERS[happy] = {"score": 5}
    advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": happy}))
    [rec] = advice["recommendations"]
    no = await ok(
        await crm.post(f"{API}/recommendations/{rec['id']}/feedback", seller, json={"accepted": False})
    )
    assert no["status"] == "rejected" and no["task_id"] is None
    assert await Task.count().where(Task.source == f"knowledge_base:party:{happy}") == 0

    # A saved change of the set applies to the next advice at once (the compiled set is dropped),
    # and a deactivated set gives none.
    changed = {**DETRACTOR, "when": {"fact": "survey.nps.score", "op": "lte", "value": 4}}
    await ok(await crm.patch(f"{API}/rule-sets/{rule_set['id']}", admin, json={"rules": [changed]}))
    advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": happy}))
    assert advice["recommendations"] == []
    advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": unhappy}))
    assert len(advice["recommendations"]) == 1
    await ok(await crm.patch(f"{API}/rule-sets/{rule_set['id']}", admin, json={"active": False}))
    advice = await ok(await crm.post(f"{API}/advise", seller, json={"kind": "party", "record_id": unhappy}))
    assert advice["recommendations"] == []

    # Without the plugin that offers them, survey facts are unknown: refused when saved.
    crm.pm.unregister(name="surveys")
    try:
        r = await crm.post(f"{API}/rule-sets", admin, json={**body, "rules": [DETRACTOR]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rules[0].when.all[0].fact"
    finally:
        crm.pm.register(kb_fact_plugin, name="surveys")
