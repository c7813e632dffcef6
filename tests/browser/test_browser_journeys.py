"""Journeys of issue 15 in a real browser (chromium) against the real server, on SQLite and
PostgreSQL: what a sales manager does all day, as they would do it (fields, buttons, links).
Fixtures: tests/browser/conftest.py."""

from __future__ import annotations

from typing import Any

from browser_helpers import PASSWORD, Site, sign_in
from tessera.demo import DEMO_PASSWORD


async def test_sign_in(page: Any, site: Site, shoot: Any) -> None:
    """A wrong password is refused on the form; the right one opens the dashboard with the
    user's name."""
    user = await site.user("manager", name="Olena Sign-in")
    await page.goto("/app")
    assert page.url.endswith("/login")  # not signed in: sent to the sign-in page
    await shoot(page, "login")
    await page.fill("input[name=email]", user["email"])
    await page.fill("input[name=password]", "not-the-password")
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_load_state()
    assert page.url.endswith("/login")
    assert "Wrong e-mail or password" in await page.inner_text(".error")
    assert await page.input_value("input[name=email]") == user["email"]  # input kept

    await sign_in(page, user["email"], PASSWORD)
    assert "Olena Sign-in" in await page.inner_text("header")


async def test_log_a_call_on_the_card(page: Any, site: Site, shoot: Any) -> None:
    """A manager opens their client's card, logs a call, and sees it on the timeline with
    its label (not the code ``activity.call``)."""
    user = await site.user("manager")
    party = await site.party(user, "Journey Call Ltd")
    await sign_in(page, user["email"])
    await page.goto("/app/parties")
    await page.click("text=Journey Call Ltd")
    await page.wait_for_url(f"**/app/parties/{party['id']}")
    await page.select_option("select[name=type]", "call")
    await page.fill("input[name=subject]", "Asked about the spring price list")
    await page.fill("textarea[name=outcome]", "Sends the list tomorrow")
    async with page.expect_navigation():
        await page.click(f"form[action='/app/parties/{party['id']}/activities'] button")
    timeline = page.locator(".timeline li", has_text="Asked about the spring price list")
    await timeline.wait_for()
    text = await timeline.inner_text()
    assert "Call" in text and "activity.call" not in text
    assert "Done" in text  # logged now: done, not planned
    assert "Sends the list tomorrow" in text
    await shoot(page, "card-after-call")


async def test_switch_language_to_ukrainian(page: Any, site: Site) -> None:
    """The language switcher stores Ukrainian in the profile: the navigation, the list and the
    card are in Ukrainian, and stay so on the next page and the next sign-in."""
    user = await site.user("manager")
    party = await site.party(user, "Journey Language Ltd")
    await sign_in(page, user["email"])
    assert "Clients" in await page.inner_text("header nav")
    await page.click("header details.menu.end summary")  # the user's menu: language, password, sign out
    await page.select_option("select[name=locale]", "uk")
    async with page.expect_navigation():
        await page.click("form.lang button")
    assert page.url.endswith("/app")
    assert await page.get_attribute("html", "lang") == "uk"
    nav = await page.inner_text("header nav")
    assert "Клієнти" in nav and "Clients" not in nav
    await page.goto(f"/app/parties/{party['id']}")
    body = await page.inner_text("main")
    assert "Потенційний" in body  # the status label, in Ukrainian
    assert "Зберегти" in await page.inner_text("form[action$='/activities'] button")
    # The next session of the same user (another browser) is in Ukrainian too.
    await page.context.clear_cookies()
    await sign_in(page, user["email"])
    assert "Клієнти" in await page.inner_text("header nav")


async def test_own_scope_manager_sees_only_own_clients(page: Any, site: Site) -> None:
    """A manager (scope "own") finds neither a colleague's client in the list (nor by search
    in it) nor its card by URL: the card answers the "no such record" page."""
    mine_owner = await site.user("manager")
    other = await site.user("manager")
    mine = await site.party(mine_owner, "Journey Scope Mine")
    theirs = await site.party(other, "Journey Scope Theirs")
    await sign_in(page, mine_owner["email"])
    await page.goto("/app/parties?q=Journey Scope")
    listing = await page.inner_text("main")
    assert "Journey Scope Mine" in listing
    assert "Journey Scope Theirs" not in listing
    response = await page.goto(f"/app/parties/{theirs['id']}")
    assert response is not None and response.status == 404
    body = await page.inner_text("main")
    assert "Journey Scope Theirs" not in body
    assert "There is no such record, or you may not see it." in body
    response = await page.goto(f"/app/parties/{mine['id']}")
    assert response is not None and response.status == 200


async def test_sign_out(page: Any, site: Site) -> None:
    """Signing out ends the session: the dashboard sends the browser back to sign in."""
    user = await site.user("manager")
    await sign_in(page, user["email"])
    await page.click("header details.menu.end summary")
    async with page.expect_navigation():
        await page.click("form[action='/logout'] button")
    assert page.url.endswith("/login")
    await page.goto("/app")
    assert page.url.endswith("/login")
    assert await page.locator("form[action='/logout']").count() == 0


async def _log_call(page: Any, party_id: int, subject: str) -> None:
    await page.goto(f"/app/parties/{party_id}")
    await page.select_option("select[name=type]", "call")
    await page.fill("input[name=subject]", subject)
    async with page.expect_navigation():
        await page.click(f"form[action='/app/parties/{party_id}/activities'] button")


async def _deal_stage(page: Any) -> str:
    """The stage pill of the deal page's heading."""
    return (await page.locator("h1 .pill").nth(1).inner_text()).strip()


async def test_deal_from_the_card_through_the_kanban_to_won(page: Any, site: Site, shoot: Any) -> None:
    """A manager opens a deal from the client card, logs the first call, drags the deal across
    the kanban to the next stage, ticks the needs, issues a proposal (which ticks its checklist
    item by itself), agrees the terms and wins the deal; then their plan-vs-actual chart shows
    the won amount in the SVG's data."""
    import datetime as dt

    from tessera import clock
    from tessera_sales.tables import SalesPlan

    user = await site.user("manager")
    party = await site.party(user, "Journey Deal Ltd")
    await sign_in(page, user["email"])

    # From the card: the "Deals" tab, then "New deal" with the client chosen already.
    await page.goto(f"/app/parties/{party['id']}")
    await page.click(f"a[href='/sales/parties/{party['id']}/deals']")
    await page.click(f"a[href='/sales/deals/new?party_id={party['id']}']")
    assert await page.input_value("select[name=party_id]") == str(party["id"])
    await page.fill("input[name=title]", "Journey licences")
    await page.fill("input[name='lines-0-name']", "CRM licence")  # a proposal needs lines
    await page.fill("input[name='lines-0-quantity']", "10")
    await page.fill("input[name='lines-0-unit_price']", "25000")
    async with page.expect_navigation():
        await page.click("form[action='/sales/deals/new'] p > button")
    deal_url = page.url.split("#")[0]
    deal_id = int(deal_url.rstrip("/").rsplit("/", 1)[1])
    assert "Journey licences" in await page.inner_text("h1")
    assert "CRM licence" in await page.inner_text("main")

    # The first stage needs a call: log it on the card.
    await _log_call(page, party["id"], "First call about licences")

    # Drag the card on the kanban from its column to the next one.
    await page.goto("/sales/kanban")
    card = page.locator(f"article[data-deal='{deal_id}']")
    start = await card.evaluate("e => e.closest('[data-stage]').dataset.stage")
    columns = await page.eval_on_selector_all("[data-stage]", "els => els.map(e => e.dataset.stage)")
    target = columns[columns.index(start) + 1]
    async with page.expect_navigation():
        await card.drag_to(page.locator(f"section[data-stage='{target}']"))
    moved = page.locator(f"section[data-stage='{target}'] article[data-deal='{deal_id}']")
    assert await moved.count() == 1, await page.inner_text("main")
    await shoot(page, "kanban-after-drag")

    # The deal page: tick the needs, move on, issue a proposal, move on, agree the terms, win.
    await page.goto(deal_url)
    move = page.locator(f"form[action='/sales/deals/{deal_id}/move'] button").first
    tick = page.locator("#checklist li.todo form button").first

    async def submit(button: Any) -> None:
        async with page.expect_navigation():
            await button.click()
        errors = page.locator(".error, .field-error")
        assert await errors.count() == 0, await errors.all_inner_texts()

    await submit(tick)  # the needs are written down
    await submit(move)  # to the proposal stage
    stage = await _deal_stage(page)
    await submit(page.locator("#proposals form button"))  # issue a proposal
    proposals = page.locator("#proposals a[href^='/sales/proposals/']:not([download])")
    assert await proposals.count() == 1
    assert await page.locator("#checklist li.todo").count() == 0  # ticked by the proposal
    await submit(move)  # to negotiation
    assert await _deal_stage(page) != stage
    await submit(tick)  # the terms are agreed
    await shoot(page, "deal-before-win")
    await submit(page.locator(f"form[action='/sales/deals/{deal_id}/close'] input[value=won] ~ button"))
    assert (await page.locator("h1 .pill").first.inner_text()).strip() == "Won"

    # A plan for this month: the plan-vs-actual chart shows the won amount in its data.
    today = clock.now().date()
    async with site.kernel():
        await SalesPlan.insert(
            SalesPlan(
                user_id=user["id"],
                period_start=today.replace(day=1),
                period_end=today + dt.timedelta(days=1),
                pipeline="sales.b2b",
                currency="RUB",
                amount=1000000,
            )
        )
    await page.goto("/sales/plans")
    bars = page.locator("svg[data-chart] rect.datum")
    values = {
        await bar.get_attribute("data-series-key"): await bar.get_attribute("data-value")
        for bar in await bars.all()
    }
    assert values == {"target": "1000000.00", "actual": "250000.00"}, values


async def test_funnel_chart_shows_the_report(page: Any, site: Site, shoot: Any) -> None:
    """The funnel page's SVG chart carries, per stage, the number of deals the sales report
    counts (``reports.funnel`` over the page's default 90 days), in a real browser."""
    import datetime as dt

    from tessera import clock
    from tessera.permissions import build_principal
    from tessera_sales import reports

    await sign_in(page, "admin@example.com", DEMO_PASSWORD)
    await page.goto("/sales/funnel")
    await shoot(page, "funnel")
    bars = await page.locator("svg[data-chart] rect.datum").all()
    shown = {await bar.get_attribute("data-key"): await bar.get_attribute("data-value") for bar in bars}
    today = clock.now().date()
    async with site.kernel():
        admin = await build_principal(site.demo.admin.user_id)
        report = await reports.funnel(admin, date_from=today - dt.timedelta(days=90), date_to=today)
    expected = {
        s["stage"]: str(s["entered"]) for g in report["groups"] for s in g["stages"] if s["stage"] != "lost"
    }
    assert shown == expected, (shown, expected)
    assert int(shown["qualification"]) > 0  # the demo's deals are in it


async def test_log_a_call_and_plan_a_meeting_on_the_card_and_the_calendar(
    page: Any, site: Site, shoot: Any
) -> None:
    """A manager logs a call (now) and plans a meeting (the next day) on the card: both are on
    the card's timeline, the meeting as planned, and on their calendar on their days."""
    import datetime as dt

    from tessera import clock

    user = await site.user("manager")
    party = await site.party(user, "Journey Calendar Ltd")
    await sign_in(page, user["email"])
    await _log_call(page, party["id"], "Calendar journey call")
    meeting_at = (clock.now() + dt.timedelta(days=1)).replace(hour=10, minute=30, second=0, microsecond=0)
    await page.select_option("select[name=type]", "meeting")
    await page.fill("input[name=subject]", "Calendar journey meeting")
    await page.fill("input[name=starts_at]", meeting_at.strftime("%Y-%m-%dT%H:%M"))  # the user's zone: UTC
    async with page.expect_navigation():
        await page.click(f"form[action='/app/parties/{party['id']}/activities'] button")
    call = await page.locator(".timeline li", has_text="Calendar journey call").inner_text()
    meeting = await page.locator(".timeline li", has_text="Calendar journey meeting").inner_text()
    assert "Call" in call and "Done" in call
    assert "Meeting" in meeting and "Planned" in meeting

    for day, subject in ((clock.now().date(), "call"), (meeting_at.date(), "meeting")):
        await page.goto(f"/app/calendar?view=day&date={day.isoformat()}")
        event = page.locator(".event", has_text=f"Calendar journey {subject}")
        assert await event.count() == 1, await page.inner_text("main")
        assert "Journey Calendar Ltd" in await event.inner_text()
    await page.goto(f"/app/calendar?view=week&date={meeting_at.date().isoformat()}")
    await shoot(page, "calendar-week")


async def test_search_from_the_global_box(page: Any, site: Site) -> None:
    """The search box of every page finds a client by a word of its name; the result opens
    its card. A colleague's client (own scope) is not among the results."""
    user = await site.user("manager")
    other = await site.user("manager")
    party = await site.party(user, "Quixotic Searchable Ltd")
    await site.party(other, "Quixotic Hidden Ltd")
    await sign_in(page, user["email"])
    await page.goto("/app/parties")
    await page.fill("header form.search input[name=q]", "Quixotic")
    async with page.expect_navigation():
        await page.press("header form.search input[name=q]", "Enter")
    assert "/app/search?q=Quixotic" in page.url
    results = await page.inner_text("main")
    assert "Quixotic Searchable Ltd" in results
    assert "Hidden" not in results
    async with page.expect_navigation():
        await page.click("a[data-result]:has-text('Searchable')")
    assert page.url.endswith(f"/app/parties/{party['id']}")


async def test_export_the_client_list_as_xlsx(page: Any, site: Site, tmp_path: Any) -> None:
    """A head of sales exports the client list as XLSX from the list page; the workbook read
    back with openpyxl holds their clients and not a client they may not see."""
    import openpyxl

    head = await site.user("head")
    other = await site.user("manager")
    await site.party(head, "Export Alpha Ltd")
    await site.party(head, "Export Beta Ltd")
    await site.party(other, "Export Hidden Ltd")
    await sign_in(page, head["email"])
    await page.goto("/app/parties")
    async with page.expect_download() as download_info:
        await page.click("a[href*='export?format=xlsx']")
    download = await download_info.value
    path = tmp_path / "clients.xlsx"
    await download.save_as(str(path))
    workbook = openpyxl.load_workbook(path, read_only=True)
    cells = [str(c) for row in workbook.active.iter_rows(values_only=True) for c in row if c is not None]
    assert "Export Alpha Ltd" in cells and "Export Beta Ltd" in cells
    assert "Export Hidden Ltd" not in cells


async def test_create_a_client_with_a_contact_and_a_custom_field(
    page: Any, second_page: Any, site: Site, shoot: Any
) -> None:
    """The admin declares a custom field of clients on the admin page; a manager creates a
    client from the list's "New client" form, fills that field, adds a contact from the card,
    and sees the client, the contact and the field's value on the card; the API reads back
    the same."""
    import uuid

    tag = uuid.uuid4().hex[:6]
    field = f"journey_segment_{tag}"
    title = f"Segment {tag}"

    # The admin adds the field (a new one beside whatever other tests declared).
    await sign_in(second_page, "admin@example.com", DEMO_PASSWORD)
    await second_page.goto("/app/admin/custom-fields/party")
    await second_page.fill("input[name=name]", field)
    await second_page.fill("input[name=title]", title)
    await second_page.select_option("select[name=type]", "string")
    async with second_page.expect_navigation():
        await second_page.click("button:has-text('Save field')")
    assert title in await second_page.inner_text("main"), await second_page.inner_text("main")

    user = await site.user("manager")
    await sign_in(page, user["email"])
    await page.goto("/app/parties")
    async with page.expect_navigation():
        await page.click("a[href='/app/parties/new']")
    await page.fill("input[name=name]", f"Journey Custom {tag} Ltd")
    await page.fill("input[name='emails.0.address']", f"office-{tag}@example.com")
    await page.fill(f"input[name='custom.{field}']", "Wholesale")
    await shoot(page, "party-new")
    async with page.expect_navigation():
        await page.click("form[action='/app/parties/new'] button")
    errors = page.locator(".error, .field-error")
    assert await errors.count() == 0, await errors.all_inner_texts()
    assert "/app/parties/" in page.url
    party_id = int(page.url.split("#")[0].rstrip("/").rsplit("/", 1)[1])
    assert f"Journey Custom {tag} Ltd" in await page.inner_text("h1")
    assert f"{title}: Wholesale" in await page.inner_text("main")

    # A contact, from the card.
    async with page.expect_navigation():
        await page.click(f"a[href='/app/parties/{party_id}/contacts/new']")
    await page.fill("input[name=name]", f"Anna Journey {tag}")
    await page.fill("input[name=position]", "Buyer")
    await page.fill("input[name='emails.0.address']", f"anna-{tag}@example.com")
    async with page.expect_navigation():
        await page.click(f"form[action='/app/parties/{party_id}/contacts/new'] button")
    assert page.url.split("#")[0].endswith(f"/app/parties/{party_id}")
    contacts = await page.locator(".card", has=page.locator("#contacts")).inner_text()
    assert f"Anna Journey {tag}" in contacts and "Buyer" in contacts
    assert f"anna-{tag}@example.com" in contacts
    assert f"{title}: Wholesale" in await page.inner_text("main")
    await shoot(page, "card-with-contact-and-custom-field")

    # The API (the same session) reads back what the forms wrote.
    response = await page.request.get(f"/api/parties/{party_id}")
    assert response.ok, await response.text()
    party = await response.json()
    assert party["name"] == f"Journey Custom {tag} Ltd"
    assert party["custom"][field] == "Wholesale"
    assert party["owner_id"] == user["id"]
    assert [e["address"] for e in party["emails"]] == [f"office-{tag}@example.com"]
    response = await page.request.get(f"/api/contacts?party_id={party_id}")
    assert response.ok, await response.text()
    listed = (await response.json())["items"]
    assert [(c["name"], c["position"]) for c in listed] == [(f"Anna Journey {tag}", "Buyer")]


async def test_hand_a_task_to_a_colleague_who_opens_the_client(
    page: Any, second_page: Any, site: Site, shoot: Any
) -> None:
    """A manager creates a task on their client from the card and hands it to a colleague
    with a comment; the colleague (own scope: the client's card was the 404 page for them)
    signs in, finds the task with the comment under "Awaiting your acceptance" on My day, opens
    it, accepts it and, from the task page, the client's card (implicit sharing)."""
    import uuid

    tag = uuid.uuid4().hex[:6]
    owner = await site.user("manager", name=f"Owner {tag}")
    colleague = await site.user("manager", name=f"Colleague {tag}")
    party = await site.party(owner, f"Journey Handoff {tag} Ltd")
    card_url = f"/app/parties/{party['id']}"

    # Before: the colleague may not see the client.
    await sign_in(second_page, colleague["email"])
    response = await second_page.goto(card_url)
    assert response is not None and response.status == 404
    body = await second_page.inner_text("main")
    assert "There is no such record, or you may not see it." in body
    assert f"Journey Handoff {tag} Ltd" not in body

    # The owner: a new task from the card, then "Hand off" with a comment on its page.
    await sign_in(page, owner["email"])
    await page.goto(card_url)
    async with page.expect_navigation():
        await page.click(f"a[href='/app/tasks/new?party_id={party['id']}']")
    assert await page.input_value("select[name=party_id]") == str(party["id"])
    await page.fill("input[name=title]", f"Send the offer {tag}")
    async with page.expect_navigation():
        await page.click("form[action='/app/tasks/new'] button")
    task_url = page.url.split("#")[0]
    assert "/app/tasks/" in task_url, await page.inner_text("main")
    task_id = int(task_url.rstrip("/").rsplit("/", 1)[1])
    await page.select_option("select[name=to_user_id]", str(colleague["id"]))
    await page.fill("textarea[name=comment]", f"Please call them first {tag}")
    await shoot(page, "task-page")
    async with page.expect_navigation():
        await page.click(f"form[action='/app/tasks/{task_id}/handoff'] button")
    errors = page.locator(".error, .field-error")
    assert await errors.count() == 0, await errors.all_inner_texts()

    # The colleague: My day lists the handed task with the comment; the task page; the client.
    await second_page.goto("/app")
    handed = second_page.locator("#handed li", has_text=f"Send the offer {tag}")
    assert await handed.count() == 1, await second_page.inner_text("#handed")
    text = await handed.inner_text()
    assert f"Please call them first {tag}" in text and f"Owner {tag}" in text
    await shoot(second_page, "my-day-handed")
    async with second_page.expect_navigation():
        await handed.locator(f"a[href='/app/tasks/{task_id}']").click()
    assert f"Send the offer {tag}" in await second_page.inner_text("h1")
    history = await second_page.inner_text(".handoffs")
    assert f"Owner {tag} handed it to Colleague {tag}" in history
    assert f"Please call them first {tag}" in history
    # The colleague accepts the hand-off; the task page then says when.
    assert "Not accepted yet" in await second_page.inner_text(".task-accepted")
    async with second_page.expect_navigation():
        await second_page.click(f"form[action='/app/tasks/{task_id}/accept'] button")
    assert "Not accepted yet" not in await second_page.inner_text(".task-accepted")
    async with second_page.expect_navigation():
        await second_page.click("a.client-link")
    assert second_page.url.split("#")[0].endswith(card_url)
    assert f"Journey Handoff {tag} Ltd" in await second_page.inner_text("h1")
    response = await second_page.goto(card_url)
    assert response is not None and response.status == 200
    await shoot(second_page, "card-shared-by-handoff")
