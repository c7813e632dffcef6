"""Record visibility: a user with "own" scope never sees another user's party in a list, get,
name search, client card, count or export; a substitute does during the substitution period
only; team scope sees the team; scope is applied in SQL so counts and exports agree."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from tessera.entities.tables import Role


async def _exporter_role(crm: Any) -> None:
    """An own-scope role that may export, so export visibility can be checked for "own"."""
    if not await Role.exists().where(Role.name == "own_exporter"):
        await Role.insert(
            Role(
                name="own_exporter",
                description="Own records, may export",
                permissions=["party.*", "activity.*", "task.*", "note.*"],
                scope="own",
            )
        )


def _export_names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    return sorted(r["name"] for r in rows)


async def _sees(crm: Any, user: dict[str, Any], party: dict[str, Any]) -> dict[str, bool]:
    """Every way a user could learn about ``party``: which ones reveal it."""
    pid, name = party["id"], party["name"]
    listed = await crm.get("/api/parties", user, params={"limit": 500})
    assert listed.status_code == 200, listed.text
    by_name = await crm.get("/api/parties", user, params={"q": name})
    count = await crm.get("/api/parties/count", user, params={"q": name})
    assert count.status_code == 200
    get = await crm.get(f"/api/parties/{pid}", user)
    card = await crm.get(f"/api/parties/{pid}/card", user)
    history = await crm.get(f"/api/parties/{pid}/status-history", user)
    export = await crm.get("/api/parties/export", user)
    assert get.status_code in (200, 404)
    assert card.status_code in (200, 404)
    return {
        "list": pid in [p["id"] for p in listed.json()["items"]],
        "search": pid in [p["id"] for p in by_name.json()["items"]],
        "count": count.json()["count"] > 0,
        "get": get.status_code == 200,
        "card": card.status_code == 200,
        "history": history.status_code == 200,
        "export": name in _export_names(export),
    }


async def test_own_scope_never_sees_anothers_party(crm: Any) -> None:
    await _exporter_role(crm)
    a = await crm.user("own_exporter", name="A")
    b = await crm.user("own_exporter", name="B")
    r = await crm.post("/api/parties", b, json={"name": "B-Secret Client"})
    assert r.status_code == 201, r.text
    b_party = r.json()
    r = await crm.post("/api/parties", a, json={"name": "A-Own Client"})
    a_party = r.json()

    seen = await _sees(crm, a, b_party)
    assert not any(seen.values()), seen
    assert all((await _sees(crm, a, a_party)).values())
    assert all((await _sees(crm, b, b_party)).values())
    assert (await crm.get("/api/parties/count", a)).json()["count"] == 1
    assert _export_names(await crm.get("/api/parties/export", a)) == ["A-Own Client"]


async def test_own_scope_cannot_change_or_delete_anothers_party(crm: Any) -> None:
    await _exporter_role(crm)  # holds party.delete, so only visibility can refuse
    a = await crm.user("own_exporter")
    b = await crm.user("own_exporter")
    party = (await crm.post("/api/parties", b, json={"name": "B's"})).json()
    assert (await crm.patch(f"/api/parties/{party['id']}", a, json={"name": "Hijacked"})).status_code == 404
    assert (await crm.delete(f"/api/parties/{party['id']}", a)).status_code == 404
    again = await crm.get(f"/api/parties/{party['id']}", b)
    assert again.json()["name"] == "B's"


async def test_own_scope_does_not_see_anothers_contacts_activities_tasks(crm: Any, frozen_clock: Any) -> None:
    a = await crm.user("manager")
    b = await crm.user("manager")
    party = (await crm.post("/api/parties", b, json={"name": "B-Client"})).json()
    contact = await crm.post("/api/contacts", b, json={"party_id": party["id"], "name": "Ivan"})
    assert contact.status_code == 201, contact.text
    activity = await crm.post(
        "/api/activities",
        b,
        json={
            "type": "call",
            "subject": "B's call",
            "party_id": party["id"],
            "starts_at": frozen_clock().isoformat(),
        },
    )
    assert activity.status_code == 201, activity.text
    task = await crm.post("/api/tasks", b, json={"title": "B's task", "party_id": party["id"]})
    assert task.status_code == 201, task.text
    for url, record in (
        ("/api/contacts", contact.json()),
        ("/api/activities", activity.json()),
        ("/api/tasks", task.json()),
    ):
        assert (await crm.get(url, a)).json()["items"] == [], url
        assert (await crm.get(f"{url}/count", a)).json()["count"] == 0, url
        assert (await crm.get(f"{url}/{record['id']}", a)).status_code == 404, url
        assert (await crm.get(f"{url}/{record['id']}", b)).status_code == 200, url
    # A cannot attach own records to B's client either.
    r = await crm.post("/api/tasks", a, json={"title": "sneak", "party_id": party["id"]})
    assert r.status_code in (404, 422), r.text


async def test_substitute_sees_absent_users_records_only_during_the_period(
    crm: Any, frozen_clock: Any
) -> None:
    await _exporter_role(crm)
    admin = await crm.user("admin")
    a = await crm.user("own_exporter", name="A (substitute)")
    b = await crm.user("own_exporter", name="B (absent)")
    b_party = (await crm.post("/api/parties", b, json={"name": "B-Holiday Client"})).json()
    task = await crm.post("/api/tasks", b, json={"title": "Call back", "party_id": b_party["id"]})
    assert task.status_code == 201, task.text
    start = frozen_clock() + timedelta(days=1)
    end = start + timedelta(days=7)
    r = await crm.post(
        "/api/substitutions",
        admin,
        json={
            "absent_user_id": b["id"],
            "substitute_id": a["id"],
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
        },
    )
    assert r.status_code == 201, r.text

    # Before the period: nothing.
    assert not any((await _sees(crm, a, b_party)).values())
    assert (await crm.get(f"/api/tasks/{task.json()['id']}", a)).status_code == 404

    # During the period: everything, and A can work B's records and tasks.
    frozen_clock.set(start + timedelta(hours=1))
    seen = await _sees(crm, a, b_party)
    assert all(seen.values()), seen
    me = (await crm.get("/api/auth/me", a)).json()
    assert me["acting_for"] == [b["id"]]
    tasks = (await crm.get("/api/tasks", a)).json()["items"]
    assert [t["title"] for t in tasks] == ["Call back"]
    r = await crm.patch(f"/api/parties/{b_party['id']}", a, json={"website": "https://example.org"})
    assert r.status_code == 200, r.text
    r = await crm.post(f"/api/tasks/{task.json()['id']}/complete", a, json={"result": "Called, all fine"})
    assert r.status_code == 200, r.text
    # B still sees their own record; substitution gives, it does not take away.
    assert all((await _sees(crm, b, b_party)).values())

    # After the period: nothing again.
    frozen_clock.set(end)
    assert not any((await _sees(crm, a, b_party)).values())
    assert (await crm.get(f"/api/tasks/{task.json()['id']}", a)).status_code == 404


async def test_substitution_does_not_leak_to_third_parties(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin")
    a = await crm.user("manager")
    b = await crm.user("manager")
    c = await crm.user("manager")
    b_party = (await crm.post("/api/parties", b, json={"name": "B-Only"})).json()
    await crm.post(
        "/api/substitutions",
        admin,
        json={
            "absent_user_id": b["id"],
            "substitute_id": a["id"],
            "starts_at": frozen_clock().isoformat(),
            "ends_at": (frozen_clock() + timedelta(days=2)).isoformat(),
        },
    )
    assert (await crm.get(f"/api/parties/{b_party['id']}", a)).status_code == 200
    assert (await crm.get(f"/api/parties/{b_party['id']}", c)).status_code == 404
    # The absent user does not, in turn, see the substitute's records.
    a_party = (await crm.post("/api/parties", a, json={"name": "A-Only"})).json()
    assert (await crm.get(f"/api/parties/{a_party['id']}", b)).status_code == 404


async def test_team_scope_sees_the_team_and_nothing_else(crm: Any) -> None:
    team1 = await crm.team()
    team2 = await crm.team()
    head = await crm.user("head", team_id=team1["id"])
    m1 = await crm.user("manager", team_id=team1["id"])
    m2 = await crm.user("manager", team_id=team2["id"])
    p1 = (await crm.post("/api/parties", m1, json={"name": "Team-1 Client"})).json()
    p2 = (await crm.post("/api/parties", m2, json={"name": "Team-2 Client"})).json()
    assert p1["team_id"] == team1["id"]
    seen1 = await _sees(crm, head, p1)
    assert all(seen1.values()), seen1
    seen2 = await _sees(crm, head, p2)
    assert not any(seen2.values()), seen2
    assert _export_names(await crm.get("/api/parties/export", head)) == ["Team-1 Client"]
    # Managers in the same team still see only their own.
    assert (await crm.get(f"/api/parties/{p1['id']}", m2)).status_code == 404


async def test_all_scope_sees_everything(crm: Any) -> None:
    admin = await crm.user("admin")
    m1 = await crm.user("manager")
    m2 = await crm.user("manager")
    for m in (m1, m2):
        await crm.post("/api/parties", m, json={"name": f"Client of {m['id']}"})
    assert (await crm.get("/api/parties/count", admin)).json()["count"] == 2
    assert len(_export_names(await crm.get("/api/parties/export", admin))) == 2


async def test_count_and_pages_agree_under_visibility(crm: Any) -> None:
    a = await crm.user("manager")
    b = await crm.user("manager")
    for i in range(7):
        await crm.post("/api/parties", a if i % 2 else b, json={"name": f"P{i}"})
    count = (await crm.get("/api/parties/count", a)).json()["count"]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await crm.get("/api/parties", a, params=params)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert count == len(seen) == 3


async def test_manager_without_export_permission_cannot_export(crm: Any) -> None:
    manager = await crm.user("manager")
    await crm.post("/api/parties", manager, json={"name": "Mine"})
    r = await crm.get("/api/parties/export", manager)
    assert r.status_code == 403


async def test_export_notifies_admins(crm: Any) -> None:
    team = await crm.team()
    admin = await crm.user("admin")
    head = await crm.user("head", team_id=team["id"])
    await crm.post("/api/parties", head, json={"name": "Team client"})
    assert (await crm.get("/api/parties/export", head)).status_code == 200
    inbox = (await crm.get("/api/notifications", admin)).json()
    assert [n["kind"] for n in inbox] == ["export"]
    assert "exported clients: 1" in inbox[0]["title"]


async def test_full_text_search_never_reveals_anothers_party(crm: Any, frozen_clock: Any) -> None:
    """Search (built by another engineer) goes through the same visibility: no hit, no count,
    no facet for a party A may not see; A's substitute finds it during the period only."""
    admin = await crm.user("admin")
    a = await crm.user("manager")
    b = await crm.user("manager")
    await crm.post("/api/parties", b, json={"name": "Zanzibarian Secret Widgets"})

    async def found(user: dict[str, Any]) -> dict[str, Any]:
        r = await crm.get("/api/search", user, params={"q": "Zanzibarian"})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    theirs = await found(b)
    assert theirs["total"] >= 1 and "Zanzibarian" in str(theirs["hits"])
    mine = await found(a)
    assert mine["total"] == 0 and mine["hits"] == [] and mine["groups"] == []
    assert str(b["id"]) not in str(mine["facets"].get("owner", {}))
    start = frozen_clock() + timedelta(days=1)
    await crm.post(
        "/api/substitutions",
        admin,
        json={
            "absent_user_id": b["id"],
            "substitute_id": a["id"],
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=1)).isoformat(),
        },
    )
    assert (await found(a))["total"] == 0
    frozen_clock.set(start)
    assert (await found(a))["total"] >= 1
    frozen_clock.advance(days=1)
    assert (await found(a))["total"] == 0
