"""Import from accounting (JSON and CSV) is idempotent by external id: re-importing changes
nothing, a changed amount is an audited update, bad rows are reported exactly (line and
reasons) while the rest is imported. Invoices the sales plugin issues arrive by its event."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

pytestmark = pytest.mark.plugins("receivables")

API = "/api/receivables"


async def audit_count(entity: str = "receivables.invoice") -> int:
    from tessera.entities.tables import AuditLog

    return await AuditLog.count().where(AuditLog.entity == entity, AuditLog.entity_id.is_not_null())


async def test_reimport_changes_nothing_and_bad_rows_are_reported(
    crm: Any, frozen_clock: Any, ledger: Any
) -> None:
    admin, ap, bp = ledger["admin"], ledger["anna_party"], ledger["boris_party"]
    records = [
        {
            "type": "invoice",
            "external_id": "1C-001",
            "party_id": ap["id"],
            "number": "001",
            "date": "2026-01-10",
            "due_date": "2026-02-10",
            "currency": "RUB",
            "amount": "1200.50",
        },
        {
            "type": "invoice",
            "external_id": "1C-002",
            "party_id": bp["id"],
            "date": "2026-01-15",
            "due_date": "2026-02-15",
            "currency": "UAH",
            "amount": "300",
        },
        {
            "type": "payment",
            "external_id": "PAY-1",
            "party_id": ap["id"],
            "date": "2026-02-01",
            "currency": "RUB",
            "amount": "200.50",
            "invoice_external_id": "1C-001",
        },
    ]
    r = await crm.post(f"{API}/import", admin, json={"records": records})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 3, "updated": 0, "unchanged": 0, "rejected": []}
    before = await audit_count() + await audit_count("receivables.payment")

    again = (await crm.post(f"{API}/import", admin, json={"records": records})).json()
    assert again == {"created": 0, "updated": 0, "unchanged": 3, "rejected": []}
    assert await audit_count() + await audit_count("receivables.payment") == before
    invoices = (await crm.get(f"{API}/invoices", admin, params={"source": "import"})).json()["items"]
    assert {(i["external_id"], i["balance"]) for i in invoices} == {
        ("1C-001", "1000.00"),
        ("1C-002", "300.00"),
    }

    # A changed amount on a known id: an audited update (the allocation is kept).
    records[0]["amount"] = "1500.50"
    changed = (await crm.post(f"{API}/import", admin, json={"records": records})).json()
    assert changed == {"created": 0, "updated": 1, "unchanged": 2, "rejected": []}
    from tessera.entities.tables import AuditLog

    entry = (
        await AuditLog.select()
        .where(AuditLog.entity == "receivables.invoice", AuditLog.action == "update")
        .first()
        .output(load_json=True)
    )
    assert [Decimal(v) for v in entry["changes"]["amount"]] == [Decimal("1200.50"), Decimal("1500.50")]
    assert [Decimal(v) for v in entry["changes"]["balance"]] == [Decimal("1000"), Decimal("1300")]

    # CSV (semicolons, Russian headers, dd.mm.yyyy) with three bad rows among good ones.
    csv_text = (
        "Тип;Внешний ID;Клиент ID;Номер;Дата;Срок оплаты;Валюта;Сумма\n"
        f"invoice;1C-003;{ap['id']};003;01.02.2026;01.03.2026;RUB;99.90\n"
        f"invoice;1C-004;{ap['id']};004;31.02.2026;01.03.2026;RUB;10\n"
        "invoice;1C-005;999999;005;01.02.2026;01.03.2026;RUB;10\n"
        f"invoice;1C-006;{ap['id']};006;01.02.2026;01.03.2026;RUB;-5\n"
        f"credit_note;CN-1;{ap['id']};;02.02.2026;;RUB;9.90\n"
    )
    report = (await crm.post(f"{API}/import", admin, json={"csv": csv_text})).json()
    assert report["created"] == 2 and report["updated"] == 0
    assert [(x["line"], x["external_id"], [e["field"] for e in x["errors"]]) for x in report["rejected"]] == [
        (3, "1C-004", ["date"]),
        (4, "1C-005", ["party_id"]),
        (5, "1C-006", ["amount"]),
    ]
    again = (await crm.post(f"{API}/import", admin, json={"csv": csv_text})).json()
    assert again["created"] == 0 and again["unchanged"] == 2 and len(again["rejected"]) == 3
    # The credit note went to the oldest open invoice.
    inv = (await crm.get(f"{API}/invoices", admin, params={"external_id": "1C-001"})).json()["items"][0]
    assert inv["balance"] == "1290.10"
    # Who may not write receivables may not import.
    r = await crm.post(f"{API}/import", ledger["anna"], json={"records": records})
    assert r.status_code == 403
    r = await crm.post(f"{API}/import", admin, json={})
    assert r.status_code == 422


@pytest.mark.plugins("sales", "receivables")
async def test_an_invoice_issued_in_sales_appears_in_receivables(
    crm: Any, frozen_clock: Any, ledger: Any
) -> None:
    admin, ap = ledger["admin"], ledger["anna_party"]
    r = await crm.post(
        "/api/sales/deals",
        admin,
        json={"title": "Deal", "party_id": ap["id"], "amount": "5000.25", "currency": "EUR"},
    )
    assert r.status_code == 201, r.text
    deal = r.json()
    r = await crm.post(
        f"/api/sales/deals/{deal['id']}/documents", admin, json={"kind": "invoice", "due_on": "2026-03-20"}
    )
    assert r.status_code == 201, r.text
    issued = r.json()
    got = (await crm.get(f"{API}/invoices", admin, params={"source": "sales"})).json()["items"]
    assert [
        (i["number"], i["amount"], i["currency"], i["due_date"], i["deal_id"], i["party_id"]) for i in got
    ] == [(issued["number"], "5000.25", "EUR", "2026-03-20", deal["id"], ap["id"])]
    # Delivered again (at least once): still one receivable.
    from tessera_receivables.integration import invoice_from_sales

    assert (
        await invoice_from_sales(
            {
                "id": issued["id"],
                "party_id": ap["id"],
                "amount": "1",
                "currency": "EUR",
                "issued_on": "2026-03-02",
            }
        )
        is None
    )
    assert len((await crm.get(f"{API}/invoices", admin, params={"source": "sales"})).json()["items"]) == 1


async def test_demo_data_has_overdue_clients(crm: Any, frozen_clock: Any, ledger: Any) -> None:
    import random

    from tessera.demo import DemoContext, system_principal
    from tessera_receivables import demo
    from tessera_receivables.tables import CollectionCase, Invoice

    ctx = DemoContext(random=random.Random(3), admin=system_principal())
    ctx.parties = [ledger["anna_party"], ledger["boris_party"]]
    await demo.load(ctx)
    count = await Invoice.count()
    assert count == 26
    report = (await crm.get(f"{API}/ageing", ledger["admin"])).json()
    late = {b for r in report["rows"] for b, v in r["buckets"].items() if v != "0.00" and b != "current"}
    assert {"1-30", "31-60"} <= late
    assert any(r["buckets"]["current"] != "0.00" for r in report["rows"])
    assert await CollectionCase.count() == 2
    await demo.load(ctx)
    assert await Invoice.count() == count
