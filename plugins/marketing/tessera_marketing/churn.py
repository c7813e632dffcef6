"""Churn of clients per acquisition channel: "why do clients from this channel leave".

A party is **acquired** by the channel of its first touch (``reports``: first-touch
attribution) when it became a client: it has revenue since the month of its first touch
(``tessera_revenue_sources``) or its status is ``current`` or ``former``. An acquired client is
**lost** when its status is ``former``, or when it was first touched before the window and in the
last ``months`` months it brought no revenue (no won deal, no payment: the revenue sources) and
had no done activity. Each lost client's latest loss reason comes from
``tessera_marketing_loss_reasons`` (sales: the reasons of lost deals); lost clients without one
are counted as ``no_reason``. Everything counts only the parties the caller reads, in SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera import clock, db
from tessera.permissions import Principal

from tessera_marketing import revenue
from tessera_marketing.reports import _first_touch_sql
from tessera_marketing.services import CAMPAIGN


def _loss_union() -> str | None:
    chosen = revenue._collect("tessera_marketing_loss_reasons")
    if not chosen:
        return None
    return " UNION ALL ".join(
        f"SELECT lr{i}.party_id AS party_id, lr{i}.reason AS reason, lr{i}.at AS at FROM ({s['sql']}) lr{i}"
        for i, s in enumerate(chosen)
    )


def _month_start(day: dt.date, months_back: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months_back
    return dt.date(index // 12, index % 12 + 1, 1)


async def churn(principal: Principal, months: int = 6) -> list[dict[str, Any]]:
    """Per channel: acquired clients, lost ones, the churn rate and the loss reasons."""
    CAMPAIGN.require(principal, "read")
    now = clock.now()
    window = _month_start(now.date(), months)
    cutoff_month = window.strftime("%Y-%m")
    cutoff = dt.datetime(window.year, window.month, window.day, tzinfo=dt.UTC)
    ft_sql, ft_args = await _first_touch_sql(principal)
    union = revenue.union_sql()
    false = "FALSE" if db.is_postgres() else "0"
    bought = (
        f"EXISTS (SELECT 1 FROM ({union}) rv WHERE rv.party_id = ft.party_id AND rv.month >= ft.month)"
        if union
        else false
    )
    recent = (
        f"EXISTS (SELECT 1 FROM ({union}) rr WHERE rr.party_id = ft.party_id AND rr.month >= {{}})"
        if union
        else f"(CAST({{}} AS TEXT) IS NULL AND {false})"
    )
    active = (
        "EXISTS (SELECT 1 FROM activity a WHERE a.party_id = ft.party_id AND a.status = 'done' "
        "AND a.starts_at >= {})"
    )
    base = (
        "SELECT ft.party_id AS party_id, c.channel AS channel, CASE WHEN p.status = 'former' OR "
        f"(ft.month < {{}} AND NOT {recent} AND NOT {active}) THEN 1 ELSE 0 END AS lost "
        f"FROM ({ft_sql}) ft JOIN marketing_campaign c ON c.id = ft.campaign_id "
        f"JOIN party p ON p.id = ft.party_id WHERE (p.status IN ('current', 'former') OR {bought})"
    )
    # Placeholders in order: the window's month (twice), the cutoff time, then the first-touch's.
    args = [cutoff_month, cutoff_month, cutoff, *ft_args]
    rows = await db.raw(
        f"SELECT b.channel AS channel, COUNT(*) AS acquired, SUM(b.lost) AS lost FROM ({base}) b "
        "GROUP BY b.channel ORDER BY b.channel",
        *args,
    )
    reasons: dict[str, list[dict[str, Any]]] = {}
    loss = _loss_union()
    if loss is not None:
        for r in await db.raw(
            f"SELECT b.channel AS channel, lr.reason AS reason, COUNT(*) AS n FROM ({base}) b "
            f"JOIN ({loss}) lr ON lr.party_id = b.party_id WHERE b.lost = 1 AND NOT EXISTS ("
            f"SELECT 1 FROM ({loss}) l2 WHERE l2.party_id = lr.party_id AND (l2.at > lr.at OR "
            "(l2.at = lr.at AND l2.reason > lr.reason))) GROUP BY b.channel, lr.reason",
            *args,
        ):
            reasons.setdefault(r["channel"], []).append({"reason": r["reason"], "count": int(r["n"])})
    out = []
    for r in rows:
        acquired, lost = int(r["acquired"]), int(r["lost"] or 0)
        given = sorted(reasons.get(r["channel"], []), key=lambda x: (-x["count"], x["reason"]))
        out.append(
            {
                "channel": r["channel"],
                "acquired": acquired,
                "lost": lost,
                "churn_rate": round(lost / acquired, 4) if acquired else None,
                "reasons": given,
                "no_reason": lost - sum(x["count"] for x in given),
                "months": months,
            }
        )
    return out
