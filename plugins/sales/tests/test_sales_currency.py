"""Deals in several currencies: dated exchange rates, reports in the company's base currency with
the rate in force on the relevant date (numbers computed by hand), a clear 422 when a rate is
missing; and the report summary kept in step with every deal change."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sales_helpers import open_deal, to_proposal, win_from_proposal

pytestmark = pytest.mark.plugins("sales")


async def _rate(crm, user, currency, valid_from, rate):
    r = await crm.post(
        "/api/sales/rates", user, json={"currency": currency, "valid_from": valid_from, "rate": rate}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_rates_are_managed_by_admins_and_checked(crm, world):
    admin, anna = world["admin"], world["anna"]
    assert (await crm.get("/api/sales/settings", anna)).json() == {"base_currency": "RUB"}
    forbidden = await crm.post(
        "/api/sales/rates", anna, json={"currency": "USD", "valid_from": "2026-03-01", "rate": "90"}
    )
    assert forbidden.status_code == 403
    bad = await crm.post(
        "/api/sales/rates", admin, json={"currency": "USD", "valid_from": "2026-03-01", "rate": "0"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "rate"
    same = await crm.post(
        "/api/sales/rates", admin, json={"currency": "RUB", "valid_from": "2026-03-01", "rate": "1"}
    )
    assert same.status_code == 422 and same.json()["errors"][0]["field"] == "currency"
    await _rate(crm, admin, "USD", "2026-03-01", "90.5")
    # A second rate for the same day replaces the first.
    await _rate(crm, admin, "USD", "2026-03-01", "91.25")
    await _rate(crm, admin, "USD", "2026-04-01", "92")
    rows = (await crm.get("/api/sales/rates", anna, params={"currency": "USD"})).json()
    assert [(r["valid_from"], r["rate"]) for r in rows] == [
        ("2026-03-01", "91.250000"),
        ("2026-04-01", "92.000000"),
    ]


async def test_forecast_and_funnel_in_the_base_currency(crm, world, frozen_clock):
    """Today 2026-03-02. Open deals in qualification (probability 10 %):
    A 1 000 USD closing 03-20, B 2 000 USD closing 04-10, C 50 000 RUB closing 03-25,
    D 300 EUR closing 04-05. USD is 90 from 03-01 and 92 from 04-01; EUR is 100 from 02-01."""
    admin, anna = world["admin"], world["anna"]
    party = world["anna_party"]["id"]
    await _rate(crm, admin, "USD", "2026-03-01", "90")
    await _rate(crm, admin, "USD", "2026-04-01", "92")
    await _rate(crm, admin, "EUR", "2026-02-01", "100")
    for title, amount, currency, close in (
        ("A", "1000", "USD", "2026-03-20"),
        ("B", "2000", "USD", "2026-04-10"),
        ("C", "50000", "RUB", "2026-03-25"),
        ("D", "300", "EUR", "2026-04-05"),
    ):
        await open_deal(crm, anna, party, title=title, amount=amount, currency=currency, expected_close=close)
    r = await crm.get(
        "/api/sales/reports/forecast", anna, params={"date_from": "2026-03-01", "date_to": "2026-04-30"}
    )
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["base_currency"] == "RUB"
    assert f["weighted"] == [
        {"month": "2026-03", "currency": "RUB", "amount": "5000.00"},
        {"month": "2026-03", "currency": "USD", "amount": "100.00"},
        {"month": "2026-04", "currency": "EUR", "amount": "30.00"},
        {"month": "2026-04", "currency": "USD", "amount": "200.00"},
    ]
    # March: 100 USD × 90 + 5 000 RUB = 14 000; April: 200 USD × 92 + 30 EUR × 100 = 21 400.
    assert f["weighted_base"] == [
        {"month": "2026-03", "amount": "14000.00"},
        {"month": "2026-04", "amount": "21400.00"},
    ]
    # Funnel totals use the rate in force on the period's last day or today, the earlier:
    # 03-02 -> USD 90: 3 000 USD × 90 + 50 000 + 300 EUR × 100 = 350 000 RUB.
    r = await crm.get(
        "/api/sales/reports/funnel", anna, params={"date_from": "2026-03-01", "date_to": "2026-03-31"}
    )
    assert r.status_code == 200, r.text
    group = r.json()["groups"][0]
    assert group["totals_base"] == {"open": "350000.00"}
    assert sorted((d["currency"], d["amount"]) for d in group["deals"]) == [
        ("EUR", "300.00"),
        ("RUB", "50000.00"),
        ("USD", "3000.00"),
    ]


async def test_a_missing_rate_is_a_422_naming_currency_and_date(crm, world, frozen_clock):
    admin, anna = world["admin"], world["anna"]
    await open_deal(
        crm, anna, world["anna_party"]["id"], amount="500", currency="GBP", expected_close="2026-03-20"
    )
    params = {"date_from": "2026-03-01", "date_to": "2026-03-31"}
    r = await crm.get("/api/sales/reports/forecast", anna, params=params)
    assert r.status_code == 422
    error = r.json()["errors"][0]
    assert error["field"] == "currency" and "GBP" in error["message"] and "2026-03-20" in error["message"]
    # A rate that starts after the day does not help; one in force on it does.
    await _rate(crm, admin, "GBP", "2026-03-21", "110")
    assert (await crm.get("/api/sales/reports/forecast", anna, params=params)).status_code == 422
    await _rate(crm, admin, "GBP", "2026-03-01", "100")
    r = await crm.get("/api/sales/reports/forecast", anna, params=params)
    assert r.status_code == 200 and r.json()["weighted_base"] == [{"month": "2026-03", "amount": "5000.00"}]
    # Another base currency needs its own rates.
    r = await crm.put("/api/sales/settings", admin, json={"base_currency": "USD"})
    assert r.status_code == 200 and r.json() == {"base_currency": "USD"}
    r = await crm.get("/api/sales/reports/forecast", anna, params=params)
    assert r.status_code == 422 and "GBP->USD" in r.json()["errors"][0]["message"]


async def test_plan_in_dollars_counts_deals_won_in_any_currency(crm, world, frozen_clock):
    """Plan: Anna, March, 1 000 USD. Won on 03-02: 45 000 RUB (USD 90 -> 500 USD) and 300 USD.
    Actual 800 USD = 80 %."""
    admin, anna, head = world["admin"], world["anna"], world["head"]
    party = world["anna_party"]["id"]
    await _rate(crm, admin, "USD", "2026-03-01", "90")
    rub = await open_deal(crm, anna, party, title="RUB deal", amount="45000")
    usd = await open_deal(crm, anna, party, title="USD deal", amount="300", currency="USD")
    for deal in (rub, usd):
        await to_proposal(crm, anna, deal)
        await win_from_proposal(crm, anna, deal["id"])
    r = await crm.post(
        "/api/sales/plans",
        head,
        json={
            "user_id": anna["id"],
            "period_start": "2026-03-01",
            "period_end": "2026-03-31",
            "currency": "USD",
            "amount": "1000",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == {"target": "1000.00", "actual": "800.00", "percent": 80.0}


async def test_report_summary_follows_every_change(crm, world, frozen_clock):
    """Open, move, win, lose, re-price, hand over and delete deals: the summary the reports read
    equals one rebuilt from scratch."""
    from tessera_sales import stats

    anna, boris, head, admin = world["anna"], world["boris"], world["head"], world["admin"]
    party = world["anna_party"]["id"]
    a = await open_deal(crm, anna, party, title="A", amount="1000")
    b = await open_deal(crm, anna, party, title="B", amount="2000", currency="USD")
    c = await open_deal(crm, anna, party, title="C", amount="3000")
    d = await open_deal(crm, anna, party, title="D", amount="4000")
    frozen_clock.advance(days=4)
    await to_proposal(crm, anna, a)
    await win_from_proposal(crm, anna, a["id"])
    await to_proposal(crm, anna, b)
    reasons = (await crm.get("/api/sales/loss-reasons", anna)).json()
    r = await crm.post(
        f"/api/sales/deals/{b['id']}/close",
        anna,
        json={"outcome": "lost", "loss_reason_id": reasons[0]["id"]},
    )
    assert r.status_code == 200, r.text
    r = await crm.patch(f"/api/sales/deals/{c['id']}", anna, json={"amount": "3500", "currency": "EUR"})
    assert r.status_code == 200, r.text
    r = await crm.patch(f"/api/sales/deals/{c['id']}", head, json={"owner_id": boris["id"]})
    assert r.status_code == 200, r.text
    frozen_clock.advance(days=1)
    r = await crm.delete(f"/api/sales/deals/{d['id']}", admin)
    assert r.status_code == 204, r.text

    def rounded(snapshot):
        return {k: [*v[:4], Decimal(v[4]).quantize(Decimal("0.01"))] for k, v in snapshot.items()}

    kept = rounded(await stats.snapshot())
    assert kept, "the summary is empty"
    await stats.rebuild()
    assert rounded(await stats.snapshot()) == kept
    # And it says what happened: 3 deals of the cohort; A won, B lost, C open with Boris in EUR.
    deals = {(k[3], k[4], k[6]): v for k, v in kept.items() if k[0] == "deal"}
    assert deals == {
        ("won", anna["id"], "RUB"): [1, 0, 0, 0, Decimal("1000.00")],
        ("lost", anna["id"], "USD"): [1, 0, 0, 0, Decimal("2000.00")],
        ("open", boris["id"], "EUR"): [1, 0, 0, 0, Decimal("3500.00")],
    }
