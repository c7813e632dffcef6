"""Products, price lists (currency, client group, validity, discount), proposals as HTML and
PDF from a company template, documents and the invoice event."""

from __future__ import annotations

import io

import pytest
from sales_helpers import open_deal

pytestmark = pytest.mark.plugins("sales")


async def _catalogue(crm, admin):
    ids = {}
    for sku, name in (("LIC", "Лицензия CRM"), ("IMPL", "Внедрение")):
        r = await crm.post("/api/sales/products", admin, json={"sku": sku, "name": name})
        assert r.status_code == 201, r.text
        ids[sku] = r.json()["id"]
    r = await crm.post("/api/sales/products", admin, json={"sku": "LIC", "name": "dup"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "sku"
    base = {
        "name": "Базовый",
        "currency": "RUB",
        "valid_from": "2026-01-01",
        "prices": [
            {"product_id": ids["LIC"], "price": "12000"},
            {"product_id": ids["IMPL"], "price": "45000"},
        ],
    }
    assert (await crm.post("/api/sales/price-lists", admin, json=base)).status_code == 201
    partner = {
        "name": "Партнёрам",
        "currency": "RUB",
        "client_group": "partner",
        "discount_pct": "10",
        "valid_from": "2026-01-01",
        "valid_to": "2026-06-30",
        "prices": [{"product_id": ids["LIC"], "price": "11000"}],
    }
    assert (await crm.post("/api/sales/price-lists", admin, json=partner)).status_code == 201
    bad = {**base, "valid_to": "2025-12-31"}
    r = await crm.post("/api/sales/price-lists", admin, json=bad)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "valid_to"
    return ids


async def test_prices_follow_currency_group_and_dates(crm, world, frozen_clock):
    admin, anna = world["admin"], world["anna"]
    ids = await _catalogue(crm, admin)
    party = world["anna_party"]["id"]
    r = await crm.get("/api/sales/prices", anna, params={"product_id": ids["LIC"], "party_id": party})
    assert r.json()["price"] == "12000.00" and r.json()["discount_pct"] == "0.00"
    r = await crm.patch(f"/api/parties/{party}", anna, json={"custom": {"sales_client_group": "partner"}})
    assert r.status_code == 200, r.text
    r = await crm.get("/api/sales/prices", anna, params={"product_id": ids["LIC"], "party_id": party})
    assert r.json()["price"] == "11000.00" and r.json()["discount_pct"] == "10.00"
    # After the partner list expires the general price applies again.
    r = await crm.get(
        "/api/sales/prices", anna, params={"product_id": ids["LIC"], "party_id": party, "on": "2026-07-01"}
    )
    assert r.json()["price"] == "12000.00"
    r = await crm.get("/api/sales/prices", anna, params={"product_id": ids["LIC"], "currency": "EUR"})
    assert r.status_code == 404
    # Deal lines take the price and discount: 2 × 11000 − 10% + 1 × 45000 = 64800.
    deal = await open_deal(
        crm,
        anna,
        party,
        lines=[{"product_id": ids["LIC"], "quantity": "2"}, {"product_id": ids["IMPL"], "quantity": "1"}],
    )
    assert deal["amount"] == "64800.00"
    assert [(line["unit_price"], line["amount"]) for line in deal["lines"]] == [
        ("11000.00", "19800.00"),
        ("45000.00", "45000.00"),
    ]


async def test_proposal_pdf_lists_the_products_and_total_and_is_versioned(crm, world, frozen_clock):
    from pypdf import PdfReader

    anna = world["anna"]
    deal = await open_deal(
        crm,
        anna,
        world["anna_party"]["id"],
        lines=[
            {"name": "Лицензия CRM «Тессера»", "quantity": "3", "unit_price": "12000"},
            {"name": "Обучение менеджеров", "quantity": "1", "unit_price": "30000", "discount_pct": "5"},
        ],
    )
    assert deal["amount"] == "64500.00"
    r = await crm.post(f"/api/sales/deals/{deal['id']}/proposals", anna)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["number"] == "КП-2026-00001" and first["version"] == 1 and first["total"] == "64500.00"
    assert "Лицензия CRM «Тессера»" in first["html"] or "Тессера" in first["html"]

    r = await crm.get(f"/api/sales/proposals/{first['id']}/pdf", anna)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/pdf")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(r.content)).pages)
    flat = " ".join(text.split())
    assert "Лицензия CRM" in flat and "Обучение менеджеров" in flat
    assert "64 500,00" in flat and "КП-2026-00001" in flat

    # The company replaces the template; the next version uses it, the number stays.
    r = await crm.post(
        "/api/sales/proposal-templates", world["admin"], json={"name": "Наш", "body": "<p>{{ oops </p>"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    body = (
        "<h1>Предложение {{ number }}/{{ version }}</h1>{% for l in lines %}<p>{{ l.name }}</p>{% endfor %}"
    )
    body += "<p>ИТОГО {{ total|money }} {{ currency }}</p>"
    r = await crm.post("/api/sales/proposal-templates", world["admin"], json={"name": "Наш", "body": body})
    assert r.status_code == 201, r.text
    r = await crm.post(f"/api/sales/deals/{deal['id']}/proposals", anna)
    second = r.json()
    assert second["number"] == first["number"] and second["version"] == 2
    assert "ИТОГО 64 500,00 RUB" in second["html"] and "Предложение КП-2026-00001/2" in second["html"]
    listed = (await crm.get(f"/api/sales/deals/{deal['id']}/proposals", anna)).json()
    assert [p["version"] for p in listed] == [1, 2]
    # The proposal is in the deal's history and ticked the proposal stage requirement later.
    from tessera_sales import integration

    kinds = [i["kind"] for i in await integration.timeline(world["anna_party"]["id"])]
    assert kinds.count("sales.proposal") == 2
    # Another team cannot read it.
    assert (await crm.get(f"/api/sales/proposals/{first['id']}", world["olena"])).status_code == 404


async def test_invoice_is_published_as_an_event(crm, world, frozen_clock):
    from tessera.events import DomainEventRow

    anna = world["anna"]
    deal = await open_deal(crm, anna, world["anna_party"]["id"])
    r = await crm.post(f"/api/sales/deals/{deal['id']}/documents", anna, json={"kind": "invoice"})
    assert r.status_code == 201, r.text
    invoice = r.json()
    assert invoice["number"] == "СЧ-2026-00001" and invoice["amount"] == "100000.00"
    assert invoice["due_on"] == "2026-03-12"
    r = await crm.post(f"/api/sales/deals/{deal['id']}/documents", anna, json={"kind": "act", "amount": "-1"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"
    rows = (
        await DomainEventRow.select()
        .where(DomainEventRow.name == "sales.invoice.issued")
        .output(load_json=True)
    )
    assert len(rows) == 1
    payload = rows[0]["payload"]
    assert payload["amount"] == "100000.00" and payload["currency"] == "RUB"
    assert payload["party_id"] == world["anna_party"]["id"] and payload["deal_id"] == deal["id"]


async def test_the_preview_page_shows_no_script_a_template_lets_through(crm, world, frozen_clock):
    """A company's template may carry markup; the preview shown inside the app keeps the text
    and harmless tags, never a script or an event handler (nh3), while the stored HTML (what the
    client gets) stays as the template made it."""
    anna = world["anna"]
    body = (
        '<p onclick="steal()">Offer {{ number }}</p><script>alert("x")</script><img src=x onerror="steal()">'
    )
    r = await crm.post("/api/sales/proposal-templates", world["admin"], json={"name": "Risky", "body": body})
    assert r.status_code == 201, r.text
    lines = [{"name": "Licence", "quantity": "1", "unit_price": "100"}]
    deal = await open_deal(crm, anna, world["anna_party"]["id"], lines=lines)
    r = await crm.post(f"/api/sales/deals/{deal['id']}/proposals", anna)
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert "<script>" in proposal["html"]
    crm.client.cookies.clear()
    login = {"email": anna["email"], "password": "correct-horse-battery"}
    assert (await crm.client.post("/login", data=login)).status_code == 303
    page = await crm.client.get(f"/sales/proposals/{proposal['id']}")
    assert page.status_code == 200
    article = page.text.split('class="card proposal"', 1)[1].split("</article>", 1)[0]
    assert "Offer " in article and "steal()" not in article and "<script" not in article
