"""Tasks through the HTTP API: CRUD, filters, hand-off chain, completion, escalation of
overdue tasks to the controller (with the kernel clock frozen, never sleeping)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from entity_helpers import field_errors, new_party, table_counts, walk
from tessera.entities.tasks import escalate_overdue


async def _task(crm, user, **values):
    r = await crm.post("/api/tasks", user, json={"title": "Call back"} | values)
    assert r.status_code == 201, r.text
    return r.json()


async def _inbox(crm, user):
    r = await crm.get("/api/notifications", user)
    assert r.status_code == 200
    return r.json()


async def test_task_crud(crm, frozen_clock):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    party = await new_party(crm, admin)
    task = await _task(
        crm,
        admin,
        title="Prepare offer",
        description="Two options",
        party_id=party["id"],
        assignee_id=alice["id"],
        controller_id=admin["id"],
        deadline="2026-03-05T18:00:00+03:00",
        priority="high",
    )
    assert task["author_id"] == admin["id"]
    assert task["assignee_id"] == alice["id"]
    assert task["deadline"].startswith("2026-03-05T15:00:00")
    assert (task["status"], task["overdue"], task["completed_at"]) == ("open", False, None)
    url = f"/api/tasks/{task['id']}"
    assert (await crm.get(url, alice)).json() == task  # the assignee sees it
    inbox = await _inbox(crm, alice)
    assert [(n["kind"], n["ref"]) for n in inbox] == [("task.assigned", f"task:{task['id']}")]

    r = await crm.patch(url, alice, json={"status": "in_progress", "version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_progress"
    assert (await crm.patch(url, alice, json={"priority": "low", "version": 1})).status_code == 409
    assert (await crm.get(url, admin)).json()["priority"] == "high"

    # Alice is a manager: no task.delete.
    assert (await crm.delete(url, alice)).status_code == 403
    assert (await crm.delete(url, admin)).status_code == 204
    assert (await crm.get(url, admin)).status_code == 404


async def test_defaults_author_is_assignee(crm):
    alice = await crm.user("manager")
    task = await _task(crm, alice)
    assert task["author_id"] == task["assignee_id"] == alice["id"]
    assert task["priority"] == "normal"
    assert await _inbox(crm, alice) == []  # nobody needs telling about their own task


async def test_task_validation(crm):
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    bobs = await new_party(crm, bob)
    cases = [
        ({"title": ""}, "title"),
        ({}, "title"),
        ({"title": "x", "deadline": "2026-03-05T18:00:00"}, "deadline"),
        ({"title": "x", "priority": "asap"}, "priority"),
        ({"title": "x", "status": "waiting"}, "status"),
        ({"title": "x", "assignee_id": 999_999}, "assignee_id"),
        ({"title": "x", "controller_id": 999_999}, "controller_id"),
        ({"title": "x", "party_id": bobs["id"]}, "party_id"),
        ({"title": "x", "author_id": bob["id"]}, "author_id"),
        ({"title": 5}, "title"),
    ]
    before = await table_counts()
    for body, field in cases:
        r = await crm.post("/api/tasks", alice, json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in field_errors(r), (body, r.json())
    assert await table_counts() == before


async def test_task_filters(crm, frozen_clock):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    party = await new_party(crm, admin)
    t1 = await _task(crm, admin, assignee_id=alice["id"], priority="urgent", deadline="2026-03-02T12:00:00Z")
    t2 = await _task(crm, admin, assignee_id=bob["id"], controller_id=alice["id"], party_id=party["id"])
    t3 = await _task(crm, alice, deadline="2026-03-10T12:00:00Z")
    r = await crm.post(f"/api/tasks/{t3['id']}/complete", alice, json={"result": "done"})
    assert r.status_code == 200
    frozen_clock.advance(days=1)

    async def ids(**params):
        r = await crm.get("/api/tasks", admin, params=params)
        assert r.status_code == 200, r.text
        found = {t["id"] for t in r.json()["items"]}
        assert (await crm.get("/api/tasks/count", admin, params=params)).json()["count"] == len(found)
        return found

    assert await ids() == {t1["id"], t2["id"], t3["id"]}
    assert await ids(status="done") == {t3["id"]}
    assert await ids(open=True) == {t1["id"], t2["id"]}
    assert await ids(assignee_id=alice["id"]) == {t1["id"], t3["id"]}
    assert await ids(author_id=alice["id"]) == {t3["id"]}
    assert await ids(controller_id=alice["id"]) == {t2["id"]}
    assert await ids(party_id=party["id"]) == {t2["id"]}
    assert await ids(priority="urgent") == {t1["id"]}
    assert await ids(overdue=True) == {t1["id"]}  # t3 is past nothing, and done anyway
    assert await ids(deadline_before="2026-03-05T00:00:00Z") == {t1["id"]}
    listed = {t["id"]: t for t in (await crm.get("/api/tasks", admin)).json()["items"]}
    assert listed[t1["id"]]["overdue"] is True
    assert listed[t2["id"]]["overdue"] is False


async def test_task_visibility(crm):
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    carol = await crm.user("manager")
    task = await _task(crm, alice, assignee_id=bob["id"], controller_id=carol["id"])
    for user in (alice, bob, carol):
        assert (await crm.get(f"/api/tasks/{task['id']}", user)).status_code == 200
    stranger = await crm.user("manager")
    assert (await crm.get(f"/api/tasks/{task['id']}", stranger)).status_code == 404
    assert (await crm.get("/api/tasks/count", stranger)).json() == {"count": 0}


async def test_handoff_chain(crm, frozen_clock):
    head = await crm.user("admin")
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    carol = await crm.user("manager")
    task = await _task(crm, head, assignee_id=alice["id"])
    url = f"/api/tasks/{task['id']}"

    frozen_clock.advance(hours=1)
    r = await crm.post(f"{url}/handoff", alice, json={"to_user_id": bob["id"], "comment": "You know them"})
    assert r.status_code == 200, r.text
    assert r.json()["assignee_id"] == bob["id"]
    assert r.json()["version"] == 2
    frozen_clock.advance(hours=1)
    r = await crm.post(f"{url}/handoff", bob, json={"to_user_id": carol["id"]})
    assert r.status_code == 200, r.text

    r = await crm.get(f"{url}/handoffs", head)
    assert r.status_code == 200
    chain = [(h["from_user_id"], h["to_user_id"], h["comment"], h["at"][11:16]) for h in r.json()]
    assert chain == [
        (head["id"], alice["id"], "", "09:00"),
        (alice["id"], bob["id"], "You know them", "10:00"),
        (bob["id"], carol["id"], "", "11:00"),
    ]
    assert (await crm.get(url, head)).json()["assignee_id"] == carol["id"]
    notes = await _inbox(crm, bob)
    assert [n["kind"] for n in notes] == ["task.handed_off"]
    assert notes[0]["body"] == "You know them"
    assert [n["kind"] for n in await _inbox(crm, carol)] == ["task.handed_off"]

    # Errors: to the current assignee, to nobody, on a finished task.
    r = await crm.post(f"{url}/handoff", carol, json={"to_user_id": carol["id"]})
    assert r.status_code == 422
    assert "to_user_id" in field_errors(r)
    r = await crm.post(f"{url}/handoff", carol, json={"to_user_id": 999_999})
    assert r.status_code == 422
    assert "to_user_id" in field_errors(r)
    r = await crm.post(f"{url}/handoff", carol, json={})
    assert r.status_code == 422
    assert "to_user_id" in field_errors(r)
    assert (await crm.post(f"{url}/complete", carol, json={"result": "Offer sent"})).status_code == 200
    r = await crm.post(f"{url}/handoff", carol, json={"to_user_id": alice["id"]})
    assert r.status_code == 409
    assert len((await crm.get(f"{url}/handoffs", head)).json()) == 3
    stranger = await crm.user("manager")
    assert (await crm.get(f"{url}/handoffs", stranger)).status_code == 404
    assert (await crm.post(f"{url}/handoff", stranger, json={"to_user_id": alice["id"]})).status_code == 404


async def test_reassigning_through_patch_extends_chain_and_notifies(crm):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    task = await _task(crm, admin, assignee_id=alice["id"])
    r = await crm.patch(f"/api/tasks/{task['id']}", admin, json={"assignee_id": bob["id"]})
    assert r.status_code == 200
    chain = (await crm.get(f"/api/tasks/{task['id']}/handoffs", admin)).json()
    assert [(h["from_user_id"], h["to_user_id"]) for h in chain] == [
        (admin["id"], alice["id"]),
        (alice["id"], bob["id"]),
    ]
    assert [n["kind"] for n in await _inbox(crm, bob)] == ["task.assigned"]


async def test_completion(crm, frozen_clock):
    alice = await crm.user("manager")
    task = await _task(crm, alice, deadline="2026-03-03T09:00:00Z")
    url = f"/api/tasks/{task['id']}"
    frozen_clock.advance(hours=5)
    r = await crm.post(f"{url}/complete", alice, json={"result": "Signed", "version": 2})
    assert r.status_code == 409  # stale version
    r = await crm.post(f"{url}/complete", alice, json={"result": "Signed", "version": 1})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["result"], done["overdue"]) == ("done", "Signed", False)
    assert done["completed_at"].startswith("2026-03-02T14:00:00")
    r = await crm.post(f"{url}/complete", alice, json={"result": "again"})
    assert r.status_code == 409
    assert (await crm.get(url, alice)).json()["result"] == "Signed"
    # Reopening clears the completion time.
    r = await crm.patch(url, alice, json={"status": "open"})
    assert r.json()["completed_at"] is None


async def test_overdue_task_escalates_to_controller_once(crm, frozen_clock):
    boss = await crm.user("head")
    alice = await crm.user("manager")
    task = await _task(
        crm, boss, assignee_id=alice["id"], controller_id=boss["id"], deadline="2026-03-03T09:00:00Z"
    )
    url = f"/api/tasks/{task['id']}"
    assert await escalate_overdue() == 0  # not yet due
    frozen_clock.advance(days=1)
    assert await escalate_overdue() == 0  # exactly at the deadline is not overdue
    frozen_clock.advance(minutes=1)
    assert await escalate_overdue() == 1
    boss_inbox = await _inbox(crm, boss)
    assert [(n["kind"], n["ref"]) for n in boss_inbox] == [("task.overdue", f"task:{task['id']}")]
    assert "Call back" in boss_inbox[0]["title"]
    assert [n["kind"] for n in await _inbox(crm, alice)] == ["task.overdue", "task.assigned"]  # newest first
    got = (await crm.get(url, alice)).json()
    assert got["overdue"] is True
    assert got["escalated_at"] is not None

    frozen_clock.advance(days=1)
    assert await escalate_overdue() == 0  # escalated once only
    assert len(await _inbox(crm, boss)) == 1

    # A new deadline re-arms the escalation.
    r = await crm.patch(url, boss, json={"deadline": "2026-03-06T09:00:00Z"})
    assert r.json()["escalated_at"] is None
    assert r.json()["overdue"] is False
    assert await escalate_overdue() == 0
    frozen_clock.advance(days=2)
    assert await escalate_overdue() == 1
    assert len(await _inbox(crm, boss)) == 2

    # Done tasks never escalate.
    done = await _task(crm, boss, assignee_id=alice["id"], deadline="2026-03-08T10:00:00Z")
    await crm.post(f"/api/tasks/{done['id']}/complete", alice, json={"result": "ok"})
    frozen_clock.advance(days=5)
    assert await escalate_overdue() == 0


async def test_overdue_task_without_controller_goes_to_author(crm, frozen_clock):
    author = await crm.user("manager")
    assignee = await crm.user("manager")
    await _task(crm, author, assignee_id=assignee["id"], deadline="2026-03-02T10:00:00Z")
    frozen_clock.advance(hours=2)
    assert await escalate_overdue() == 1
    assert [n["kind"] for n in await _inbox(crm, author)] == ["task.overdue"]


@pytest.mark.parametrize("order", ["id", "-id", "created_at", "-created_at", "updated_at", "-updated_at"])
async def test_task_pagination(crm, frozen_clock, order):
    admin = await crm.user("admin")
    # Created and then edited at minutes out of id order, with ties (broken by id).
    created_min = [2, 0, 2, 1, 0, 1, 2]
    updated_min = [11, 12, 10, 13, 11, 10, 12]
    start = frozen_clock()
    made = []
    for i, minute in enumerate(created_min):
        frozen_clock.set(start + timedelta(minutes=minute))
        made.append((await _task(crm, admin, title=f"T{i}"))["id"])
    for i in sorted(range(len(made)), key=lambda k: updated_min[k]):
        frozen_clock.set(start + timedelta(minutes=updated_min[i]))
        r = await crm.patch(f"/api/tasks/{made[i]}", admin, json={"title": f"T{i} edited"})
        assert r.status_code == 200, r.text

    minutes = {"id": [0] * len(made), "created_at": created_min, "updated_at": updated_min}[order.lstrip("-")]
    expected = [
        made[k]
        for k in sorted(range(len(made)), key=lambda k: (minutes[k], made[k]), reverse=order.startswith("-"))
    ]
    items = await walk(crm, admin, "/api/tasks", order=order, limit=3)
    assert [t["id"] for t in items] == expected


async def test_notifications_can_be_marked_read(crm):
    boss = await crm.user("admin")
    alice = await crm.user("manager")
    await _task(crm, boss, assignee_id=alice["id"], title="One")
    await _task(crm, boss, assignee_id=alice["id"], title="Two")
    inbox = await _inbox(crm, alice)
    assert [n["title"] for n in inbox] == ["New task: Two", "New task: One"]
    assert all(n["read_at"] is None for n in inbox)
    r = await crm.post(f"/api/notifications/{inbox[1]['id']}/read", alice)
    assert r.status_code == 204
    unread = (await crm.get("/api/notifications", alice, params={"unread": "true"})).json()
    assert [n["title"] for n in unread] == ["New task: Two"]
    # Someone else's notification cannot be touched (nor its existence learnt).
    assert (await crm.post(f"/api/notifications/{inbox[0]['id']}/read", boss)).status_code == 404
    assert (await crm.get("/api/notifications", boss)).json() == []


async def test_a_handed_task_waits_for_the_receivers_acceptance(crm, frozen_clock):
    """A task someone gives you waits for your acceptance; you accept it (the giver hears so),
    nobody else may; a new hand-off asks the next receiver again; one's own task needs none."""
    head = await crm.user("admin", name="Head")
    alice = await crm.user("manager", name="Alice")
    bob = await crm.user("manager", name="Bob")
    own = await _task(crm, alice)
    assert own["accepted_at"] is not None  # created for oneself: accepted at once
    task = await _task(crm, head, assignee_id=alice["id"])
    assert task["accepted_at"] is None
    url = f"/api/tasks/{task['id']}"
    r = await crm.post(f"{url}/accept", head, json={})
    assert r.status_code == 403, r.text  # only the assignee accepts
    r = await crm.post(f"{url}/accept", alice, json={"version": task["version"]})
    assert r.status_code == 200, r.text
    accepted = r.json()
    assert accepted["accepted_at"] is not None and accepted["version"] == task["version"] + 1
    assert any(n["kind"] == "task.accepted" for n in await _inbox(crm, head))
    again = await crm.post(f"{url}/accept", alice, json={})
    assert again.status_code == 200 and again.json()["version"] == accepted["version"]  # no change
    r = await crm.post(f"{url}/handoff", alice, json={"to_user_id": bob["id"], "comment": "yours"})
    assert r.status_code == 200 and r.json()["accepted_at"] is None
    r = await crm.post(f"{url}/accept", bob, json={})
    assert r.status_code == 200 and r.json()["accepted_at"] is not None
    assert any(n["kind"] == "task.accepted" for n in await _inbox(crm, alice))
    r = await crm.post(f"{url}/complete", bob, json={"result": "done"})
    assert r.status_code == 200
    r = await crm.post(f"{url}/accept", bob, json={})
    assert r.status_code == 409  # a closed task is not accepted


async def test_my_day_lists_hand_offs_until_accepted(crm):
    import re

    head = await crm.user("admin", name="Head")
    alice = await crm.user("manager", name="Alice")
    task = await _task(crm, head, assignee_id=alice["id"], title="Prepare the contract")
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": alice["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    day = await crm.client.get("/app")
    section = day.text.split('id="handed"', 1)[1].split("</section>", 1)[0]
    assert "Prepare the contract" in section and "Head" in section
    token = re.search(r'name="csrf_token" value="([^"]+)"', day.text).group(1)
    r = await crm.client.post(
        f"/app/tasks/{task['id']}/accept",
        data={"csrf_token": token, "version": str(task["version"]), "next": "/app"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/app"
    day = await crm.client.get("/app")
    section = day.text.split('id="handed"', 1)[1].split("</section>", 1)[0]
    assert "Prepare the contract" not in section
    page = await crm.client.get(f"/app/tasks/{task['id']}")
    assert "Not accepted yet" not in page.text and f"/app/tasks/{task['id']}/accept" not in page.text
