"""The sales plugin's block on the client card (hook ``tessera_card_widgets``): the client's
open deals the user may see, each with its amount, and the total per currency. Read through
``service.list_page`` with the user's principal, so a deal the user may not read is neither
listed nor counted in the total."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tessera import i18n
from tessera.entities import service
from tessera.errors import PermissionDenied
from tessera.i18n import N_
from tessera.permissions import Principal

from tessera_sales import services
from tessera_sales.tables import Deal

i18n.register_labels("participant.reason", {"sales": N_("Open deals")})


async def open_deals_widget(party_id: int, principal: Principal) -> list[dict[str, Any]]:
    try:
        page = await service.list_page(
            services.DEAL,
            principal,
            [Deal.party_id == party_id, Deal.status == "open"],
            order="-amount",
            limit=20,
        )
    except PermissionDenied:
        return []  # no sales.deal.read: no block
    totals: dict[str, Decimal] = {}
    rows = []
    for deal in page.items:
        amount = services.money(deal["amount"])
        totals[deal["currency"]] = totals.get(deal["currency"], Decimal(0)) + amount
        rows.append(
            {
                "label": deal["title"],
                "value": i18n.format_money(amount, deal["currency"]),
                "href": f"/sales/deals/{deal['id']}",
            }
        )
    if len(rows) > 1 or page.next_cursor:
        for currency, total in sorted(totals.items()):
            rows.append({"label": i18n.gettext("Total"), "value": i18n.format_money(total, currency)})
    if principal.can("sales.deal.write"):
        new = f"/sales/deals/new?party_id={party_id}"
        rows.append({"label": i18n.gettext("New deal"), "value": "", "href": new})
    return [
        {
            "title": i18n.gettext("Open deals"),
            "rows": rows,
            "empty": i18n.gettext("No open deals."),
        }
    ]
