"""The return of campaigns, per campaign and per channel.

Attribution is **first touch**: a party's touches are its leads that name a campaign (a web
form, a deal opened with the campaign, a lead logged by hand); the earliest one (ties: the
lower lead id) is its first touch, and the party is a lead of that campaign only. Revenue
(``tessera_revenue_sources``: sales' won deals, receivables' payments) of the party from the
month of its first touch on is that campaign's revenue.

Figures per campaign: ``responses`` (its leads, every touch), ``leads`` (parties first touched
by it), ``customers`` (those with revenue since), ``conversion`` = customers / leads,
``revenue``, ``cost`` (its cost lines), ``cost_per_lead`` = cost / leads and ``roi`` =
(revenue − cost) / cost. Every figure counts only the parties the caller may read (the kernel's
party read rule, inside the queries); costs are the campaign's own.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tessera import db
from tessera.permissions import Principal

from tessera_marketing import revenue
from tessera_marketing.services import CAMPAIGN, visible_parties

CENTS = Decimal("0.01")


def _month(column: str) -> str:
    if db.is_postgres():
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"
    return f"strftime('%Y-%m', {column})"


async def _first_touch_sql(principal: Principal) -> tuple[str, list[Any]]:
    """``party_id, campaign_id, month`` of every visible party's first touch."""
    visible = visible_parties(principal)
    sql = (
        f"SELECT l.party_id AS party_id, l.campaign_id AS campaign_id, {_month('l.received_at')} AS month "
        "FROM marketing_lead l WHERE l.campaign_id IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM marketing_lead e WHERE e.party_id = l.party_id AND e.campaign_id IS NOT NULL "
        "AND (e.received_at < l.received_at OR (e.received_at = l.received_at AND e.id < l.id)))"
    )
    args: list[Any] = []
    if visible is not None:
        sql += " AND l.party_id IN ({})"
        args.append(visible.querystrings[0])
    return sql, args


async def campaign_figures(
    principal: Principal, campaign_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    from tessera_marketing.tables import Campaign

    CAMPAIGN.require(principal, "read")
    query = Campaign.select().order_by(Campaign.starts_on).order_by(Campaign.id)
    if campaign_ids is not None:
        query = query.where(Campaign.id.is_in(campaign_ids or [-1]))
    campaigns = await query
    visible = visible_parties(principal)
    vis_sql, vis_args = (
        ("", []) if visible is None else (" AND r.party_id IN ({})", [visible.querystrings[0]])
    )

    responses = {
        r["campaign_id"]: int(r["n"])
        for r in await db.raw(
            "SELECT r.campaign_id AS campaign_id, COUNT(*) AS n FROM marketing_lead r "
            f"WHERE r.campaign_id IS NOT NULL{vis_sql} GROUP BY r.campaign_id",
            *vis_args,
        )
    }
    ft_sql, ft_args = await _first_touch_sql(principal)
    leads = {
        r["campaign_id"]: int(r["n"])
        for r in await db.raw(
            f"SELECT ft.campaign_id AS campaign_id, COUNT(*) AS n FROM ({ft_sql}) ft GROUP BY ft.campaign_id",
            *ft_args,
        )
    }
    costs = {
        r["campaign_id"]: Decimal(str(r["total"] or 0))
        for r in await db.raw(
            "SELECT campaign_id, SUM(amount) AS total FROM marketing_campaign_cost GROUP BY campaign_id"
        )
    }
    earned: dict[int, Decimal] = {}
    customers: dict[int, int] = {}
    union = revenue.union_sql()
    if union is not None:
        for r in await db.raw(
            "SELECT pr.campaign_id AS campaign_id, SUM(pr.total) AS total, COUNT(*) AS customers FROM ("
            f"SELECT ft.campaign_id AS campaign_id, ft.party_id AS party_id, SUM(rv.amount) AS total "
            f"FROM ({ft_sql}) ft JOIN ({union}) rv ON rv.party_id = ft.party_id AND rv.month >= ft.month "
            "GROUP BY ft.campaign_id, ft.party_id HAVING SUM(rv.amount) > 0) pr GROUP BY pr.campaign_id",
            *ft_args,
        ):
            earned[r["campaign_id"]] = Decimal(str(r["total"] or 0))
            customers[r["campaign_id"]] = int(r["customers"])
    out = []
    for c in campaigns:
        out.append(
            _figures(
                {
                    "campaign_id": c["id"],
                    "name": c["name"],
                    "channel": c["channel"],
                    "status": c["status"],
                    "budget": Decimal(str(c["budget"])).quantize(CENTS),
                    "expected_leads": c["expected_leads"],
                    "expected_revenue": Decimal(str(c["expected_revenue"])).quantize(CENTS),
                },
                responses.get(c["id"], 0),
                leads.get(c["id"], 0),
                customers.get(c["id"], 0),
                earned.get(c["id"], Decimal(0)),
                costs.get(c["id"], Decimal(0)),
            )
        )
    return out


def _figures(
    row: dict[str, Any], responses: int, leads: int, customers: int, earned: Decimal, cost: Decimal
) -> dict[str, Any]:
    row.update(
        responses=responses,
        leads=leads,
        customers=customers,
        conversion=round(customers / leads, 4) if leads else None,
        revenue=earned.quantize(CENTS),
        cost=cost.quantize(CENTS),
        cost_per_lead=(cost / leads).quantize(CENTS) if leads else None,
        roi=round(float((earned - cost) / cost), 4) if cost else None,
    )
    return row


async def channel_figures(principal: Principal) -> list[dict[str, Any]]:
    """The same figures summed per channel (a party is first touched by one campaign only, so
    leads and customers add up)."""
    by: dict[str, dict[str, Any]] = {}
    for c in await campaign_figures(principal):
        acc = by.setdefault(
            c["channel"],
            {
                "campaigns": 0,
                "responses": 0,
                "leads": 0,
                "customers": 0,
                "revenue": Decimal(0),
                "cost": Decimal(0),
            },
        )
        acc["campaigns"] += 1
        for key in ("responses", "leads", "customers", "revenue", "cost"):
            acc[key] += c[key]
    out = []
    for channel in sorted(by):
        acc = by[channel]
        row = {"channel": channel, "campaigns": acc["campaigns"]}
        out.append(
            _figures(row, acc["responses"], acc["leads"], acc["customers"], acc["revenue"], acc["cost"])
        )
    return out
