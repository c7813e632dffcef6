"""Parties through the HTTP API: CRUD, filters, keyset pagination, optimistic locking,
idempotent creates, lifecycle history and phone/e-mail normalisation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from entity_helpers import field_errors, new_party, table_counts, walk


async def test_party_crud_round_trip(crm, frozen_clock):
    admin = await crm.user("admin")
    body = {
        "name": "Romashka LLC",
        "kind": "organisation",
        "relations": ["supplier", "client", "client"],
        "status": "current",
        "tax_id": "7707083893",
        "website": "https://romashka.example",
        "addresses": [{"text": "Tverskaya 1", "city": "Moscow", "country": "RU"}],
        "phones": [{"number": "+7 (495) 123-45-67"}],
        "emails": [{"address": "Info@Romashka.Example"}],
        "tags": ["vip", "moscow"],
    }
    r = await crm.post("/api/parties", admin, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["relations"] == ["client", "supplier"]
    assert created["phones"] == [{"number": "+74951234567", "type": "work"}]
    assert created["emails"] == [{"address": "info@romashka.example", "type": "work"}]
    assert created["owner_id"] == admin["id"]
    assert created["version"] == 1
    assert created["status"] == "current"
    assert "contact_index" not in created

    r = await crm.get(f"/api/parties/{created['id']}", admin)
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == '"1"'

    frozen_clock.advance(hours=1)
    r = await crm.patch(f"/api/parties/{created['id']}", admin, json={"name": "Romashka JSC", "tags": []})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["name"] == "Romashka JSC"
    assert changed["tags"] == []
    assert changed["tax_id"] == "7707083893"  # untouched fields stay
    assert changed["version"] == 2
    assert changed["updated_at"] > created["updated_at"]

    r = await crm.delete(f"/api/parties/{created['id']}", admin)
    assert r.status_code == 204
    r = await crm.get(f"/api/parties/{created['id']}", admin)
    assert r.status_code == 404
    assert r.json()["status"] == 404
    r = await crm.delete(f"/api/parties/{created['id']}", admin)
    assert r.status_code == 404


async def test_manager_sees_only_own_parties_head_sees_team(crm):
    team = await crm.team()
    other_team = await crm.team()
    head = await crm.user("head", team_id=team["id"])
    alice = await crm.user("manager", team_id=team["id"])
    bob = await crm.user("manager", team_id=other_team["id"])
    mine = await new_party(crm, alice, name="Alice's client")
    theirs = await new_party(crm, bob, name="Bob's client")

    assert (await crm.get(f"/api/parties/{theirs['id']}", alice)).status_code == 404
    assert [p["id"] for p in (await crm.get("/api/parties", alice)).json()["items"]] == [mine["id"]]
    assert (await crm.get("/api/parties/count", alice)).json() == {"count": 1}
    r = await crm.patch(f"/api/parties/{theirs['id']}", alice, json={"name": "stolen"})
    assert r.status_code == 404
    assert (await crm.get(f"/api/parties/{theirs['id']}", bob)).json()["name"] == "Bob's client"

    ids = {p["id"] for p in (await crm.get("/api/parties", head)).json()["items"]}
    assert ids == {mine["id"]}
    assert mine["team_id"] == team["id"]


async def test_reassigning_owner_moves_party_to_new_owners_team(crm):
    sales = await crm.team()
    service_team = await crm.team()
    admin = await crm.user("admin")
    alice = await crm.user("manager", team_id=sales["id"])
    carol = await crm.user("manager", team_id=service_team["id"])
    carol_head = await crm.user("head", team_id=service_team["id"])
    party = await new_party(crm, admin, owner_id=alice["id"])
    assert party["team_id"] == sales["id"]

    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"owner_id": carol["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["team_id"] == service_team["id"]
    # The new owner's head now sees it; an explicit team wins over the owner's team.
    assert (await crm.get(f"/api/parties/{party['id']}", carol_head)).status_code == 200
    r = await crm.patch(
        f"/api/parties/{party['id']}", admin, json={"owner_id": alice["id"], "team_id": service_team["id"]}
    )
    assert r.json()["team_id"] == service_team["id"]


async def test_owner_and_team_references_are_checked(crm):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    r = await crm.post("/api/parties", admin, json={"name": "X", "owner_id": 987654})
    assert r.status_code == 422
    assert "owner_id" in field_errors(r)
    r = await crm.post("/api/parties", admin, json={"name": "X", "team_id": 987654})
    assert r.status_code == 422, r.text
    assert "team_id" in field_errors(r)
    # A manager cannot hand a new party to someone else's book.
    r = await crm.post("/api/parties", alice, json={"name": "X", "owner_id": bob["id"]})
    assert r.status_code == 422
    assert "owner_id" in field_errors(r)
    assert (await crm.get("/api/parties/count", admin)).json() == {"count": 0}


async def test_each_party_filter_filters(crm, frozen_clock):
    team = await crm.team()
    admin = await crm.user("admin")
    alice = await crm.user("manager", team_id=team["id"])
    a = await new_party(
        crm,
        admin,
        name="Alpha Trading",
        kind="organisation",
        relations=["client"],
        status="current",
        owner_id=alice["id"],
        tags=["vip", "msk"],
        phones=[{"number": "+7 (495) 123-45-67"}],
        emails=[{"address": "sales@alpha.example"}],
    )
    frozen_clock.advance(days=1)
    b = await new_party(
        crm,
        admin,
        name="Ivan Petrov",
        kind="person",
        relations=["partner", "supplier"],
        status="potential",
        tags=["vip2"],
        phones=[{"number": "8 (812) 555-00-11"}],
    )
    frozen_clock.advance(days=1)
    c = await new_party(
        crm,
        admin,
        name="Gamma Alpha",
        relations=["competitor"],
        status="former",
        emails=[{"address": "xsales@alpha.example"}],
        phones=[{"number": "+1 495 123 4567"}],
    )

    async def ids(**params):
        r = await crm.get("/api/parties", admin, params=params)
        assert r.status_code == 200, r.text
        counted = await crm.get("/api/parties/count", admin, params=params)
        assert counted.status_code == 200, counted.text
        found = {p["id"] for p in r.json()["items"]}
        assert counted.json()["count"] == len(found), params
        return found

    assert await ids() == {a["id"], b["id"], c["id"]}
    assert await ids(q="alpha") == {a["id"], c["id"]}
    assert await ids(q="ALPHA tr") == {a["id"]}
    assert await ids(kind="person") == {b["id"]}
    assert await ids(relation="supplier") == {b["id"]}
    assert await ids(relation="client") == {a["id"]}
    assert await ids(status="former") == {c["id"]}
    assert await ids(owner_id=alice["id"]) == {a["id"]}
    assert await ids(team_id=team["id"]) == {a["id"]}
    assert await ids(tag="vip") == {a["id"]}  # exact: "vip2" is another tag
    assert await ids(tag="vip2") == {b["id"]}
    # Phones match in any format, exactly: +1 495 123 4567 is a different number.
    assert await ids(phone_or_email="84951234567") == {a["id"]}
    assert await ids(phone_or_email="+7 495 123-45-67") == {a["id"]}
    assert await ids(phone_or_email="4951234567") == {a["id"]}
    assert await ids(phone_or_email="+78125550011") == {b["id"]}
    assert await ids(phone_or_email="+1 (495) 123-4567") == {c["id"]}
    assert await ids(phone_or_email="SALES@alpha.example") == {a["id"]}
    assert await ids(phone_or_email="alpha.example") == set()
    start = a["created_at"]
    assert await ids(created_after=b["created_at"]) == {b["id"], c["id"]}
    assert await ids(created_before=b["created_at"]) == {a["id"]}
    assert await ids(created_after=start, created_before=c["created_at"]) == {a["id"], b["id"]}
    frozen_clock.advance(days=1)
    await crm.patch(f"/api/parties/{b['id']}", admin, json={"website": "https://b.example"})
    assert await ids(updated_after=(frozen_clock() - timedelta(hours=1)).isoformat()) == {b["id"]}
    # Filters combine with AND.
    assert await ids(q="alpha", status="current") == {a["id"]}


async def test_name_search_ignores_case_in_any_alphabet(crm):
    admin = await crm.user("admin")
    romashka = await new_party(crm, admin, name="ООО «Ромашка»")
    yolka = await new_party(crm, admin, name="Ёлка и партнёры")
    odd = await new_party(crm, admin, name="100% [Best]_Co*")
    await new_party(crm, admin, name="Other")

    async def ids(q):
        r = await crm.get("/api/parties", admin, params={"q": q})
        assert r.status_code == 200, r.text
        return {p["id"] for p in r.json()["items"]}

    assert await ids("ромашка") == {romashka["id"]}
    assert await ids("РОМАШ") == {romashka["id"]}
    assert await ids("ёлка") == {yolka["id"]}
    assert await ids("ПАРТНЁРЫ") == {yolka["id"]}
    assert await ids("[best]") == {odd["id"]}
    assert await ids("co*") == {odd["id"]}
    assert await ids("100") == {odd["id"]}
    assert await ids("ромашки") == set()


async def test_datetime_filter_respects_time_zone(crm, frozen_clock):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)  # created 2026-03-02 09:00 UTC
    r = await crm.get("/api/parties", admin, params={"created_after": "2026-03-02T11:30:00+03:00"})
    assert [p["id"] for p in r.json()["items"]] == [party["id"]]
    r = await crm.get("/api/parties", admin, params={"created_after": "2026-03-02T12:30:00+03:00"})
    assert r.json()["items"] == []


@pytest.mark.parametrize("order", ["id", "-id", "name", "-name", "created_at", "-created_at"])
async def test_keyset_pagination_walks_every_party_once(crm, frozen_clock, order):
    admin = await crm.user("admin")
    # Capitalised ASCII names sort the same under every collation (SQLite's binary one and
    # PostgreSQL's locale ones), so the expected order can be written down; ties in name and in
    # created_at (minutes after the start, out of id order) must be broken by id.
    names = [
        "Delta",
        "Alpha",
        "Bravo",
        "Bravo",
        "Bravo",
        "Charlie",
        "Echo",
        "Bravo",
        "Alpha",
        "Delta",
        "Zulu",
    ]
    minutes = [3, 1, 3, 0, 2, 1, 3, 0, 2, 1, 0]
    start = frozen_clock()
    created = []
    for name, minute in zip(names, minutes, strict=True):
        frozen_clock.set(start + timedelta(minutes=minute))
        created.append((await new_party(crm, admin, name=name))["id"])

    descending = order.startswith("-")
    sort_key = {
        "id": lambda k: created[k],
        "name": lambda k: (names[k], created[k]),
        "created_at": lambda k: (minutes[k], created[k]),
    }[order.lstrip("-")]
    expected = [created[k] for k in sorted(range(len(names)), key=sort_key, reverse=descending)]

    items = await walk(crm, admin, "/api/parties", order=order, limit=2)
    assert [p["id"] for p in items] == expected
    full = (await crm.get("/api/parties", admin, params={"order": order, "limit": 500})).json()["items"]
    assert [p["id"] for p in full] == expected


async def test_pagination_respects_filters_and_visibility(crm):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    mine = [await new_party(crm, alice, name=f"Own {i}", tags=["t"]) for i in range(5)]
    for i in range(4):
        await new_party(crm, admin, name=f"Other {i}", tags=["t"])
    items = await walk(crm, alice, "/api/parties", tag="t", limit=2, order="name")
    assert [p["id"] for p in items] == [p["id"] for p in mine]


async def test_bad_order_cursor_and_limit_are_422(crm):
    admin = await crm.user("admin")
    for i in range(3):
        await new_party(crm, admin, name=f"P{i}")
    r = await crm.get("/api/parties", admin, params={"order": "tax_id"})
    assert r.status_code == 422
    assert "order" in field_errors(r)
    r = await crm.get("/api/parties", admin, params={"cursor": "garbage!!"})
    assert r.status_code == 422
    assert "cursor" in field_errors(r)
    for limit in (0, 501, "x"):
        r = await crm.get("/api/parties", admin, params={"limit": limit})
        assert r.status_code == 422, r.text
        assert "limit" in field_errors(r)
    # A cursor issued for one order cannot be replayed with another.
    page = (await crm.get("/api/parties", admin, params={"order": "name", "limit": 1})).json()
    r = await crm.get(
        "/api/parties", admin, params={"order": "created_at", "cursor": page["next_cursor"], "limit": 1}
    )
    assert r.status_code == 422, r.text
    assert "cursor" in field_errors(r)


async def test_optimistic_locking(crm):
    admin = await crm.user("admin")
    party = await new_party(crm, admin, name="Original")
    url = f"/api/parties/{party['id']}"
    assert (await crm.patch(url, admin, json={"name": "First", "version": 1})).status_code == 200

    r = await crm.patch(url, admin, json={"name": "Stale", "version": 1})
    assert r.status_code == 409
    assert r.json()["status"] == 409
    assert r.json()["current_version"] == 2
    r = await crm.patch(url, admin, json={"name": "Stale"}, headers={"If-Match": '"1"'})
    assert r.status_code == 412  # a stale If-Match is a failed HTTP precondition (RFC 9110)
    assert r.json()["current_version"] == 2
    r = await crm.delete(url, admin, headers={"If-Match": '"1"'})
    assert r.status_code == 412
    current = (await crm.get(url, admin)).json()
    assert current["name"] == "First"
    assert current["version"] == 2

    r = await crm.patch(url, admin, json={"name": "Second"}, headers={"If-Match": 'W/"2"'})
    assert r.status_code == 200
    assert r.json()["version"] == 3
    r = await crm.patch(url, admin, json={"name": "x"}, headers={"If-Match": "abc"})
    assert r.status_code == 422
    assert "If-Match" in field_errors(r)
    assert (await crm.delete(url, admin, headers={"If-Match": '"3"'})).status_code == 204


async def test_idempotency_key_replays_first_create(crm):
    admin = await crm.user("admin")
    other = await crm.user("admin")
    headers = {"Idempotency-Key": "import-42"}
    r1 = await crm.post("/api/parties", admin, json={"name": "Once"}, headers=headers)
    assert r1.status_code == 201
    r2 = await crm.post("/api/parties", admin, json={"name": "Once"}, headers=headers)
    assert r2.status_code == 201
    assert r2.json() == r1.json()
    assert r2.headers.get("idempotent-replay") == "true"
    assert (await crm.get("/api/parties/count", admin)).json() == {"count": 1}
    # Keys belong to the caller: another user's identical key creates their own record.
    r3 = await crm.post("/api/parties", other, json={"name": "Once"}, headers=headers)
    assert r3.status_code == 201
    assert r3.json()["id"] != r1.json()["id"]
    # A failed create stores nothing to replay: the retry after fixing the body succeeds.
    bad = {"Idempotency-Key": "import-43"}
    r = await crm.post("/api/parties", admin, json={"name": ""}, headers=bad)
    assert r.status_code == 422
    r = await crm.post("/api/parties", admin, json={"name": "Fixed"}, headers=bad)
    assert r.status_code == 201
    assert r.json()["name"] == "Fixed"


async def test_status_changes_are_dated_in_history(crm, frozen_clock):
    admin = await crm.user("admin")
    party = await new_party(crm, admin)
    url = f"/api/parties/{party['id']}"
    frozen_clock.advance(days=10)
    r = await crm.patch(url, admin, json={"status": "current"})
    assert r.json()["status_changed_at"].startswith("2026-03-12T09:00:00")
    frozen_clock.advance(days=5)
    await crm.patch(url, admin, json={"name": "Renamed"})  # no status change
    await crm.patch(url, admin, json={"status": "current"})  # same status: not a transition
    frozen_clock.advance(days=20)
    await crm.patch(url, admin, json={"status": "former"})

    r = await crm.get(f"{url}/status-history", admin)
    assert r.status_code == 200
    history = [(h["from_status"], h["to_status"], h["changed_at"][:10]) for h in r.json()]
    assert history == [
        (None, "potential", "2026-03-02"),
        ("potential", "current", "2026-03-12"),
        ("current", "former", "2026-04-06"),
    ]
    assert all(h["changed_by"] == admin["id"] for h in r.json())
    alice = await crm.user("manager")
    assert (await crm.get(f"{url}/status-history", alice)).status_code == 404


async def test_phone_and_email_validation(crm):
    admin = await crm.user("admin")
    before = await table_counts()
    r = await crm.post(
        "/api/parties",
        admin,
        json={
            "name": "Bad",
            "phones": [{"number": "+7 495 123-45-67"}, {"number": "not a phone"}],
            "emails": [{"address": "nobody@"}],
        },
    )
    assert r.status_code == 422
    errors = field_errors(r)
    assert set(errors) == {"phones.1.number", "emails.0.address"}
    assert await table_counts() == before

    party = await new_party(crm, admin, phones=[{"number": "84951234567", "type": "mobile"}])
    assert party["phones"] == [{"number": "+74951234567", "type": "mobile"}]
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"emails": [{"address": "A@B.example"}]})
    assert r.status_code == 200
    # Changing only e-mails keeps the phone findable.
    r = await crm.get("/api/parties", admin, params={"phone_or_email": "+7 (495) 123-45-67"})
    assert [p["id"] for p in r.json()["items"]] == [party["id"]]
    r = await crm.get("/api/parties", admin, params={"phone_or_email": "a@b.example"})
    assert [p["id"] for p in r.json()["items"]] == [party["id"]]
    r = await crm.patch(f"/api/parties/{party['id']}", admin, json={"phones": []})
    r = await crm.get("/api/parties", admin, params={"phone_or_email": "84951234567"})
    assert r.json()["items"] == []


async def test_party_writes_need_permission(crm):
    team = await crm.team()
    head = await crm.user("head", team_id=team["id"])
    manager = await crm.user("manager", team_id=team["id"])
    party = await new_party(crm, manager)
    r = await crm.delete(f"/api/parties/{party['id']}", manager)
    assert r.status_code == 403
    assert r.json()["missing_permission"] == "party.delete"
    assert (await crm.get(f"/api/parties/{party['id']}", manager)).status_code == 200
    assert (await crm.delete(f"/api/parties/{party['id']}", head)).status_code == 204
    assert (await crm.get("/api/parties")).status_code == 401


async def test_party_found_by_its_contacts_phone_or_email(crm):
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    party = await new_party(crm, alice, name="Client", phones=[{"number": "+7 495 000-00-01"}])
    other = await new_party(crm, admin, name="Other client")
    body = {
        "party_id": party["id"],
        "name": "Accountant",
        "phones": [{"number": "8 (916) 555-44-33"}],
        "emails": [{"address": "Buh@Client.Example"}],
    }
    assert (await crm.post("/api/contacts", alice, json=body)).status_code == 201
    body = {"party_id": other["id"], "name": "Other", "phones": [{"number": "+7 916 555-44-34"}]}
    assert (await crm.post("/api/contacts", admin, json=body)).status_code == 201

    async def ids(user, needle):
        r = await crm.get("/api/parties", user, params={"phone_or_email": needle})
        assert r.status_code == 200, r.text
        count = (await crm.get("/api/parties/count", user, params={"phone_or_email": needle})).json()
        assert count["count"] == len(r.json()["items"])
        return [p["id"] for p in r.json()["items"]]

    assert await ids(alice, "+79165554433") == [party["id"]]
    assert await ids(alice, "9165554433") == [party["id"]]
    assert await ids(alice, "buh@client.example") == [party["id"]]
    assert await ids(alice, "84950000001") == [party["id"]]
    # Visibility still applies: Alice does not learn about the other client through its contact.
    assert await ids(alice, "+79165554434") == []
    assert await ids(admin, "+79165554434") == [other["id"]]
    assert await ids(admin, "+79165554435") == []
