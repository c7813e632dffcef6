"""The sales plugin's answer to the marketing plugin's ``tessera_revenue_sources``: won deals
by close month, in the base currency (sales setting ``base_currency``).

A deal in another currency is converted with the rate in force on its close day (the latest
``sales_exchange_rate.valid_from`` on or before it); a deal whose currency has no rate by then
is left out rather than counted 1:1 (like the sales reports, which refuse a missing rate).
Plugin-written SQL, no parameters (the hook's contract).
"""

from __future__ import annotations

from typing import Any

from tessera.i18n import N_


def _sql(engine: str) -> str:
    if engine == "postgres":
        base = "COALESCE((SELECT s.value->>'code' FROM sales_setting s WHERE s.key = 'base_currency'), 'RUB')"
        month = "to_char(d.closed_at AT TIME ZONE 'UTC', 'YYYY-MM')"
        day = "(d.closed_at AT TIME ZONE 'UTC')::date"
    else:
        base = (
            "COALESCE((SELECT json_extract(s.value, '$.code') FROM sales_setting s "
            "WHERE s.key = 'base_currency'), 'RUB')"
        )
        month = "strftime('%Y-%m', d.closed_at)"
        day = "date(d.closed_at)"
    rate = (
        "(SELECT x.rate FROM sales_exchange_rate x WHERE x.currency = d.currency "
        f"AND x.base = {base} AND x.valid_from <= {day} ORDER BY x.valid_from DESC LIMIT 1)"
    )
    amount = f"CASE WHEN d.currency = {base} THEN d.amount ELSE d.amount * {rate} END"
    return (
        f"SELECT w.party_id, w.month, w.amount FROM (SELECT d.party_id AS party_id, {month} AS month, "
        f"{amount} AS amount FROM sales_deal d WHERE d.status = 'won' AND d.closed_at IS NOT NULL) w "
        "WHERE w.amount IS NOT NULL"
    )


def revenue_sources(engine: str) -> list[dict[str, Any]]:
    return [{"key": "sales.won_deals", "label": N_("Won deals"), "sql": _sql(engine)}]


def loss_reasons(engine: str) -> list[dict[str, Any]]:
    """The marketing plugin's ``tessera_marketing_loss_reasons``: lost deals with their reason
    (the managed list's name, else the loss comment), for the churn per acquisition channel."""
    reason = "COALESCE(r.name, NULLIF(d.loss_comment, ''))"
    return [
        {
            "key": "sales.lost_deals",
            "label": N_("Lost deals"),
            "sql": (
                f"SELECT d.party_id AS party_id, {reason} AS reason, d.closed_at AS at FROM sales_deal d "
                "LEFT JOIN sales_loss_reason r ON r.id = d.loss_reason_id "
                f"WHERE d.status = 'lost' AND d.closed_at IS NOT NULL AND {reason} IS NOT NULL"
            ),
        }
    ]


def product_purchases(engine: str) -> list[dict[str, Any]]:
    """The marketing plugin's ``tessera_marketing_product_purchases``: the product lines of won
    deals (amount as on the line, in the deal's currency), for its competitor matrix."""
    return [
        {
            "key": "sales.won_lines",
            "label": N_("Won deals"),
            "sql": (
                "SELECT d.party_id AS party_id, p.sku AS sku, l.amount AS amount, d.closed_at AS at "
                "FROM sales_deal_line l JOIN sales_deal d ON d.id = l.deal_id "
                "JOIN sales_product p ON p.id = l.product_id WHERE d.status = 'won'"
            ),
        }
    ]
