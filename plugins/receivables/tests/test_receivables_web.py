"""The receivables pages for a signed-in collector: the worklist shows their overdue client,
a promise recorded from a call appears on the client card; the ageing table drills down to
a cell's invoices; the statement takes a payment applied to the chosen invoice."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from receivables_helpers import post

pytestmark = pytest.mark.plugins("receivables")

API = "/api/receivables"


async def _sign_in(crm: Any, user: dict[str, Any], language: str = "en") -> None:
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = language
    r = await crm.client.post("/login", data={"email": user["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303, r.text


async def _page(crm: Any, url: str, status: int = 200) -> str:
    r = await crm.client.get(url)
    assert r.status_code == status, r.text[:800]
    return html.unescape(r.text)


def _csrf(text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match
    return match.group(1)


async def test_collector_records_a_promise_and_the_card_shows_it(
    crm: Any, frozen_clock: Any, ledger: Any
) -> None:
    ap, admin = ledger["anna_party"], ledger["admin"]
    inv = await post(
        crm,
        f"{API}/invoices",
        admin,
        {
            "party_id": ap["id"],
            "number": "A-77",
            "issue_date": "2026-01-01",
            "due_date": "2026-02-01",
            "amount": "1500",
        },
    )
    await _sign_in(crm, ledger["anna"])
    work = await _page(crm, "/receivables/worklist")
    assert "Anna's client" in work and "My overdue clients" in work
    token = _csrf(work)
    r = await crm.client.post(
        "/receivables/promises",
        data={
            "csrf_token": token,
            "party_id": str(ap["id"]),
            "amount": "abc",
            "currency": "RUB",
            "promised_on": "2026-03-10",
        },
    )
    assert r.status_code == 422 and 'id="error-amount"' in r.text
    r = await crm.client.post(
        "/receivables/promises",
        data={
            "csrf_token": token,
            "party_id": str(ap["id"]),
            "amount": "1500",
            "currency": "RUB",
            "promised_on": "2026-03-06",
            "notes": "Accountant back Monday",
        },
    )
    assert r.status_code == 303, r.text
    card = await _page(crm, f"/app/parties/{ap['id']}")
    assert "Promise to pay" in card and "1500.00 RUB — 2026-03-06" in card
    work = await _page(crm, "/receivables/worklist")
    assert "2026-03-06" in work
    # Russian pages.
    await _sign_in(crm, ledger["anna"], "ru")
    assert "Обещание" in await _page(crm, f"/receivables/parties/{ap['id']}")

    # The accountant: ageing -> the cell's invoices; a payment applied to the invoice.
    await _sign_in(crm, admin)
    table = await _page(crm, "/receivables/ageing")
    assert "<svg" in table
    cell = re.search(r'href="(/receivables/ageing/invoices\?[^"]*bucket=1-30[^"]*)"', table)
    assert cell, table[:2000]
    assert "A-77" in await _page(crm, cell.group(1))
    statement = await _page(crm, f"/receivables/parties/{ap['id']}")
    r = await crm.client.post(
        f"/receivables/parties/{ap['id']}/payments",
        data={
            "csrf_token": _csrf(statement),
            "kind": "payment",
            "paid_on": "2026-03-02",
            "amount": "400",
            "currency": "RUB",
            "invoice_id": str(inv["id"]),
        },
    )
    assert r.status_code == 303, r.text
    assert (await crm.get(f"{API}/invoices/{inv['id']}", admin)).json()["balance"] == "1100.00"
