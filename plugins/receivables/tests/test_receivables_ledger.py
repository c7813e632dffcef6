"""Invoices, payments, credit notes and prepayments; allocation oldest first and explicit;
ageing buckets as of any day (hand-computed), drill-down, "my overdue clients", and
visibility: own-scope collectors' totals are their own clients' invoices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from receivables_helpers import post

pytestmark = pytest.mark.plugins("receivables")

API = "/api/receivables"


async def invoice(crm: Any, user: Any, party: Any, amount: str, due: str, **extra: Any) -> Any:
    body = {"party_id": party["id"], "issue_date": "2025-09-01", "due_date": due, "amount": amount, **extra}
    return await post(crm, f"{API}/invoices", user, body)


def cells(report: dict[str, Any]) -> dict[tuple[Any, str], dict[str, str]]:
    return {(r["group"], r["currency"]): r["buckets"] for r in report["rows"]}


async def test_payments_move_the_ageing_buckets_exactly(crm: Any, frozen_clock: Any, ledger: Any) -> None:
    admin, anna, boris = ledger["admin"], ledger["anna"], ledger["boris"]
    ap, bp = ledger["anna_party"], ledger["boris_party"]
    # Today is 2026-03-02.
    old = await invoice(crm, admin, ap, "1000.10", "2026-02-01", number="A-1")  # 29 days overdue
    new = await invoice(crm, admin, ap, "500", "2026-03-10", number="A-2")  # not due yet
    await invoice(crm, admin, ap, "200", "2025-12-31", currency="EUR")  # 61 days
    await invoice(crm, admin, bp, "0.10", "2025-10-01")  # 152 days
    assert old["balance"] == "1000.10" and old["status"] == "open"

    report = (await crm.get(f"{API}/ageing", admin, params={"group_by": "client"})).json()
    assert report["buckets"] == ["current", "1-30", "31-60", "61-90", "90+"]
    got = cells(report)
    assert got[(ap["id"], "RUB")] == {
        "current": "500.00",
        "1-30": "1000.10",
        "31-60": "0.00",
        "61-90": "0.00",
        "90+": "0.00",
    }
    assert got[(ap["id"], "EUR")]["61-90"] == "200.00"
    assert got[(bp["id"], "RUB")]["90+"] == "0.10"

    # A partial payment (oldest first) on 2026-03-02 moves 300.05 out of 1-30.
    pay = await post(
        crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": "2026-03-02", "amount": "300.05"}
    )
    assert pay["unallocated"] == "0.00"
    got = cells((await crm.get(f"{API}/ageing", admin)).json())
    assert got[(ap["id"], "RUB")]["1-30"] == "700.05"
    # As of the day before the payment the invoice was still open in full.
    got = cells((await crm.get(f"{API}/ageing", admin, params={"as_of": "2026-03-01"})).json())
    assert got[(ap["id"], "RUB")]["1-30"] == "1000.10"
    company = (await crm.get(f"{API}/ageing", admin, params={"group_by": "company"})).json()
    assert {(r["group"], r["currency"], r["total"]) for r in company["rows"]} == {
        (None, "RUB", "1200.15"),
        (None, "EUR", "200.00"),
    }
    # Company-wide buckets (sums per due day, then buckets), today and as of the day before
    # the payment (which adds it back): 1000.10 due 02-01 is 28 days overdue on 03-01.
    assert cells(company) == {
        (None, "RUB"): {
            "current": "500.00",
            "1-30": "700.05",
            "31-60": "0.00",
            "61-90": "0.00",
            "90+": "0.10",
        },
        (None, "EUR"): {"current": "0.00", "1-30": "0.00", "31-60": "0.00", "61-90": "200.00", "90+": "0.00"},
    }
    before = (
        await crm.get(f"{API}/ageing", admin, params={"group_by": "company", "as_of": "2026-03-01"})
    ).json()
    assert cells(before) == {
        (None, "RUB"): {
            "current": "500.00",
            "1-30": "1000.10",
            "31-60": "0.00",
            "61-90": "0.00",
            "90+": "0.10",
        },
        (None, "EUR"): {"current": "0.00", "1-30": "0.00", "31-60": "200.00", "61-90": "0.00", "90+": "0.00"},
    }
    # Per manager, as of that day: anna's client and boris's.
    managers = (
        await crm.get(f"{API}/ageing", admin, params={"group_by": "manager", "as_of": "2026-03-01"})
    ).json()
    assert {k: v for k, v in cells(managers).items() if k[1] == "RUB"} == {
        (anna["id"], "RUB"): {
            "current": "500.00",
            "1-30": "1000.10",
            "31-60": "0.00",
            "61-90": "0.00",
            "90+": "0.00",
        },
        (boris["id"], "RUB"): {
            "current": "0.00",
            "1-30": "0.00",
            "31-60": "0.00",
            "61-90": "0.00",
            "90+": "0.10",
        },
    }
    # Custom buckets: 28 limits put 29 days in 29-60... (1-10, 11-60, 61+).
    custom = (await crm.get(f"{API}/ageing", admin, params={"buckets": "10,60"})).json()
    assert custom["buckets"] == ["current", "1-10", "11-60", "60+"]
    assert cells(custom)[(ap["id"], "RUB")]["11-60"] == "700.05"

    # A credit note to the newer invoice, explicitly; then a prepayment kept unallocated.
    await post(
        crm,
        f"{API}/payments",
        admin,
        {
            "party_id": ap["id"],
            "kind": "credit_note",
            "paid_on": "2026-03-02",
            "amount": "100",
            "allocations": [{"invoice_id": new["id"], "amount": "100"}],
        },
    )
    prepaid = await post(
        crm,
        f"{API}/payments",
        admin,
        {"party_id": ap["id"], "paid_on": "2026-03-02", "amount": "50", "allocate": "none"},
    )
    assert prepaid["unallocated"] == "50.00"
    # Too much for the invoice: 422 naming the allocation.
    r = await crm.post(
        f"{API}/payments/{prepaid['id']}/allocate",
        admin,
        json={"allocations": [{"invoice_id": new["id"], "amount": "401"}]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "allocations[0].amount", r.text
    r = await crm.post(f"{API}/payments/{prepaid['id']}/allocate", admin, json={})
    assert r.status_code == 200, r.text
    assert [a["invoice_id"] for a in r.json()["allocations"]] == [old["id"]]
    inv = (await crm.get(f"{API}/invoices/{old['id']}", admin)).json()
    assert inv["balance"] == "650.05"
    allocs = (await crm.get(f"{API}/invoices/{old['id']}/allocations", admin)).json()
    assert sorted(Decimal(a["amount"]) for a in allocs) == [Decimal("50"), Decimal("300.05")]

    # Drill-down to the cell's invoices.
    rows = (
        await crm.get(
            f"{API}/ageing/invoices",
            admin,
            params={"group_by": "client", "group": ap["id"], "bucket": "1-30"},
        )
    ).json()
    assert [(r["id"], r["open_amount"], r["days_overdue"]) for r in rows] == [(old["id"], "650.05", 29)]

    # Visibility: each collector sees their own client only; totals add up to their invoices.
    for user, party, total in ((anna, ap, "1050.05"), (boris, bp, "0.10")):
        mine = (await crm.get(f"{API}/ageing", user, params={"group_by": "manager"})).json()
        rub = [r for r in mine["rows"] if r["currency"] == "RUB"]
        assert [(r["group"], r["total"]) for r in rub] == [(user["id"], total)]
        listed = (await crm.get(f"{API}/invoices", user)).json()["items"]
        assert {i["party_id"] for i in listed} == {party["id"]}
    assert (await crm.get(f"{API}/invoices/{old['id']}", boris)).status_code == 404
    # Collectors cannot write invoices.
    r = await crm.post(
        f"{API}/invoices",
        anna,
        json={"party_id": ap["id"], "issue_date": "2026-03-01", "due_date": "2026-03-01", "amount": "1"},
    )
    assert r.status_code == 403

    # The head sees the whole team; "my overdue clients" for anna: amount × days.
    head = (await crm.get(f"{API}/ageing", ledger["head"], params={"group_by": "team"})).json()
    assert {(r["group"], r["currency"]) for r in head["rows"]} == {
        (ledger["team"]["id"], "RUB"),
        (ledger["team"]["id"], "EUR"),
    }
    overdue = (await crm.get(f"{API}/overdue-clients", anna)).json()
    assert [(o["party_id"], o["currency"], o["overdue"]) for o in overdue] == [
        (ap["id"], "RUB", "650.05"),  # 650.05 × 29 days
        (ap["id"], "EUR", "200.00"),  # 200 × 61 days
    ]

    # The statement on the card.
    st = (await crm.get(f"{API}/parties/{ap['id']}/statement", anna)).json()
    assert {t["currency"]: t["open"] for t in st["totals"]} == {"EUR": "200.00", "RUB": "1050.05"}


async def test_amount_rules(crm: Any, frozen_clock: Any, ledger: Any) -> None:
    admin, ap = ledger["admin"], ledger["anna_party"]
    inv = await invoice(crm, admin, ap, "100", "2026-02-01")
    await post(crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": "2026-03-01", "amount": "60"})
    r = await crm.patch(f"{API}/invoices/{inv['id']}", admin, json={"amount": "50"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"
    r = await crm.patch(f"{API}/invoices/{inv['id']}", admin, json={"amount": "60"})
    assert r.status_code == 200 and r.json()["balance"] == "0.00" and r.json()["status"] == "paid"
    r = await crm.post(
        f"{API}/invoices",
        admin,
        json={
            "party_id": ap["id"],
            "issue_date": "2026-03-01",
            "due_date": "2026-02-01",
            "amount": "1",
            "currency": "rub",
        },
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "due_date"
    r = await crm.post(
        f"{API}/invoices",
        admin,
        json={"party_id": ap["id"], "issue_date": "2026-03-01", "due_date": "2026-03-01", "amount": "-1"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "amount"


async def test_collection_report_per_manager_and_month(crm: Any, frozen_clock: Any, ledger: Any) -> None:
    admin, ap = ledger["admin"], ledger["anna_party"]
    # February: 1000 invoiced (due 2026-02-20), 600 paid on 2026-02-25; nothing open before.
    await post(
        crm,
        f"{API}/invoices",
        admin,
        {"party_id": ap["id"], "issue_date": "2026-02-01", "due_date": "2026-02-20", "amount": "1000"},
    )
    await post(
        crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": "2026-02-25", "amount": "600"}
    )
    params = {"date_from": "2026-02-01", "date_to": "2026-02-28"}
    rows = (await crm.get(f"{API}/reports/collection", admin, params=params)).json()
    assert len(rows) == 1
    row = rows[0]
    assert (row["month"], row["manager_id"], row["currency"]) == ("2026-02", ledger["anna"]["id"], "RUB")
    assert (row["opening"], row["sales"], row["closing"], row["overdue"], row["collected"]) == (
        "0.00",
        "1000.00",
        "400.00",
        "400.00",
        "600.00",
    )
    # DSO = 400 / 1000 × 28 days; CEI = (0 + 1000 − 400) / (0 + 1000 − 0) = 60 %.
    assert (row["dso"], row["overdue_ratio"], row["cei"]) == ("11.2", "1.0000", "60.0")
    # The same figures on the kernel's report framework.
    r = await crm.post("/api/reports/receivables.collection/run", admin, json=params)
    assert r.status_code == 200, r.text
    values = r.json()["rows"][0]["values"]
    assert (values["closing"], values["dso"], values["overdue_ratio"], values["cei"]) == (
        "400.00",
        11.2,
        100.0,
        60.0,
    )
    assert (await crm.get(f"{API}/reports/collection", ledger["boris"], params=params)).json() == []
    csv_text = (await crm.get(f"{API}/reports/collection/export", admin, params=params)).text
    assert csv_text.splitlines()[0].startswith("month,manager_id,currency")
    xlsx = await crm.get(f"{API}/reports/collection/export", admin, params={**params, "format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


async def test_cash_collected_versus_forecast(crm: Any, ledger: Any) -> None:
    """Hand-computed: March's forecast is what fell due in March and was open on March 1."""
    admin, ap = ledger["admin"], ledger["anna_party"]

    async def inv(issue: str, due: str, amount: str, currency: str = "RUB") -> None:
        body = {"party_id": ap["id"], "issue_date": issue, "due_date": due, "amount": amount}
        await post(crm, f"{API}/invoices", admin, {**body, "currency": currency})

    await inv("2026-02-01", "2026-03-10", "1000")  # 200 of it paid in February: 800 expected
    await post(
        crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": "2026-02-20", "amount": "200"}
    )
    await inv("2026-03-01", "2026-03-20", "500")  # expected in full
    await inv("2026-03-01", "2026-04-05", "300")  # due in April: not March's forecast
    await inv("2026-03-01", "2026-03-15", "100", "EUR")
    for day, amount in (("2026-03-12", "400"), ("2026-03-25", "100")):
        await post(crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": day, "amount": amount})

    r = await crm.post(
        "/api/reports/receivables.cash_forecast/run",
        admin,
        json={"date_from": "2026-02-01", "date_to": "2026-03-31"},
    )
    assert r.status_code == 200, r.text
    rows = [row["values"] for row in r.json()["rows"]]
    assert rows == [
        {
            "month": "2026-02",
            "currency": "RUB",
            "forecast": "0.00",
            "collected": "200.00",
            "difference": "200.00",
            "collected_share": None,
        },
        # 800 + 500 expected, 400 + 100 received: 500 / 1300 = 38.46 %.
        {
            "month": "2026-03",
            "currency": "EUR",
            "forecast": "100.00",
            "collected": "0.00",
            "difference": "-100.00",
            "collected_share": 0.0,
        },
        {
            "month": "2026-03",
            "currency": "RUB",
            "forecast": "1300.00",
            "collected": "500.00",
            "difference": "-800.00",
            "collected_share": 38.46,
        },
    ]
    # Own scope: Boris sees none of Anna's client's money.
    r = await crm.post(
        "/api/reports/receivables.cash_forecast/run",
        ledger["boris"],
        json={"date_from": "2026-03-01", "date_to": "2026-03-31"},
    )
    assert r.status_code == 200 and r.json()["rows"] == []
    listed = (await crm.get("/api/reports", admin)).json()
    keys = {item["key"] for item in (listed["items"] if isinstance(listed, dict) else listed)}
    assert {"receivables.cash_forecast", "receivables.collection"} <= keys
    r = await crm.get(
        "/api/reports/receivables.cash_forecast/export",
        admin,
        params={"format": "csv", "params": '{"date_from": "2026-03-01", "date_to": "2026-03-31"}'},
    )
    assert r.status_code == 200 and "1300.00" in r.text
    bad = await crm.post("/api/reports/receivables.cash_forecast/run", admin, json={"date_from": "March"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "date_from"
