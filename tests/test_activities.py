"""Activities (calls, meetings, letters ...) with participants, through the HTTP API."""

from __future__ import annotations

import pytest
from entity_helpers import field_errors, new_party, table_counts, walk
from tessera.entities.tables import DomainEvent

TYPES = ["call", "meeting", "email", "letter", "seminar", "mailing", "claim", "note"]


async def _contact(crm, user, party, name="Contact"):
    r = await crm.post("/api/contacts", user, json={"party_id": party["id"], "name": name})
    assert r.status_code == 201, r.text
    return r.json()


async def test_activity_crud_with_participants(crm, frozen_clock):
    admin = await crm.user("admin")
    colleague = await crm.user("manager")
    party = await new_party(crm, admin)
    c1 = await _contact(crm, admin, party, "Irina")
    c2 = await _contact(crm, admin, party, "Oleg")
    r = await crm.post(
        "/api/activities",
        admin,
        json={
            "type": "meeting",
            "subject": "Contract talks",
            "starts_at": "2026-03-03T10:00:00+03:00",
            "duration_minutes": 90,
            "party_id": party["id"],
            "contact_id": c1["id"],
            "participant_user_ids": [colleague["id"], colleague["id"]],
            "participant_contact_ids": [c1["id"], c2["id"]],
        },
    )
    assert r.status_code == 201, r.text
    activity = r.json()
    assert activity["status"] == "planned"
    assert activity["starts_at"].startswith("2026-03-03T07:00:00")  # stored in UTC
    assert activity["owner_id"] == admin["id"]
    assert activity["participant_user_ids"] == [colleague["id"]]
    assert sorted(activity["participant_contact_ids"]) == sorted([c1["id"], c2["id"]])
    url = f"/api/activities/{activity['id']}"
    assert (await crm.get(url, admin)).json() == activity

    # Done, with outcome and agreements; participants untouched when not sent.
    r = await crm.patch(
        url,
        admin,
        json={"status": "done", "outcome": "They agree", "agreements": "Send the offer by Friday"},
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["outcome"], done["agreements"]) == (
        "done",
        "They agree",
        "Send the offer by Friday",
    )
    assert done["participant_user_ids"] == [colleague["id"]]
    assert sorted(done["participant_contact_ids"]) == sorted([c1["id"], c2["id"]])

    r = await crm.patch(url, admin, json={"participant_contact_ids": [c2["id"]]})
    assert r.json()["participant_contact_ids"] == [c2["id"]]
    assert r.json()["participant_user_ids"] == [colleague["id"]]
    r = await crm.patch(url, admin, json={"participant_user_ids": []})
    assert r.json()["participant_user_ids"] == []

    # Listing shows participants too.
    listed = (await crm.get("/api/activities", admin)).json()["items"]
    assert listed[0]["participant_contact_ids"] == [c2["id"]]

    logged = await DomainEvent.count().where(DomainEvent.name == "activity.logged")
    assert logged == 1
    assert (await crm.delete(url, admin)).status_code == 204
    assert (await crm.get(url, admin)).status_code == 404


@pytest.mark.parametrize("kind", TYPES)
async def test_every_activity_type_can_be_logged(crm, kind):
    admin = await crm.user("admin")
    r = await crm.post(
        "/api/activities",
        admin,
        json={"type": kind, "subject": kind, "starts_at": "2026-03-02T09:00:00Z", "status": "done"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["type"] == kind
    r = await crm.get("/api/activities", admin, params={"type": kind})
    assert [a["type"] for a in r.json()["items"]] == [kind]


async def test_activity_filters(crm):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    p1 = await new_party(crm, admin, name="One")
    p2 = await new_party(crm, admin, name="Two")

    async def make(**values):
        body = {"type": "call", "subject": "Call", "starts_at": "2026-03-02T09:00:00Z"} | values
        r = await crm.post("/api/activities", admin, json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    a = await make(party_id=p1["id"], subject="Price call", status="done", starts_at="2026-03-01T09:00:00Z")
    b = await make(type="meeting", party_id=p2["id"], starts_at="2026-03-05T09:00:00Z")
    c = await make(type="letter", owner_id=alice["id"], status="cancelled", starts_at="2026-03-10T09:00:00Z")

    async def ids(**params):
        r = await crm.get("/api/activities", admin, params=params)
        assert r.status_code == 200, r.text
        count = (await crm.get("/api/activities/count", admin, params=params)).json()["count"]
        found = {x["id"] for x in r.json()["items"]}
        assert count == len(found)
        return found

    assert await ids() == {a, b, c}
    assert await ids(type="meeting") == {b}
    assert await ids(status="done") == {a}
    assert await ids(status="cancelled") == {c}
    assert await ids(party_id=p1["id"]) == {a}
    assert await ids(owner_id=alice["id"]) == {c}
    assert await ids(starts_after="2026-03-05T09:00:00Z") == {b, c}
    assert await ids(starts_before="2026-03-05T09:00:00Z") == {a}
    assert await ids(starts_after="2026-03-05T12:00:00+03:00", starts_before="2026-03-06T00:00:00Z") == {b}
    assert await ids(q="PRICE") == {a}
    r = await crm.get("/api/activities", admin, params={"type": "fax"})
    assert r.status_code == 422
    assert "type" in field_errors(r)


async def test_activity_pagination_by_time(crm):
    admin = await crm.user("admin")
    made = []
    for i in range(9):
        day = 1 + i % 4  # several activities at the same time
        r = await crm.post(
            "/api/activities",
            admin,
            json={"type": "call", "subject": f"#{i}", "starts_at": f"2026-03-0{day}T09:00:00+02:00"},
        )
        made.append(r.json())
    for order in ("starts_at", "-starts_at"):
        items = await walk(crm, admin, "/api/activities", order=order, limit=2)
        assert sorted(x["id"] for x in items) == sorted(x["id"] for x in made)
        keys = [(x["starts_at"], x["id"]) for x in items]
        assert keys == sorted(keys, reverse=order.startswith("-"))


async def test_activity_validation(crm):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    bobs_party = await new_party(crm, bob)
    bobs_contact = await _contact(crm, bob, bobs_party)
    alices_party = await new_party(crm, alice)
    base = {"type": "call", "subject": "Hi", "starts_at": "2026-03-02T09:00:00Z"}
    cases = [
        (admin, base | {"starts_at": "2026-03-02T09:00:00"}, "starts_at"),
        (admin, base | {"starts_at": "tomorrow"}, "starts_at"),
        (admin, base | {"type": "fax"}, "type"),
        (admin, base | {"status": "maybe"}, "status"),
        (admin, base | {"duration_minutes": -5}, "duration_minutes"),
        (admin, base | {"participant_user_ids": [999_999]}, "participant_user_ids"),
        (admin, base | {"participant_contact_ids": [999_999]}, "participant_contact_ids"),
        (admin, base | {"owner_id": 999_999}, "owner_id"),
        (admin, {"type": "call", "starts_at": "2026-03-02T09:00:00Z"}, "subject"),
        (alice, base | {"party_id": bobs_party["id"]}, "party_id"),
        (alice, base | {"contact_id": bobs_contact["id"]}, "contact_id"),
        (
            alice,
            base | {"party_id": alices_party["id"], "participant_contact_ids": [bobs_contact["id"]]},
            "participant_contact_ids",
        ),
        # A manager may not file an activity in a colleague's book.
        (alice, base | {"owner_id": bob["id"]}, "owner_id"),
    ]
    before = await table_counts()
    for user, body, field in cases:
        r = await crm.post("/api/activities", user, json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in field_errors(r), (body, r.json())
    assert await table_counts() == before


async def test_patch_with_naive_time_or_bad_participant_changes_nothing(crm):
    admin = await crm.user("admin")
    colleague = await crm.user("manager")
    r = await crm.post(
        "/api/activities",
        admin,
        json={
            "type": "call",
            "subject": "Hi",
            "starts_at": "2026-03-02T09:00:00Z",
            "participant_user_ids": [colleague["id"]],
        },
    )
    activity = r.json()
    url = f"/api/activities/{activity['id']}"
    before = await table_counts()
    r = await crm.patch(url, admin, json={"starts_at": "2026-03-04T09:00:00"})
    assert r.status_code == 422
    assert "starts_at" in field_errors(r)
    r = await crm.patch(
        url, admin, json={"subject": "Changed", "participant_user_ids": [colleague["id"], 424242]}
    )
    assert r.status_code == 422
    assert "participant_user_ids" in field_errors(r)
    assert await table_counts() == before
    assert (await crm.get(url, admin)).json() == activity


async def test_activities_visible_through_party_or_ownership(crm):
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    alices_party = await new_party(crm, alice)
    own = await crm.post(
        "/api/activities",
        bob,
        json={"type": "call", "subject": "Bob's own", "starts_at": "2026-03-02T09:00:00Z"},
    )
    assert (await crm.get(f"/api/activities/{own.json()['id']}", alice)).status_code == 404
    r = await crm.post(
        "/api/activities",
        alice,
        json={
            "type": "call",
            "subject": "On Alice's client",
            "starts_at": "2026-03-02T09:00:00Z",
            "party_id": alices_party["id"],
        },
    )
    assert r.status_code == 201
    assert [a["subject"] for a in (await crm.get("/api/activities", alice)).json()["items"]] == [
        "On Alice's client"
    ]
    assert (await crm.get("/api/activities/count", bob)).json() == {"count": 1}
