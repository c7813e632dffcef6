"""The web form pages (issue 18, items 6 and 8): an admin defines a form on its page (fields
mapped to the client's fields, required flags, allowed sites, distribution), refused values
shown beside their fields in the admin's language; the form's embed snippet posted by a
visitor creates a lead that the inbox and the form's page show with the manager it was handed
to; the inbox's "take" and "assign" change the lead's manager."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.plugins("marketing")


def _error(text: str, name: str) -> str:
    match = re.search(rf'<span class="field-error" id="error-{re.escape(name)}">([^<]*)</span>', text)
    assert match, (name, re.findall(r'class="field-error" id="([^"]+)"', text))
    return match.group(1)


def _snippet(raw: str) -> str:
    """The embed snippet as the admin copies it (the page's raw HTML holds it escaped)."""
    match = re.search(r"<textarea id=\"snippet\"[^>]*>(.*?)</textarea>", raw, re.S)
    assert match
    return html.unescape(match.group(1))


def _definition(csrf: str, anna: dict[str, Any], boris: dict[str, Any], **changes: str) -> dict[str, str]:
    data = {
        "csrf_token": csrf,
        "name": "Contact us",
        "key": "contact-us",
        "active": "on",
        "field-0-name": "fullname",
        "field-0-target": "name",
        "field-0-label": "Your name",
        "field-0-required": "on",
        "field-1-name": "mail",
        "field-1-target": "email",
        "field-2-name": "tel",
        "field-2-target": "phone",
        "field-3-name": "message",
        "field-3-target": "note",
        "field-4-name": "firm",
        "field-4-target": "company",
        "field-5-name": "role",
        "field-5-target": "position",
        "field-6-name": "",
        "field-6-target": "name",
        "allowed_origins": "https://shop.example\n",
        "source": "web",
        "mode": "round_robin",
        f"user-{anna['id']}": "on",
        f"user-{boris['id']}": "on",
        "honeypot": "website_url",
        "per_ip_per_hour": "50",
        "per_form_per_hour": "500",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


async def test_define_a_form_post_its_snippet_and_see_the_lead_distributed(crm: Any) -> None:
    from tessera.entities.tables import Contact, Party
    from tessera_marketing.tables import Lead

    admin = await crm.user("admin")
    anna = await crm.user("manager", name="Anna Manager")
    boris = await crm.user("manager", name="Boris Manager")

    # Refused values, in Russian, beside their fields; what the admin typed is kept.
    csrf = await crm.sign_in(admin, language="ru")
    assert "Новая веб-форма" in await crm.page("/marketing/forms/new")
    r = await crm.client.post("/marketing/forms/new", data=_definition(csrf, anna, boris, key="Contact Us!"))
    assert r.status_code == 422
    assert _error(r.text, "key") == "2–64 строчные латинские буквы, цифры, - и _"
    assert 'value="Contact Us!"' in r.text
    r = await crm.client.post(
        "/marketing/forms/new",
        data=_definition(csrf, anna, boris, **{f"user-{anna['id']}": None, f"user-{boris['id']}": None}),
    )
    assert r.status_code == 422 and _error(r.text, "user_ids") == "выберите хотя бы одного менеджера"
    r = await crm.client.post(
        "/marketing/forms/new", data=_definition(csrf, anna, boris, allowed_origins="shop.example")
    )
    assert (
        r.status_code == 422 and _error(r.text, "allowed_origins") == "адрес сайта вида https://example.com"
    )
    r = await crm.client.post(
        "/marketing/forms/new",
        data=_definition(csrf, anna, boris, **{"field-1-target": "name", "field-2-target": "note"}),
    )
    assert r.status_code == 422 and _error(r.text, "fields") == "укажите поле для e-mail или телефона"
    assert await crm.get("/api/marketing/web-forms", admin) and (
        (await crm.get("/api/marketing/web-forms", admin)).json()["items"] == []
    )

    # A good definition: created through the API's rules, the page shows the snippet.
    csrf = await crm.sign_in(admin)
    r = await crm.client.post("/marketing/forms/new", data=_definition(csrf, anna, boris))
    assert r.status_code == 303, r.text[:2000]
    page_url = r.headers["location"]
    stored = (await crm.get("/api/marketing/web-forms", admin)).json()["items"][0]
    assert stored["fields"] == {
        "fullname": "name",
        "mail": "email",
        "tel": "phone",
        "message": "note",
        "firm": "company",
        "role": "position",
    }
    assert stored["required"] == ["fullname"] and stored["labels"] == {"fullname": "Your name"}
    assert stored["distribution"]["user_ids"] == sorted([anna["id"], boris["id"]])
    assert stored["allowed_origins"] == ["https://shop.example"]
    snippet = _snippet((await crm.client.get(page_url)).text)
    action = re.search(r'<form method="post" action="([^"]+)">', snippet).group(1)  # type: ignore[union-attr]
    assert urlsplit(action).path == "/api/marketing/forms/contact-us"
    names = re.findall(r'name="([^"]+)"', snippet)
    assert names == ["fullname", "mail", "tel", "message", "firm", "role", "website_url"]
    assert "Your name *<br>" in snippet and "E-mail<br>" in snippet and "Phone<br>" in snippet
    assert '<input type="text" name="fullname" required>' in snippet
    assert '<input type="email" name="mail">' in snippet

    # A visitor posts the snippet's fields as a browser does (form-encoded).
    def filled(**values: str) -> dict[str, str]:
        return {name: values.get(name, "") for name in names}

    post = urlsplit(action).path
    r = await crm.client.post(
        post,
        data=filled(fullname="Ivan Petrov", mail="ivan@client.example", message="Please call"),
        headers={"Origin": "https://shop.example"},
    )
    assert r.status_code == 202, r.text
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    # A required field left empty: 422 naming that field; the honeypot filled: nothing stored.
    r = await crm.client.post(post, data=filled(mail="olga@client.example"))
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "fullname", "message": "this field is required"}
    ]
    r = await crm.client.post(post, data=filled(fullname="Olga", mail="olga at client"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "mail"
    r = await crm.client.post(post, data=filled(fullname="Bot", mail="bot@spam.example", website_url="x"))
    assert r.status_code == 202
    r = await crm.client.post(
        post, data=filled(fullname="Olga", tel="+7 (916) 000-11-22", firm="Sever Ltd", role="Buyer")
    )
    assert r.status_code == 202, r.text
    leads = await Lead.select().where(Lead.source == "form").order_by(Lead.id)
    assert [lead["assignee_id"] for lead in leads] == [anna["id"], boris["id"]]
    assert await Party.count().where(Party.name == "Bot") == 0
    ivan = await Party.select(Party.id, Party.kind).where(Party.name == "Ivan Petrov").first()
    assert ivan is not None and leads[0]["party_id"] == ivan["id"] and ivan["kind"] == "person"
    # Olga wrote for a company: the organisation is the client, Olga its contact.
    sever = await Party.select(Party.id, Party.kind).where(Party.name == "Sever Ltd").first()
    assert sever is not None and leads[1]["party_id"] == sever["id"] and sever["kind"] == "organisation"
    contacts = await Contact.select(Contact.name, Contact.position, Contact.phones).where(
        Contact.party_id == sever["id"]
    )
    assert [(c["name"], c["position"]) for c in contacts] == [("Olga", "Buyer")]
    assert "79160001122" in str(contacts[0]["phones"])

    # The form's page and the inbox show the leads with the manager each was handed to.
    page = await crm.page(page_url)
    rows = dict(re.findall(r'<tr data-lead="(\d+)">.*?<td data-assignee>([^<]*)</td>', page, re.S))
    assert rows == {str(leads[0]["id"]): "Anna Manager", str(leads[1]["id"]): "Boris Manager"}
    inbox = await crm.page(f"/marketing/leads?form_id={stored['id']}")
    assert "Ivan Petrov" in inbox and "Contact us" in inbox and "Anna Manager" in inbox
    assert "Please call" in inbox

    # Editing: a bad site address is refused beside the box, a good change is saved.
    csrf = crm.csrf(page)
    r = await crm.client.post(page_url, data=_definition(csrf, anna, boris, allowed_origins="ftp://x"))
    assert r.status_code == 422 and _error(r.text, "allowed_origins")
    r = await crm.client.post(
        page_url, data=_definition(csrf, anna, boris, **{"field-0-required": None, "mode": "least_loaded"})
    )
    assert r.status_code == 303
    stored = (await crm.get(f"/api/marketing/web-forms/{stored['id']}", admin)).json()
    assert stored["required"] == [] and stored["distribution"]["mode"] == "least_loaded"

    # Anna sees her lead in her inbox, not Boris's; the admin hands Ivan's lead to Boris and
    # takes Olga's.
    await crm.sign_in(anna)
    inbox = await crm.page("/marketing/leads")
    assert "Ivan Petrov" in inbox and "Sever Ltd" not in inbox
    await crm.page(f"/marketing/leads/{leads[1]['id']}", status=404)
    csrf = await crm.sign_in(admin)
    lead_page = await crm.page(f"/marketing/leads/{leads[1]['id']}")
    assert "Boris Manager" in lead_page and "Sever Ltd" in lead_page and "Olga" in lead_page
    r = await crm.client.post(
        f"/marketing/leads/{leads[0]['id']}",
        data={"csrf_token": csrf, "action": "assign", "assignee_id": str(boris["id"])},
    )
    assert r.status_code == 303, r.text[:1000]
    r = await crm.client.post(
        f"/marketing/leads/{leads[1]['id']}", data={"csrf_token": csrf, "action": "take"}
    )
    assert r.status_code == 303
    after = {r["id"]: r["assignee_id"] for r in await Lead.select(Lead.id, Lead.assignee_id)}
    assert after == {leads[0]["id"]: boris["id"], leads[1]["id"]: admin["id"]}


async def test_the_menu_offers_each_user_the_marketing_pages_they_may_open(crm: Any) -> None:
    """A manager reads the leads handed to them but not campaigns: their menu links the lead
    inbox, not the campaigns page that would answer 403; an administrator gets both."""
    admin = await crm.user("admin", name="Admin")
    manager = await crm.user("manager", name="Anna")
    await crm.sign_in(manager)
    menu = await crm.page("/app")
    assert 'href="/marketing/leads"' in menu and 'href="/marketing/campaigns"' not in menu
    await crm.page("/marketing/leads")
    await crm.page("/marketing/campaigns", status=403)
    await crm.sign_in(admin)
    menu = await crm.page("/app")
    assert 'href="/marketing/leads"' in menu and 'href="/marketing/campaigns"' in menu
