"""The report summary (``sales_stat``), maintained in the same transaction as every change of a
deal, so funnel and forecast reports read a few thousand summary rows instead of scanning a
million deals and their stage stays (see ``tables.SalesStat`` for what each row counts).

One pure function, ``contributions(deal, visits)``, says what a deal adds to the summary. Every
write path takes the deal's contribution before and after the change and applies the
difference (``apply``); ``rebuild`` recomputes the whole summary from the deals with the same
function (migration, ``tessera`` maintenance, tests that prove the increments never drift).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from tessera import db

NO_DAY = dt.date(1970, 1, 1)
FINAL = ("won", "lost")

#: (kind, pipeline, day, stage, owner_id, team_id, currency)
Key = tuple[str, str, dt.date, str, int, int, str]
#: [n, n2, n3, seconds, amount]
Counters = list[Any]


def aware(value: Any) -> dt.datetime:
    """A database timestamp (SQLite gives ISO text, sometimes naive) as an aware UTC-based datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value  # type: ignore[no-any-return]


def cohort_day(created_at: Any) -> dt.date:
    """The UTC day a deal was opened (the funnel's cohort)."""
    return aware(created_at).astimezone(dt.UTC).date()


def contributions(deal: dict[str, Any] | None, visits: Iterable[dict[str, Any]]) -> dict[Key, Counters]:
    """What one deal (a ``sales_deal`` row) with its stage stays adds to the summary."""
    out: dict[Key, Counters] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0)])
    if deal is None:
        return out
    pipeline = deal["pipeline"]
    owner = int(deal.get("owner_id") or 0)
    team = int(deal.get("team_id") or 0)
    cohort = cohort_day(deal["created_at"])
    amount = Decimal(str(deal.get("amount") or 0))
    row = out[("deal", pipeline, cohort, deal["status"], owner, team, deal["currency"])]
    row[0] += 1
    row[4] += amount
    if deal["status"] == "open":
        # The forecast's inputs: weighted amount by expected close day, amount by the day the
        # current stage began.
        if deal.get("expected_close"):
            close = deal["expected_close"]
            if isinstance(close, str):
                close = dt.date.fromisoformat(close[:10])
            cell = out[("open_close", pipeline, close, "", owner, team, deal["currency"])]
            cell[0] += 1
            cell[4] += amount * int(deal.get("probability") or 0)
        if deal.get("stage_entered_at"):
            day = cohort_day(deal["stage_entered_at"])
            cell = out[("open_stage", pipeline, day, deal.get("stage") or "", owner, team, deal["currency"])]
            cell[0] += 1
            cell[4] += amount
    seen: set[str] = set()
    first_entry: dict[str, dt.datetime] = {}
    for v in sorted(visits, key=lambda v: (aware(v["entered_at"]), v.get("seq") or 0)):
        cell = out[("stage", pipeline, cohort, v["stage"], owner, team, "")]
        if v["stage"] not in seen:
            seen.add(v["stage"])
            cell[0] += 1
        if v.get("seconds") is not None:
            cell[1] += 1
            cell[3] += int(v["seconds"])
            if v.get("norm_seconds") is not None and int(v["seconds"]) > int(v["norm_seconds"]):
                cell[2] += 1
        if v["stage"] not in FINAL:
            first_entry.setdefault(v["stage"], aware(v["entered_at"]))
    if deal["status"] in FINAL:
        closed_at = aware(deal["closed_at"]) if deal.get("closed_at") else None
        for stage, entered in first_entry.items():
            cell = out[("history", pipeline, NO_DAY, stage, owner, team, "")]
            cell[0] += 1
            if deal["status"] == "won" and closed_at is not None:
                cell[1] += 1
                cell[3] += int((closed_at - entered).total_seconds())
    return out


def difference(after: dict[Key, Counters], before: dict[Key, Counters]) -> dict[Key, Counters]:
    delta: dict[Key, Counters] = {}
    for key in set(after) | set(before):
        a = after.get(key, [0, 0, 0, 0, Decimal(0)])
        b = before.get(key, [0, 0, 0, 0, Decimal(0)])
        d = [x - y for x, y in zip(a, b, strict=True)]
        if any(d):
            delta[key] = d
    return delta


def add_into(total: dict[Key, Counters], part: dict[Key, Counters]) -> None:
    for key, values in part.items():
        cell = total.setdefault(key, [0, 0, 0, 0, Decimal(0)])
        for i, v in enumerate(values):
            cell[i] += v


UPSERT_HEAD = (
    "INSERT INTO sales_stat (kind, pipeline, day, stage, owner_id, team_id, currency, n, n2, n3, seconds, "
    "amount) VALUES "
)
UPSERT_TAIL = (
    " ON CONFLICT (kind, pipeline, day, stage, owner_id, team_id, currency) DO UPDATE SET "
    "n = sales_stat.n + excluded.n, n2 = sales_stat.n2 + excluded.n2, n3 = sales_stat.n3 + excluded.n3, "
    "seconds = sales_stat.seconds + excluded.seconds, amount = sales_stat.amount + excluded.amount"
)


async def apply(delta: dict[Key, Counters]) -> None:
    """Add ``delta`` to the summary (inside the caller's transaction). Keys are written in a
    fixed order so two concurrent transactions never lock the same rows crosswise."""
    items = sorted((k, v) for k, v in delta.items() if any(v))
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        values, args = [], []
        for key, (n, n2, n3, seconds, amount) in chunk:
            values.append("({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})")
            args.extend([*key, n, n2, n3, seconds, Decimal(amount)])
        await db.raw(UPSERT_HEAD + ", ".join(values) + UPSERT_TAIL, *args)


async def deal_state(deal_id: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The deal row and its stays as the summary sees them."""
    from tessera_sales.tables import Deal, StageVisit

    deal = await Deal.select(*_deal_columns()).where(Deal.id == deal_id).first()
    if deal is None:
        return None, []
    visits = await StageVisit.select(*_visit_columns()).where(StageVisit.deal_id == deal_id)
    return deal, visits


def _deal_columns() -> list[Any]:
    from tessera_sales.tables import Deal

    return [
        Deal.id,
        Deal.pipeline,
        Deal.owner_id,
        Deal.team_id,
        Deal.created_at,
        Deal.status,
        Deal.currency,
        Deal.amount,
        Deal.closed_at,
        Deal.expected_close,
        Deal.probability,
        Deal.stage,
        Deal.stage_entered_at,
    ]


def _visit_columns() -> list[Any]:
    from tessera_sales.tables import StageVisit

    return [
        StageVisit.deal_id,
        StageVisit.stage,
        StageVisit.seq,
        StageVisit.entered_at,
        StageVisit.seconds,
        StageVisit.norm_seconds,
    ]


async def rebuild(chunk: int = 5000) -> int:
    """Recompute the whole summary from the deals (one transaction). Returns summary rows."""
    from tessera_sales.tables import Deal, SalesStat, StageVisit

    total: dict[Key, Counters] = {}
    async with db.transaction():
        await SalesStat.delete(force=True)
        last = 0
        while True:
            deals = await Deal.select(*_deal_columns()).where(Deal.id > last).order_by(Deal.id).limit(chunk)
            if not deals:
                break
            last = deals[-1]["id"]
            ids = [d["id"] for d in deals]
            by_deal: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for v in await StageVisit.select(*_visit_columns()).where(StageVisit.deal_id.is_in(ids)):
                by_deal[v["deal_id"]].append(v)
            for d in deals:
                add_into(total, contributions(d, by_deal.get(d["id"], [])))
        await apply(total)
    return len(total)


async def snapshot() -> dict[Key, Counters]:
    """The summary as stored, without all-zero rows (tests compare it with ``rebuild``)."""
    rows = await db.raw(
        "SELECT kind, pipeline, day, stage, owner_id, team_id, currency, n, n2, n3, seconds, amount "
        "FROM sales_stat"
    )
    out: dict[Key, Counters] = {}
    for r in rows:
        values = [int(r["n"]), int(r["n2"]), int(r["n3"]), int(r["seconds"]), Decimal(str(r["amount"]))]
        if any(values):
            day = r["day"] if isinstance(r["day"], dt.date) else dt.date.fromisoformat(str(r["day"])[:10])
            key = (r["kind"], r["pipeline"], day, r["stage"], r["owner_id"], r["team_id"], r["currency"])
            out[key] = values
    return out
