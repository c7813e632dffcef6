"""Implicit sharing and "reading is not writing" (issues 13.1 and 14.1; docs/security.md):

* a task handed to a manager (or a process stage he is responsible for or controls) on a client
  he may not otherwise see opens that client and its contacts to him — card, lists, counts,
  search, exports — for as long as the task or the stage is open, and only for reading;
* a user who reads a record only through a relation (a meeting's participant, their substitute,
  a colleague handed a task on the client) may not change, detach, reassign, delete it or
  widen who else reads it: such a write is ``403`` (a record one may not read at all stays
  ``404``).
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from tessera.entities.tables import Role


async def _two_teams(crm: Any) -> dict[str, Any]:
    north, south = await crm.team(), await crm.team()
    await Role.insert(
        Role(
            name="south_head",
            description="head with exports",
            permissions=["party.*", "activity.*", "task.*", "note.*", "search.use", "workflow.read"],
            scope="team",
        )
    )
    p = {
        "admin": await crm.user("admin"),
        "owner": await crm.user("manager", team_id=north["id"], name="Owner North"),
        "guest": await crm.user("manager", team_id=south["id"], name="Guest South"),
        "head": await crm.user("south_head", team_id=south["id"], name="Head South"),
        "outsider": await crm.user("manager", team_id=south["id"], name="Outsider South"),
    }
    r = await crm.post("/api/parties", p["owner"], json={"name": "Zanzibar Shared Ltd"})
    assert r.status_code == 201, r.text
    p["party"] = r.json()
    r = await crm.post(
        "/api/contacts", p["owner"], json={"party_id": p["party"]["id"], "name": "Quentin Zanzicontact"}
    )
    assert r.status_code == 201, r.text
    p["contact"] = r.json()
    return p


async def _sees_party(crm: Any, user: dict[str, Any], party: dict[str, Any]) -> dict[str, bool]:
    listed = (await crm.get("/api/parties", user, params={"limit": 500})).json()["items"]
    count = (await crm.get("/api/parties/count", user)).json()["count"]
    hits = (await crm.get("/api/search", user, params={"q": "zanzibar"})).json()["hits"]
    contacts = (await crm.get("/api/contacts", user, params={"limit": 500})).json()["items"]
    return {
        "get": (await crm.get(f"/api/parties/{party['id']}", user)).status_code == 200,
        "card": (await crm.get(f"/api/parties/{party['id']}/card", user)).status_code == 200,
        "list": party["id"] in [x["id"] for x in listed],
        "count": count >= 1,
        "search": party["id"] in [h["id"] for h in hits if h["type"] == "party"],
        "contacts": any(c["party_id"] == party["id"] for c in contacts),
    }


async def test_a_handed_task_opens_the_client_while_it_is_open(crm: Any, frozen_clock: Any) -> None:
    p = await _two_teams(crm)
    party, guest = p["party"], p["guest"]
    assert not any((await _sees_party(crm, guest, party)).values())
    r = await crm.post("/api/tasks", p["owner"], json={"title": "Call them", "party_id": party["id"]})
    assert r.status_code == 201, r.text
    task = r.json()
    r = await crm.post(f"/api/tasks/{task['id']}/handoff", p["owner"], json={"to_user_id": guest["id"]})
    assert r.status_code == 200, r.text

    seen = await _sees_party(crm, guest, party)
    assert all(seen.values()), seen
    card = (await crm.get(f"/api/parties/{party['id']}/card", guest)).json()
    assert [c["name"] for c in card["contacts"]] == ["Quentin Zanzicontact"]
    hits = (await crm.get("/api/search", guest, params={"q": "zanzicontact"})).json()["hits"]
    assert [h["id"] for h in hits if h["type"] == "contact"] == [p["contact"]["id"]]
    # The guest's head sees what the guest sees: the client is in the team's export too.
    r = await crm.get("/api/parties/export", p["head"])
    assert r.status_code == 200, r.text
    assert party["name"] in [row["name"] for row in csv.DictReader(io.StringIO(r.text))]
    # Nobody else of the guest's team.
    assert not any((await _sees_party(crm, p["outsider"], party)).values())

    r = await crm.post(f"/api/tasks/{task['id']}/complete", guest, json={"result": "called"})
    assert r.status_code == 200, r.text
    assert not any((await _sees_party(crm, guest, party)).values())
    assert (await crm.get(f"/api/parties/{party['id']}/card", guest)).status_code == 404
    r = await crm.get("/api/parties/export", p["head"])
    assert party["name"] not in r.text


async def test_a_shared_client_is_read_only(crm: Any) -> None:
    p = await _two_teams(crm)
    party, guest, head = p["party"], p["guest"], p["head"]
    r = await crm.post(
        "/api/tasks",
        p["owner"],
        json={"title": "Visit", "party_id": party["id"], "assignee_id": guest["id"]},
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert (await crm.get(f"/api/parties/{party['id']}", guest)).status_code == 200

    for user in (guest, head):  # the head reads it through the guest's task
        r = await crm.patch(f"/api/parties/{party['id']}", user, json={"name": "Renamed"})
        assert r.status_code == 403, r.text
        r = await crm.patch(f"/api/parties/{party['id']}", user, json={"owner_id": user["id"]})
        assert r.status_code == 403, r.text
        r = await crm.patch(f"/api/contacts/{p['contact']['id']}", user, json={"name": "Changed"})
        assert r.status_code == 403, r.text
        r = await crm.post("/api/contacts", user, json={"party_id": party["id"], "name": "Planted"})
        assert r.status_code == 403, r.text
        # Another task on the client would share it wider (or longer): refused.
        r = await crm.post("/api/tasks", user, json={"title": "Mine now", "party_id": party["id"]})
        assert r.status_code == 403, r.text
    r = await crm.patch(f"/api/tasks/{task['id']}", guest, json={"controller_id": p["outsider"]["id"]})
    assert r.status_code == 403, r.text
    assert (await crm.delete(f"/api/contacts/{p['contact']['id']}", head)).status_code == 403
    assert (await crm.delete(f"/api/parties/{party['id']}", head)).status_code == 403
    # Unchanged, and still open to its owner; what the task needs (logging the call) works.
    stored = (await crm.get(f"/api/parties/{party['id']}", p["owner"])).json()
    assert stored["name"] == party["name"] and stored["owner_id"] == p["owner"]["id"]
    assert stored["version"] == party["version"]
    r = await crm.post(
        "/api/activities",
        guest,
        json={
            "type": "call",
            "subject": "Called",
            "starts_at": "2026-03-02T10:00:00Z",
            "party_id": party["id"],
        },
    )
    assert r.status_code == 201, r.text
    # Records one may not read at all stay 404.
    assert (
        await crm.patch(f"/api/parties/{party['id']}", p["outsider"], json={"name": "x"})
    ).status_code == 404


def _one_stage_template(responsible: int, controller: int) -> dict[str, Any]:
    return {
        "key": "sharing.review",
        "name": "Review",
        "subject": "party",
        "stages": [
            {
                "key": "review",
                "name": "Review",
                "responsible": {"user": responsible},
                "controller": {"user": controller},
            },
            {"key": "done", "name": "Done", "final": True},
        ],
    }


async def test_a_process_stage_opens_the_client_to_its_responsible_and_controller(
    crm: Any, frozen_clock: Any
) -> None:
    p = await _two_teams(crm)
    party, guest, controller = p["party"], p["guest"], p["outsider"]
    r = await crm.post(
        "/api/workflow/templates",
        p["admin"],
        json={"definition": _one_stage_template(guest["id"], controller["id"])},
    )
    assert r.status_code == 201, r.text
    r = await crm.post(
        "/api/workflow/instances",
        p["owner"],
        json={"template": "sharing.review", "subject_id": party["id"], "title": "Review Zanzibar"},
    )
    assert r.status_code == 201, r.text
    instance = r.json()
    for user in (guest, controller):
        seen = await _sees_party(crm, user, party)
        assert all(seen.values()), (user["name"], seen)
        r = await crm.patch(f"/api/parties/{party['id']}", user, json={"name": "Renamed"})
        assert r.status_code == 403, r.text
    r = await crm.post(f"/api/workflow/instances/{instance['id']}/stop", p["admin"], json={"comment": "no"})
    assert r.status_code == 200, r.text
    for user in (guest, controller):
        assert not any((await _sees_party(crm, user, party)).values()), user["name"]


async def _meeting(crm: Any, owner: dict[str, Any], guests: list[int]) -> dict[str, Any]:
    party = (await crm.post("/api/parties", owner, json={"name": "Meeting client"})).json()
    r = await crm.post(
        "/api/activities",
        owner,
        json={
            "type": "meeting",
            "subject": "Quarterly review",
            "starts_at": "2026-03-03T10:00:00Z",
            "party_id": party["id"],
            "participant_user_ids": guests,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_meeting_participant_and_their_substitute_only_read_the_meeting(
    crm: Any, frozen_clock: Any
) -> None:
    p = await _two_teams(crm)
    guest, head, outsider = p["guest"], p["head"], p["outsider"]
    meeting = await _meeting(crm, p["owner"], [guest["id"], head["id"]])
    substitute = await crm.user("manager", name="Substitute")
    r = await crm.post(
        "/api/substitutions",
        p["admin"],
        json={
            "absent_user_id": guest["id"],
            "substitute_id": substitute["id"],
            "starts_at": (frozen_clock() - timedelta(hours=1)).isoformat(),
            "ends_at": (frozen_clock() + timedelta(days=3)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    url = f"/api/activities/{meeting['id']}"
    for user in (guest, head, substitute):
        assert (await crm.get(url, user)).status_code == 200, user["name"]
        for change in (
            {"subject": "Hijacked"},
            {"party_id": None},  # detach from its client
            {"owner_id": user["id"]},  # reassign
            {"participant_user_ids": [guest["id"], head["id"], outsider["id"]]},  # widen
            {"participant_user_ids": []},
        ):
            r = await crm.patch(url, user, json=change)
            assert r.status_code == 403, (user["name"], change, r.text)
    assert (await crm.delete(url, head)).status_code == 403  # heads hold activity.delete
    stored = (await crm.get(url, p["owner"])).json()
    assert stored["version"] == meeting["version"] and stored["subject"] == "Quarterly review"
    assert sorted(stored["participant_user_ids"]) == sorted([guest["id"], head["id"]])
    assert (await crm.get(url, outsider)).status_code == 404
    # The owner still may.
    r = await crm.patch(url, p["owner"], json={"subject": "Quarterly review (moved)"})
    assert r.status_code == 200, r.text


async def test_the_demo_managers_open_every_client_of_their_open_tasks(crm: Any) -> None:
    """The demo hands some tasks to another manager: their dashboard's tasks link to clients
    they must be able to open (before implicit sharing these answered 404)."""
    from tessera import auth, demo
    from tessera.entities.tables import CrmUser

    await demo.load(crm.pm, managers=3, parties_count=12)
    user = await CrmUser.select().where(CrmUser.email == "manager2@example.com").first()
    assert user is not None
    _, token = await auth.create_token(user["id"], "test")
    manager2 = {"headers": {"Authorization": f"Bearer {token}"}}
    tasks = (await crm.get("/api/tasks", manager2, params={"limit": 500})).json()["items"]
    mine = [t for t in tasks if t["assignee_id"] == user["id"] and t["status"] in ("open", "in_progress")]
    handed = [t for t in mine if t["party_id"] is not None]
    parties = (await crm.get("/api/parties", manager2, params={"limit": 500})).json()["items"]
    owned = {p["id"] for p in parties if p["owner_id"] == user["id"]}
    assert any(t["party_id"] not in owned for t in handed), "the demo hands manager2 another's client"
    for t in handed:
        r = await crm.get(f"/api/parties/{t['party_id']}/card", manager2)
        assert r.status_code == 200, (t["title"], r.text)
