"""Workflow engine: templates, hand-offs, delayed actions, deviations, versions, process card.

Every test runs on SQLite and PostgreSQL and controls time with ``frozen_clock`` (the clock
starts on Monday 2026-03-02 09:00 UTC); jobs are run by calling them, never by waiting.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tessera import scheduler
from tessera.hookspecs import hookimpl
from tessera.workflow import deviations, engine, templates

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def service_template(engineer_id: int, key: str = "service.request") -> dict[str, Any]:
    """Four stages: register -> resolve -> confirm -> closed, with required actions, norms in
    business hours and calendar days, a conditional transition and a call 7 days after close."""
    return {
        "key": key,
        "name": "Service request",
        "subject": "party",
        "business_hours": {"timezone": "UTC", "start": "09:00", "end": "18:00"},
        "stages": [
            {
                "key": "register",
                "name": "Register the request",
                "responsible": {"owner": True},
                "controller": {"role": "head", "team": "owner"},
                "norm": {"hours": 4},
                "required": [
                    {
                        "key": "called",
                        "kind": "activity",
                        "activity_type": "call",
                        "label": "Call the client back",
                        "within": {"hours": 2},
                    }
                ],
                "expected_result": "The request is understood and registered",
                "probability": 20,
            },
            {
                "key": "resolve",
                "name": "Resolve",
                "responsible": {"user": engineer_id},
                "controller": {"role": "head", "team": "owner"},
                "norm": {"days": 1, "calendar": "calendar"},
                "required": [{"key": "fixed", "kind": "checklist", "label": "Fix verified on site"}],
                "results": [{"name": "outcome", "required": True, "enum": ["resolved", "rejected"]}],
                "probability": 60,
                "transitions": [
                    {"to": "confirm", "when": {"field": "outcome", "equals": "resolved"}},
                    {"to": "closed"},
                ],
            },
            {
                "key": "confirm",
                "name": "Client confirms",
                "responsible": {"owner": True},
                "controller": {"role": "head", "team": "owner"},
                "norm": {"hours": 8},
                "required": [{"key": "client_confirmed", "kind": "checklist"}],
                "probability": 90,
                "on_leave": [{"type": "notify", "for": "controller", "title": "{title} is confirmed"}],
            },
            {
                "key": "closed",
                "name": "Closed",
                "final": True,
                "on_enter": [
                    {
                        "type": "create_activity",
                        "activity_type": "call",
                        "delay": {"days": 7},
                        "for": "owner",
                        "subject": "How are things after {title}?",
                        "duration_minutes": 15,
                    },
                    {"type": "emit_event", "name": "service.request_closed"},
                ],
            },
        ],
    }


async def _setup(crm: Any) -> dict[str, Any]:
    team = await crm.team()
    other_team = await crm.team()
    people = {
        "admin": await crm.user("admin"),
        "head": await crm.user("head", team_id=team["id"], name="Head"),
        "manager": await crm.user("manager", team_id=team["id"], name="Manager"),
        "engineer": await crm.user("manager", team_id=team["id"], name="Engineer"),
        "stranger": await crm.user("manager", team_id=other_team["id"], name="Stranger"),
        "team": team,
        "other_team": other_team,
    }
    r = await crm.post("/api/parties", people["manager"], json={"name": "Acme"})
    assert r.status_code == 201, r.text
    people["party"] = r.json()
    r = await crm.post(
        "/api/workflow/templates",
        people["admin"],
        json={"definition": service_template(people["engineer"]["id"])},
    )
    assert r.status_code == 201, r.text
    return people


async def _start(crm: Any, p: dict[str, Any], title: str = "Broken printer") -> dict[str, Any]:
    r = await crm.post(
        "/api/workflow/instances",
        p["manager"],
        json={"template": "service.request", "subject_id": p["party"]["id"], "title": title},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _log_call(crm: Any, p: dict[str, Any], user: str = "manager") -> None:
    from tessera import clock

    r = await crm.post(
        "/api/activities",
        p[user],
        json={
            "type": "call",
            "subject": "Called back",
            "status": "done",
            "starts_at": clock.now().isoformat(),
            "party_id": p["party"]["id"],
        },
    )
    assert r.status_code == 201, r.text


async def _notifications(crm: Any, user: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    r = await crm.get("/api/notifications", user)
    assert r.status_code == 200, r.text
    return [n for n in r.json() if n["kind"] == kind]


async def _run_job(crm: Any, name: str) -> Any:
    from tessera import clock

    spec = next(s for s in scheduler.KERNEL_JOBS if s.name == name)
    ctx = scheduler.JobContext(
        name=name, scheduled_for=clock.now(), now=clock.now(), run_id=0, settings=crm.settings, pm=crm.pm
    )
    return await spec.func(ctx)


# --------------------------------------------------------------------------- templates


async def test_invalid_templates_are_refused_with_the_paths_at_fault(crm, frozen_clock):
    admin = await crm.user("admin")
    manager = await crm.user("manager")
    bad = service_template(1)
    bad["stages"][1]["transitions"][0]["to"] = "nowhere"
    bad["stages"][0]["norm"] = {"hours": -1}
    r = await crm.post("/api/workflow/templates", admin, json={"definition": bad})
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert "definition.stages[0].norm.hours" in fields

    bad = service_template(1)
    bad["stages"][1]["transitions"][0]["to"] = "nowhere"
    r = await crm.post("/api/workflow/templates", admin, json={"definition": bad})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "definition.stages[1].transitions[0].to"

    r = await crm.post("/api/workflow/templates", manager, json={"definition": service_template(1)})
    assert r.status_code == 403

    r = await crm.post("/api/workflow/templates", admin, json={"definition": service_template(1)})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    r = await crm.post("/api/workflow/templates", admin, json={"definition": service_template(1)})
    assert r.status_code == 422, "a second create of the same key must publish a version instead"
    r = await crm.get("/api/workflow/templates", manager)
    assert [t["key"] for t in r.json()] == ["service.request"]
    r = await crm.get("/api/workflow/template-schema", manager)
    assert r.json()["title"] == "Tessera process template"


# --------------------------------------------------------------------------- route, hand-off, delayed call


async def test_route_hands_off_each_stage_and_plans_the_call_seven_days_after_close(crm, frozen_clock):
    p = await _setup(crm)
    inst = await _start(crm, p)
    assert inst["current_stage"] == "register"
    assert inst["responsible_id"] == p["manager"]["id"]
    assert inst["controller_id"] == p["head"]["id"]
    # Norm of 4 business hours from Monday 09:00 -> 13:00.
    assert inst["stage_due_at"].startswith("2026-03-02T13:00")
    first_task = inst["current_task_id"]

    # Leaving without the required call: 409 naming it.
    r = await crm.post(f"/api/workflow/instances/{inst['id']}/advance", p["manager"], json={})
    assert r.status_code == 409, r.text
    assert r.json()["missing"] == ["required.called"]
    assert "Call the client back" in r.json()["errors"][0]["message"]

    # Somebody unrelated cannot move it (and cannot even see it).
    r = await crm.post(f"/api/workflow/instances/{inst['id']}/advance", p["stranger"], json={})
    assert r.status_code == 404

    await _log_call(crm, p)
    frozen_clock.advance(hours=1)
    r = await crm.post(
        f"/api/workflow/instances/{inst['id']}/advance", p["manager"], json={"comment": "registered"}
    )
    assert r.status_code == 200, r.text
    inst = r.json()
    assert inst["current_stage"] == "resolve"
    assert inst["responsible_id"] == p["engineer"]["id"]
    # The hand-off: the engineer has the task at once, and is told.
    r = await crm.get(f"/api/tasks/{inst['current_task_id']}", p["engineer"])
    assert r.status_code == 200, r.text
    task = r.json()
    assert task["assignee_id"] == p["engineer"]["id"]
    assert task["source"] == f"workflow:{inst['id']}"
    assert task["author_id"] == p["manager"]["id"]
    assert task["deadline"].startswith("2026-03-03T10:00")  # 1 calendar day
    assert [n["ref"] for n in await _notifications(crm, p["engineer"], "task.assigned")] == [
        f"task:{task['id']}"
    ]
    r = await crm.get(f"/api/tasks/{first_task}", p["manager"])
    assert r.json()["status"] == "done"
    # The author traces the hand-off: who has it now, since when, not overdue.
    r = await crm.get("/api/workflow/handoffs", p["manager"])
    trace = {t["id"]: t for t in r.json()}
    assert trace[task["id"]]["holder_id"] == p["engineer"]["id"]
    assert trace[task["id"]]["holder_since"].startswith("2026-03-02T10:00")
    assert trace[task["id"]]["overdue"] is False
    assert trace[task["id"]]["stage"] == "resolve"

    # Result field and checklist missing -> 409 naming both; bad enum -> 422.
    r = await crm.post(f"/api/workflow/instances/{inst['id']}/advance", p["engineer"], json={})
    assert r.status_code == 409
    assert sorted(r.json()["missing"]) == ["required.fixed", "results.outcome"]
    r = await crm.post(
        f"/api/workflow/instances/{inst['id']}/advance", p["engineer"], json={"results": {"outcome": "meh"}}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "results.outcome"
    r = await crm.post(
        f"/api/workflow/instances/{inst['id']}/checklist", p["engineer"], json={"item": "fixed"}
    )
    assert r.status_code == 200, r.text
    frozen_clock.advance(hours=2)
    r = await crm.post(
        f"/api/workflow/instances/{inst['id']}/advance",
        p["engineer"],
        json={"results": {"outcome": "resolved"}, "comment": "replaced the fuser"},
    )
    assert r.status_code == 200, r.text
    inst = r.json()
    assert inst["current_stage"] == "confirm"  # the conditional transition
    assert inst["responsible_id"] == p["manager"]["id"]
    assert inst["probability"] == 90

    await crm.post(
        f"/api/workflow/instances/{inst['id']}/checklist", p["manager"], json={"item": "client_confirmed"}
    )
    frozen_clock.advance(hours=1)
    closed_at = frozen_clock.current
    r = await crm.post(f"/api/workflow/instances/{inst['id']}/advance", p["manager"], json={})
    assert r.status_code == 200, r.text
    inst = r.json()
    assert inst["status"] == "completed"
    assert inst["current_stage"] == "closed"
    assert [n["title"] for n in await _notifications(crm, p["head"], "workflow.notice")] == [
        "Broken printer is confirmed"
    ]

    async def planned_calls() -> list[dict[str, Any]]:
        r = await crm.get("/api/activities", p["manager"], params={"type": "call"})
        assert r.status_code == 200, r.text
        return [a for a in r.json()["items"] if a["status"] == "planned"]

    frozen_clock.advance(days=6, hours=23)
    await _run_job(crm, "workflow.run_due_actions")
    assert await planned_calls() == []
    frozen_clock.advance(hours=1)
    await _run_job(crm, "workflow.run_due_actions")
    await _run_job(crm, "workflow.run_due_actions")  # idempotent
    calls = await planned_calls()
    assert len(calls) == 1
    call = calls[0]
    assert call["owner_id"] == p["manager"]["id"]
    assert call["party_id"] == p["party"]["id"]
    assert call["subject"] == "How are things after Broken printer?"
    assert datetime.fromisoformat(call["starts_at"]) == closed_at + timedelta(days=7)

    # The card tells the whole story.
    r = await crm.get(f"/api/workflow/instances/{inst['id']}/card", p["manager"])
    assert r.status_code == 200, r.text
    card = r.json()
    assert [s["state"] for s in card["route"]] == ["done", "done", "done", "reached"]
    assert [(h["kind"], h["to_stage"], h["user_id"]) for h in card["history"]] == [
        ("start", "register", p["manager"]["id"]),
        ("advance", "resolve", p["manager"]["id"]),
        ("advance", "confirm", p["engineer"]["id"]),
        ("advance", "closed", p["manager"]["id"]),
    ]
    register = card["route"][0]["visits"][0]
    assert register["spent_seconds"] == 3600 and register["norm_seconds"] == 4 * 3600
    assert register["completed_by"] == p["manager"]["id"]
    resolve = card["route"][1]["visits"][0]
    assert resolve["responsible_id"] == p["engineer"]["id"] and resolve["spent_seconds"] == 7200
    assert {a["type"]: a["status"] for a in card["actions"]} == {
        "notify": "done",
        "create_activity": "done",
        "emit_event": "done",
    }
    r = await crm.get(
        "/api/audit", p["admin"], params={"entity": "workflow_instance", "entity_id": inst["id"]}
    )
    assert [a["action"] for a in r.json()][::-1] == [
        "start",
        "advance",
        "checklist",
        "advance",
        "checklist",
        "advance",
    ]


async def test_business_hours_norm_skips_the_night_and_the_weekend(crm, frozen_clock):
    p = await _setup(crm)
    frozen_clock.set(datetime(2026, 3, 6, 16, 0, tzinfo=UTC))  # Friday 16:00
    inst = await _start(crm, p)
    # 2 working hours on Friday, 2 more on Monday from 09:00.
    assert datetime.fromisoformat(inst["stage_due_at"]) == datetime(2026, 3, 9, 11, 0, tzinfo=UTC)


async def test_delayed_action_is_claimed_once_by_concurrent_runners(crm, frozen_clock):
    p = await _setup(crm)
    inst = await _start(crm, p)
    await engine.stop(await crm.principal(p["head"]), inst["id"])  # nothing pending after stop
    inst = await _start(crm, p, "Second")
    principal = await crm.principal(p["admin"])
    await engine.change_parameters(principal, inst["id"], params={"x": 1})
    # Walk it to the end through the service layer.
    await _log_call(crm, p)
    await engine.advance(principal, crm.pm, inst["id"])
    await engine.tick_checklist(principal, inst["id"], "fixed")
    await engine.advance(principal, crm.pm, inst["id"], results={"outcome": "rejected"})
    row = await engine.load_instance(None, inst["id"])
    assert row["current_stage"] == "closed"  # rejected goes straight to closed
    frozen_clock.advance(days=8)
    ran = await asyncio.gather(*[engine.run_due_actions(crm.pm) for _ in range(4)])
    assert sum(ran) == 1
    r = await crm.get("/api/activities", p["manager"], params={"type": "call"})
    assert len([a for a in r.json()["items"] if a["status"] == "planned"]) == 1


# --------------------------------------------------------------------------- deviations


async def test_deviations_are_detected_listed_and_escalated_once(crm, frozen_clock):
    p = await _setup(crm)
    inst = await _start(crm, p)
    late = await _start(crm, p, "Second request")
    await _log_call(crm, p)  # the call counts for both (same party)
    assert (await crm.get("/api/workflow/deviations", p["head"])).json()["items"] == []

    frozen_clock.advance(hours=1)
    await deviations.scan()
    assert await _notifications(crm, p["head"], "workflow.escalation") == []

    # Second instance: move it on so only the first stays in "register".
    r = await crm.post(f"/api/workflow/instances/{late['id']}/advance", p["manager"], json={})
    assert r.status_code == 200, r.text

    # A new instance whose call never happens: 2 h later the required action is missing.
    fresh = await _start(crm, p, "Third request")
    frozen_clock.advance(hours=2, minutes=1)
    counts = await _run_job(crm, "workflow.scan_deviations")
    assert counts["actions_missing"] == 1
    escalations = await _notifications(crm, p["head"], "workflow.escalation")
    assert [n["ref"] for n in escalations] == [f"workflow_instance:{fresh['id']}"]
    assert "Call the client back" in escalations[0]["title"]
    assert len(await _notifications(crm, p["manager"], "workflow.deviation")) == 1

    r = await crm.get("/api/workflow/deviations", p["head"], params={"kind": "actions_missing"})
    items = r.json()["items"]
    assert [i["instance_id"] for i in items] == [fresh["id"]]
    assert items[0]["missing_actions"][0]["key"] == "called"

    # 4 business hours after its start each "register" instance is over the norm.
    frozen_clock.advance(hours=1)  # 13:01: the first one (started 09:00)
    counts = await deviations.scan()
    assert counts["stage_overdue"] == 1
    frozen_clock.advance(hours=1)  # 14:01: the third one (started 10:00)
    counts = await deviations.scan()
    assert counts["stage_overdue"] == 1
    again = await deviations.scan()
    assert again["stage_overdue"] == 0 and again["actions_missing"] == 0
    assert len(await _notifications(crm, p["head"], "workflow.escalation")) == 3

    r = await crm.get("/api/workflow/deviations", p["head"])
    by_id = {i["instance_id"]: i for i in r.json()["items"]}
    assert set(by_id) == {inst["id"], fresh["id"]}
    assert by_id[inst["id"]]["kinds"] == ["stage_overdue", "task_overdue"]
    assert by_id[fresh["id"]]["kinds"] == ["stage_overdue", "task_overdue", "actions_missing"]
    assert by_id[inst["id"]]["overdue_seconds"] > 0

    # Filters: template, stage, user, team.
    async def ids(**params: Any) -> set[int]:
        r = await crm.get("/api/workflow/deviations", p["admin"], params=params)
        assert r.status_code == 200, r.text
        return {i["instance_id"] for i in r.json()["items"]}

    assert await ids(template="service.request", stage="register") == {inst["id"], fresh["id"]}
    assert await ids(stage="resolve") == set()
    assert await ids(user_id=p["manager"]["id"]) == {inst["id"], fresh["id"]}
    assert await ids(user_id=p["engineer"]["id"]) == set()
    assert await ids(team_id=p["team"]["id"]) == {inst["id"], fresh["id"]}
    assert await ids(team_id=p["other_team"]["id"]) == set()
    # Visibility: a manager of another team sees none of them.
    r = await crm.get("/api/workflow/deviations", p["stranger"])
    assert r.json()["items"] == []

    # The card shows the deviations and the time over the norm.
    r = await crm.get(f"/api/workflow/instances/{inst['id']}/card", p["head"])
    card = r.json()
    assert card["current"]["overdue"] is True
    assert card["current"]["spent_seconds"] > card["current"]["norm_seconds"]
    assert [d["kind"] for d in card["deviations"]] == ["stage_overdue"]


# --------------------------------------------------------------------------- versions


async def test_new_version_leaves_running_instances_alone_or_migrates_them_by_mapping(crm, frozen_clock):
    p = await _setup(crm)
    old = await _start(crm, p)
    v2 = service_template(p["engineer"]["id"])
    v2["stages"][0]["key"] = "intake"
    v2["stages"][0]["norm"] = {"hours": 2}
    r = await crm.post(
        "/api/workflow/templates/service.request/versions", p["admin"], json={"definition": v2}
    )
    assert r.status_code == 201, r.text
    assert r.json()["template"]["version"] == 2 and r.json()["migrated"] == 0
    # Same content again: nothing new.
    r = await crm.post(
        "/api/workflow/templates/service.request/versions", p["admin"], json={"definition": v2}
    )
    assert r.json()["created"] is False and r.json()["template"]["version"] == 2

    new = await _start(crm, p, "New one")
    assert (new["template_version"], new["current_stage"]) == (2, "intake")
    r = await crm.get(f"/api/workflow/instances/{old['id']}", p["manager"])
    assert (r.json()["template_version"], r.json()["current_stage"]) == (1, "register")
    # The running instance still follows version 1.
    await _log_call(crm, p)
    r = await crm.post(f"/api/workflow/instances/{old['id']}/advance", p["manager"], json={})
    assert r.status_code == 200 and r.json()["current_stage"] == "resolve"
    third = await _start(crm, p, "Third")  # on v2, at "intake"

    # v3 drops "intake": migrating without a mapping is refused before anything is stored.
    v3 = copy.deepcopy(v2)
    v3["stages"][0]["key"] = "triage"
    r = await crm.post(
        "/api/workflow/templates/service.request/versions",
        p["admin"],
        json={"definition": v3, "migrate": {}},
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["stage_map.intake"]
    r = await crm.get("/api/workflow/templates/service.request/versions", p["admin"])
    assert [t["version"] for t in r.json()] == [1, 2]

    r = await crm.post(
        "/api/workflow/templates/service.request/versions",
        p["admin"],
        json={"definition": v3, "migrate": {"stage_map": {"intake": "triage"}, "comment": "renamed"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["migrated"] == 3  # old (v1, resolve), new and third (v2, intake)
    for instance_id, stage in ((old["id"], "resolve"), (new["id"], "triage"), (third["id"], "triage")):
        r = await crm.get(f"/api/workflow/instances/{instance_id}", p["manager"])
        assert (r.json()["template_version"], r.json()["current_stage"]) == (3, stage)
    r = await crm.get(f"/api/workflow/instances/{third['id']}/card", p["manager"])
    assert r.json()["history"][-1]["kind"] == "migrate"
    assert r.json()["template"]["version"] == 3
    # ... and keeps moving on the new version.
    r = await crm.post(f"/api/workflow/instances/{third['id']}/advance", p["manager"], json={})
    assert r.status_code == 200, r.text
    assert r.json()["current_stage"] == "resolve"


async def test_a_migrated_instance_takes_the_new_versions_stage_properties(crm, frozen_clock):
    """v1's "resolve" has probability 60, a one-day norm, the engineer responsible and one
    checklist item; v2 says 70, two days, the manager, and a second item. After migration the
    instance, its stage task and the next advance all follow v2."""
    p = await _setup(crm)
    inst = await _start(crm, p)
    await _log_call(crm, p)
    r = await crm.post(f"/api/workflow/instances/{inst['id']}/advance", p["manager"], json={})
    assert r.status_code == 200, r.text
    before = r.json()
    assert (before["current_stage"], before["probability"]) == ("resolve", 60)
    assert before["responsible_id"] == p["engineer"]["id"]
    entered = datetime.fromisoformat(before["stage_entered_at"])
    assert datetime.fromisoformat(before["stage_due_at"]) == entered + timedelta(days=1)

    frozen_clock.advance(hours=1)
    v2 = service_template(p["engineer"]["id"])
    resolve = v2["stages"][1]
    resolve["probability"] = 70
    resolve["norm"] = {"days": 2, "calendar": "calendar"}
    resolve["responsible"] = {"user": p["manager"]["id"]}
    resolve["required"].append({"key": "signed", "kind": "checklist", "label": "Client signed the act"})
    r = await crm.post(
        "/api/workflow/templates/service.request/versions",
        p["admin"],
        json={"definition": v2, "migrate": {"comment": "new norms"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["migrated"] == 1

    r = await crm.get(f"/api/workflow/instances/{inst['id']}", p["manager"])
    after = r.json()
    assert (after["template_version"], after["current_stage"]) == (2, "resolve")
    assert after["probability"] == 70
    assert datetime.fromisoformat(after["stage_due_at"]) == entered + timedelta(days=2)
    assert after["responsible_id"] == p["manager"]["id"]
    # The stage task went to the new responsible person with the new deadline.
    r = await crm.get(f"/api/tasks/{after['current_task_id']}", p["manager"])
    assert r.status_code == 200, r.text
    assert r.json()["assignee_id"] == p["manager"]["id"]
    assert datetime.fromisoformat(r.json()["deadline"]) == entered + timedelta(days=2)
    # The card shows v2's stage, and the migration in the history with what changed.
    r = await crm.get(f"/api/workflow/instances/{inst['id']}/card", p["manager"])
    card = r.json()
    stage = next(s for s in card["route"] if s["key"] == "resolve")
    assert stage["probability"] == 70
    assert card["history"][-1]["kind"] == "migrate"
    assert card["history"][-1]["detail"]["changes"]["probability"] == [60, 70]
    # v2's required actions apply: the new checklist item is missing.
    r = await crm.post(
        f"/api/workflow/instances/{inst['id']}/checklist", p["manager"], json={"item": "fixed"}
    )
    assert r.status_code == 200, r.text
    r = await crm.post(
        f"/api/workflow/instances/{inst['id']}/advance",
        p["manager"],
        json={"results": {"outcome": "resolved"}},
    )
    assert r.status_code == 409, r.text
    assert r.json()["missing"] == ["required.signed"]


# --------------------------------------------------------------------------- process-card controls


async def test_process_card_controls(crm, frozen_clock):
    p = await _setup(crm)
    inst = await _start(crm, p)
    iid = inst["id"]
    url = f"/api/workflow/instances/{iid}"
    r = await crm.get(f"{url}/card", p["manager"])
    assert r.json()["controls"]["suspend"] is False  # the manager is not the controller
    assert r.json()["controls"]["advance"] is True
    r = await crm.post(f"{url}/suspend", p["manager"], json={})
    assert r.status_code == 403
    r = await crm.get(f"{url}/card", p["head"])
    assert r.json()["controls"]["suspend"] is True

    # Suspend: no deviation while paused, no advancing; resume moves the norm on.
    r = await crm.post(f"{url}/suspend", p["head"], json={"comment": "client on holiday"})
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    frozen_clock.advance(hours=5)
    assert (await deviations.scan())["stage_overdue"] == 0
    r = await crm.post(f"{url}/advance", p["manager"], json={})
    assert r.status_code == 409
    r = await crm.post(f"{url}/resume", p["head"], json={})
    assert r.status_code == 200, r.text
    assert r.json()["stage_due_at"].startswith("2026-03-02T18:00")  # 13:00 + 5 h paused
    r = await crm.get(f"/api/tasks/{inst['current_task_id']}", p["head"])
    assert r.json()["deadline"].startswith("2026-03-02T18:00")

    # Reassign: the task goes to the engineer through the kernel's hand-off chain.
    r = await crm.post(f"{url}/reassign", p["head"], json={"user_id": p["engineer"]["id"], "comment": "sick"})
    assert r.status_code == 200, r.text
    assert r.json()["responsible_id"] == p["engineer"]["id"]
    r = await crm.get(f"/api/tasks/{inst['current_task_id']}/handoffs", p["head"])
    assert [h["to_user_id"] for h in r.json()] == [p["manager"]["id"], p["engineer"]["id"]]

    # Change parameters: a new deadline for the stage and its task, a new probability.
    r = await crm.patch(
        url,
        p["head"],
        json={"stage_due_at": "2026-03-03T12:00:00+00:00", "probability": 35, "params": {"sla": "gold"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["probability"] == 35 and r.json()["params"]["sla"] == "gold"
    r = await crm.get(f"/api/tasks/{inst['current_task_id']}", p["head"])
    assert r.json()["deadline"].startswith("2026-03-03T12:00")

    # Stop: the open task is cancelled, the card says so, no more moves.
    r = await crm.post(f"{url}/stop", p["head"], json={"comment": "duplicate"})
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    r = await crm.get(f"/api/tasks/{inst['current_task_id']}", p["head"])
    assert r.json()["status"] == "cancelled"
    r = await crm.post(f"{url}/resume", p["head"], json={})
    assert r.status_code == 409
    r = await crm.get(f"{url}/card", p["head"])
    card = r.json()
    assert [h["kind"] for h in card["history"]] == [
        "start",
        "suspend",
        "resume",
        "reassign",
        "change",
        "stop",
    ]
    assert card["history"][3]["comment"] == "sick"
    assert all(not allowed for allowed in card["controls"].values())


# --------------------------------------------------------------------------- plugins


class _ShippingPlugin:
    def __init__(self, picker: int) -> None:
        self.picker = picker
        self.handled: list[tuple[str, dict[str, Any], int]] = []

    @hookimpl
    def tessera_process_templates(self) -> list[dict[str, Any]]:
        return [
            {
                "key": "shipping.order",
                "name": "Ship an order",
                "stages": [
                    {
                        "key": "pick",
                        "name": "Pick",
                        "responsible": {"rule": "shipping.picker"},
                        "on_enter": [{"type": "call_hook", "name": "shipping.reserve", "args": {"qty": 2}}],
                    },
                    {"key": "shipped", "name": "Shipped", "final": True},
                ],
            }
        ]

    @hookimpl
    def tessera_workflow_assignee(self, rule: str, args: dict[str, Any], instance: dict[str, Any]) -> Any:
        return self.picker if rule == "shipping.picker" else None

    @hookimpl
    async def tessera_workflow_action(self, name: str, args: dict[str, Any], instance: dict[str, Any]) -> Any:
        if name != "shipping.reserve":
            return None
        self.handled.append((name, args, instance["id"]))
        return True


async def test_plugins_ship_templates_assign_by_rule_and_handle_actions(crm, frozen_clock):
    p = await _setup(crm)
    plugin = _ShippingPlugin(picker=p["engineer"]["id"])
    crm.pm.register(plugin, name="shipping")
    try:
        r = await crm.get("/api/workflow/templates", p["manager"])
        shipped = {t["key"]: t for t in r.json()}
        assert shipped["shipping.order"]["source"] == "plugin:shipping"
        assert await templates.sync_plugin_templates(crm.pm, force=True) == []  # unchanged: no new version
        r = await crm.post(
            "/api/workflow/instances",
            p["manager"],
            json={
                "template": "shipping.order",
                "subject_entity": "order",
                "subject_id": 77,
                "title": "Order 77",
            },
        )
        assert r.status_code == 201, r.text
        inst = r.json()
        assert inst["responsible_id"] == p["engineer"]["id"]
        assert inst["owner_id"] == p["manager"]["id"]
        assert plugin.handled == [("shipping.reserve", {"qty": 2}, inst["id"])]
    finally:
        crm.pm.unregister(plugin)


@pytest.mark.parametrize("action", ["suspend", "stop"])
async def test_controls_on_an_unknown_instance_are_404(crm, action):
    admin = await crm.user("admin")
    r = await crm.post(f"/api/workflow/instances/999999/{action}", admin, json={})
    assert r.status_code == 404


async def test_each_transition_delivers_its_events_in_order_once(crm, frozen_clock):
    """The stage's events are written together with the stage change (one statement on
    PostgreSQL): plugins still get every one, in order, once, and the outbox marks them
    delivered."""
    from tessera import events
    from tessera.entities.tables import DomainEvent

    received: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        @hookimpl
        def tessera_on_event(self, event: Any) -> None:
            if event.name.startswith(("workflow.", "task.")):
                received.append((event.name, event.payload))

    crm.pm.register(Recorder(), name="recorder")
    p = await _setup(crm)
    inst = await _start(crm, p)
    await _log_call(crm, p)
    received.clear()
    r = await crm.post(f"/api/workflow/instances/{inst['id']}/advance", p["manager"], json={})
    assert r.status_code == 200, r.text
    names = [name for name, _ in received]
    assert names == [
        "task.completed",
        "task.updated",
        "task.created",
        "workflow.stage_completed",
        "workflow.stage_entered",
    ]
    payloads = dict(received)
    assert payloads["workflow.stage_completed"]["stage"] == "register"
    assert payloads["workflow.stage_completed"]["to"] == "resolve"
    assert payloads["workflow.stage_entered"]["from_stage"] == "register"
    assert payloads["workflow.stage_entered"]["stage"] == "resolve"
    assert payloads["workflow.stage_entered"]["task_id"] == r.json()["current_task_id"]
    await events.settle()
    rows = await DomainEvent.select().where(DomainEvent.entity == "workflow_instance")
    assert rows and all(row["dispatched_at"] is not None and row["attempts"] == 1 for row in rows)


async def test_start_and_advance_answer_the_instance_as_stored(crm, frozen_clock):
    """``start`` and ``advance`` answer with the instance as the transition wrote it (not read
    again): the client gets exactly what a GET of the instance returns afterwards, times,
    version, results, stage task and people included."""
    p = await _setup(crm)
    inst = await _start(crm, p)
    r = await crm.get(f"/api/workflow/instances/{inst['id']}", p["manager"])
    assert r.status_code == 200, r.text
    assert inst == r.json()
    await _log_call(crm, p)
    frozen_clock.advance(hours=1)
    r = await crm.post(f"/api/workflow/instances/{inst['id']}/advance", p["manager"], json={})
    assert r.status_code == 200, r.text
    answered = r.json()
    assert answered["current_stage"] == "resolve" and answered["version"] > inst["version"]
    stored = await crm.get(f"/api/workflow/instances/{inst['id']}", p["manager"])
    assert answered == stored.json()


async def test_two_concurrent_advances_move_the_process_once(crm, frozen_clock):
    """Two people completing the same stage at the same moment: one moves the process, the
    other is refused and leaves nothing behind — one transition, one stage task. The
    instance's compare-and-set is made by the new stage's UPDATE at the end of the transition:
    on PostgreSQL both transactions run at once and the later one is a 409; on SQLite one waits
    for the other and then finds the process already in the engineer's stage (403)."""
    p = await _setup(crm)
    inst = await _start(crm, p)
    await _log_call(crm, p)
    url = f"/api/workflow/instances/{inst['id']}/advance"
    first, second = await asyncio.gather(
        crm.post(url, p["manager"], json={"comment": "one"}),
        crm.post(url, p["manager"], json={"comment": "two"}),
    )
    codes = sorted([first.status_code, second.status_code])
    assert codes[0] == 200 and codes[1] in (403, 409), (first.text, second.text)
    card = (await crm.get(f"/api/workflow/instances/{inst['id']}/card", p["manager"])).json()
    assert [h["kind"] for h in card["history"]] == ["start", "advance"]
    r = await crm.get("/api/tasks", p["admin"], params={"party_id": p["party"]["id"], "status": "open"})
    open_tasks = [t for t in r.json()["items"] if t["source"] == f"workflow:{inst['id']}"]
    assert len(open_tasks) == 1, open_tasks
