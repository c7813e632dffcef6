"""Sales reports: funnel (conversion, time in stage vs norm, stuck deals, loss reasons), plan vs
actual, forecast (two methods and accuracy) and manager KPIs.

Every report runs its aggregation in SQL over the deal table and the stage-visit projection,
with the caller's visibility rule inside the ``WHERE`` (``services.visibility_sql``), so a
manager's numbers cover their own deals and a head's their team's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from tessera import clock, db
from tessera.entities import service
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_sales import catalogue, rates, services
from tessera_sales.stats import aware
from tessera_sales.tables import ForecastSnapshot, SalesPlan

GROUPS = {"": None, "owner": "d.owner_id", "team": "d.team_id"}


def _period(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end] as dates -> [start 00:00 UTC, day after end 00:00 UTC)."""
    if end < start:
        raise ValidationFailed.field("date_to", "must not be before date_from")
    return (
        dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
    )


def _group_column(group_by: str) -> str | None:
    if group_by not in GROUPS:
        raise ValidationFailed.field("group_by", "must be owner or team (or empty)")
    return GROUPS[group_by]


def _filters(
    principal: Principal, owner_id: int | None, team_id: int | None, pipeline: str | None
) -> tuple[list[str], list[Any]]:
    vis, args = services.visibility_sql(principal)
    where = [vis]
    if owner_id is not None:
        where.append("d.owner_id = {}")
        args.append(owner_id)
    if team_id is not None:
        where.append("d.team_id = {}")
        args.append(team_id)
    if pipeline:
        where.append("d.pipeline = {}")
        args.append(pipeline)
    return where, args


# --------------------------------------------------------------------------- funnel


async def funnel(
    principal: Principal,
    *,
    pipeline: str = "sales.b2b",
    date_from: dt.date,
    date_to: dt.date,
    group_by: str = "",
    owner_id: int | None = None,
    team_id: int | None = None,
) -> dict[str, Any]:
    """Deals opened in the period (the cohort) and how far they got.

    Per stage (in pipeline order): ``entered`` (cohort deals that reached the stage),
    ``conversion`` from the previous stage and from the first, ``avg_days`` spent in it
    (stays that ended), ``over_norm`` (stays longer than the norm, ended or not) and ``stuck``
    (deals in the stage now, past its norm). Grouped by owner or team on request.
    """
    principal.require("sales.deal.read")
    definition = await services.pipeline(pipeline)
    start, end = _period(date_from, date_to)
    group = _group_column(group_by)
    where, args = _filters(principal, owner_id, team_id, None)
    now = clock.now()
    key = group or "NULL"
    grouping = f"{group}, " if group else ""
    vis = " AND ".join(where)
    # Ended stays, entries and totals come from the summary kept on every deal change
    # (``stats.py``): a few rows per day, owner and stage instead of every deal and stay.
    rows = await db.raw(
        f"SELECT {key} AS grp, d.stage AS stage, SUM(d.n) AS entered, SUM(d.seconds) AS spent, "
        "SUM(d.n2) AS finished, SUM(d.n3) AS over_norm "
        "FROM sales_stat d WHERE d.kind = 'stage' AND d.pipeline = {} AND d.day >= {} AND d.day <= {} AND "
        + vis
        + f" GROUP BY {grouping}d.stage",
        pipeline,
        date_from,
        date_to,
        *args,
    )
    amounts = await db.raw(
        f"SELECT {key} AS grp, d.stage AS status, d.currency AS currency, SUM(d.n) AS n, "
        "SUM(d.amount) AS amount "
        "FROM sales_stat d WHERE d.kind = 'deal' AND d.pipeline = {} AND d.day >= {} AND d.day <= {} AND "
        + vis
        + f" GROUP BY {grouping}d.stage, d.currency",
        pipeline,
        date_from,
        date_to,
        *args,
    )
    # What depends on "now" (stays running past their norm) comes from the open deals, through
    # the partial index ``sales_deal_open_due``.
    # SQLite's planner prefers the created_at index (a whole year: every deal) over the partial one.
    hint = "" if db.is_postgres() else " INDEXED BY sales_deal_open_due"
    stuck_rows = await db.raw(
        f"SELECT {key} AS grp, d.stage AS stage, COUNT(*) AS stuck FROM sales_deal d{hint} "
        "WHERE d.status = 'open' AND d.pipeline = {} AND d.stage_due_at < {} AND d.created_at >= {} "
        "AND d.created_at < {} AND " + vis + f" GROUP BY {grouping}d.stage",
        pipeline,
        now,
        start,
        end,
        *args,
    )
    stuck_by: dict[tuple[Any, str], int] = {(_grp(r["grp"]), r["stage"]): int(r["stuck"]) for r in stuck_rows}
    for r in rows:
        r["grp"] = _grp(r["grp"])
        r["stuck"] = stuck_by.pop((r["grp"], r["stage"]), 0)
        r["over_norm"] = int(r["over_norm"] or 0) + r["stuck"]
    for (grp, stage), n in stuck_by.items():  # a stay without a summary row cannot be, but be safe
        rows.append(
            {"grp": grp, "stage": stage, "entered": 0, "spent": 0, "finished": 0, "over_norm": n, "stuck": n}
        )
    amounts = [{**r, "grp": _grp(r["grp"])} for r in amounts if int(r["n"] or 0)]
    rows = [r for r in rows if int(r["entered"] or 0) or r["stuck"]]
    converter = await rates.converter()
    rate_day = min(date_to, now.date())
    order = [s["key"] for s in definition["stages"]]
    names = {s["key"]: s["name"] for s in definition["stages"]}
    norms = {s["key"]: services.norm_seconds(s) for s in definition["stages"]}
    by_group: dict[Any, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_group[r["grp"]][r["stage"]] = r
    totals: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    in_base: dict[Any, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in amounts:
        exact = Decimal(str(r["amount"] or 0))
        totals[r["grp"]].append(
            {
                "status": r["status"],
                "currency": r["currency"],
                "deals": int(r["n"]),
                "amount": services.money(exact),
            }
        )
        in_base[r["grp"]][r["status"]] += converter.to_base(exact, r["currency"], rate_day)
    groups = []
    for grp in sorted(set(by_group) | set(totals), key=lambda g: (g is None, g)):
        stages = []
        first = None
        previous = None
        for stage in order:
            r = by_group[grp].get(stage)
            entered = int(r["entered"]) if r else 0
            if first is None:
                first = entered
            finished = int(r["finished"]) if r else 0
            stages.append(
                {
                    "stage": stage,
                    "name": names[stage],
                    "entered": entered,
                    "conversion_from_previous": _ratio(entered, previous) if stage != "lost" else None,
                    "conversion_from_first": _ratio(entered, first),
                    "avg_days": round(float(r["spent"]) / finished / 86400, 2) if r and finished else None,
                    "norm_days": norms[stage] / 86400 if norms[stage] else None,
                    "over_norm": int(r["over_norm"]) if r else 0,
                    "stuck": int(r["stuck"]) if r else 0,
                }
            )
            if stage not in ("won", "lost"):
                previous = entered
        groups.append(
            {
                "group": grp,
                "stages": stages,
                "deals": totals.get(grp, []),
                "totals_base": {k: services.money(v) for k, v in sorted(in_base.get(grp, {}).items())},
            }
        )
    return {
        "pipeline": pipeline,
        "base_currency": converter.base,
        "rate_date": rate_day,
        "date_from": date_from,
        "date_to": date_to,
        "group_by": group_by,
        "groups": groups,
    }


def _grp(value: Any) -> Any:
    """Summary rows store a missing owner/team as 0; reports show None."""
    return None if value in (0, None) else int(value)


def _ratio(part: int, whole: int | None) -> float | None:
    if not whole:
        return None
    return round(part / whole, 4)


async def funnel_deals(
    principal: Principal,
    *,
    pipeline: str,
    stage: str,
    date_from: dt.date,
    date_to: dt.date,
    owner_id: int | None = None,
    team_id: int | None = None,
    only: str = "",
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Drill-down: the deals behind one cell of the funnel (``only``: over_norm or stuck)."""
    principal.require("sales.deal.read")
    start, end = _period(date_from, date_to)
    where, args = _filters(principal, owner_id, team_id, None)
    extra = ""
    now = clock.now()
    extra_args: list[Any] = []
    if only == "stuck":
        extra = " AND v.left_at IS NULL AND d.status = 'open' AND d.stage_due_at < {}"
        extra_args = [now]
    elif only == "over_norm":
        extra = (
            " AND v.norm_seconds IS NOT NULL AND ((v.seconds IS NOT NULL AND v.seconds > v.norm_seconds) "
            "OR (v.seconds IS NULL AND d.status = 'open' AND d.stage_due_at < {}))"
        )
        extra_args = [now]
    elif only:
        raise ValidationFailed.field("only", "must be stuck or over_norm (or empty)")
    rows = await db.raw(
        "SELECT DISTINCT d.id AS id, d.title AS title, d.owner_id AS owner_id, d.party_id AS party_id, "
        "d.amount AS amount, d.currency AS currency, d.stage AS stage, d.status AS status "
        "FROM sales_stage_visit v JOIN sales_deal d ON d.id = v.deal_id "
        "WHERE d.pipeline = {} AND v.stage = {} AND d.created_at >= {} AND d.created_at < {} AND "
        + " AND ".join(where)
        + extra
        + " ORDER BY d.id LIMIT {}",
        pipeline,
        stage,
        start,
        end,
        *args,
        *extra_args,
        min(max(limit, 1), 500),
    )
    for r in rows:
        r["amount"] = services.money(r["amount"])
    return rows


async def stuck_deals(
    principal: Principal,
    *,
    pipeline: str | None = None,
    stage: str | None = None,
    owner_id: int | None = None,
    team_id: int | None = None,
) -> dict[str, Any]:
    """Open deals past their stage's norm now, and the problem stages across the company."""
    principal.require("sales.deal.read")
    where, args = _filters(principal, owner_id, team_id, pipeline)
    now = clock.now()
    if stage:
        where.append("d.stage = {}")
        args.append(stage)
    rows = await db.raw(
        "SELECT d.id AS id, d.title AS title, d.pipeline AS pipeline, d.stage AS stage, d.owner_id "
        "AS owner_id, "
        "d.team_id AS team_id, d.party_id AS party_id, d.amount AS amount, d.currency AS currency, "
        "d.stage_entered_at AS stage_entered_at, d.stage_due_at AS stage_due_at "
        "FROM sales_deal d WHERE d.status = 'open' AND d.stage_due_at < {} AND "
        + " AND ".join(where)
        + " ORDER BY d.stage_due_at, d.id LIMIT 1000",
        now,
        *args,
    )
    stages: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        r["amount"] = services.money(r["amount"])
        r["overdue_days"] = round((now - aware(r["stage_due_at"])).total_seconds() / 86400, 2)
        cell = stages.setdefault(
            (r["pipeline"], r["stage"]),
            {"pipeline": r["pipeline"], "stage": r["stage"], "deals": 0, "overdue_days": 0.0},
        )
        cell["deals"] += 1
        cell["overdue_days"] += r["overdue_days"]
    problem = sorted(stages.values(), key=lambda c: (-c["deals"], -c["overdue_days"]))
    return {"deals": rows, "problem_stages": problem}


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value  # type: ignore[no-any-return]


async def loss_reasons(
    principal: Principal,
    *,
    date_from: dt.date,
    date_to: dt.date,
    group_by: str = "",
    pipeline: str | None = None,
) -> list[dict[str, Any]]:
    """Lost deals closed in the period by reason (count, amount per currency)."""
    principal.require("sales.deal.read")
    start, end = _period(date_from, date_to)
    column = _group_column(group_by)
    group = column or "NULL"
    grouping = f"{column}, " if column else ""
    where, args = _filters(principal, None, None, pipeline)
    rows = await db.raw(
        f"SELECT {group} AS grp, r.id AS reason_id, r.name AS reason, d.currency AS currency, COUNT(*) AS n, "
        "SUM(d.amount) AS amount FROM sales_deal d JOIN sales_loss_reason r ON r.id = d.loss_reason_id "
        "WHERE d.status = 'lost' AND d.closed_at >= {} AND d.closed_at < {} AND "
        + " AND ".join(where)
        + f" GROUP BY {grouping}r.id, r.name, d.currency ORDER BY COUNT(*) DESC, r.id",
        start,
        end,
        *args,
    )
    return [
        {
            "group": r["grp"] if group_by else None,
            "reason_id": r["reason_id"],
            "reason": r["reason"],
            "currency": r["currency"],
            "deals": r["n"],
            "amount": services.money(r["amount"]),
        }
        for r in rows
    ]


# --------------------------------------------------------------------------- forecast


def _month(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


async def forecast(
    principal: Principal,
    *,
    pipeline: str = "sales.b2b",
    date_from: dt.date,
    date_to: dt.date,
    owner_id: int | None = None,
    team_id: int | None = None,
) -> dict[str, Any]:
    """Expected revenue per month from open deals, two ways:

    * ``weighted``: amount × stage probability, in the month of the deal's expected close date
      (deals without an expected close date are left out of this method);
    * ``historical``: amount × the share of this pipeline's closed deals that had been in the
      deal's current stage and were won, in the month the deal should close given the average
      time won deals took from that stage to ``won``.
    """
    principal.require("sales.deal.read")
    definition = await services.pipeline(pipeline)
    start, end = _period(date_from, date_to)
    where, args = _filters(principal, owner_id, team_id, pipeline)
    vis = " AND ".join(where)
    # Open deals come from the summary kept on every deal change (``stats.py``): a few rows per
    # day, owner and currency however many deals are open.
    weighted_rows = await db.raw(
        "SELECT d.currency AS currency, d.day AS day, SUM(d.amount) AS amount FROM sales_stat d "
        "WHERE d.kind = 'open_close' AND d.day >= {} AND d.day < {} AND "
        + vis
        + " GROUP BY d.currency, d.day",
        start.date(),
        end.date(),
        *args,
    )
    stage_rows = await db.raw(
        "SELECT d.stage AS stage, d.currency AS currency, d.day AS day, SUM(d.amount) AS amount "
        "FROM sales_stat d WHERE d.kind = 'open_stage' AND " + vis + " GROUP BY d.stage, d.currency, d.day",
        *args,
    )
    history = await stage_history_stats(principal, pipeline, owner_id, team_id)
    weighted: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    historical: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    converter = await rates.converter()
    weighted_base: dict[str, Decimal] = defaultdict(Decimal)
    historical_base: dict[str, Decimal] = defaultdict(Decimal)
    for r in weighted_rows:
        day = _date(r["day"])
        value = Decimal(str(r["amount"])) / 100
        weighted[(_month(day), r["currency"])] += value
        # Converted with the rate in force on the expected close day (the latest known rate).
        weighted_base[_month(day)] += converter.to_base(value, r["currency"], day)
    today = clock.now().date()
    for r in stage_rows:
        stats = history.get(r["stage"])
        if not stats or stats["win_rate"] is None:
            continue
        predicted = _date(r["day"]) + dt.timedelta(seconds=stats["avg_seconds_to_won"] or 0)
        day = max(predicted, today)
        if start.date() <= day < end.date():
            rate = Decimal(stats["won_deals"]) / Decimal(stats["closed_deals"])
            value = Decimal(str(r["amount"])) * rate
            historical[(_month(day), r["currency"])] += value
            historical_base[_month(day)] += converter.to_base(value, r["currency"], day)

    def listing(values: dict[tuple[str, str], Decimal]) -> list[dict[str, Any]]:
        return [
            {"month": m, "currency": c, "amount": services.money(v)} for (m, c), v in sorted(values.items())
        ]

    def in_base(values: dict[str, Decimal]) -> list[dict[str, Any]]:
        return [{"month": m, "amount": services.money(v)} for m, v in sorted(values.items())]

    return {
        "pipeline": pipeline,
        "base_currency": converter.base,
        "weighted": listing(weighted),
        "historical": listing(historical),
        "weighted_base": in_base(weighted_base),
        "historical_base": in_base(historical_base),
        "stage_stats": [
            {"stage": k, **v} for k, v in history.items() if k in services.open_stages(definition)
        ],
    }


async def stage_history_stats(
    principal: Principal, pipeline: str, owner_id: int | None = None, team_id: int | None = None
) -> dict[str, dict[str, Any]]:
    """Per stage, over closed deals of the pipeline that went through it: win rate and the
    average time from entering the stage to winning (won deals)."""
    where, args = _filters(principal, owner_id, team_id, pipeline)
    rows = await db.raw(
        "SELECT d.stage AS stage, SUM(d.n) AS closed, SUM(d.n2) AS won, SUM(d.seconds) AS seconds "
        "FROM sales_stat d WHERE d.kind = 'history' AND " + " AND ".join(where) + " GROUP BY d.stage",
        *args,
    )
    rows = [r for r in rows if int(r["closed"] or 0)]
    for r in rows:
        r["to_won"] = int(r["seconds"]) / int(r["won"]) if int(r["won"] or 0) else None
    return {
        r["stage"]: {
            "closed_deals": int(r["closed"]),
            "won_deals": int(r["won"]),
            "win_rate": round(int(r["won"]) / int(r["closed"]), 4) if r["closed"] else None,
            "avg_seconds_to_won": round(float(r["to_won"])) if r["to_won"] is not None else None,
        }
        for r in rows
    }


async def won_total(
    principal: Principal | None,
    start: dt.datetime,
    end: dt.datetime,
    *,
    pipeline: str | None = None,
    owner_id: int | None = None,
    team_id: int | None = None,
) -> dict[str, Decimal]:
    where: list[str] = []
    args: list[Any] = []
    if principal is not None:
        where, args = _filters(principal, owner_id, team_id, pipeline)
    else:
        for column, value in (("d.owner_id", owner_id), ("d.team_id", team_id), ("d.pipeline", pipeline)):
            if value:
                where.append(f"{column} = {{}}")
                args.append(value)
    rows = await db.raw(
        "SELECT d.currency AS currency, SUM(d.amount) AS amount FROM sales_deal d "
        "WHERE d.status = 'won' AND d.closed_at >= {} AND d.closed_at < {}"
        + "".join(f" AND {w}" for w in where)
        + " GROUP BY d.currency",
        start,
        end,
        *args,
    )
    return {r["currency"]: services.money(r["amount"]) for r in rows}


def utc_day_sql(column: str) -> str:
    """SQL for the UTC calendar day of a timestamp column, on either engine."""
    if db.is_postgres():
        return f"CAST(({column} AT TIME ZONE 'UTC') AS DATE)"
    return f"substr({column}, 1, 10)"


async def won_by_day(
    start: dt.datetime,
    end: dt.datetime,
    *,
    pipeline: str | None = None,
    owner_id: int | None = None,
    team_id: int | None = None,
    visible: tuple[str, list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Won amount per currency and UTC day of winning, for deals won in [start, end);
    ``visible`` is a caller's ``services.visibility_sql(principal, "d")``."""
    where: list[str] = [visible[0]] if visible else []
    args: list[Any] = list(visible[1]) if visible else []
    for column, value in (("d.owner_id", owner_id), ("d.team_id", team_id), ("d.pipeline", pipeline)):
        if value:
            where.append(f"{column} = {{}}")
            args.append(value)
    day = utc_day_sql("d.closed_at")
    rows = await db.raw(
        f"SELECT d.currency AS currency, {day} AS day, SUM(d.amount) AS amount FROM sales_deal d "
        "WHERE d.status = 'won' AND d.closed_at >= {} AND d.closed_at < {}"
        + "".join(f" AND {w}" for w in where)
        + f" GROUP BY d.currency, {day}",
        start,
        end,
        *args,
    )
    return [
        {"currency": r["currency"], "day": _date(r["day"]), "amount": Decimal(str(r["amount"]))} for r in rows
    ]


async def snapshot_forecast(pipeline: str, date_from: dt.date, date_to: dt.date) -> int:
    """Store the company-wide forecast of each month in the range (for accuracy later)."""
    from tessera.demo import system_principal

    now = clock.now()
    day_start = dt.datetime.combine(now.date(), dt.time(), tzinfo=now.tzinfo)
    # One snapshot per day: a second run (retry, second worker, contract check) adds nothing.
    if await ForecastSnapshot.exists().where(
        ForecastSnapshot.pipeline == pipeline, ForecastSnapshot.made_at >= day_start
    ):
        return 0
    result = await forecast(system_principal(), pipeline=pipeline, date_from=date_from, date_to=date_to)
    rows = []
    for method in ("weighted", "historical"):
        for item in result[method]:
            year, month = map(int, item["month"].split("-"))
            first = dt.date(year, month, 1)
            last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            rows.append(
                ForecastSnapshot(
                    period_start=first,
                    period_end=last,
                    method=method,
                    pipeline=pipeline,
                    currency=item["currency"],
                    amount=item["amount"],
                    made_at=now,
                )
            )
    if rows:
        await ForecastSnapshot.insert(*rows)
    return len(rows)


async def forecast_accuracy(principal: Principal, pipeline: str = "sales.b2b") -> list[dict[str, Any]]:
    """For each month whose end has passed: the latest forecast made before the month began (or
    the earliest one made during it) against the won revenue that closed in it."""
    principal.require("sales.deal.read")
    today = clock.now().date()
    snaps = (
        await ForecastSnapshot.select()
        .where(ForecastSnapshot.pipeline == pipeline, ForecastSnapshot.period_end < today)
        .order_by(ForecastSnapshot.made_at)
    )
    chosen: dict[tuple[Any, str, str], dict[str, Any]] = {}
    for s in snaps:
        key = (s["period_start"], s["method"], s["currency"])
        before = s["made_at"].date() < s["period_start"]
        current = chosen.get(key)
        if (
            current is None
            or (before and current["made_at"].date() < s["period_start"])
            or (before and current["made_at"].date() >= s["period_start"])
        ):
            chosen[key] = s
    out = []
    for (period_start, method, currency), s in sorted(
        chosen.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])
    ):
        start, end = _period(s["period_start"], s["period_end"])
        actual = (await won_total(principal, start, end, pipeline=pipeline)).get(currency, Decimal("0.00"))
        forecast_amount = services.money(s["amount"])
        error = abs(forecast_amount - actual)
        out.append(
            {
                "month": _month(period_start),
                "method": method,
                "currency": currency,
                "forecast": forecast_amount,
                "actual": actual,
                "error": error,
                "accuracy": round(1 - float(error / actual), 4) if actual else None,
                "made_at": s["made_at"],
            }
        )
    return out


# --------------------------------------------------------------------------- plans


async def plan_vs_actual(principal: Principal, plan_id: int) -> dict[str, Any]:
    """A plan's targets beside what happened in its period: won amount (deals closed as won in
    the period, in the plan's currency) and deals entering each stage in the period."""
    principal.require("sales.deal.read")
    plan = await SalesPlan.select().where(SalesPlan.id == plan_id).first().output(load_json=True)
    if plan is None:
        from tessera.errors import NotFound

        raise NotFound(f"plan {plan_id} not found")
    if plan["user_id"] is not None and not principal.check_visible_owner(plan["user_id"]):
        from tessera.errors import NotFound

        raise NotFound(f"plan {plan_id} not found")
    start, end = _period(plan["period_start"], plan["period_end"])
    # Won deals in any currency, each converted into the plan's currency with the rates in
    # force on the day it was won.
    converter = await rates.converter()
    actual_exact = Decimal(0)
    # Only deals the caller may read count: a manager looking at the team's plan sees the
    # team's target beside their own contribution, never the colleagues' amounts.
    for r in await won_by_day(
        start,
        end,
        pipeline=plan["pipeline"] or None,
        owner_id=plan["user_id"],
        team_id=plan["team_id"],
        visible=services.visibility_sql(principal, "d"),
    ):
        actual_exact += converter.convert(r["amount"], r["currency"], plan["currency"], r["day"])
    actual_amount = services.money(actual_exact)
    seen, seen_args = services.visibility_sql(principal, "v")
    where = ["v.entered_at >= {}", "v.entered_at < {}", seen]
    args: list[Any] = [start, end, *seen_args]
    if plan["user_id"] is not None:
        where.append("v.owner_id = {}")
        args.append(plan["user_id"])
    if plan["team_id"] is not None:
        where.append("v.team_id = {}")
        args.append(plan["team_id"])
    if plan["pipeline"]:
        where.append("v.pipeline = {}")
        args.append(plan["pipeline"])
    rows = await db.raw(
        "SELECT v.stage AS stage, COUNT(DISTINCT v.deal_id) AS n FROM sales_stage_visit v WHERE "
        + " AND ".join(where)
        + " GROUP BY v.stage",
        *args,
    )
    entered = {r["stage"]: int(r["n"]) for r in rows}
    target = services.money(plan["amount"])
    stages = [
        {
            "stage": stage,
            "target": int(goal),
            "actual": entered.get(stage, 0),
            "percent": round(entered.get(stage, 0) * 100 / int(goal), 1) if int(goal) else None,
        }
        for stage, goal in (plan["stage_targets"] or {}).items()
    ]
    return {
        "plan_id": plan_id,
        "user_id": plan["user_id"],
        "team_id": plan["team_id"],
        "period_start": plan["period_start"],
        "period_end": plan["period_end"],
        "currency": plan["currency"],
        "amount": {
            "target": target,
            "actual": actual_amount,
            "percent": round(float(actual_amount * 100 / target), 1) if target else None,
        },
        "stages": stages,
    }


async def create_plan(principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    """Add a plan (``PlanIn``'s fields) for a manager, a team or (neither) the company; returns
    it beside its actual (``POST /api/sales/plans`` and the plans page)."""
    principal.require("sales.plan.manage")
    if values["period_end"] < values["period_start"]:
        raise ValidationFailed.field("period_end", "must not be before period_start")
    if values.get("user_id") is not None and values.get("team_id") is not None:
        raise ValidationFailed.field("team_id", "a plan is for a manager or for a team, not both")
    if values.get("pipeline"):
        definition = await services.pipeline(values["pipeline"])
        unknown = sorted(set(values.get("stage_targets") or {}) - {s["key"] for s in definition["stages"]})
        if unknown:
            raise ValidationFailed.field("stage_targets", f"no such stages: {unknown}")
    values["currency"] = str(values.get("currency", "RUB")).upper()
    if Decimal(str(values.get("amount", 0))) < 0:
        raise ValidationFailed.field("amount", "must be zero or more")
    values["amount"] = services.money(values.get("amount", 0))
    row = await service.create(catalogue.PLAN, principal, values)
    return await plan_vs_actual(principal, row["id"])


async def visible_plans(principal: Principal) -> list[dict[str, Any]]:
    """Plans the caller may read: a manager's plan to those who see that manager's records,
    team and company plans to every reader (``GET /api/sales/plans`` and the plans page)."""
    principal.require("sales.deal.read")
    query = SalesPlan.select()
    # In the query, as everywhere (docs/security.md).
    if (visible := principal.owner_where(SalesPlan.user_id)) is not None:
        query = query.where(SalesPlan.user_id.is_null() | visible)
    return await query.order_by(SalesPlan.period_start).order_by(SalesPlan.id).output(load_json=True)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- KPIs


async def kpi_summary(
    principal: Principal, *, date_from: dt.date, date_to: dt.date, team_id: int | None = None
) -> dict[str, Any]:
    """The KPI panel's totals over the deals the caller may see (``visibility_sql``): deals won
    and lost in the period, won amount in the base currency (each deal at the rate of the day
    it was won), conversion (won / closed), the average won deal and the sales cycle (average
    days from opening to winning)."""
    principal.require("sales.deal.read")
    start, end = _period(date_from, date_to)
    where, args = _filters(principal, None, team_id, None)
    rows = await db.raw(
        "SELECT d.status AS status, d.created_at AS created_at, d.closed_at AS closed_at "
        "FROM sales_deal d WHERE d.status IN ('won', 'lost') AND d.closed_at >= {} AND d.closed_at < {} AND "
        + " AND ".join(where),
        start,
        end,
        *args,
    )
    won = [r for r in rows if r["status"] == "won"]
    converter = await rates.converter()
    amount = Decimal(0)
    for r in await won_by_day(start, end, team_id=team_id, visible=services.visibility_sql(principal, "d")):
        amount += converter.to_base(r["amount"], r["currency"], r["day"])
    cycles = [
        (aware(r["closed_at"]) - aware(r["created_at"])).total_seconds() / 86400
        for r in won
        if r["closed_at"] and r["created_at"]
    ]
    return {
        "base_currency": converter.base,
        "won_deals": len(won),
        "lost_deals": len(rows) - len(won),
        "won_amount": services.money(amount),
        "conversion": round(len(won) / len(rows), 4) if rows else None,
        "average_deal": services.money(amount / len(won)) if won else None,
        "cycle_days": round(sum(cycles) / len(cycles), 1) if cycles else None,
    }


async def manager_kpis(
    principal: Principal, *, date_from: dt.date, date_to: dt.date, team_id: int | None = None
) -> list[dict[str, Any]]:
    """Per manager: open deals now (count, amount), new deals (leads) opened in the period,
    activities done in the period (all, calls, meetings), deals won (count, confirmed sum per
    currency) and lost in the period."""
    principal.require("sales.deal.read")
    start, end = _period(date_from, date_to)
    where, args = _filters(principal, None, team_id, None)
    deal_rows = await db.raw(
        "SELECT d.owner_id AS owner_id, d.currency AS currency, "
        "SUM(CASE WHEN d.status = 'open' THEN 1 ELSE 0 END) AS open_n, "
        "SUM(CASE WHEN d.status = 'open' THEN d.amount ELSE 0 END) AS open_amount, "
        "SUM(CASE WHEN d.created_at >= {} AND d.created_at < {} THEN 1 ELSE 0 END) AS new_n, "
        "SUM(CASE WHEN d.status = 'won' AND d.closed_at >= {} AND d.closed_at < {} THEN 1 ELSE 0 "
        "END) AS won_n, "
        "SUM(CASE WHEN d.status = 'won' AND d.closed_at >= {} AND d.closed_at < {} THEN d.amount "
        "ELSE 0 END) AS won_amount, "
        "SUM(CASE WHEN d.status = 'lost' AND d.closed_at >= {} AND d.closed_at < {} THEN 1 ELSE 0 "
        "END) AS lost_n "
        "FROM sales_deal d WHERE d.owner_id IS NOT NULL AND "
        + " AND ".join(where)
        + " GROUP BY d.owner_id, d.currency",
        start,
        end,
        start,
        end,
        start,
        end,
        start,
        end,
        *args,
    )
    vis = principal.user_ids
    act_where = ["a.status = 'done'", "a.starts_at >= {}", "a.starts_at < {}", "a.owner_id IS NOT NULL"]
    act_args: list[Any] = [start, end]
    if vis is not None:
        ids = sorted(vis) or [-1]
        act_where.append(f"a.owner_id IN ({', '.join('{}' for _ in ids)})")
        act_args.extend(ids)
    if team_id is not None:
        act_where.append("a.team_id = {}")
        act_args.append(team_id)
    act_rows = await db.raw(
        "SELECT a.owner_id AS owner_id, a.type AS type, COUNT(*) AS n FROM activity a WHERE "
        + " AND ".join(act_where)
        + " GROUP BY a.owner_id, a.type",
        *act_args,
    )
    people: dict[int, dict[str, Any]] = {}

    def person(uid: int) -> dict[str, Any]:
        return people.setdefault(
            uid,
            {
                "user_id": uid,
                "open_deals": 0,
                "open_amount": {},
                "new_deals": 0,
                "won_deals": 0,
                "won_amount": {},
                "lost_deals": 0,
                "activities": 0,
                "calls": 0,
                "meetings": 0,
                "activities_by_type": {},
            },
        )

    for r in deal_rows:
        p = person(r["owner_id"])
        p["open_deals"] += int(r["open_n"] or 0)
        p["new_deals"] += int(r["new_n"] or 0)
        p["won_deals"] += int(r["won_n"] or 0)
        p["lost_deals"] += int(r["lost_n"] or 0)
        if r["open_n"]:
            p["open_amount"][r["currency"]] = services.money(r["open_amount"])
        if r["won_n"]:
            p["won_amount"][r["currency"]] = services.money(r["won_amount"])
    for r in act_rows:
        p = person(r["owner_id"])
        p["activities"] += int(r["n"])
        p["activities_by_type"][r["type"]] = int(r["n"])
        if r["type"] == "call":
            p["calls"] = int(r["n"])
        if r["type"] == "meeting":
            p["meetings"] = int(r["n"])
    from tessera.entities.tables import CrmUser

    names = {
        u["id"]: u["name"]
        for u in await CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.id.is_in(list(people) or [-1]))
    }
    for uid, p in people.items():
        p["name"] = names.get(uid, "")
    return sorted(people.values(), key=lambda p: p["user_id"])


__all__ = [
    "forecast",
    "funnel",
    "kpi_summary",
    "manager_kpis",
    "plan_vs_actual",
    "stuck_deals",
    "visible_plans",
]
