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
