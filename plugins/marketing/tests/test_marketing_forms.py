"""Web-form leads: a submission matches an existing party by a phone written in another
format and goes to its manager, new people are distributed round-robin, and spam (honeypot
filled, over the rate limit) creates nothing."""

from __future__ import annotations

import html
from typing import Any

import pytest
from tessera.entities.tables import Party

pytestmark = pytest.mark.plugins("marketing")


async def test_web_form_leads(crm: Any, frozen_clock: Any) -> None:
    from tessera_marketing.tables import Lead

    admin = await crm.user("admin")
    anna = await crm.user("manager", name="Anna")
    boris = await crm.user("manager", name="Boris")
    known = await crm.post(
        "/api/parties", anna, json={"name": "Known Ltd", "phones": [{"number": "+7 495 123-45-67"}]}
    )
    assert known.status_code == 201, known.text
    campaign = await crm.post(
        "/api/marketing/campaigns", admin, json={"name": "Site", "channel": "web", "starts_on": "2026-03-01"}
    )
    form = await crm.post(
        "/api/marketing/web-forms",
        admin,
        json={
            "key": "contact-us",
            "name": "Contact us",
            "campaign_id": campaign.json()["id"],
            "fields": {"name": "name", "email": "email", "tel": "phone", "message": "note"},
            "allowed_origins": ["https://shop.example"],
            "per_ip_per_hour": 4,
            "distribution": {"mode": "round_robin", "user_ids": [anna["id"], boris["id"]]},
        },
    )
    assert form.status_code == 201, form.text
    bad = await crm.post(
        "/api/marketing/web-forms", admin, json={"key": "x2", "name": "x", "fields": {"a": "shoe"}}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "fields.a"

    async def submit(body: Any, **kwargs: Any) -> Any:
        return await crm.client.post("/api/marketing/forms/contact-us", **({"json": body} | kwargs))

    parties_before = await Party.count()
    # The known client, its phone written another way: matched, handed to its manager.
    r = await submit(
        {"name": "Ivan", "tel": "8 (495) 123 45 67", "message": "Call me"},
        headers={"Origin": "https://shop.example"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    lead = (await Lead.select().where(Lead.source == "form").output(load_json=True))[0]
    assert lead["party_id"] == known.json()["id"] and lead["assignee_id"] == anna["id"]
    assert lead["campaign_id"] == campaign.json()["id"] and lead["note"] == "Call me"
    # Honeypot filled: answered like a success, nothing stored.
    r = await submit({"name": "Bot", "email": "bot@spam.example", "website_url": "http://spam"})
    assert r.status_code == 202
    # Two new people over an HTML form: new parties, round-robin Anna then Boris.
    for email in ("new1@client.example", "new2@client.example"):
        r = await submit(None, data={"name": "New", "email": email})
        assert r.status_code == 202, r.text
    new = await Lead.select(Lead.assignee_id).where(Lead.source == "form").order_by(Lead.id)
    assert [n["assignee_id"] for n in new] == [anna["id"], anna["id"], boris["id"]]
    assert await Party.count() == parties_before + 2
    # The 4 submissions counted this hour (the spam one is not) and a fifth: 429, nothing stored.
    r = await submit({"email": "new3@client.example"})
    assert r.status_code == 202
    r = await submit({"email": "new4@client.example"})
    assert r.status_code == 429
    assert await Lead.count().where(Lead.source == "form") == 4
    assert await Party.count() == parties_before + 3
    # Other sites get no CORS permission; an unknown form is 404; a bad e-mail is 422 naming it.
    r = await crm.client.options(
        "/api/marketing/forms/contact-us", headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in r.headers
    assert (await crm.client.post("/api/marketing/forms/nope", json={})).status_code == 404
    frozen_clock.advance(hours=1)
    r = await submit({"email": "not-an-address", "tel": ""})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email"
    # The lead inbox: Anna's leads.
    inbox = (await crm.get("/api/marketing/leads", admin, params={"assignee_id": anna["id"]})).json()
    assert [item["source"] for item in inbox["items"]] == ["form", "form", "form"]


async def test_demo_data(crm: Any, frozen_clock: Any) -> None:
    import random

    from tessera.demo import DemoContext, system_principal
    from tessera_marketing import demo
    from tessera_marketing.tables import Campaign, Lead, Segment, WebForm

    ctx = DemoContext(random=random.Random(5), admin=system_principal())
    ctx.managers = [await crm.user("manager"), await crm.user("manager")]
    ctx.parties = [
        (await crm.post("/api/parties", ctx.managers[i % 2], json={"name": f"Demo {i}"})).json()
        for i in range(6)
    ]
    await demo.load(ctx)
    assert await Campaign.count() == 3 and await Segment.count() == 3
    assert await Lead.count().where(Lead.source == "form") == 3
    await demo.load(ctx)  # idempotent
    assert await Campaign.count() == 3
    # The pages, in Russian: campaigns with their return and ROI chart, segments, the matrix.
    admin = await crm.user("admin")
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "ru"
    r = await crm.client.post("/login", data={"email": admin["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303, r.text
    for url, words in (
        ("/marketing/campaigns", ["Выставка «Связь-2026»", "Окупаемость", "Выставка</td>"]),
        ("/marketing/segments", ["Ключевые клиенты без встреч 90 дней", "Статический"]),
        ("/marketing/classes", ["Матрица ABC/XYZ"]),
        ("/marketing/leads", ["Лиды", "Веб-форма", "Прошу КП"]),
        ("/marketing/forms", ["Обратная связь на сайте", "/api/marketing/forms/contact-us"]),
        (
            f"/marketing/forms/{(await WebForm.select(WebForm.id).first())['id']}",  # type: ignore[index]
            ["Разместите эту форму на сайте", 'name="website_url"', "Ваше имя *", "ООО «Север»"],
        ),
    ):
        r = await crm.client.get(url)
        assert r.status_code == 200, r.text[:500]
        text = html.unescape(r.text)
        for word in words:
            assert word in text, (url, word)


async def test_an_older_manager_role_gets_the_lead_and_survey_permissions(crm: Any) -> None:
    """A deployment whose ``manager`` role was created before surveys and the lead inbox: the
    plugin's migration adds exactly the missing grants, once, and managers then read their
    leads; an administrator's own role is left alone."""
    from importlib import import_module

    from tessera.entities.tables import Role

    migration = import_module("tessera_marketing.piccolo_migrations.marketing_2026_12_07t00_00_00_000000")
    row = (await Role.select(Role.permissions).where(Role.name == "manager"))[0]
    older = [p for p in row["permissions"] if p not in migration.GRANTS]
    await Role.update({Role.permissions: older}).where(Role.name == "manager")
    custom = await Role.insert(Role(name="intern", permissions=["party.read"], scope="own"))
    anna = await crm.user("manager", name="Anna")
    assert (await crm.get("/api/marketing/leads", anna)).status_code == 403

    assert await migration.grant_to_managers() == 4
    assert await migration.grant_to_managers() == 0  # run again: nothing more to add
    after = (await Role.select(Role.permissions).where(Role.name == "manager"))[0]["permissions"]
    assert after == older + migration.GRANTS
    intern = await Role.select(Role.permissions).where(Role.id == custom[0]["id"])
    assert intern[0]["permissions"] == ["party.read"]
    boris = await crm.user("manager", name="Boris")
    assert (await crm.get("/api/marketing/leads", boris)).status_code == 200
