"""What the receivables plugin takes from and gives to the rest of the product: invoices from
the sales plugin's events, service tickets pausing dunning, the client card's timeline and
account statement, search documents, revenue (payments by month) and promotional suppression
(clients in active dunning) for the marketing plugin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera.i18n import N_
from tessera.i18n import gettext as _

from tessera_receivables.tables import CollectionContact, Invoice, Promise


async def on_event(event: Any) -> None:
    if event.name == "sales.invoice.issued":
        await invoice_from_sales(event.payload)
    elif event.name in ("service.ticket.created", "service.ticket.status_changed"):
        from tessera_receivables import dunning

        await dunning.ticket_event(event.name, dict(event.payload))


async def invoice_from_sales(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Open a receivable for an invoice the sales plugin issued (idempotent: the event may be
    delivered again; its external id is ``sales:<document id>``)."""
    from tessera.demo import system_principal
    from tessera.entities import service
    from tessera.errors import Conflict

    from tessera_receivables import services

    external_id = f"sales:{payload['id']}"
    if await Invoice.exists().where(Invoice.external_id == external_id):
        return None
    issued = dt.date.fromisoformat(str(payload["issued_on"]))
    due = dt.date.fromisoformat(str(payload["due_on"])) if payload.get("due_on") else issued
    try:
        return await service.create(
            services.INVOICE,
            system_principal(),
            {
                "party_id": int(payload["party_id"]),
                "number": str(payload.get("number") or "")[:60],
                "issue_date": issued,
                "due_date": max(due, issued),
                "currency": payload.get("currency") or "RUB",
                "amount": Decimal(str(payload["amount"])),
                "external_id": external_id,
                "deal_id": payload.get("deal_id"),
                "source": "sales",
                "_system": True,
            },
        )
    except Conflict:  # delivered twice at once: the other delivery created it
        return None


async def timeline(party_id: int, principal: Any) -> list[dict[str, Any]]:
    """Collection contacts (reminders, calls, letters, escalations, promises) and invoices."""
    if principal is not None and not principal.can("receivables.read"):
        return []
    from tessera.entities import service

    from tessera_receivables import dunning, services

    items: list[dict[str, Any]] = []
    for c in await CollectionContact.select().where(CollectionContact.party_id == party_id):
        label = _(dunning.STEP_LABELS[c["kind"]]) if c["kind"] in dunning.STEP_LABELS else ""
        amount = (
            f" {Decimal(c['amount']).quantize(Decimal('0.01'))} {c['currency']}"
            if c["amount"] is not None
            else ""
        )
        items.append(
            {
                "kind": f"receivables.{c['kind']}",
                "at": c["at"],
                "id": c["case_id"],
                "user_id": c["user_id"],
                "title": (f"{label}{amount}".strip() if label else c["detail"][:200]) or c["kind"],
                "detail": c["detail"][:500],
            }
        )
    invoices = await service.list_page(
        services.INVOICE, principal or _system(), [Invoice.party_id == party_id], order="-id", limit=100
    )
    for inv in invoices.items:
        items.append(
            {
                "kind": "receivables.invoice",
                "at": inv["created_at"],
                "id": inv["id"],
                "title": _(
                    "Invoice %(number)s: %(amount)s %(currency)s",
                    number=inv["number"] or inv["id"],
                    amount=inv["amount"],
                    currency=inv["currency"],
                ),
                "detail": _(
                    "due %(day)s, open %(balance)s", day=inv["due_date"].isoformat(), balance=inv["balance"]
                ),
            }
        )
    return items


def _system() -> Any:
    from tessera.demo import system_principal

    return system_principal()


async def search_documents(entity: str, record: dict[str, Any]) -> list[dict[str, Any]] | None:
    if entity != "receivables.invoice":
        return None
    from tessera.entities.tables import Party

    party = (
        await Party.select(Party.owner_id, Party.team_id, Party.name)
        .where(Party.id == record["party_id"])
        .first()
    )
    return [
        {
            "type": "receivable_invoice",
            "id": record["id"],
            "title": f"{record.get('number') or record['id']} {party['name'] if party else ''}".strip(),
            "body": f"{record.get('amount')} {record.get('currency')} "
            f"{record.get('external_id', '')} {record.get('notes', '')}",
            "date": record.get("created_at"),
            "owner_id": party["owner_id"] if party else None,
            "team_id": party["team_id"] if party else None,
            "party_id": record["party_id"],
        }
    ]


async def card_widget(party_id: int, principal: Any) -> list[dict[str, Any]]:
    """The client card's account statement: open and overdue per currency, unallocated
    credit, the open promise, a link to the full statement."""
    if not principal.can("receivables.read"):
        return []
    from tessera_receivables import services

    statement = await services.statement(principal, party_id)
    rows = []
    for t in statement["totals"]:
        rows.append({"label": _("Open (%(currency)s)", currency=t["currency"]), "value": str(t["open"])})
        if t["overdue"]:
            rows.append(
                {"label": _("Overdue (%(currency)s)", currency=t["currency"]), "value": str(t["overdue"])}
            )
        if t["credit"]:
            rows.append(
                {
                    "label": _("Unallocated payments (%(currency)s)", currency=t["currency"]),
                    "value": str(t["credit"]),
                }
            )
    promise = (
        await Promise.select()
        .where(Promise.party_id == party_id, Promise.status == "open")
        .order_by(Promise.promised_on)
        .first()
    )
    if promise:
        rows.append(
            {
                "label": _("Promise to pay"),
                "value": f"{Decimal(promise['amount']).quantize(Decimal('0.01'))} {promise['currency']} — "
                f"{promise['promised_on'].isoformat()}",
            }
        )
    rows.append(
        {"label": _("Account statement"), "value": _("Show"), "href": f"/receivables/parties/{party_id}"}
    )
    return [{"title": _("Receivables"), "rows": rows, "empty": _("Nothing owed.")}]


def revenue_sources(engine: str) -> list[dict[str, Any]]:
    """Payments received by month (marketing's ABC/XYZ), in their own currency's amount."""
    month = "to_char(paid_on, 'YYYY-MM')" if engine == "postgres" else "substr(paid_on, 1, 7)"
    return [
        {
            "key": "receivables.payments",
            "label": N_("Payments received"),
            "sql": f"SELECT party_id, {month} AS month, SUM(amount) AS amount FROM receivables_payment "
            f"WHERE kind = 'payment' GROUP BY party_id, {month}",
        }
    ]


def suppressions(engine: str) -> list[dict[str, Any]]:
    return [
        {
            "key": "receivables.dunning",
            "label": N_("Clients in active dunning"),
            "sql": "SELECT party_id FROM receivables_case WHERE status <> 'closed'",
        }
    ]
