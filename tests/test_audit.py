"""The audit log (GET /api/audit) records every create/update/delete with old -> new values,
and a failed write leaves no row, no audit entry and no domain event."""

from __future__ import annotations

from entity_helpers import new_party, table_counts
from tessera.entities.tables import DomainEvent


async def _audit(crm, user, **params):
    r = await crm.get("/api/audit", user, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_party_create_update_delete_are_audited_with_old_and_new(crm, frozen_clock):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    party = await new_party(crm, alice, name="Old name", tags=["a"])
    frozen_clock.advance(minutes=5)
    r = await crm.patch(f"/api/parties/{party['id']}", alice, json={"name": "New name", "status": "current"})
    assert r.status_code == 200
    frozen_clock.advance(minutes=5)
    assert (await crm.delete(f"/api/parties/{party['id']}", admin)).status_code == 204

    entries = await _audit(crm, admin, entity="party", entity_id=party["id"])
    assert [e["action"] for e in entries] == ["delete", "update", "create"]  # newest first
    delete, update, create = entries
    assert create["user_id"] == alice["id"]
    assert create["changes"]["name"] == [None, "Old name"]
    assert create["changes"]["tags"] == [None, ["a"]]
    assert "contact_index" not in create["changes"]
    assert update["user_id"] == alice["id"]
    assert update["changes"]["name"] == ["Old name", "New name"]
    assert update["changes"]["status"] == ["potential", "current"]
    assert "tags" not in update["changes"]  # unchanged fields are not logged
    assert update["at"].startswith("2026-03-02T09:05:00")
    assert delete["user_id"] == admin["id"]
    assert delete["changes"]["name"] == ["New name", None]
    assert delete["at"].startswith("2026-03-02T09:10:00")


async def test_audit_filters_and_paging(crm):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    p = await new_party(crm, alice)
    await crm.post("/api/tasks", admin, json={"title": "T"})
    await crm.patch(f"/api/parties/{p['id']}", admin, json={"name": "B"})
    assert {e["entity"] for e in await _audit(crm, admin, entity="task")} == {"task"}
    assert {e["user_id"] for e in await _audit(crm, admin, user_id=alice["id"])} == {alice["id"]}
    assert {e["action"] for e in await _audit(crm, admin, action="update")} == {"update"}
    everything = await _audit(crm, admin)
    first = await _audit(crm, admin, limit=1)
    rest = await _audit(crm, admin, before_id=first[0]["id"])
    assert [e["id"] for e in first + rest] == [e["id"] for e in everything]
    r = await crm.get("/api/audit", alice)
    assert r.status_code == 403


async def test_task_and_activity_changes_are_audited(crm):
    admin = await crm.user("admin")
    bob = await crm.user("manager")
    task = (await crm.post("/api/tasks", admin, json={"title": "T"})).json()
    await crm.post(
        f"/api/tasks/{task['id']}/handoff", admin, json={"to_user_id": bob["id"], "comment": "yours"}
    )
    await crm.post(f"/api/tasks/{task['id']}/complete", bob, json={"result": "done it"})
    entries = await _audit(crm, admin, entity="task", entity_id=task["id"])
    assert [e["action"] for e in entries] == ["update", "handoff", "create"]
    assert entries[1]["changes"] == {"assignee_id": [admin["id"], bob["id"]]}
    assert entries[1]["detail"] == "yours"
    assert entries[0]["changes"]["status"] == ["open", "done"]
    assert entries[0]["changes"]["result"] == ["", "done it"]
    assert entries[0]["user_id"] == bob["id"]

    act = (
        await crm.post(
            "/api/activities",
            admin,
            json={"type": "call", "subject": "S", "starts_at": "2026-03-02T09:00:00Z"},
        )
    ).json()
    await crm.patch(f"/api/activities/{act['id']}", admin, json={"status": "done", "outcome": "ok"})
    update = (await _audit(crm, admin, entity="activity", entity_id=act["id"]))[0]
    assert update["changes"]["status"] == ["planned", "done"]
    assert update["changes"]["outcome"] == ["", "ok"]


async def test_failed_writes_leave_nothing_behind(crm):
    admin = await crm.user("admin")
    r = await crm.put(
        "/api/custom-fields/party", admin, json={"properties": {"size": {"type": "integer", "minimum": 1}}}
    )
    assert r.status_code == 200
    party = await new_party(crm, admin, custom={"size": 3})
    colleague = await crm.user("manager")
    activity = (
        await crm.post(
            "/api/activities",
            admin,
            json={
                "type": "call",
                "subject": "S",
                "starts_at": "2026-03-02T09:00:00Z",
                "party_id": party["id"],
            },
        )
    ).json()
    before = await table_counts()
    events_before = await DomainEvent.count()
    attempts = [
        ("post", "/api/parties", {"name": "X", "status": "current", "custom": {"size": 0}}),
        ("patch", f"/api/parties/{party['id']}", {"status": "former", "custom": {"size": -1}}),
        ("patch", f"/api/parties/{party['id']}", {"name": "Y", "version": 99}),
        (
            "post",
            "/api/activities",
            {
                "type": "meeting",
                "subject": "S",
                "starts_at": "2026-03-02T09:00:00Z",
                "party_id": party["id"],
                "participant_user_ids": [colleague["id"], 777_777],
            },
        ),
        (
            "patch",
            f"/api/activities/{activity['id']}",
            {"status": "done", "participant_contact_ids": [777_777]},
        ),
        ("post", "/api/tasks", {"title": "T", "assignee_id": colleague["id"], "controller_id": 777_777}),
    ]
    for method, url, body in attempts:
        r = await getattr(crm, method)(url, admin, json=body)
        assert r.status_code in (409, 422), (url, body, r.text)
    assert await table_counts() == before
    assert await DomainEvent.count() == events_before
    r = await crm.get(f"/api/parties/{party['id']}", admin)
    assert (r.json()["status"], r.json()["custom"], r.json()["version"]) == ("potential", {"size": 3}, 1)
    assert (await crm.get(f"/api/activities/{activity['id']}", admin)).json()["status"] == "planned"


async def test_domain_events_are_written_with_the_change(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    await crm.patch(f"/api/parties/{party['id']}", admin, json={"status": "current"})
    names = [r["name"] for r in await DomainEvent.select(DomainEvent.name).order_by(DomainEvent.id)]
    assert names[-3:] == ["party.created", "party.status_changed", "party.updated"]


async def test_patch_that_changes_nothing_is_not_an_edit(crm, frozen_clock):
    admin = await crm.user("admin")
    party = await new_party(
        crm, admin, name="Same", relations=["partner", "client"], phones=[{"number": "84951234567"}]
    )
    frozen_clock.advance(hours=1)
    audit_before = len(await _audit(crm, admin, entity="party"))
    events_before = await DomainEvent.count()
    same = {"name": "Same", "relations": ["client", "partner"], "phones": [{"number": "+7 495 123-45-67"}]}
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json=same | {"version": 1})
    assert r.status_code == 200, r.text
    assert r.json() == party  # same version, same updated_at
    assert len(await _audit(crm, admin, entity="party")) == audit_before
    assert await DomainEvent.count() == events_before
    # A stale version is still refused even when nothing would change.
    await crm.patch(f"/api/parties/{party['id']}", admin, json={"name": "Other"})
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"name": "Other", "version": 1})
    assert r.status_code == 409


async def test_deleting_a_party_audits_and_announces_what_goes_with_it(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    other = await new_party(crm, admin, name="Other")
    contact = (await crm.post("/api/contacts", admin, json={"party_id": party["id"], "name": "Irina"})).json()
    body = {"type": "call", "subject": "Call", "starts_at": "2026-03-02T09:00:00Z", "party_id": party["id"]}
    activity = (await crm.post("/api/activities", admin, json=body)).json()
    task = (await crm.post("/api/tasks", admin, json={"title": "T", "party_id": party["id"]})).json()
    note = (await crm.post("/api/notes", admin, json={"body": "N", "party_id": party["id"]})).json()
    kept = (await crm.post("/api/tasks", admin, json={"title": "Keep", "party_id": other["id"]})).json()

    assert (await crm.delete(f"/api/parties/{party['id']}", admin)).status_code == 204
    gone = {
        "contact": contact["id"],
        "activity": activity["id"],
        "task": task["id"],
        "note": note["id"],
    }
    paths = {"contact": "contacts", "activity": "activities", "task": "tasks", "note": "notes"}
    for entity, record_id in gone.items():
        assert (await crm.get(f"/api/{paths[entity]}/{record_id}", admin)).status_code == 404
        entries = await _audit(crm, admin, entity=entity, entity_id=record_id)
        assert entries[0]["action"] == "delete", entity
        assert entries[0]["user_id"] == admin["id"]
        assert entries[0]["detail"] == f"deleted with party {party['id']}"
        events = await DomainEvent.count().where(
            DomainEvent.name == f"{entity}.deleted", DomainEvent.entity_id == record_id
        )
        assert events == 1, entity
    assert (await _audit(crm, admin, entity="contact", entity_id=contact["id"]))[0]["changes"]["name"] == [
        "Irina",
        None,
    ]
    assert (await crm.get(f"/api/tasks/{kept['id']}", admin)).status_code == 200
    assert await _audit(crm, admin, entity="task", entity_id=kept["id"], action="delete") == []


# --------------------------------------------------------------------------- who reads which entries


async def _role(name: str, permissions: list[str], scope: str) -> None:
    from tessera.entities.tables import Role

    if not await Role.exists().where(Role.name == name):
        await Role.insert(Role(name=name, description=name, permissions=permissions, scope=scope))


async def test_audit_entries_follow_the_visibility_of_their_record(crm):
    """An entry shows a record's old and new values, so it is shown to whoever may read the
    record now, and to nobody else who merely saw the person acting."""
    await _role("own_reader", ["party.*", "audit.read"], "own")
    admin = await crm.user("admin")
    a = await crm.user("own_reader")
    b = await crm.user("own_reader")
    auditor = await crm.user("auditor")  # default role: audit.read, scope all
    party = await new_party(crm, a, name="Takeover plans")
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"owner_id": b["id"]})
    assert r.status_code == 200, r.text
    mine = await new_party(crm, a, name="Still mine")

    # A created the party but may no longer read it: its entries (with the name) are gone for A.
    seen_by_a = await _audit(crm, a, entity="party")
    assert [(e["entity_id"], e["action"]) for e in seen_by_a] == [(mine["id"], "create")]
    assert "Takeover plans" not in str(await _audit(crm, a))
    # B owns it now and reads its whole history, also what A and the admin did.
    seen_by_b = await _audit(crm, b, entity="party")
    assert [(e["action"], e["user_id"]) for e in seen_by_b] == [("update", admin["id"]), ("create", a["id"])]
    assert seen_by_b[1]["changes"]["name"] == [None, "Takeover plans"]
    # An auditor reads every entry, and still no record.
    assert {e["entity_id"] for e in await _audit(crm, auditor, entity="party")} == {party["id"], mine["id"]}
    assert (await crm.get(f"/api/parties/{party['id']}", auditor)).status_code == 403


async def test_entries_without_a_readable_record_are_for_those_who_see_all(crm):
    await _role("own_reader", ["party.*", "audit.read"], "own")
    admin = await crm.user("admin")
    a = await crm.user("own_reader")
    party = await new_party(crm, a, name="Short-lived")
    assert (await crm.delete(f"/api/parties/{party['id']}", a)).status_code == 204
    r = await crm.post("/api/tasks", admin, json={"title": "T", "assignee_id": a["id"]})
    assert r.status_code == 201, r.text  # a's task, but a lacks task.read
    # The deleted record and the unreadable entity type are visible to nobody but those who see all.
    assert await _audit(crm, a, entity="party") == []
    assert await _audit(crm, a, entity="task") == []
    assert [e["action"] for e in await _audit(crm, admin, entity="party")] == ["delete", "create"]
    assert [e["action"] for e in await _audit(crm, admin, entity="task")] == ["create"]


async def test_sign_ins_are_shown_for_the_people_one_sees(crm):
    await _role("own_reader", ["party.*", "audit.read"], "own")
    a = await crm.user("own_reader")
    b = await crm.user("own_reader", password="b-password-123")
    for password in ("wrong-password", "b-password-123"):
        await crm.post("/api/auth/login", json={"email": b["email"], "password": password})
    crm.client.cookies.clear()
    assert await _audit(crm, a, action="login_failed") == []
    assert await _audit(crm, a, action="login") == []
    assert [e["entity_id"] for e in await _audit(crm, b, action="login")] == [b["id"]]
