"""Routes added beside the return report: the churn of clients per acquisition channel, and
competitors (product groups, competitor products and prices, supplies, the clients x product
groups matrix).

No ``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Router, get
from litestar.params import Parameter
from msgspec import Meta, Struct
from tessera.api.crud import entity_router
from tessera.entities.dto import Id, partial
from tessera.permissions import Principal

from tessera_marketing import churn, competitors
from tessera_marketing.tables import CompetitorProduct, CompetitorSupply

IdQ = Annotated[int | None, Parameter(ge=1, le=2**31 - 1)]


class ReasonCount(Struct, kw_only=True):
    reason: str
    count: int


class ChannelChurn(Struct, kw_only=True):
    channel: str
    acquired: int
    lost: int
    churn_rate: float | None
    reasons: list[ReasonCount]
    no_reason: int
    months: int


@get("/reports/return/churn", operation_id="marketing_channel_churn")
async def channel_churn(
    principal: Principal, months: Annotated[int, Parameter(ge=1, le=60)] = 6
) -> list[ChannelChurn]:
    """Why clients from a channel leave: per acquisition channel (first touch), the clients it
    brought, those lost (status former, or no revenue and no done activity for ``months``
    months), the churn rate and the lost clients' latest loss reasons (from sales)."""
    rows = await churn.churn(principal, months)
    return [msgspec.convert(r, ChannelChurn, strict=False) for r in rows]


class ProductGroupIn(Struct, kw_only=True, forbid_unknown_fields=True):
    key: Annotated[str, Meta(min_length=1, max_length=64, examples=["fibre"])]
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Fibre optics"])]
    skus: list[Annotated[str, Meta(min_length=1, max_length=100)]] = msgspec.field(default_factory=list)
    position: Annotated[int, Meta(ge=0, le=100000)] = 0


ProductGroupPatch = partial(ProductGroupIn, "ProductGroupPatch")


class ProductGroupOut(Struct, kw_only=True):
    id: int
    key: str
    name: str
    skus: list[str]
    position: int
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def group_filters() -> list[Any]:
    return []


groups_router = entity_router(
    spec=competitors.GROUP,
    path="/product-groups",
    tag="marketing",
    out=ProductGroupOut,
    create_body=ProductGroupIn,
    patch_body=ProductGroupPatch,
    filters=group_filters,
    name="product_group",
)


class CompetitorProductIn(Struct, kw_only=True, forbid_unknown_fields=True):
    competitor_id: Id
    group_id: Id | None = None
    name: Annotated[str, Meta(min_length=1, max_length=300, examples=["OptiLine 12"])]
    price: Annotated[Decimal, Meta(examples=["1450.00"])] | None = None
    currency: Annotated[str, Meta(min_length=3, max_length=3)] = "RUB"
    unit: Annotated[str, Meta(max_length=30)] = ""
    observed_on: dt.date | None = None
    note: Annotated[str, Meta(max_length=5000)] = ""


CompetitorProductPatch = partial(CompetitorProductIn, "CompetitorProductPatch")


class CompetitorProductOut(Struct, kw_only=True):
    id: int
    competitor_id: int
    group_id: int | None
    name: str
    price: Decimal | None
    currency: str
    unit: str
    observed_on: dt.date | None
    note: str
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def product_filters(competitor_id: IdQ = None, group_id: IdQ = None) -> list[Any]:
    out: list[Any] = []
    if competitor_id is not None:
        out.append(CompetitorProduct.competitor_id == competitor_id)
    if group_id is not None:
        out.append(CompetitorProduct.group_id == group_id)
    return out


products_router = entity_router(
    spec=competitors.PRODUCT,
    path="/competitor-products",
    tag="marketing",
    out=CompetitorProductOut,
    create_body=CompetitorProductIn,
    patch_body=CompetitorProductPatch,
    filters=product_filters,
    name="competitor_product",
)


class SupplyIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    competitor_id: Id
    group_id: Id
    note: Annotated[str, Meta(max_length=500)] = ""
    noted_on: dt.date | None = None


SupplyPatch = partial(SupplyIn, "SupplyPatch")


class SupplyOut(Struct, kw_only=True):
    id: int
    party_id: int
    competitor_id: int
    group_id: int
    note: str
    noted_on: dt.date | None
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def supply_filters(party_id: IdQ = None, competitor_id: IdQ = None, group_id: IdQ = None) -> list[Any]:
    out: list[Any] = []
    if party_id is not None:
        out.append(CompetitorSupply.party_id == party_id)
    if competitor_id is not None:
        out.append(CompetitorSupply.competitor_id == competitor_id)
    if group_id is not None:
        out.append(CompetitorSupply.group_id == group_id)
    return out


supplies_router = entity_router(
    spec=competitors.SUPPLY,
    path="/competitor-supplies",
    tag="marketing",
    out=SupplyOut,
    create_body=SupplyIn,
    patch_body=SupplyPatch,
    filters=supply_filters,
    name="competitor_supply",
)


class MatrixGroup(Struct, kw_only=True):
    id: int
    key: str
    name: str


class MatrixCellOut(Struct, kw_only=True):
    group_id: int
    ours: Decimal | None
    competitors: list[str]
    gap: bool


class MatrixRow(Struct, kw_only=True):
    party_id: int
    name: str
    cells: list[MatrixCellOut]


class CompetitorMatrix(Struct, kw_only=True):
    groups: list[MatrixGroup]
    rows: list[MatrixRow]
    next_after: int | None


@get("/competitors/matrix", operation_id="competitor_matrix")
async def competitor_matrix(
    principal: Principal,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    after: Annotated[int, Parameter(ge=0, le=2**31 - 1)] = 0,
) -> CompetitorMatrix:
    """Clients x product groups: per client you read, per group, what it bought from us (won
    deal lines by SKU, through sales) and the competitors it buys the group from; ``gap`` marks
    a group it does not buy from us (a cross-sell lead). Paged by client id (``after``)."""
    return msgspec.convert(await competitors.matrix(principal, limit, after), CompetitorMatrix, strict=False)


def routers() -> list[Any]:
    return [
        groups_router,
        products_router,
        supplies_router,
        Router(path="/", route_handlers=[channel_churn, competitor_matrix], tags=["marketing"]),
    ]
