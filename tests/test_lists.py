"""List pages (issue 15.2): filters checked like the API's (unknown/invalid ones reported),
sorting, keyset paging both ways, totals, saved views (own, team-shared, not for others), bulk
actions (all or nothing, refused where the user may not change a row), CSV/XLSX export of exactly
the visible rows, and own-scope visibility in every list."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import openpyxl


def _names(html: str) -> list[str]:
    """The first cell's text of each row of the list table, in order."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    out = []
    for row in re.findall(r"<tr data-id=\"\d+\">(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        first = next(c for c in cells if 'type="checkbox"' not in c)
        out.append(re.sub(r"<[^>]+>", "", first).strip())
    return out


def _link(html: str, rel: str) -> str | None:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


async def _party(crm: Any, user: dict[str, Any], name: str, **extra: Any) -> dict[str, Any]:
    r = await crm.post("/api/parties", user, json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_filters_sort_and_paging_both_ways(crm: Any) -> None:
    admin = await crm.user("admin")
    for i in range(7):
        status = "current" if i % 2 else "potential"
        await _party(crm, admin, f"Acme {i:02d}", status=status, tags=["vip"] if i < 3 else [])
    await crm.sign_in(admin)
    page = await crm.client.get("/app/parties", params={"status": "current"})
    assert page.status_code == 200, page.text
    assert _names(page.text) == ["Acme 01", "Acme 03", "Acme 05"]
    assert 'data-total="3" data-exact="yes"' in page.text
    page = await crm.client.get("/app/parties", params={"tag": "vip", "order": "-name"})
    assert _names(page.text) == ["Acme 02", "Acme 01", "Acme 00"]
    # Sorting links: the header of the current column reverses the order.
    assert 'href="/app/parties?tag=vip&amp;order=name"' in page.text
    # Paging, 3 per page would need 50 rows; walk the real page size by using a smaller list.
    names: list[str] = []
    url: str | None = "/app/parties?order=name"
    from tessera.web.list_pages import PARTIES

    PARTIES.page_size = 3
    try:
        pages = []
        while url:
            r = await crm.client.get(url)
            assert r.status_code == 200, r.text
            pages.append((url, _names(r.text)))
            names.extend(_names(r.text))
            url = _link(r.text, "next")
        assert names == [f"Acme {i:02d}" for i in range(7)]
        # Back from the last page to the first with "previous".
        r = await crm.client.get(pages[-1][0])
        back = []
        url = _link(r.text, "prev")
        while url:
            r = await crm.client.get(url)
            back.insert(0, _names(r.text))
            url = _link(r.text, "prev")
        assert [n for p in back for n in p] == [f"Acme {i:02d}" for i in range(6)]
        assert back[0] == ["Acme 00", "Acme 01", "Acme 02"]
    finally:
        PARTIES.page_size = 50


async def test_unknown_or_invalid_filter_is_reported_not_ignored(crm: Any) -> None:
    admin = await crm.user("admin")
    await _party(crm, admin, "Visible Co")
    await crm.sign_in(admin)
    r = await crm.client.get("/app/parties", params={"colour": "red"})
    assert r.status_code == 400
    assert "colour" in r.text and "Visible Co" not in r.text
    r = await crm.client.get("/app/parties", params={"status": "sleeping"})
    assert r.status_code == 422
    assert "status" in r.text and "Visible Co" not in r.text
    r = await crm.client.get("/app/tasks", params={"owner_id": "1"})  # tasks filter by assignee_id
    assert r.status_code == 400 and "owner_id" in r.text
    # The API refuses the same value.
    api = await crm.get("/api/parties", admin, params={"status": "sleeping"})
    assert api.status_code in (400, 422)


async def test_total_is_exact_below_the_cap_and_about_above(crm: Any, monkeypatch: Any) -> None:
    from tessera.web import lists
    from tessera.web.list_pages import PARTIES

    admin = await crm.user("admin")
    for i in range(5):
        await _party(crm, admin, f"Count {i}")
    principal = await crm.principal(admin)
    assert await lists.total(PARTIES, principal, []) == lists.Total(5, True)
    capped = await lists.total(PARTIES, principal, [], cap=3)
    assert not capped.exact and capped.count >= 3
    # The page says "about" above the cap, in the user's language.
    monkeypatch.setattr(lists, "COUNT_CAP", 3)
    await crm.sign_in(admin)
    page = await crm.client.get("/app/parties")
    assert 'data-exact="no"' in page.text and "(about " in page.text
    page = await crm.client.get("/app/parties", headers={"Accept-Language": "ru"})
    assert "(около " in page.text and "Сохранённые виды" in page.text
    # "My clients": a ready-made filter on the signed-in user.
    assert f'href="/app/parties?owner_id={admin["id"]}"' in page.text


async def test_saved_views_are_mine_or_my_teams(crm: Any) -> None:
    north, south = await crm.team("North"), await crm.team("South")
    ann = await crm.user("manager", team_id=north["id"], name="Ann")
    bob = await crm.user("manager", team_id=north["id"], name="Bob")
    eve = await crm.user("manager", team_id=south["id"], name="Eve")
    token = await crm.sign_in(ann)
    r = await crm.client.post(
        "/app/views",
        data={
            "csrf_token": token,
            "list_name": "parties",
            "query": "status=current&order=-name",
            "title": "ViewCurrentX",
            "shared": "1",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/app/parties?status=current&order=-name"
    r = await crm.client.post(
        "/app/views",
        data={"csrf_token": token, "list_name": "parties", "query": "tag=vip", "title": "ViewOnlyMine"},
    )
    assert r.status_code == 303
    page = await crm.client.get("/app/parties")
    assert "ViewCurrentX" in page.text and "ViewOnlyMine" in page.text
    # A view with a filter the list does not have is refused, naming it.
    bad = await crm.client.post(
        "/app/views",
        data={"csrf_token": token, "list_name": "parties", "query": "colour=red", "title": "Bad"},
    )
    assert bad.status_code == 422 and "colour" in bad.text
    api = await crm.post(
        "/api/saved-views", ann, json={"list_name": "parties", "title": "X", "query": "colour=red"}
    )
    assert api.status_code == 422 and "colour" in api.text
    # Bob (same team) sees the shared one only; Eve (other team) sees none of them.
    bob_views = (await crm.get("/api/saved-views", bob, params={"list_name": "parties"})).json()
    assert [v["title"] for v in bob_views] == ["ViewCurrentX"] and not bob_views[0]["mine"]
    assert (await crm.get("/api/saved-views", eve)).json() == []
    await crm.sign_in(eve)
    assert "ViewCurrentX" not in (await crm.client.get("/app/parties")).text
    # Only the owner deletes a view.
    shared_id = bob_views[0]["id"]
    assert (await crm.delete(f"/api/saved-views/{shared_id}", bob)).status_code == 403
    assert (await crm.delete(f"/api/saved-views/{shared_id}", eve)).status_code == 404
    assert (await crm.delete(f"/api/saved-views/{shared_id}", ann)).status_code == 204
    assert [v["title"] for v in (await crm.get("/api/saved-views", ann)).json()] == ["ViewOnlyMine"]


async def test_bulk_actions_change_all_or_nothing(crm: Any) -> None:
    me = await crm.user("manager", name="Me")
    colleague = await crm.user("manager", name="Colleague")
    mine = [await _party(crm, me, f"Mine {i}") for i in range(2)]
    theirs = await _party(crm, colleague, "Theirs")
    token = await crm.sign_in(me)
    ids = [str(p["id"]) for p in mine]
    r = await crm.client.post(
        "/app/lists/parties/bulk?order=name",
        data={"csrf_token": token, "action": "tag", "tag": "hot", "ids": ids},
    )
    assert r.status_code == 303, r.text
    for p in mine:
        assert (await crm.get(f"/api/parties/{p['id']}", me)).json()["tags"] == ["hot"]
    # One row I may not change: refused and reported, and my own rows stay as they were.
    r = await crm.client.post(
        "/app/lists/parties/bulk",
        data={"csrf_token": token, "action": "tag", "tag": "cold", "ids": [*ids, str(theirs["id"])]},
    )
    assert r.status_code == 403 and f"#{theirs['id']}" in r.text
    for p in mine:
        assert (await crm.get(f"/api/parties/{p['id']}", me)).json()["tags"] == ["hot"]
    assert (await crm.get(f"/api/parties/{theirs['id']}", colleague)).json()["tags"] == []
    # Without the form token nothing happens.
    forged = await crm.client.post("/app/lists/parties/bulk", data={"action": "tag", "tag": "x", "ids": ids})
    assert forged.status_code == 403
    # Assign owner: refused by the same rule as a single change (an own-scope manager may not
    # hand a client to someone whose records they do not see), nothing changes.
    r = await crm.client.post(
        "/app/lists/parties/bulk",
        data={"csrf_token": token, "action": "owner", "owner_id": str(colleague["id"]), "ids": ids},
    )
    assert r.status_code == 422 and "Nothing was changed" in r.text
    assert (await crm.get(f"/api/parties/{mine[0]['id']}", me)).json()["owner_id"] == me["id"]
    # A head of a team hands their clients to a team member.
    team = await crm.team()
    head = await crm.user("head", team_id=team["id"])
    member = await crm.user("manager", team_id=team["id"])
    theirs_too = [await _party(crm, head, f"Head's {i}") for i in range(2)]
    token = await crm.sign_in(head)
    r = await crm.client.post(
        "/app/lists/parties/bulk",
        data={
            "csrf_token": token,
            "action": "owner",
            "owner_id": str(member["id"]),
            "ids": [str(p["id"]) for p in theirs_too],
        },
    )
    assert r.status_code == 303, r.text
    for p in theirs_too:
        assert (await crm.get(f"/api/parties/{p['id']}", member)).json()["owner_id"] == member["id"]


async def _exporter(crm: Any) -> dict[str, Any]:
    from tessera.entities.tables import Role

    await Role.insert(
        Role(
            name="own-exporter", description="", permissions=["party.*", "task.*", "activity.*"], scope="own"
        )
    )
    return await crm.user("own-exporter", name="Exporter")  # type: ignore[no-any-return]


async def test_export_has_exactly_the_visible_filtered_rows(crm: Any) -> None:
    me = await _exporter(crm)
    other = await crm.user("manager")
    await _party(crm, me, "=HYPERLINK(1)", status="current")
    await _party(crm, me, "Plain Ltd", status="current")
    await _party(crm, me, "Sleeping Ltd", status="former")
    await _party(crm, other, "Not Mine Ltd", status="current")
    await crm.sign_in(me)
    r = await crm.client.get("/app/lists/parties/export", params={"format": "csv", "status": "current"})
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][0] == "Name"
    assert sorted(row[0] for row in rows[1:]) == ["'=HYPERLINK(1)", "Plain Ltd"]
    r = await crm.client.get("/app/lists/parties/export", params={"format": "xlsx", "status": "current"})
    assert r.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    values = [row for row in sheet.iter_rows(values_only=True)]
    assert sorted(v[0] for v in values[1:]) == ["'=HYPERLINK(1)", "Plain Ltd"]
    # Tasks export too, mine only.
    await crm.post("/api/tasks", me, json={"title": "Call back", "deadline": "2026-03-02T09:00:00Z"})
    await crm.post("/api/tasks", other, json={"title": "Secret task", "deadline": "2026-03-02T09:00:00Z"})
    r = await crm.client.get("/app/lists/tasks/export", params={"format": "csv"})
    assert r.status_code == 200 and "Call back" in r.text and "Secret task" not in r.text
    # Contacts and activities export the same way, mine only.
    party = await _party(crm, me, "Contact Holder")
    theirs = await _party(crm, other, "Their Holder")
    await crm.post("/api/contacts", me, json={"party_id": party["id"], "name": "Ann Mine"})
    await crm.post("/api/contacts", other, json={"party_id": theirs["id"], "name": "Zed Theirs"})
    call = {"type": "call", "starts_at": "2026-03-02T09:00:00Z"}
    await crm.post("/api/activities", me, json={**call, "subject": "My call", "party_id": party["id"]})
    await crm.post("/api/activities", other, json={**call, "subject": "Their call", "party_id": theirs["id"]})
    r = await crm.client.get("/app/lists/contacts/export", params={"format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert [row[0] for row in sheet.iter_rows(values_only=True)][1:] == ["Ann Mine"]
    r = await crm.client.get("/app/lists/activities/export", params={"format": "csv", "type": "call"})
    rows = list(csv.reader(io.StringIO(r.text)))
    assert [row[rows[0].index("Subject")] for row in rows[1:]] == ["My call"]
    # A manager without party.export is refused.
    await crm.sign_in(other)
    assert (await crm.client.get("/app/lists/parties/export", params={"format": "csv"})).status_code == 403


async def test_own_scope_manager_sees_no_one_elses_records_in_any_list(crm: Any) -> None:
    me = await crm.user("manager")
    other = await crm.user("manager")
    theirs = await _party(crm, other, "zebraParty")
    await crm.post("/api/contacts", other, json={"party_id": theirs["id"], "name": "zebraContact"})
    await crm.post(
        "/api/activities",
        other,
        json={
            "type": "call",
            "subject": "zebraCall",
            "starts_at": "2026-03-02T09:00:00Z",
            "party_id": theirs["id"],
        },
    )
    await crm.post("/api/tasks", other, json={"title": "zebraTask", "deadline": "2026-03-02T09:00:00Z"})
    mine = await _party(crm, me, "MyParty")
    await crm.post("/api/contacts", me, json={"party_id": mine["id"], "name": "MyContact"})
    await crm.sign_in(me)
    for url, own in [
        ("/app/parties", "MyParty"),
        ("/app/contacts", "MyContact"),
        ("/app/activities", None),
        ("/app/tasks", None),
    ]:
        r = await crm.client.get(url)
        assert r.status_code == 200, (url, r.text)
        assert "zebra" not in r.text, url
        if own:
            assert own in r.text
        r = await crm.client.get(url, params={"owner_id": str(other["id"])} if url != "/app/tasks" else {})
        assert "zebra" not in r.text


async def test_task_activity_and_contact_lists(crm: Any) -> None:
    import datetime as dt

    from tessera import clock

    me = await crm.user("manager", name="Me")
    colleague = await crm.user("manager", name="Colleague")
    party = await _party(crm, me, "Client Co")
    now = clock.now()
    past, future = (now - dt.timedelta(days=2)).isoformat(), (now + dt.timedelta(days=2)).isoformat()
    late = (await crm.post("/api/tasks", me, json={"title": "Late task", "deadline": past})).json()
    await crm.post("/api/tasks", me, json={"title": "Future task", "deadline": future})
    await crm.post(
        "/api/activities",
        me,
        json={"type": "meeting", "subject": "Missed meeting", "starts_at": past, "party_id": party["id"]},
    )
    await crm.post(
        "/api/activities",
        me,
        json={"type": "call", "subject": "Next call", "starts_at": future, "party_id": party["id"]},
    )
    await crm.post("/api/contacts", me, json={"party_id": party["id"], "name": "Ann Contact"})
    token = await crm.sign_in(me)
    page = await crm.client.get("/app/tasks", params={"overdue": "true"})
    assert page.status_code == 200 and _names(page.text) == ["Late task"]
    assert f'href="/app/tasks/{late["id"]}"' in page.text and 'href="/app/tasks/new"' in page.text
    page = await crm.client.get("/app/activities", params={"overdue": "true"})
    assert "Missed meeting" in page.text and "Next call" not in page.text
    assert f'href="/app/parties/{party["id"]}"' in page.text and "Meeting" in page.text
    page = await crm.client.get("/app/activities", params={"type": "call"})
    assert "Next call" in page.text and "Missed meeting" not in page.text
    page = await crm.client.get("/app/contacts", params={"q": "ann"})
    assert "Ann Contact" in page.text and f'href="/app/parties/{party["id"]}"' in page.text
    # The API answers the same filter the same way.
    api = (await crm.get("/api/tasks", me, params={"overdue": "true"})).json()["items"]
    assert [t["title"] for t in api] == ["Late task"]
    # Bulk hand-off of a task: the same service as a single reassignment.
    r = await crm.client.post(
        "/app/lists/tasks/bulk",
        data={
            "csrf_token": token,
            "action": "owner",
            "assignee_id": str(colleague["id"]),
            "ids": [str(late["id"])],
        },
    )
    assert r.status_code == 303, r.text
    assert (await crm.get(f"/api/tasks/{late['id']}", colleague)).json()["assignee_id"] == colleague["id"]
