"""Contacts (people at an organisation party) through the HTTP API."""

from __future__ import annotations

from entity_helpers import field_errors, new_party, table_counts, walk


async def test_contact_crud_and_normalised_channels(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    r = await crm.post(
        "/api/contacts",
        admin,
        json={
            "party_id": party["id"],
            "name": "Irina Smirnova",
            "position": "CFO",
            "role": "decision maker",
            "phones": [{"number": "8 916 123 45 67", "type": "mobile"}],
            "emails": [{"address": "Irina@Romashka.Example"}],
            "preferred_channel": "phone",
        },
    )
    assert r.status_code == 201, r.text
    contact = r.json()
    assert contact["phones"] == [{"number": "+79161234567", "type": "mobile"}]
    assert contact["emails"] == [{"address": "irina@romashka.example", "type": "work"}]
    assert "contact_index" not in contact
    url = f"/api/contacts/{contact['id']}"
    r = await crm.get(url, admin)
    assert r.json() == contact
    assert r.headers["etag"] == '"1"'

    r = await crm.patch(url, admin, json={"position": "CEO", "version": 1})
    assert r.status_code == 200
    assert r.json()["position"] == "CEO"
    assert r.json()["role"] == "decision maker"
    assert (await crm.patch(url, admin, json={"position": "x", "version": 1})).status_code == 409
    assert (await crm.get(url, admin)).json()["position"] == "CEO"

    r = await crm.patch(url, admin, json={"emails": [{"address": "bad@"}]})
    assert r.status_code == 422
    assert "emails.0.address" in field_errors(r)

    assert (await crm.delete(url, admin)).status_code == 204
    assert (await crm.get(url, admin)).status_code == 404


async def test_contact_party_must_exist_and_be_visible(crm):
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    bobs = await new_party(crm, bob)
    before = await table_counts()
    for party_id in (bobs["id"], 999_999):
        r = await crm.post("/api/contacts", alice, json={"party_id": party_id, "name": "Spy"})
        assert r.status_code == 422
        assert "party_id" in field_errors(r)
    r = await crm.post("/api/contacts", alice, json={"name": "No party"})
    assert r.status_code == 422
    assert "party_id" in field_errors(r)
    assert await table_counts() == before

    alices = await new_party(crm, alice)
    contact = (await crm.post("/api/contacts", alice, json={"party_id": alices["id"], "name": "Mine"})).json()
    # Moving the contact to a party the user cannot see is refused too.
    r = await crm.patch(f"/api/contacts/{contact['id']}", alice, json={"party_id": bobs["id"]})
    assert r.status_code == 422
    assert "party_id" in field_errors(r)


async def test_contacts_follow_their_party_visibility(crm):
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    alices = await new_party(crm, alice)
    bobs = await new_party(crm, bob)
    mine = (await crm.post("/api/contacts", alice, json={"party_id": alices["id"], "name": "A"})).json()
    theirs = (await crm.post("/api/contacts", bob, json={"party_id": bobs["id"], "name": "B"})).json()
    r = await crm.get("/api/contacts", alice)
    assert [c["id"] for c in r.json()["items"]] == [mine["id"]]
    assert (await crm.get("/api/contacts/count", alice)).json() == {"count": 1}
    assert (await crm.get(f"/api/contacts/{theirs['id']}", alice)).status_code == 404
    assert (await crm.patch(f"/api/contacts/{theirs['id']}", alice, json={"name": "x"})).status_code == 404


async def test_contact_filters_and_pagination(crm):
    admin = await crm.user("admin")
    p1 = await new_party(crm, admin, name="One")
    p2 = await new_party(crm, admin, name="Two")
    names = ["Olga", "oleg", "Boris", "Olga", "Anna", "Olga", "Pavel"]
    made = []
    for i, name in enumerate(names):
        party = p1 if i % 2 == 0 else p2
        r = await crm.post("/api/contacts", admin, json={"party_id": party["id"], "name": name})
        made.append(r.json())

    r = await crm.get("/api/contacts", admin, params={"party_id": p2["id"]})
    assert {c["id"] for c in r.json()["items"]} == {c["id"] for c in made if c["party_id"] == p2["id"]}
    r = await crm.patch(
        f"/api/contacts/{made[4]['id']}", admin, json={"phones": [{"number": "+7 (916) 123-45-67"}]}
    )
    assert r.status_code == 200
    for needle in ("89161234567", "+7 916 1234567"):
        r = await crm.get("/api/contacts", admin, params={"phone_or_email": needle})
        assert [c["id"] for c in r.json()["items"]] == [made[4]["id"]]
    r = await crm.get("/api/contacts", admin, params={"phone_or_email": "1234567"})
    assert r.json()["items"] == []
    r = await crm.get("/api/contacts", admin, params={"q": "OL"})
    assert {c["name"] for c in r.json()["items"]} == {"Olga", "oleg"}
    assert (await crm.get("/api/contacts/count", admin, params={"q": "olga"})).json() == {"count": 3}

    for order in ("name", "-name", "id", "-id"):
        items = await walk(crm, admin, "/api/contacts", order=order, limit=2)
        assert sorted(c["id"] for c in items) == sorted(c["id"] for c in made)
        olgas = [c["id"] for c in items if c["name"] == "Olga"]
        assert olgas == sorted(olgas, reverse=order.startswith("-"))


async def test_contact_bad_input_is_422(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    cases = [
        ({"party_id": party["id"], "name": "X", "preferred_channel": "pigeon"}, "preferred_channel"),
        ({"party_id": party["id"], "name": ""}, "name"),
        ({"party_id": "one", "name": "X"}, "party_id"),
        ({"party_id": party["id"], "name": "X", "nickname": "x"}, "nickname"),
        ({"party_id": party["id"], "name": "X", "phones": [{"number": "12"}]}, "phones.0.number"),
        ({"party_id": party["id"], "name": "X", "phones": [{"type": "work"}]}, "phones.0.number"),
    ]
    for body, field in cases:
        r = await crm.post("/api/contacts", admin, json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in field_errors(r), (body, r.json())
    assert (await crm.get("/api/contacts/count", admin)).json() == {"count": 0}


async def test_deleting_party_removes_its_contacts(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    contact = (await crm.post("/api/contacts", admin, json={"party_id": party["id"], "name": "C"})).json()
    assert (await crm.delete(f"/api/parties/{party['id']}", admin)).status_code == 204
    assert (await crm.get(f"/api/contacts/{contact['id']}", admin)).status_code == 404
