"""What sales contributes to the kernel's integrations: the open deals of a caller in the
incoming-call pop-up (``tessera_caller_facts``) and won deals for the accounting export
(``tessera_accounting_documents``). Both read through the deal spec's visibility."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tessera import i18n
from tessera.permissions import Principal

from tessera_sales.services import DEAL
from tessera_sales.tables import Deal


def _visible(principal: Principal) -> list[Any]:
    condition = DEAL.visibility(principal)
    return [] if condition is None else [condition]


async def caller_facts(party_id: int, principal: Principal) -> list[dict[str, Any]]:
    """ "Open deals: 2 · 150 000 RUB" for the pop-up, when the user may read deals."""
    if not principal.can("sales.deal.read"):
        return []
    rows = await Deal.select(Deal.amount, Deal.currency).where(
        Deal.party_id == party_id, Deal.status == "open", *_visible(principal)
    )
    if not rows:
        return []
    totals: dict[str, Decimal] = {}
    for r in rows:
        totals[r["currency"]] = totals.get(r["currency"], Decimal(0)) + Decimal(r["amount"] or 0)
    money = ", ".join(i18n.format_money(v, c) for c, v in sorted(totals.items()))
    return [
        {
            "label": i18n.gettext("Open deals"),
            "value": f"{len(rows)} · {money}",
            "href": f"/app/parties/{party_id}",
        }
    ]


async def accounting_documents(since: datetime | None, principal: Principal) -> list[dict[str, Any]]:
    """Won deals closed after ``since``: one document each, keyed ``sales.deal:<id>``."""
    if not principal.can("sales.deal.read"):
        return []
    query = Deal.select(Deal.id, Deal.title, Deal.party_id, Deal.amount, Deal.currency, Deal.closed_at).where(
        Deal.status == "won", *_visible(principal)
    )
    if since is not None:
        query = query.where(Deal.closed_at > since)
    return [
        {
            "type": "deal",
            "external_key": f"sales.deal:{r['id']}",
            "date": r["closed_at"].date().isoformat() if r["closed_at"] else None,
            "closed_at": r["closed_at"].isoformat() if r["closed_at"] else None,
            "party_id": r["party_id"],
            "title": r["title"],
            "amount": f"{Decimal(r['amount'] or 0):.2f}",
            "currency": r["currency"],
        }
        for r in await query.order_by(Deal.closed_at)
    ]
