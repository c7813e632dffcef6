"""Competitors: their products and prices, and the clients x product groups matrix.

A competitor is a party with the relation ``competitor`` (the kernel's). Marketing keeps:

* **product groups** (``marketing_product_group``): a key, a name and the SKUs of our products
  in the group;
* **competitor products** with their price, currency, unit and when the price was seen;
* **supplies**: client C buys group G from competitor K (what a manager learnt).

The **matrix** shows, for each client the caller reads, per product group, what the client
bought from us (the purchases other plugins report through
``tessera_marketing_product_purchases``: sales' won deal lines, by SKU) and from which
competitors, so the gaps (a group bought only from a competitor, or not at all) show where to
cross-sell. All in SQL within the caller's party visibility, one page of clients at a time.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from tessera import db
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.entities.tables import Party
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_marketing import revenue
from tessera_marketing.tables import CompetitorProduct, CompetitorSupply, ProductGroup

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CENTS = Decimal("0.01")


def _everyone(principal: Principal | None) -> Any:
    return None


async def _prepare_group(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "key" in values:
        if not KEY.match(values["key"] or ""):
            raise ValidationFailed.field("key", "1-64 lower-case letters, digits, - and _")
        query = ProductGroup.exists().where(ProductGroup.key == values["key"])
        if existing is not None:
            query = query.where(ProductGroup.id != existing["id"])
        if await query:
            raise ValidationFailed.field("key", "another group has this key")
    if "skus" in values:
        skus = [str(s).strip() for s in values["skus"] or [] if str(s).strip()]
        if len(set(skus)) != len(skus):
            raise ValidationFailed.field("skus", "a SKU is listed twice")
        others = await ProductGroup.select(ProductGroup.id, ProductGroup.key, ProductGroup.skus).output(
            load_json=True
        )
        for other in others:
            if existing is not None and other["id"] == existing["id"]:
                continue
            taken = set(skus) & set(other["skus"] or [])
            if taken:
                raise ValidationFailed.field(
                    "skus", f"{sorted(taken)[0]} is in the group {other['key']!r} already"
                )
        values["skus"] = skus
    return values


GROUP = service.EntitySpec(
    name="marketing.product_group",
    table=ProductGroup,
    permission="marketing.competitor",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_group,
    order_fields=("id", "position", "name"),
    permission_overrides={
        "read": "marketing.competitor.read",
        "write": "marketing.competitor.manage",
        "delete": "marketing.competitor.manage",
    },
)


async def _require_competitor(principal: Principal, party_id: Any, field: str) -> None:
    await service.require_visible(PARTY, principal, party_id, field)
    row = await Party.select(Party.relations).where(Party.id == party_id).first()
    relations = row["relations"] if row else []
    if isinstance(relations, str):
        relations = json.loads(relations)
    if "competitor" not in (relations or []):
        raise ValidationFailed.field(field, "the party is not marked as a competitor (relation competitor)")


async def _prepare_product(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "competitor_id" in values:
        await _require_competitor(principal, values["competitor_id"], "competitor_id")
    if values.get("group_id") is not None:
        await service.require_visible(GROUP, principal, values["group_id"], "group_id")
    if values.get("price") is not None and Decimal(str(values["price"])) < 0:
        raise ValidationFailed.field("price", "must be zero or more")
    if "currency" in values and not re.fullmatch(r"[A-Z]{3}", values["currency"] or ""):
        raise ValidationFailed.field("currency", "a three-letter code (RUB, UAH, EUR)")
    return values


def _product_visibility(principal: Principal) -> Any:
    from tessera.entities.parties import party_visibility

    condition = party_visibility(principal)
    return (
        None
        if condition is None
        else CompetitorProduct.competitor_id.is_in(Party.select(Party.id).where(condition))
    )


PRODUCT = service.EntitySpec(
    name="marketing.competitor_product",
    table=CompetitorProduct,
    permission="marketing.competitor",
    visibility=_product_visibility,
    custom_fields=False,
    prepare=_prepare_product,
    order_fields=("id", "name"),
    permission_overrides={
        "read": "marketing.competitor.read",
        "write": "marketing.competitor.manage",
        "delete": "marketing.competitor.manage",
    },
)


async def _prepare_supply(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "party_id" in values:
        await service.require_visible(PARTY, principal, values["party_id"], "party_id")
    if "competitor_id" in values:
        await _require_competitor(principal, values["competitor_id"], "competitor_id")
    if "group_id" in values:
        await service.require_visible(GROUP, principal, values["group_id"], "group_id")
    if existing is None:
        values["created_by"] = principal.user_id or None
    return values


def _supply_visibility(principal: Principal) -> Any:
    from tessera.entities.parties import party_visibility

    condition = party_visibility(principal)
    return (
        None
        if condition is None
        else CompetitorSupply.party_id.is_in(Party.select(Party.id).where(condition))
    )


SUPPLY = service.EntitySpec(
    name="marketing.competitor_supply",
    table=CompetitorSupply,
    permission="marketing.competitor",
    visibility=_supply_visibility,
    custom_fields=False,
    prepare=_prepare_supply,
    order_fields=("id",),
    permission_overrides={
        "read": "marketing.competitor.read",
        "write": "marketing.competitor.write",
        "delete": "marketing.competitor.write",
    },
)


def purchases_sql() -> str | None:
    """``SELECT party_id, sku, amount, at`` over every plugin's purchases, or None."""
    chosen = revenue._collect("tessera_marketing_product_purchases")
    if not chosen:
        return None
    return " UNION ALL ".join(
        f"SELECT pp{i}.party_id AS party_id, pp{i}.sku AS sku, pp{i}.amount AS amount, pp{i}.at AS at "
        f"FROM ({s['sql']}) pp{i}"
        for i, s in enumerate(chosen)
    )


async def matrix(principal: Principal, limit: int = 100, after: int = 0) -> dict[str, Any]:
    """Clients x product groups: per client (that the caller reads and that bought a grouped
    product from us or is known to buy a group from a competitor), per group, our amount and
    the competitors it buys the group from. Keyset-paged by client id (``after``)."""
    GROUP.require(principal, "read")
    groups = (
        await ProductGroup.select()
        .order_by(ProductGroup.position)
        .order_by(ProductGroup.id)
        .output(load_json=True)
    )
    from tessera_marketing.services import visible_parties

    visible = visible_parties(principal)
    vis_args: list[Any] = [] if visible is None else [visible.querystrings[0]]
    ours_sql = purchases_sql()
    pairs: list[tuple[int, str]] = []
    args: list[Any] = []
    for g in groups:
        for sku in g["skus"] or []:
            pairs.append((g["id"], sku))
            args.extend([g["id"], sku])
    ours: dict[tuple[int, int], Decimal] = {}
    clients: set[int] = set()
    sku_map = " UNION ALL ".join(
        "SELECT CAST({} AS INTEGER) AS group_id, CAST({} AS TEXT) AS sku" for _ in pairs
    )
    vis = "" if visible is None else " AND pu.party_id IN ({})"
    if ours_sql is not None and pairs:
        rows = await db.raw(
            "SELECT pu.party_id AS party_id, m.group_id AS group_id, SUM(pu.amount) AS total "
            f"FROM ({ours_sql}) pu "
            f"JOIN ({sku_map}) m ON m.sku = pu.sku WHERE pu.party_id > {{}}{vis} "
            "GROUP BY pu.party_id, m.group_id",
            *args,
            after,
            *vis_args,
        )
        for r in rows:
            ours[(int(r["party_id"]), int(r["group_id"]))] = Decimal(str(r["total"] or 0)).quantize(CENTS)
            clients.add(int(r["party_id"]))
    theirs: dict[tuple[int, int], list[str]] = {}
    vis = "" if visible is None else " AND s.party_id IN ({})"
    for r in await db.raw(
        "SELECT s.party_id AS party_id, s.group_id AS group_id, c.name AS competitor "
        "FROM marketing_competitor_supply s "
        f"JOIN party c ON c.id = s.competitor_id WHERE s.party_id > {{}}{vis} ORDER BY c.name",
        after,
        *vis_args,
    ):
        key = (int(r["party_id"]), int(r["group_id"]))
        if r["competitor"] not in theirs.setdefault(key, []):
            theirs[key].append(r["competitor"])
        clients.add(int(r["party_id"]))
    page = sorted(clients)[:limit]
    names = {
        r["id"]: r["name"]
        for r in await Party.select(Party.id, Party.name).where(Party.id.is_in(page or [-1]))
    }
    rows_out = []
    for party_id in page:
        cells = []
        for g in groups:
            amount = ours.get((party_id, g["id"]))
            rivals = theirs.get((party_id, g["id"]), [])
            cells.append(
                {
                    "group_id": g["id"],
                    "ours": amount,
                    "competitors": rivals,
                    "gap": amount is None,
                }
            )
        rows_out.append({"party_id": party_id, "name": names.get(party_id, ""), "cells": cells})
    return {
        "groups": [{"id": g["id"], "key": g["key"], "name": g["name"]} for g in groups],
        "rows": rows_out,
        "next_after": page[-1] if len(clients) > limit and page else None,
    }
