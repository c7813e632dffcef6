"""The client card (party + whole chronological history) and "who else works with this client"."""

from __future__ import annotations

import pytest
from entity_helpers import new_party


async def _post(crm, user, url, body):
    r = await crm.post(url, user, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def _history(crm, frozen_clock):
    """A party with a bit of everything, each thing at a known time."""
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    party = await new_party(crm, admin, name="Romashka", owner_id=alice["id"])  # 03-02 09:00
    contact = await _post(crm, admin, "/api/contacts", {"party_id": party["id"], "name": "Irina"})
    frozen_clock.advance(days=1)  # 03-03
    done_call = await _post(
        crm,
        alice,
        "/api/activities",
        {
            "type": "call",
            "subject": "First call",
            "starts_at": "2026-03-03T10:00:00Z",
            "status": "done",
            "party_id": party["id"],
            "outcome": "Interested",
            "agreements": "Meet next week",
        },
    )
    planned = await _post(
        crm,
        alice,
        "/api/activities",
        {"type": "meeting", "subject": "Demo", "starts_at": "2026-03-10T10:00:00Z", "party_id": party["id"]},
    )
    frozen_clock.advance(days=1)  # 03-04
    note = await _post(crm, alice, "/api/notes", {"party_id": party["id"], "body": "Decision in April"})
    frozen_clock.advance(days=1)  # 03-05
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"status": "current"})
    assert r.status_code == 200
    frozen_clock.advance(days=1)  # 03-06
    r = await crm.post(
        "/api/attachments/upload",
        alice,
        files={"file": ("offer.pdf", b"%PDF-1.4", "application/pdf")},
        data={"party_id": str(party["id"])},
    )
    assert r.status_code == 201, r.text
    attachment = r.json()
    task = await _post(
        crm,
        admin,
        "/api/tasks",
        {
            "title": "Send contract",
            "party_id": party["id"],
            "assignee_id": alice["id"],
            "deadline": "2026-03-08T12:00:00Z",
        },
    )
    return {
        "admin": admin,
        "alice": alice,
        "party": party,
        "contact": contact,
        "done_call": done_call,
        "planned": planned,
        "note": note,
        "attachment": attachment,
        "task": task,
    }


async def test_card_has_whole_history_in_time_order(crm, frozen_clock):
    h = await _history(crm, frozen_clock)
    r = await crm.get(f"/api/parties/{h['party']['id']}/card", h["alice"], params={"order": "asc"})
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["party"]["id"] == h["party"]["id"]
    assert card["party"]["status"] == "current"
    assert [c["name"] for c in card["contacts"]] == ["Irina"]
    timeline = [(i["kind"], i["id"], i["at"][:10]) for i in card["timeline"]]
    assert timeline == [
        ("party.status", timeline[0][1], "2026-03-02"),
        ("activity.call", h["done_call"]["id"], "2026-03-03"),
        ("note", h["note"]["id"], "2026-03-04"),
        ("party.status", timeline[3][1], "2026-03-05"),
        ("attachment", h["attachment"]["id"], "2026-03-06"),
        ("task", h["task"]["id"], "2026-03-08"),
        ("activity.meeting", h["planned"]["id"], "2026-03-10"),
    ]
    items = {i["kind"]: i for i in card["timeline"]}
    assert items["activity.call"]["status"] == "done"
    assert "Meet next week" in items["activity.call"]["detail"]
    assert items["activity.meeting"]["status"] == "planned"
    assert items["task"]["status"] == "open"
    assert items["attachment"]["title"] == "offer.pdf"
    assert [i["title"] for i in card["timeline"] if i["kind"] == "party.status"] == [
        "new -> potential",
        "potential -> current",
    ]
    assert card["open_tasks"] == 1
    assert card["planned_activities"] == 1

    r = await crm.get(f"/api/parties/{h['party']['id']}/card", h["alice"])
    newest_first = [(i["kind"], i["id"]) for i in r.json()["timeline"]]
    assert newest_first == [(i["kind"], i["id"]) for i in reversed(card["timeline"])]
    r = await crm.get(f"/api/parties/{h['party']['id']}/card", h["alice"], params={"order": "sideways"})
    assert r.status_code == 422


async def test_card_follows_changes(crm, frozen_clock):
    h = await _history(crm, frozen_clock)
    url = f"/api/parties/{h['party']['id']}/card"
    frozen_clock.advance(days=1)
    await crm.post(f"/api/tasks/{h['task']['id']}/complete", h["alice"], json={"result": "Signed"})
    await crm.patch(f"/api/activities/{h['planned']['id']}", h["alice"], json={"status": "cancelled"})
    card = (await crm.get(url, h["alice"])).json()
    assert card["open_tasks"] == 0
    assert card["planned_activities"] == 0
    task_item = next(i for i in card["timeline"] if i["kind"] == "task")
    assert (task_item["status"], task_item["detail"]) == ("done", "Signed")


async def test_card_is_hidden_from_those_who_cannot_see_the_party(crm, frozen_clock):
    h = await _history(crm, frozen_clock)
    stranger = await crm.user("manager")
    assert (await crm.get(f"/api/parties/{h['party']['id']}/card", stranger)).status_code == 404
    assert (await crm.get(f"/api/parties/{h['party']['id']}/participants", stranger)).status_code == 404
    assert (await crm.get("/api/parties/999999/card", h["admin"])).status_code == 404


@pytest.mark.plugins("probe")
async def test_card_includes_items_plugins_add(crm, frozen_clock):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    card = (await crm.get(f"/api/parties/{party['id']}/card", admin, params={"order": "asc"})).json()
    first = card["timeline"][0]
    assert (first["kind"], first["source"]) == ("probe.visit", "probe")
    assert first["title"] == f"Probe saw party {party['id']}"
    assert [i["kind"] for i in card["timeline"]] == ["probe.visit", "party.status"]


async def test_who_else_works_with_the_client(crm, frozen_clock):
    admin = await crm.user("admin")
    owner = await crm.user("manager", name="Olga Owner")
    tasked = await crm.user("manager", name="Tim Tasked")
    finished = await crm.user("manager", name="Fay Finished")
    caller = await crm.user("manager", name="Carl Caller")
    guest = await crm.user("manager", name="Gus Guest")
    cancelled = await crm.user("manager", name="Cid Cancelled")
    outsider = await crm.user("manager", name="Otto Outsider")
    party = await new_party(crm, admin, owner_id=owner["id"])
    other = await new_party(crm, admin)
    await _post(
        crm, admin, "/api/tasks", {"title": "Open", "party_id": party["id"], "assignee_id": tasked["id"]}
    )
    done = await _post(
        crm, admin, "/api/tasks", {"title": "Done", "party_id": party["id"], "assignee_id": finished["id"]}
    )
    await crm.post(f"/api/tasks/{done['id']}/complete", admin, json={"result": "ok"})
    await _post(
        crm,
        admin,
        "/api/activities",
        {
            "type": "meeting",
            "subject": "Visit",
            "starts_at": "2026-03-05T10:00:00Z",
            "party_id": party["id"],
            "owner_id": caller["id"],
            "participant_user_ids": [guest["id"]],
        },
    )
    await _post(
        crm,
        admin,
        "/api/activities",
        {
            "type": "call",
            "subject": "Never happened",
            "starts_at": "2026-03-05T10:00:00Z",
            "party_id": party["id"],
            "owner_id": cancelled["id"],
            "status": "cancelled",
        },
    )
    await _post(
        crm,
        admin,
        "/api/tasks",
        {"title": "Elsewhere", "party_id": other["id"], "assignee_id": outsider["id"]},
    )

    r = await crm.get(f"/api/parties/{party['id']}/participants", owner)
    assert r.status_code == 200, r.text
    people = {p["name"]: p["reasons"] for p in r.json()}
    assert people == {
        "Olga Owner": ["owner"],
        "Tim Tasked": ["open task"],
        "Carl Caller": ["activity"],
        "Gus Guest": ["activity participant"],
    }
