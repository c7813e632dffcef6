"""Currencies: the company's base currency (a setting) and dated exchange rates.

A rate says how many units of the base currency one unit of ``currency`` costs from
``valid_from`` on, until the next rate of the same pair. Reports convert money into the base
currency with the rate in force on the relevant date (the latest ``valid_from`` on or before
it); all arithmetic is ``Decimal`` and a figure is rounded to cents once, after converting and
adding. A missing rate is a 422 naming the currency and the date, never a silent 1:1.
"""

from __future__ import annotations

import bisect
import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from tessera import audit, db
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_sales.tables import ExchangeRate, SalesSetting

DEFAULT_BASE = "RUB"
RATE_PLACES = Decimal("0.000001")


def _currency(code: Any, field: str) -> str:
    from tessera_sales.services import CURRENCIES

    value = str(code or "").upper()
    if value not in CURRENCIES:
        raise ValidationFailed.field(field, f"must be one of {', '.join(sorted(CURRENCIES))}")
    return value


async def base_currency() -> str:
    row = await SalesSetting.select(SalesSetting.value).where(SalesSetting.key == "base_currency").first()
    if row is None:
        return DEFAULT_BASE
    value = row["value"]
    if isinstance(value, str):
        import json

        value = json.loads(value)
    return str(value.get("code") or DEFAULT_BASE)


async def settings() -> dict[str, Any]:
    return {"base_currency": await base_currency()}


async def update_settings(principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    principal.require("sales.settings.manage")
    if "base_currency" in values:
        code = _currency(values["base_currency"], "base_currency")
        async with db.transaction():
            old = await base_currency()
            if old == code:  # nothing changes: no write, no audit entry
                return await settings()
            # A setting is no record anyone owns: only those who see every entry read its entry.
            await audit.record(
                "update", "sales.setting", None, audit.diff({"base_currency": old}, {"base_currency": code})
            )
            found = await SalesSetting.exists().where(SalesSetting.key == "base_currency")
            if found:
                await SalesSetting.update({SalesSetting.value: {"code": code}}).where(
                    SalesSetting.key == "base_currency"
                )
            else:
                await SalesSetting.insert(SalesSetting(key="base_currency", value={"code": code}))
    return await settings()


def _require_manage(principal: Principal) -> None:
    if not (principal.can("sales.rates.manage") or principal.can("sales.settings.manage")):
        principal.require("sales.rates.manage")


async def add_rate(principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    """Set the rate of ``currency`` against the base currency from ``valid_from`` (a second
    rate for the same day replaces the first)."""
    _require_manage(principal)
    base = await base_currency()
    currency = _currency(values.get("currency"), "currency")
    if currency == base:
        raise ValidationFailed.field("currency", f"{base} is the base currency; its rate is always 1")
    try:
        rate = Decimal(str(values.get("rate")))
    except (InvalidOperation, ValueError) as exc:
        raise ValidationFailed.field("rate", "must be a decimal number") from exc
    if not rate.is_finite() or rate <= 0:
        raise ValidationFailed.field("rate", "must be more than zero")
    if rate != rate.quantize(RATE_PLACES):
        raise ValidationFailed.field("rate", "at most 6 decimal places")
    valid_from = values["valid_from"]
    async with db.transaction():
        await ExchangeRate.delete().where(
            ExchangeRate.base == base,
            ExchangeRate.currency == currency,
            ExchangeRate.valid_from == valid_from,
        )
        rows = await ExchangeRate.insert(
            ExchangeRate(
                base=base, currency=currency, valid_from=valid_from, rate=rate, created_by=principal.user_id
            )
        ).returning(ExchangeRate.id)
        await audit.record(
            "create",
            "sales.exchange_rate",
            rows[0]["id"],
            audit.diff(None, {"base": base, "currency": currency, "valid_from": valid_from, "rate": rate}),
        )
    return await _rate(rows[0]["id"])


async def _rate(rate_id: int) -> dict[str, Any]:
    row = await ExchangeRate.select().where(ExchangeRate.id == rate_id).first()
    assert row is not None
    row["rate"] = Decimal(str(row["rate"])).quantize(RATE_PLACES)
    return row


async def list_rates(principal: Principal, currency: str | None = None) -> list[dict[str, Any]]:
    principal.require("sales.deal.read")
    base = await base_currency()
    query = ExchangeRate.select().where(ExchangeRate.base == base)
    if currency:
        query = query.where(ExchangeRate.currency == currency.upper())
    rows = await query.order_by(ExchangeRate.currency).order_by(ExchangeRate.valid_from)
    for r in rows:
        r["rate"] = Decimal(str(r["rate"])).quantize(RATE_PLACES)
    return rows


async def delete_rate(principal: Principal, rate_id: int) -> None:
    _require_manage(principal)
    async with db.transaction():
        gone = (
            await ExchangeRate.delete()
            .where(ExchangeRate.id == rate_id)
            .returning(*ExchangeRate.all_columns())
        )
        if gone:
            await audit.record("delete", "sales.exchange_rate", rate_id, audit.diff(gone[0], None))
        else:
            audit.unchanged()  # deleting a rate that is gone already changes nothing


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value  # type: ignore[no-any-return]


class Converter:
    """Rates against one base currency, loaded once per report."""

    def __init__(self, base: str, rates: dict[str, list[tuple[dt.date, Decimal]]]) -> None:
        self.base = base
        self._days = {c: [d for d, _ in items] for c, items in rates.items()}
        self._rates = {c: [r for _, r in items] for c, items in rates.items()}

    def rate(self, currency: str, on: Any, field: str = "currency") -> Decimal:
        """Units of the base currency per unit of ``currency`` on day ``on`` (422 if none)."""
        if currency == self.base:
            return Decimal(1)
        day = _day(on)
        days = self._days.get(currency, [])
        i = bisect.bisect_right(days, day)
        if i == 0:
            raise ValidationFailed.field(
                field,
                f"no {currency}->{self.base} exchange rate in force on {day.isoformat()}: "
                "add one with POST /api/sales/rates",
            )
        return self._rates[currency][i - 1]

    def to_base(self, amount: Any, currency: str, on: Any, field: str = "currency") -> Decimal:
        return Decimal(str(amount)) * self.rate(currency, on, field)

    def convert(self, amount: Any, currency: str, target: str, on: Any, field: str = "currency") -> Decimal:
        """``amount`` of ``currency`` in ``target`` (through the base) on day ``on``."""
        if currency == target:
            return Decimal(str(amount))
        return self.to_base(amount, currency, on, field) / self.rate(target, on, field)


async def converter() -> Converter:
    base = await base_currency()
    rows = (
        await ExchangeRate.select(ExchangeRate.currency, ExchangeRate.valid_from, ExchangeRate.rate)
        .where(ExchangeRate.base == base)
        .order_by(ExchangeRate.currency)
        .order_by(ExchangeRate.valid_from)
    )
    rates: dict[str, list[tuple[dt.date, Decimal]]] = {}
    for r in rows:
        rates.setdefault(r["currency"], []).append((_day(r["valid_from"]), Decimal(str(r["rate"]))))
    return Converter(base, rates)
