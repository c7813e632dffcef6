"""Orders, invoices, shipments and acts linked to a deal. An invoice is published as the
``sales.invoice.issued`` domain event (amount, currency, due date, party, deal) so the
receivables plugin, when enabled, picks it up through ``tessera_on_event``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import audit, clock, events
from tessera.errors import Conflict, ValidationFailed
from tessera.permissions import Principal

from tessera_sales import services
from tessera_sales.tables import SalesDocument

KINDS = {"order": "ЗК", "invoice": "СЧ", "shipment": "НК", "act": "АКТ"}


async def _next_number(kind: str, year: int) -> str:
    prefix = f"{KINDS[kind]}-{year}-"
    rows = await SalesDocument.select(SalesDocument.number).where(
        SalesDocument.kind == kind, SalesDocument.number.like(f"{prefix}%")
    )
    taken = [
        int(r["number"].removeprefix(prefix)) for r in rows if r["number"].removeprefix(prefix).isdigit()
    ]
    return f"{prefix}{max(taken, default=0) + 1:05d}"


async def create_document(
    principal: Principal,
    deal_id: int,
    kind: str,
    *,
    amount: Decimal | None = None,
    due_on: dt.date | None = None,
    comment: str = "",
) -> dict[str, Any]:
    principal.require("sales.deal.write")
    if kind not in KINDS:
        raise ValidationFailed.field("kind", f"must be one of {', '.join(KINDS)}")
    deal = await services.get_deal_for_write(principal, deal_id)
    if deal["status"] == "lost":
        raise Conflict(f"deal {deal_id} is lost; no documents can be issued for it")
    value = services.money(amount if amount is not None else deal["amount"])
    if value <= 0:
        raise ValidationFailed.field("amount", "must be more than zero")
    today = clock.now().date()
    if due_on is not None and due_on < today:
        raise ValidationFailed.field("due_on", "must not be in the past")
    if kind == "invoice" and due_on is None:
        due_on = today + dt.timedelta(days=10)
    async with events.unit_of_work():
        number = await _next_number(kind, today.year)
        rows = await SalesDocument.insert(
            SalesDocument(
                kind=kind,
                number=number,
                deal_id=deal_id,
                party_id=deal["party_id"],
                amount=value,
                currency=deal["currency"],
                issued_on=today,
                due_on=due_on,
                status="issued",
                comment=comment,
                created_by=principal.user_id,
                created_at=clock.now(),
            )
        ).returning(SalesDocument.id)
        doc_id = rows[0]["id"]
        await audit.record(
            "document", "sales.deal", deal_id, {kind: [None, number]}, user_id=principal.user_id
        )
        await events.emit(
            f"sales.{kind}.issued",
            f"sales.{kind}",
            doc_id,
            {
                "id": doc_id,
                "number": number,
                "deal_id": deal_id,
                "party_id": deal["party_id"],
                "owner_id": deal["owner_id"],
                "amount": str(value),
                "currency": deal["currency"],
                "issued_on": today.isoformat(),
                "due_on": due_on.isoformat() if due_on else None,
            },
        )
    return await _row(doc_id)


async def _row(doc_id: int) -> dict[str, Any]:
    row = await SalesDocument.select().where(SalesDocument.id == doc_id).first()
    assert row is not None
    row["amount"] = services.money(row["amount"])
    return row


async def list_documents(principal: Principal, deal_id: int) -> list[dict[str, Any]]:
    await services.get_deal(principal, deal_id)
    rows = await SalesDocument.select().where(SalesDocument.deal_id == deal_id).order_by(SalesDocument.id)
    for r in rows:
        r["amount"] = services.money(r["amount"])
    return rows
