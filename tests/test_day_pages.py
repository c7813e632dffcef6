"""My day, the calendar, global search and notifications in the web UI (issue 15 items 5, 8,
10): rendered by the real app for a signed-in user, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from tessera import clock


async def _page(crm: Any, url: str, status: int = 200) -> str:
    r = await crm.client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:500])
    # Babel puts narrow no-break spaces in times ("10:30\u202fAM"); compare with plain ones.
    return html.unescape(r.text).replace("\u202f", " ").replace("\xa0", " ")


def _section(text: str, section_id: str) -> str:
    match = re.search(rf'<section[^>]*id="{section_id}".*?</section>', text, re.S)
    assert match, f"no section {section_id}"
    return match.group(0)


def _unread(text: str) -> int:
    match = re.search(r'class="count" aria-hidden="true">(\d+)<', text)
    return int(match.group(1)) if match else 0


async def _task(crm: Any, user: dict[str, Any], title: str, **extra: Any) -> dict[str, Any]:
    r = await crm.post("/api/tasks", user, json={"title": title, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _meeting(crm: Any, user: dict[str, Any], subject: str, at: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "meeting", "subject": subject, "starts_at": at, "status": "planned", **extra}
    r = await crm.post("/api/activities", user, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_my_tasks_show_overdue_first_marked_in_words(crm: Any) -> None:
    manager = await crm.user("manager", name="Olga")
    now = clock.now()
    party = (await crm.post("/api/parties", manager, json={"name": "Acme Trading"})).json()
    await _task(crm, manager, "Due tomorrow", deadline=(now + timedelta(days=1)).isoformat())
    await _task(crm, manager, "No deadline")
    await _task(crm, manager, "Late two days", deadline=(now - timedelta(days=2)).isoformat())
    await _task(
        crm, manager, "Late five days", deadline=(now - timedelta(days=5)).isoformat(), party_id=party["id"]
    )
    await _task(crm, manager, "Due next week", deadline=(now + timedelta(days=6)).isoformat())
    done = await _task(crm, manager, "Already done", deadline=(now - timedelta(days=9)).isoformat())
    assert (
        await crm.post(f"/api/tasks/{done['id']}/complete", manager, json={"result": "ok"})
    ).status_code == 200
    await crm.sign_in(manager)
    page = await _page(crm, "/app")
    assert "My day" in page
    tasks = _section(page, "my-tasks")
    rows = re.findall(
        r'<tr class="task( overdue)?"><td><a href="/app/tasks/\d+">([^<]+)</a>(.*?)</tr>', tasks, re.S
    )
    assert [title for _, title, _ in rows] == [
        "Late five days",
        "Late two days",
        "Due tomorrow",
        "Due next week",
        "No deadline",
    ]
    # Overdue is said in words (not only by colour), and only on the overdue ones.
    assert [("Overdue" in rest) for _, _, rest in rows] == [True, True, False, False, False]
    assert "2 overdue" in tasks
    assert f'href="/app/parties/{party["id"]}">Acme Trading</a>' in tasks  # its client, a link
    assert "Already done" not in page


async def test_a_handed_task_shows_who_handed_it_with_the_comment(crm: Any) -> None:
    team = await crm.team("North")
    anna = await crm.user("manager", team_id=team["id"], name="Anna")
    boris = await crm.user("manager", team_id=team["id"], name="Boris")
    party = (await crm.post("/api/parties", boris, json={"name": "Boris Client"})).json()
    task = await _task(crm, boris, "Prepare the contract", party_id=party["id"])
    r = await crm.post(
        f"/api/tasks/{task['id']}/handoff",
        boris,
        json={"to_user_id": anna["id"], "comment": "Call them first"},
    )
    assert r.status_code == 200, r.text
    own = await _task(crm, anna, "My own idea")
    await crm.sign_in(anna)
    handed = _section(await _page(crm, "/app"), "handed")
    assert f'href="/app/tasks/{task["id"]}">Prepare the contract</a>' in handed
    assert "from Boris" in handed and "Call them first" in handed
    # Implicit sharing: the receiver can open the client from the hand-off.
    assert f'href="/app/parties/{party["id"]}">Boris Client</a>' in handed
    assert "Boris Client" in await _page(crm, f"/app/parties/{party['id']}")
    assert own["title"] not in handed  # what I gave myself is not a hand-off


async def test_a_planned_meeting_is_in_the_calendar_at_the_users_local_time(
    crm: Any, frozen_clock: Any
) -> None:
    admin = await crm.user("admin")
    manager = await crm.user("manager", name="Olga")
    r = await crm.patch(f"/api/users/{manager['id']}", admin, json={"timezone": "Europe/Moscow"})
    assert r.status_code == 200, r.text
    # Monday 2 March 2026, 09:00 UTC = 12:00 in Moscow (UTC+3).
    await _meeting(crm, manager, "Morning meeting", "2026-03-04T07:30:00+00:00", duration_minutes=60)
    # 22:30 UTC on the 4th is 01:30 on Thursday the 5th in Moscow.
    await _meeting(crm, manager, "Night call", "2026-03-04T22:30:00+00:00")
    await _meeting(crm, manager, "Today's lunch", "2026-03-02T10:00:00+00:00")
    await _meeting(crm, manager, "Sunday visit", "2026-03-01T15:00:00+00:00")  # held? not logged
    await crm.sign_in(manager)

    day = await _page(crm, "/app/calendar?view=day&date=2026-03-04")
    assert "Morning meeting" in day and "10:30 AM" in day and "11:30 AM" in day
    assert "Night call" not in day
    assert "Europe/Moscow" in day
    assert 'href="/app/calendar?view=day&date=2026-03-03"' in day.replace("&amp;", "&")
    assert 'href="/app/calendar?view=day&date=2026-03-05"' in day.replace("&amp;", "&")
    thursday = await _page(crm, "/app/calendar?view=day&date=2026-03-05")
    assert "Night call" in thursday and "1:30 AM" in thursday and "Morning meeting" not in thursday

    week = await _page(crm, "/app/calendar?view=week&date=2026-03-04")
    days = re.findall(r'<section class="day[^"]*" aria-label="([^"]+)">(.*?)</section>', week, re.S)
    assert days[0][0] == "Monday, 2 March" and days[-1][0] == "Sunday, 8 March" and len(days) == 7
    by_day = {label: body for label, body in days}
    assert "Morning meeting" in by_day["Wednesday, 4 March"] and "10:30 AM" in by_day["Wednesday, 4 March"]
    assert "Night call" in by_day["Thursday, 5 March"] and "Night call" not in by_day["Wednesday, 4 March"]
    assert 'date=2026-02-23"' in week and 'date=2026-03-09"' in week  # previous / next week

    # My day: today's meeting at local time, this week's later ones by day.
    today = _section(await _page(crm, "/app"), "today")
    assert "Today's lunch" in today and "1:00 PM" in today
    assert "Morning meeting" in today and "Night call" in today
    unlogged = today.split('id="unlogged"')[1].split("</ul>")[0]
    assert "Sunday visit" in unlogged and "Not logged" in unlogged and "Today's lunch" not in unlogged

    bad = await _page(crm, "/app/calendar?view=month&date=31.12.2026")
    assert "Unknown calendar view" in bad and "The date must look like 2026-12-31" in bad


async def test_a_colleagues_calendar_only_for_who_may_see_them(crm: Any) -> None:
    team = await crm.team("North")
    head = await crm.user("head", team_id=team["id"], name="Helga Head")
    anna = await crm.user("manager", team_id=team["id"], name="Anna")
    boris = await crm.user("manager", team_id=team["id"], name="Boris")
    outsider = await crm.user("head", team_id=(await crm.team("South"))["id"], name="Sam South")
    await _meeting(crm, boris, "Boris secret meeting", "2026-03-04T09:00:00+00:00")
    url = f"/app/calendar?view=week&date=2026-03-04&user={boris['id']}"

    await crm.sign_in(anna)  # own scope: sees only herself
    denied = await _page(crm, url, status=403)
    assert "Boris secret meeting" not in denied
    mine = await _page(crm, "/app/calendar?view=week&date=2026-03-04")
    assert "Boris" not in mine and "Boris secret meeting" not in mine  # not even in the choice of users
    await crm.sign_in(outsider)  # head of another team
    assert "Boris secret meeting" not in await _page(crm, url, status=403)

    await crm.sign_in(head)  # head of Boris's team
    seen = await _page(crm, url)
    assert "Calendar of Boris" in seen and "Boris secret meeting" in seen
    assert f'<option value="{boris["id"]}" selected>Boris</option>' in seen
    assert f'<option value="{anna["id"]}">Anna</option>' in seen and "Sam South" not in seen
    assert f"&user={boris['id']}" in seen  # prev / next keep the colleague


@pytest.mark.plugins("sales")
async def test_search_groups_parties_and_deals_and_hides_what_others_own(crm: Any) -> None:
    anna = await crm.user("manager", name="Anna")
    boris = await crm.user("manager", name="Boris")
    party = (await crm.post("/api/parties", anna, json={"name": "Zebra Logistics"})).json()
    r = await crm.post(
        "/api/sales/deals", anna, json={"title": "Zebra fleet rollout", "party_id": party["id"]}
    )
    assert r.status_code == 201, r.text
    deal = r.json()
    secret = (await crm.post("/api/parties", boris, json={"name": "Zebra Hidden Holdings"})).json()
    call = {"type": "call", "subject": "Quarterly call", "status": "done", "party_id": party["id"]}
    call |= {"starts_at": "2026-03-02T10:00:00+00:00", "agreements": "They will paint zebra stripes"}
    assert (await crm.post("/api/activities", anna, json=call)).status_code == 201
    await crm.sign_in(anna)
    page = await _page(crm, "/app/search?q=zebra")
    groups = re.findall(r'<h2 id="group-([\w-]+)">([^<]+) <span class="muted">\((\d+)\)</span></h2>', page)
    found = {(key, label.strip(), int(n)) for key, label, n in groups}
    # (the deal's workflow stage task matches too, under "Tasks")
    assert {("party", "Clients", 1), ("deal", "Deals", 1)} <= found
    links = re.findall(r'<a href="([^"]+)" data-result>(.*?)</a>', page)
    hrefs = [href for href, _ in links]
    assert f"/app/parties/{party['id']}" in hrefs and f"/sales/deals/{deal['id']}" in hrefs
    assert "<mark>Zebra</mark> Logistics" in page  # the match highlighted, the rest escaped
    # A hit found in its text shows the words around the match; the activity opens on the card.
    activity = re.search(
        r'<a href="/app/parties/\d+#activity-\d+" data-result>Quarterly call</a>(.*?)</li>', page, re.S
    )
    assert activity and "will paint <mark>zebra</mark> stripes" in activity.group(1)
    assert 'value="zebra"' in page  # the header box keeps the query
    assert '<script src="/static/day/search-keys.js" defer></script>' in page
    # The own-scope manager never sees another manager's party: not in hits, counts or snippets.
    assert "Hidden Holdings" not in page and f"/app/parties/{secret['id']}" not in page
    only_deals = await _page(crm, "/app/search?q=zebra&type=deal")
    assert "<mark>Zebra</mark> fleet rollout" in only_deals and "Logistics</a>" not in only_deals
    assert (await crm.client.get("/static/day/search-keys.js")).status_code == 200
    unknown = await _page(crm, "/app/search?q=zebra&type=spaceship", status=422)
    assert "There is no such kind of record to search." in unknown

    await crm.sign_in(boris)
    theirs = await _page(crm, "/app/search?q=zebra")
    assert "Zebra Hidden Holdings" in html.unescape(re.sub(r"</?mark>", "", theirs))
    assert "Logistics" not in theirs and "fleet rollout" not in theirs


async def test_the_unread_count_falls_as_notifications_are_read(crm: Any) -> None:
    team = await crm.team("North")
    anna = await crm.user("manager", team_id=team["id"], name="Anna")
    boris = await crm.user("manager", team_id=team["id"], name="Boris")
    first = await _task(crm, boris, "Send the price list", assignee_id=anna["id"])
    await _task(crm, boris, "Book the room", assignee_id=anna["id"])
    await _task(crm, boris, "Ask about delivery", assignee_id=anna["id"])
    await _task(crm, anna, "Boris's own reminder", assignee_id=boris["id"])
    await crm.sign_in(anna)
    page = await _page(crm, "/app/notifications")
    assert _unread(page) == 3
    assert "New task for you" in page and f'href="/app/tasks/{first["id"]}">Send the price list</a>' in page
    ids = [int(i) for i in re.findall(r'action="/app/notifications/(\d+)/read"', page)]
    assert len(ids) == 3
    token = crm.csrf(page)
    forged = await crm.client.post(f"/app/notifications/{ids[0]}/read", data={"next": "/app/notifications"})
    assert forged.status_code == 403
    assert _unread(await _page(crm, "/app/parties")) == 3  # every page's header shows it
    r = await crm.client.post(
        f"/app/notifications/{ids[0]}/read", data={"csrf_token": token, "next": "/app/notifications"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/app/notifications"
    assert _unread(await _page(crm, "/app")) == 2
    # Another user's notification is not mine to mark.
    r = await crm.get("/api/notifications", boris)
    boris_note = r.json()[0]["id"]
    r = await crm.client.post(f"/app/notifications/{boris_note}/read", data={"csrf_token": token})
    assert r.status_code == 404
    assert (await crm.get("/api/notifications", boris, params={"unread": True})).json()[0]["id"] == boris_note
    r = await crm.client.post(
        "/app/notifications/read-all", data={"csrf_token": token, "next": "https://evil.example/"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/app/notifications"
    page = await _page(crm, "/app/notifications")
    assert _unread(page) == 0 and "0 unread notifications." in page and "Send the price list" in page


#: English words of these pages that a Ukrainian page must not show.
ENGLISH = (
    "My day",
    "My tasks",
    "Overdue",
    "Awaiting your acceptance",
    "Calendar",
    "Notifications",
    "Mark read",
    "New task for you",
    "Search",
    "Previous week",
    "Clients",
    "Tasks",
    "Meeting",
)


def _visible(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", page))


async def test_the_pages_speak_ukrainian_without_internal_codes(crm: Any, frozen_clock: Any) -> None:
    # Midday: "in an hour" is still today on the day view (after 23:00 UTC it was tomorrow).
    frozen_clock.set(clock.now().replace(hour=12, minute=0, second=0, microsecond=0))
    team = await crm.team("North")
    anna = await crm.user("manager", team_id=team["id"], name="Anna")
    boris = await crm.user("manager", team_id=team["id"], name="Boris")
    assert (await crm.patch("/api/auth/me", anna, json={"locale": "uk"})).status_code == 200
    party = (await crm.post("/api/parties", anna, json={"name": "Veselka"})).json()
    late = (clock.now() - timedelta(days=1)).isoformat()
    await _task(crm, anna, "Veselka late task", deadline=late, party_id=party["id"])
    task = await _task(crm, boris, "Veselka handed task", assignee_id=anna["id"])
    assert (
        await crm.patch(f"/api/tasks/{task['id']}", boris, json={"status": "in_progress"})
    ).status_code == 200
    soon = (clock.now() + timedelta(hours=1)).isoformat()
    await _meeting(crm, anna, "Veselka meeting", soon, party_id=party["id"])
    await crm.sign_in(anna)
    for url in (
        "/app",
        "/app/calendar?view=week",
        "/app/calendar?view=day",
        "/app/notifications",
        "/app/search?q=veselka",
    ):
        text = _visible(await _page(crm, url))
        assert "Veselka" in text, url
        assert '<html lang="uk">' in await _page(crm, url)
        assert not [w for w in ENGLISH if w in text], (url, [w for w in ENGLISH if w in text], text[:800])
        assert not re.findall(r"in_progress|task\.\w+|activity\.\w+|search\.\w+", text), (url, text[:800])
    page = _visible(await _page(crm, "/app"))
    assert "Мій день" in page and "Прострочено" in page and "Нове завдання для вас" in page


async def test_a_substitute_works_the_absent_colleagues_day_and_calendar(crm: Any) -> None:
    admin = await crm.user("admin")
    anna = await crm.user("manager", name="Anna")
    boris = await crm.user("manager", name="Boris")
    now = clock.now()
    await _task(crm, boris, "Boris's late task", deadline=(now - timedelta(days=1)).isoformat())
    await _meeting(crm, boris, "Boris's meeting", "2026-03-04T09:00:00+00:00")
    url = f"/app/calendar?view=week&date=2026-03-04&user={boris['id']}"
    await crm.sign_in(anna)
    assert "Boris's late task" not in await _page(crm, "/app")
    await _page(crm, url, status=403)

    absence = {"absent_user_id": boris["id"], "substitute_id": anna["id"]}
    absence |= {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=3)).isoformat(),
    }
    r = await crm.post("/api/substitutions", admin, json=absence)
    assert r.status_code == 201, r.text
    day = await _page(crm, "/app")
    assert "standing in for 1 absent colleague" in day
    assert "Boris's late task" in _section(day, "my-tasks") and "Overdue" in _section(day, "my-tasks")
    calendar = await _page(crm, url)
    assert "Calendar of Boris" in calendar and "Boris's meeting" in calendar
    # Her own calendar includes the absent colleague's meetings too (she works his queue).
    assert "Boris's meeting" in await _page(crm, "/app/calendar?view=week&date=2026-03-04")


async def test_search_needs_the_search_permission(crm: Any) -> None:
    auditor = await crm.user("auditor")
    await crm.sign_in(auditor)
    page = await _page(crm, "/app/search?q=anything", status=403)
    assert "You may not use search." in page
    assert "My day" in await _page(crm, "/app")  # an auditor's My day is empty, not an error
