"""Accounting exchange (issue 16.6): counterparties in (JSON and CSV), idempotent by external id
with errors per row; out since a checkpoint, limited to what the caller reads; won deals through
``tessera_accounting_documents`` (sales answers it); the CLI."""

from __future__ import annotations

from typing import Any

import pytest
from tessera.entities.tables import AuditLog, Party
from tessera_sales.tables import Deal

pytestmark = pytest.mark.plugins("sales")

FILE = [
    {"external_id": "1C-001", "name": "ООО «Ромашка»", "tax_id": "7701234567",
     "phones": ["8 (495) 123-45-67"], "emails": ["Buh@Romashka.ru"], "address": "Москва, ул. Ленина, 1"},
    {"external_id": "1C-002", "name": "ТОВ Калина", "kind": "organisation", "tax_id": "12345678"},
    {"external_id": "1C-003", "name": "", "tax_id": "1"},
    {"external_id": "1C-004", "name": "Bad phone", "phones": ["12"]},
    {"name": "No id"},
]  # fmt: skip


async def test_an_accounting_file_imported_twice_changes_nothing_and_bad_rows_are_reported(crm: Any) -> None:
    admin = await crm.user("admin")
    r = await crm.post("/api/accounting/counterparties", admin, json={"system": "1c", "counterparties": FILE})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["created"], report["updated"], report["failed"]) == (2, 0, 3)
    assert [(e["row"], e["errors"][0]["field"]) for e in report["errors"]] == [
        (3, "name"),
        (4, "phones.0.number"),
        (5, "external_id"),
    ]
    parties = await Party.select().order_by(Party.id).output(load_json=True)
    assert parties[0]["phones"][0]["number"] == "+74951234567"
    assert parties[0]["emails"][0]["address"] == "buh@romashka.ru"
    audits = await AuditLog.count()
    versions = [p["version"] for p in parties]

    again = (
        await crm.post("/api/accounting/counterparties", admin, json={"system": "1c", "counterparties": FILE})
    ).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert await Party.count() == 2 and await AuditLog.count() == audits
    assert [p["version"] for p in await Party.select().order_by(Party.id)] == versions

    csv_text = (
        "external_id;name;tax_id;phones;emails\n"
        "1C-002;ТОВ Калина-Нова;12345678;+380 44 123 45 67;\n"
        "1C-005;ИП Петров;;;petrov@example.com\n"
    )
    r = await crm.post("/api/accounting/counterparties", admin, json={"system": "1c", "csv": csv_text})
    assert (r.json()["created"], r.json()["updated"], r.json()["failed"]) == (1, 1, 0)
    names = sorted(p["name"] for p in await Party.select(Party.name))
    assert names == ["ИП Петров", "ООО «Ромашка»", "ТОВ Калина-Нова"]


async def test_export_since_a_checkpoint_and_won_deals(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin")
    anna = await crm.user("manager", name="anna")
    await crm.post("/api/accounting/counterparties", admin, json={"system": "1c", "counterparties": FILE[:2]})
    r = await crm.get("/api/accounting/counterparties?system=1c", admin)
    first = r.json()
    assert [c["external_id"] for c in first["counterparties"]] == ["1C-001", "1C-002"]
    checkpoint = first["next_since"]
    frozen_clock.advance(minutes=5)
    r = await crm.post("/api/parties", admin, json={"name": "New client", "tax_id": "7799999999"})
    new_id = r.json()["id"]
    r = await crm.get("/api/accounting/counterparties", admin, params={"system": "1c", "since": checkpoint})
    assert [(c["party_id"], c["external_id"]) for c in r.json()["counterparties"]] == [(new_id, "")]
    r = await crm.get("/api/accounting/counterparties", admin, params={"since": checkpoint, "format": "csv"})
    assert (
        r.headers["content-type"].startswith("text/csv")
        and "New client" in r.text
        and r.headers["x-next-since"]
    )
    assert (
        await crm.get("/api/accounting/counterparties", anna)
    ).status_code == 403  # no accounting.exchange

    r = await crm.post(
        "/api/sales/deals",
        admin,
        json={"title": "Поставка", "party_id": new_id, "amount": "1500.00", "currency": "RUB"},
    )
    assert r.status_code == 201, r.text
    deal = r.json()
    # Won through the pipeline's stages in plugins/sales' tests; here only the outcome matters.
    await Deal.update({Deal.status: "won", Deal.closed_at: frozen_clock()}).where(Deal.id == deal["id"])
    docs = (await crm.get("/api/accounting/documents", admin, params={"since": checkpoint})).json()[
        "documents"
    ]
    assert [(d["type"], d["external_key"], d["amount"], d["source"]) for d in docs] == [
        ("deal", f"sales.deal:{deal['id']}", "1500.00", "sales")
    ]


async def test_the_call_popup_shows_the_callers_open_deals_from_sales(crm: Any) -> None:
    from tessera.telephony.calls import popup_payload

    anna = await crm.user("manager", name="anna")
    party_id = (await crm.post("/api/parties", anna, json={"name": "Acme"})).json()["id"]
    r = await crm.post(
        "/api/sales/deals", anna, json={"title": "Supply", "party_id": party_id, "amount": "100.00"}
    )
    assert r.status_code == 201, r.text
    call = {"call_id": "c-1", "number": "+74951234567", "number_e164": "+74951234567", "party_id": party_id}
    popup = await popup_payload(call, anna["id"])
    assert [(f["label"], f["value"].split(" · ")[0]) for f in popup["facts"]] == [("Open deals", "1")]
    bob = await crm.user("manager", name="bob")
    assert (await popup_payload(call, bob["id"]))["party"] is None  # not Bob's client: the bare number
