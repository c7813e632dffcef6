"""The SDK's typed receivables methods against a running kernel: invoices and payments as
entities, import, ageing with its drill-down, the statement, a promise to pay and the case."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

pytestmark = pytest.mark.plugins("receivables")


async def test_sdk_ledger_ageing_and_collection(api_client: Any, frozen_clock: Any) -> None:
    from tessera_sdk import models as m

    frozen_clock.set(dt.datetime(2026, 3, 4, 9, tzinfo=dt.UTC))
    rec = api_client.receivables
    party = await api_client.parties.create(
        {"name": "ТОВ Боржник", "status": "current", "tax_id": "12345678"}
    )
    invoice = await rec.invoices.create(
        m.InvoiceIn(
            party_id=party.id,
            number="R-1",
            issue_date=dt.date(2026, 1, 5),
            due_date=dt.date(2026, 2, 1),
            amount="1000.00",
        )
    )
    assert isinstance(invoice, m.InvoiceOut) and invoice.balance == "1000.00"
    payment = await rec.payments.create(
        m.PaymentIn(party_id=party.id, paid_on=dt.date(2026, 2, 20), amount="250.00", allocate="none")
    )
    applied = await rec.allocate(payment.id)
    assert [a.amount for a in applied.allocations] == ["250.00"]
    assert (await rec.invoices.get(invoice.id)).balance == "750.00"

    # Accounting import, twice: the second changes nothing; the bad row is named.
    records = [
        {"external_id": "1C-9", "party_tax_id": "12345678", "number": "R-9", "date": "2026-02-01",
         "due_date": "2026-03-01", "amount": "300"},
        {"external_id": "1C-10", "party_tax_id": "12345678", "date": "never", "amount": "1"},
    ]  # fmt: skip
    first = await rec.import_records(records)
    assert (first.created, [(r.line, r.errors[0].field) for r in first.rejected]) == (1, [(2, "date")])
    assert (await rec.import_records(records[:1])).unchanged == 1

    # Ageing as of 4 March: 750 is 31 days overdue, 300 is 3 days overdue.
    ageing = await rec.ageing(as_of=dt.date(2026, 3, 4))
    row = next(r for r in ageing.rows if r.group == party.id)
    assert (row.buckets["1-30"], row.buckets["31-60"], row.total) == ("300.00", "750.00", "1050.00")
    cell = await rec.ageing_invoices(bucket="31-60", group=party.id, as_of=dt.date(2026, 3, 4))
    assert [i.number for i in cell] == ["R-1"]
    statement = await rec.statement(party.id)
    assert isinstance(statement, m.StatementOut) and len(statement.invoices) == 2

    # Collection: the scan opens the case on the engine, a promise pauses it.
    scan = await rec.overdue_scan()
    assert (scan.overdue, scan.cases_opened) == (2, 1)
    promise = await rec.record_promise(
        m.PromiseIn(party_id=party.id, amount="1050.00", promised_on=dt.date(2026, 3, 10))
    )
    assert promise.status == "open"
    [case] = await rec.cases(party_id=party.id)
    assert case.status == "paused" and case.process_id
    assert [p.id for p in await rec.promises(party_id=party.id)] == [promise.id]
    report = await rec.collection_report(dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert report[0].collected == "250.00"
