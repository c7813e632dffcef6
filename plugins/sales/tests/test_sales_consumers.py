"""The contracts future plugins rely on, proven with a test-only consumer plugin
(``consumer_plugin``) that knows sales only through hooks and events: receivables gets
invoices (and won/lost deals) after commit with everything it needs; marketing supplies
campaigns a deal links to, and unknown or closed campaigns are refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import consumer_plugin
import pytest
from sales_helpers import open_deal, to_proposal, win_from_proposal

pytestmark = pytest.mark.plugins("sales")


@pytest.fixture
def consumer(crm: Any) -> Iterator[Any]:
    consumer_plugin.DATABASE_URL = crm.settings.resolved_database_url
    consumer_plugin.RECEIVED.clear()
    crm.pm.register(consumer_plugin, name="consumer")
    yield consumer_plugin
    crm.pm.unregister(name="consumer")


async def test_receivables_get_the_invoice_after_commit(crm, world, frozen_clock, consumer):
    anna = world["anna"]
    deal = await open_deal(crm, anna, world["anna_party"]["id"], amount="120000.50", currency="USD")
    await to_proposal(crm, anna, deal)
    await win_from_proposal(crm, anna, deal["id"])
    r = await crm.post(
        f"/api/sales/deals/{deal['id']}/documents", anna, json={"kind": "invoice", "due_on": "2026-03-20"}
    )
    assert r.status_code == 201, r.text
    invoice = r.json()
    names = [e["name"] for e in consumer.RECEIVED]
    assert names == ["sales.deal.won", "sales.invoice.issued"]
    won, issued = consumer.RECEIVED
    # Delivered after commit: another connection already saw the deal won and the invoice
    # numbered (delivered inside the transaction, it would see "open" and no invoice).
    assert won["seen_outside"] == "won", "deal.won delivered before the win committed"
    assert issued["seen_outside"] == invoice["number"], "invoice.issued delivered before its commit"
    assert won["payload"]["amount"] == "120000.50" and won["payload"]["currency"] == "USD"
    assert issued["payload"] == {
        "id": invoice["id"],
        "number": invoice["number"],
        "deal_id": deal["id"],
        "party_id": world["anna_party"]["id"],
        "owner_id": anna["id"],
        "amount": "120000.50",
        "currency": "USD",
        "issued_on": "2026-03-02",
        "due_on": "2026-03-20",
    }
    assert invoice["number"].startswith("СЧ-2026-")

    # A refused invoice (lost deal) announces nothing.
    lost = await open_deal(crm, anna, world["anna_party"]["id"])
    reasons = (await crm.get("/api/sales/loss-reasons", anna)).json()
    r = await crm.post(
        f"/api/sales/deals/{lost['id']}/close",
        anna,
        json={"outcome": "lost", "loss_reason_id": reasons[0]["id"]},
    )
    assert r.status_code == 200
    r = await crm.post(f"/api/sales/deals/{lost['id']}/documents", anna, json={"kind": "invoice"})
    assert r.status_code == 409
    assert [e["name"] for e in consumer.RECEIVED][2:] == ["sales.deal.lost"]
    assert consumer.RECEIVED[2]["payload"]["loss_reason_id"] == reasons[0]["id"]
    assert consumer.RECEIVED[2]["seen_outside"] == "lost"


async def test_a_deal_links_to_a_campaign_a_plugin_supplies(crm, world, consumer):
    anna = world["anna"]
    party = world["anna_party"]["id"]
    listed = (await crm.get("/api/sales/sources", anna)).json()
    assert [(c["id"], c["plugin"]) for c in listed["campaigns"]] == [(501, "consumer")]
    deal = await open_deal(crm, anna, party, campaign_id=501)
    assert deal["campaign_id"] == 501 and deal["source"] == "exhibition"
    assert (await crm.get("/api/sales/deals", anna, params={"campaign_id": 501})).json()["items"][0][
        "id"
    ] == deal["id"]
    for campaign_id, message in ((999, "no campaign 999"), (502, "is closed")):
        r = await crm.post(
            "/api/sales/deals", anna, json={"title": "X", "party_id": party, "campaign_id": campaign_id}
        )
        assert r.status_code == 422, r.text
        error = r.json()["errors"][0]
        assert error["field"] == "campaign_id" and message in error["message"]
    r = await crm.patch(f"/api/sales/deals/{deal['id']}", anna, json={"campaign_id": 999})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "campaign_id"
    # Nothing half-written: the refused deals do not exist.
    assert (await crm.get("/api/sales/deals/count", anna)).json()["count"] == 1


async def test_without_a_campaign_plugin_campaign_ids_are_refused(crm, world):
    r = await crm.post(
        "/api/sales/deals",
        world["anna"],
        json={"title": "X", "party_id": world["anna_party"]["id"], "campaign_id": 501},
    )
    assert r.status_code == 422
    assert "no enabled plugin supplies campaigns" in r.json()["errors"][0]["message"]
