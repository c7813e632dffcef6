"""The web UI shell: sign-in form, dashboard, parties, client card, logging a call."""

from __future__ import annotations

import re

from tessera.api.security import SESSION_COOKIE


async def _sign_in(crm, user, password="correct-horse-battery"):
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": user["email"], "password": password})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/app"
    return r


async def _csrf(crm) -> str:
    page = await crm.client.get("/app")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


async def test_sign_in_dashboard_and_card(crm):
    manager = await crm.user("manager", name="Olga Manager")
    r = await crm.client.get("/")
    assert r.status_code in (302, 303) and r.headers["location"] == "/login"
    bad = await crm.client.post("/login", data={"email": manager["email"], "password": "wrong-password"})
    assert bad.status_code == 401 and "Wrong e-mail or password" in bad.text
    await _sign_in(crm, manager)
    assert crm.client.cookies.get(SESSION_COOKIE)
    party = (await crm.post("/api/parties", manager, json={"name": "ООО «Ромашка»"})).json()
    dash = await crm.client.get("/app")
    assert dash.status_code == 200 and "Olga Manager" in dash.text
    listing = await crm.client.get("/app/parties", params={"q": "ромаш"})
    assert "ООО «Ромашка»" in listing.text.replace("&#171;", "«").replace("&#187;", "»")
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert card.status_code == 200 and "Log a call" in card.text


async def test_logging_a_call_from_the_card_needs_the_form_token(crm):
    manager = await crm.user("manager")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    await _sign_in(crm, manager)
    url = f"/app/parties/{party['id']}/activities"
    forged = await crm.client.post(url, data={"type": "call", "subject": "Forged"})
    assert forged.status_code == 403
    token = await _csrf(crm)
    r = await crm.client.post(
        url,
        data={
            "csrf_token": token,
            "type": "call",
            "subject": "Discussed the contract",
            "agreements": "Send it",
        },
    )
    assert r.status_code == 303
    acts = (await crm.get("/api/activities", manager, params={"party_id": party["id"]})).json()["items"]
    assert [a["subject"] for a in acts] == ["Discussed the contract"]
    assert acts[0]["status"] == "done" and acts[0]["agreements"] == "Send it"
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert "Discussed the contract" in card.text


async def test_a_manager_cannot_open_another_managers_client(crm):
    owner = await crm.user("manager")
    other = await crm.user("manager")
    party = (await crm.post("/api/parties", owner, json={"name": "Secret Client"})).json()
    await _sign_in(crm, other)
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert card.status_code == 404 and "Secret Client" not in card.text
    listing = await crm.client.get("/app/parties")
    assert "Secret Client" not in listing.text


def _field_error(text: str, field: str) -> str | None:
    """The error shown beside ``field`` on a form (its ``<p class="field">``), or None."""
    for block in re.findall(r'<p class="field">(.*?)</p>', text, re.S):
        if f'name="{field}"' in block:
            match = re.search(r'class="field-error"[^>]*>([^<]+)<', block)
            return match.group(1) if match else None
    raise AssertionError(f"no field {field} on the page")


async def test_the_card_form_refuses_what_the_api_refuses_beside_the_field(crm):
    manager = await crm.user("manager")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    await _sign_in(crm, manager)
    token = await _csrf(crm)
    url = f"/app/parties/{party['id']}/activities"
    good = {"csrf_token": token, "type": "call", "subject": "Call about prices", "outcome": "Agreed"}
    long_subject = "x" * 200_000
    cases = [
        ({"type": "fax"}, "type", "is not one of the allowed choices"),
        ({"subject": ""}, "subject", "must not be blank"),  # the API's input guard says so too
        ({"subject": long_subject}, "subject", "must be at most 500 characters"),
        ({"starts_at": "31.12.2026 10:00"}, "starts_at", "is not a valid date and time"),
    ]
    for change, field, message in cases:
        sent = {**good, **change}
        r = await crm.client.post(url, data=sent)
        assert r.status_code == 422, (field, r.status_code)
        assert "text/html" in r.headers["content-type"]
        assert _field_error(r.text, field) == message, field
        others = {"type", "subject", "starts_at"} - {field}
        assert all(_field_error(r.text, other) is None for other in others)
        assert "Invalid isoformat" not in r.text and "Expected `" not in r.text
        # What the user typed is still in the form (a bad value too, except the huge one).
        assert 'value="Call about prices"' in r.text or field == "subject"
        assert ">Agreed</textarea>" in r.text
        if field == "starts_at":
            assert 'value="31.12.2026 10:00"' in r.text
        assert long_subject not in r.text or field == "subject"
        # The API refuses the same values for the same field.
        api_body = {"type": "call", "subject": "s", "starts_at": "2026-03-01T10:00:00+00:00"}
        api_body.update({k: v for k, v in change.items()})
        api = await crm.post("/api/activities", manager, json={**api_body, "party_id": party["id"]})
        assert api.status_code == 422 and [e["field"] for e in api.json()["errors"]] == [field]
    acts = (await crm.get("/api/activities", manager, params={"party_id": party["id"]})).json()["items"]
    assert acts == []


async def test_card_colours_overdue_planned_items_not_future_ones(crm, frozen_clock):
    from datetime import timedelta

    manager = await crm.user("manager")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    now = frozen_clock()
    for subject, when in (("Overdue call", now - timedelta(days=2)), ("Next week", now + timedelta(days=7))):
        body = {
            "type": "call",
            "subject": subject,
            "status": "planned",
            "starts_at": when.isoformat(),
            "party_id": party["id"],
        }
        assert (await crm.post("/api/activities", manager, json=body)).status_code == 201
    await _sign_in(crm, manager)
    card = (await crm.client.get(f"/app/parties/{party['id']}")).text
    items = {
        subject: re.search(r'<li class="tl-item ([\w-]+)">((?:(?!</li>).)*?)' + subject, card, re.S)
        for subject in ("Overdue call", "Next week")
    }
    # Classes for the colour, and a word for who does not see colours.
    assert items["Overdue call"] and items["Overdue call"].group(1) == "tl-overdue"
    assert "Overdue" in items["Overdue call"].group(2)
    assert items["Next week"] and items["Next week"].group(1) == "tl-planned"
    assert "Planned" in items["Next week"].group(2) and "Overdue" not in items["Next week"].group(2)


async def test_a_broken_plugin_panel_leaves_the_card_and_my_day_working(crm):
    """A plugin whose card or dashboard widget raises (or returns garbage) gets a "could not
    be shown" panel; the card, My day and the other plugins' panels still show."""
    from types import SimpleNamespace

    from tessera.hookspecs import hookimpl

    def broken(**_kwargs):
        raise RuntimeError("widget bug")

    def working_card(party_id, principal):
        return [{"title": "Loyalty points", "rows": [{"label": "Points", "value": 120}]}]

    def working_day(principal):
        return [{"title": "Points to spend", "items": [{"label": "Acme: 120"}]}]

    crm.pm.register(
        SimpleNamespace(
            tessera_card_widgets=hookimpl(lambda party_id, principal: broken()),
            tessera_dashboard_widgets=hookimpl(lambda principal: "not a list"),
        ),
        name="broken",
    )
    crm.pm.register(
        SimpleNamespace(
            tessera_card_widgets=hookimpl(working_card), tessera_dashboard_widgets=hookimpl(working_day)
        ),
        name="loyal",
    )
    manager = await crm.user("manager")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    await _sign_in(crm, manager)
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert card.status_code == 200
    assert "Loyalty points" in card.text and "Acme" in card.text
    assert "The panel of the plugin “broken” could not be shown" in card.text
    day = await crm.client.get("/app")
    assert day.status_code == 200
    assert "Points to spend" in day.text
    assert "The panel of the plugin “broken” could not be shown" in day.text


def test_the_header_shows_three_plugin_entries_and_puts_the_rest_in_more() -> None:
    """However many plugins a company enables, the header stays one row: past three visible
    plugin entries, the rest go into "More" (entries already marked ``more`` stay there)."""
    from tessera.web.pages import header_nav

    items = [{"label": f"P{i}", "href": f"/p{i}"} for i in range(5)]
    items.insert(1, {"label": "Board", "href": "/board", "more": True})
    out = header_nav(items)
    assert [i["label"] for i in out if not i.get("more")] == ["P0", "P1", "P2"]
    assert [i["label"] for i in out if i.get("more")] == ["Board", "P3", "P4"]
    assert "more" not in items[0]  # the plugins' own dicts are left as they were
