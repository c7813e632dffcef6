"""Entity specs of the sales plugin's settings records: products, price lists, loss reasons,
cadence rules and plans. Their routes write through ``tessera.entities.service`` like deals,
so every change is audited (old -> new), announced as a domain event and checked in one
transaction; the audit log shows an entry to whoever may read the record."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tessera.entities import service
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_sales.tables import CadenceRule, LossReason, Price, PriceList, Product, SalesPlan


def _everyone(principal: Principal | None) -> Any:
    return None


def _settings_writes(permission: str) -> dict[str, str | None]:
    return {"read": "sales.deal.read", "write": permission, "delete": permission}


async def _unique(table: Any, column: Any, value: Any, field: str, message: str, existing: Any) -> None:
    query = table.exists().where(column == value)
    if existing is not None:
        query = query.where(table._meta.primary_key != existing["id"])
    if await query:
        raise ValidationFailed.field(field, message)


async def _prepare_product(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "sku" in values:
        await _unique(Product, Product.sku, values["sku"], "sku", f"SKU {values['sku']!r} is taken", existing)
    return values


async def _prepare_reason(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "name" in values:
        await _unique(
            LossReason, LossReason.name, values["name"], "name", "this reason exists already", existing
        )
    return values


async def _prepare_price_list(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    from tessera_sales.services import CURRENCIES, money

    values["currency"] = str(values["currency"]).upper()
    if values["currency"] not in CURRENCIES:
        raise ValidationFailed.field("currency", f"must be one of {', '.join(sorted(CURRENCIES))}")
    if values.get("valid_to") is not None and values["valid_to"] < values["valid_from"]:
        raise ValidationFailed.field("valid_to", "must not be before valid_from")
    if not 0 <= Decimal(str(values.get("discount_pct") or 0)) <= 100:
        raise ValidationFailed.field("discount_pct", "must be between 0 and 100")
    prices = values.get("prices") or []
    ids = [p["product_id"] for p in prices]
    found = {r["id"] for r in await Product.select(Product.id).where(Product.id.is_in(ids or [-1]))}
    for i, p in enumerate(prices):
        if p["product_id"] not in found:
            raise ValidationFailed.field(f"prices[{i}].product_id", f"no product {p['product_id']}")
        if Decimal(str(p["price"])) < 0:
            raise ValidationFailed.field(f"prices[{i}].price", "must be zero or more")
        p["price"] = money(p["price"])
    values["prices"] = prices
    return values


async def _write_prices(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> list[Any]:
    prices = extras.get("prices") or []
    if prices:
        await Price.insert(
            *[Price(price_list_id=row["id"], product_id=p["product_id"], price=p["price"]) for p in prices]
        )
    # The prices are part of the change: audited with the list.
    row["prices"] = [{"product_id": p["product_id"], "price": p["price"]} for p in prices]
    return []


async def _prepare_rule(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    from tessera_sales.cadence import check_rule

    return check_rule(values)


def plan_visibility(principal: Principal | None) -> Any:
    """Plans of managers the caller sees, and every team and company plan."""
    if principal is None:
        return None
    mine = principal.owner_where(SalesPlan.user_id)
    return None if mine is None else (SalesPlan.user_id.is_null() | mine)


PRODUCT = service.EntitySpec(
    name="sales.product",
    table=Product,
    permission="sales.product",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_product,
    permission_overrides=_settings_writes("sales.product.manage"),
)

PRICE_LIST = service.EntitySpec(
    name="sales.price_list",
    table=PriceList,
    permission="sales.product",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_price_list,
    after_write=_write_prices,
    permission_overrides=_settings_writes("sales.product.manage"),
)

LOSS_REASON = service.EntitySpec(
    name="sales.loss_reason",
    table=LossReason,
    permission="sales.settings",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_reason,
    permission_overrides=_settings_writes("sales.settings.manage"),
)

CADENCE_RULE = service.EntitySpec(
    name="sales.cadence_rule",
    table=CadenceRule,
    permission="sales.settings",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_rule,
    permission_overrides=_settings_writes("sales.settings.manage"),
)

PLAN = service.EntitySpec(
    name="sales.plan",
    table=SalesPlan,
    permission="sales.plan",
    visibility=plan_visibility,
    custom_fields=False,
    permission_overrides={
        "read": "sales.deal.read",
        "write": "sales.plan.manage",
        "delete": "sales.plan.manage",
    },
)
