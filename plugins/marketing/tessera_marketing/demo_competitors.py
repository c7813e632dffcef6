"""Demo data of competitors: two competitors with their products and prices, product groups
over the sales demo's SKUs, and clients known to buy a group from a competitor (the matrix on
``/marketing/competitors`` then shows the cross-sell gaps)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import clock
from tessera.entities import service
from tessera.entities.parties import PARTY

from tessera_marketing import competitors
from tessera_marketing.tables import ProductGroup

GROUPS = [
    ("licences", "Лицензии и поддержка", ["CRM-LIC", "CRM-SUP"]),
    ("services", "Внедрение и обучение", ["CRM-IMPL", "CRM-TRAIN", "CRM-INT"]),
]
RIVALS = [
    (
        "ООО «АльфаСофт»",
        [("licences", "АльфаCRM, лицензия", "9900"), ("services", "Внедрение «под ключ»", "38000")],
    ),
    ("ТОВ «БетаCRM»", [("licences", "BetaCRM Cloud, місяць", "1100")]),
]


async def load(ctx: Any) -> None:
    if await ProductGroup.count() > 0 or not ctx.parties or not getattr(ctx, "managers", None):
        return
    rnd = ctx.random
    admin = ctx.admin
    groups = {}
    for position, (key, name, skus) in enumerate(GROUPS):
        groups[key] = await service.create(
            competitors.GROUP, admin, {"key": key, "name": name, "skus": skus, "position": position}
        )
    seen = (clock.now() - dt.timedelta(days=20)).date()
    rivals = []
    for name, products in RIVALS:
        rival = await service.create(
            PARTY,
            admin,
            {
                "name": name,
                "kind": "organisation",
                "relations": ["competitor"],
                "status": "current",
                # The demo's system principal is no user: the first manager watches competitors.
                "owner_id": ctx.managers[0]["id"],
            },
        )
        rivals.append(rival)
        for group, product, price in products:
            await service.create(
                competitors.PRODUCT,
                admin,
                {
                    "competitor_id": rival["id"],
                    "group_id": groups[group]["id"],
                    "name": product,
                    "price": Decimal(price),
                    "currency": "RUB",
                    "observed_on": seen,
                },
            )
    for party in rnd.sample(list(ctx.parties), min(8, len(ctx.parties))):
        await service.create(
            competitors.SUPPLY,
            admin,
            {
                "party_id": party["id"],
                "competitor_id": rnd.choice(rivals)["id"],
                "group_id": groups[rnd.choice(list(groups))]["id"],
                "noted_on": seen,
            },
        )
