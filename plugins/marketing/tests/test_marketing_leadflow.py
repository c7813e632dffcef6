"""An untouched web-form lead escalates through the workflow engine after its norm (the
process ``marketing.lead`` shipped by the plugin), on a frozen clock; a lead the manager
contacts in time does not, and qualifying it completes its run."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.plugins("marketing")


async def test_untouched_lead_escalates(crm: Any, frozen_clock: Any) -> None:
    from tessera.workflow import deviations
    from tessera.workflow.tables import WorkflowDeviation, WorkflowInstance

    team = await crm.team("Sales")
    head = await crm.user("head", team_id=team["id"], name="Head")
    anna = await crm.user("manager", team_id=team["id"], name="Anna")
    admin = await crm.user("admin")
    r = await crm.post(
        "/api/marketing/web-forms",
        admin,
        json={
            "key": "call-me",
            "name": "Call me",
            "fields": {"name": "name", "email": "email"},
            "distribution": {"mode": "user", "user_ids": [anna["id"]]},
        },
    )
    assert r.status_code == 201, r.text
    # Monday 09:00: two leads arrive; each starts a run of the lead process at "new".
    for email in ("quiet@client.example", "eager@client.example"):
        r = await crm.client.post("/api/marketing/forms/call-me", json={"name": "X", "email": email})
        assert r.status_code == 202, r.text
    leads = (await crm.get("/api/marketing/leads", admin, params={"assignee_id": anna["id"]})).json()["items"]
    quiet, eager = sorted(leads, key=lambda x: x["id"])
    runs = await WorkflowInstance.select().where(WorkflowInstance.subject_entity == "marketing.lead")
    assert {(r["subject_id"], r["current_stage"], r["responsible_id"]) for r in runs} == {
        (quiet["id"], "new", anna["id"]),
        (eager["id"], "new", anna["id"]),
    }
    assert {r["controller_id"] for r in runs} == {head["id"]}
    by_lead = {r["subject_id"]: r["id"] for r in runs}
    # 10:00: one of them is called back (its status moves on).
    frozen_clock.advance(hours=1)
    r = await crm.patch(f"/api/marketing/leads/{eager['id']}", admin, json={"status": "contacted"})
    assert r.status_code == 200, r.text
    # 12:30, within the 4-hour norm: nothing to escalate.
    frozen_clock.advance(hours=2, minutes=30)
    assert (await deviations.scan())["stage_overdue"] == 0
    # 13:30: the untouched lead is over its norm: Anna is told, her head gets the escalation.
    frozen_clock.advance(hours=1)
    assert (await deviations.scan())["stage_overdue"] == 1
    assert (await deviations.scan())["stage_overdue"] == 0  # once
    notes = (await crm.get("/api/notifications", head)).json()
    escalations = [n for n in notes if n["kind"] == "workflow.escalation"]
    assert len(escalations) == 1
    assert any(n["kind"] == "workflow.deviation" for n in (await crm.get("/api/notifications", anna)).json())
    recorded = await WorkflowDeviation.select(WorkflowDeviation.instance_id, WorkflowDeviation.kind)
    assert recorded == [{"instance_id": by_lead[quiet["id"]], "kind": "stage_overdue"}]
    # Qualifying the contacted lead completes its run.
    r = await crm.patch(f"/api/marketing/leads/{eager['id']}", admin, json={"status": "qualified"})
    assert r.status_code == 200
    run = await WorkflowInstance.select().where(WorkflowInstance.subject_id == eager["id"]).first()
    assert run["status"] == "completed" and run["current_stage"] == "qualified"
