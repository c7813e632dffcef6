"""Ageing of receivables, computed in SQL over the invoices the caller may read.

An invoice's open amount as of a day is its stored ``balance`` plus what payments made after
that day took off it (allocations carry the payment's day), for invoices issued by then. Days
overdue = that day minus the due date; buckets: ``current`` (not due yet), then the configured
limits (default 30, 60, 90): ``1-30``, ``31-60``, ``61-90``, ``90+``. Amounts are summed in
cents as integers (exact on SQLite too) and returned as ``Decimal`` per currency.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tessera import db
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_receivables.services import visibility_sql

GROUPS = {"client": "i.party_id", "manager": "p.owner_id", "team": "p.team_id", "company": "NULL"}
DEFAULT_LIMITS = (30, 60, 90)


def limits_of(text: str | None) -> tuple[int, ...]:
    """``"30,60,90"`` -> (30, 60, 90); 422 on ``buckets`` unless increasing whole days."""
    if not text:
        return DEFAULT_LIMITS
    try:
        limits = tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise ValidationFailed.field("buckets", "must be whole days separated by commas: 30,60,90") from exc
    if not limits or len(limits) > 10 or limits[0] < 1 or any(b <= a for a, b in itertools.pairwise(limits)):
        raise ValidationFailed.field("buckets", "must be 1 to 10 increasing whole days: 30,60,90")
    return limits


def bucket_names(limits: Sequence[int]) -> list[str]:
    names, low = ["current"], 1
    for limit in limits:
        names.append(f"{low}-{limit}")
        low = limit + 1
    names.append(f"{limits[-1]}+")
    return names


def day_sql(day: dt.date) -> str:
    """A date literal (from a ``date`` object, never from text)."""
    return f"DATE '{day.isoformat()}'" if db.is_postgres() else f"'{day.isoformat()}'"


def days_sql(day: dt.date, column: str) -> str:
    if db.is_postgres():
        return f"({day_sql(day)} - {column})"
    return f"CAST(julianday({day_sql(day)}) - julianday({column}) AS INTEGER)"


def cents_sql(expr: str) -> str:
    return f"({expr}) * 100" if db.is_postgres() else f"CAST(ROUND(({expr}) * 100) AS INTEGER)"


def cents_sum_sql(expr: str) -> str:
    """The sum of amounts in cents, exact: on PostgreSQL ``numeric`` is summed and multiplied
    once; SQLite's floats are rounded to whole cents row by row, then summed as integers."""
    return f"SUM({expr}) * 100" if db.is_postgres() else f"SUM({cents_sql(expr)})"


#: What PostgreSQL's planner is told for the ageing statements served by the covering indexes
#: (``random_page_cost``, this transaction only): its default of 4 prices an index page like a
#: disk seek, and with every invoice open it picks a scan of the whole table (3 times the pages
#: and every column) over the index-only scan that reads the index alone. 1.1 is what the
#: PostgreSQL manual suggests for SSDs and data in memory.
INDEX_PAGE_COST = "1.1"


async def read_open(sql: str, *args: Any, fast: bool = True) -> list[dict[str, Any]]:
    """Run an ageing statement; on PostgreSQL, when it reads the stored balances alone
    (``fast``: the covering indexes hold every column it needs), with the planner told that
    index pages cost what they cost in memory (``INDEX_PAGE_COST``)."""
    if not (fast and db.is_postgres()):
        return await db.raw(sql, *args)
    async with db.get_engine().transaction():
        await db.raw(f"SET LOCAL random_page_cost = {INDEX_PAGE_COST}")
        return await db.raw(sql, *args)


def bucket_sql(days: str, limits: Sequence[int]) -> str:
    names = bucket_names(limits)
    parts = [f"WHEN {days} <= 0 THEN 'current'"]
    for limit, name in zip(limits, names[1:], strict=False):
        parts.append(f"WHEN {days} <= {int(limit)} THEN '{name}'")
    return f"CASE {' '.join(parts)} ELSE '{names[-1]}' END"


def open_invoices_sql(as_of: dt.date, paid_later: bool = True) -> str:
    """Invoices with an open amount as of ``as_of``: ``id, party_id, currency, due_date,
    number, issue_date, amount, open_amount``. ``paid_later=False`` (no payment is dated after
    ``as_of``, see :func:`paid_after`): the stored balance is the open amount, no join."""
    day = day_sql(as_of)
    columns = "i.id, i.party_id, i.currency, i.due_date, i.number, i.issue_date, i.amount"
    if not paid_later:
        return (
            f"SELECT {columns}, i.balance AS open_amount FROM receivables_invoice i "
            f"WHERE i.balance > 0 AND i.issue_date <= {day} AND i.status <> 'cancelled'"
        )
    return (
        f"SELECT {columns}, i.balance + COALESCE(late.s, 0) AS open_amount FROM receivables_invoice i "
        "LEFT JOIN (SELECT a.invoice_id, SUM(a.amount) AS s FROM receivables_allocation a "
        f"WHERE a.paid_on > {day} GROUP BY a.invoice_id) late ON late.invoice_id = i.id "
        f"WHERE i.issue_date <= {day} AND i.status <> 'cancelled' AND (i.balance > 0 OR late.s IS NOT NULL)"
    )


async def paid_after(as_of: dt.date) -> bool:
    """Whether any allocation is dated after ``as_of`` (one index probe): ageing as of today
    usually finds none and reads the stored balances alone."""
    rows = await db.raw(f"SELECT 1 AS x FROM receivables_allocation WHERE paid_on > {day_sql(as_of)} LIMIT 1")
    return bool(rows)


def _cents(value: Any) -> Decimal:
    return (Decimal(str(value or 0)) / 100).quantize(Decimal("0.01"))


def _needs_party(principal: Principal, group_by: str, owner_id: int | None, team_id: int | None) -> bool:
    """Whether the query must join ``party`` (visibility, a manager/team grouping or filter):
    a company-wide reader's ageing per client or company reads the invoices alone."""
    return (
        principal.user_ids is not None
        or group_by in ("manager", "team")
        or owner_id is not None
        or team_id is not None
    )


def _where(
    principal: Principal, owner_id: int | None, team_id: int | None, currency: str | None
) -> tuple[str, list[Any]]:
    vis, args = visibility_sql(principal, "p")
    parts = [vis, "i.open_amount > 0"]
    if owner_id is not None:
        parts.append("p.owner_id = {}")
        args.append(owner_id)
    if team_id is not None:
        parts.append("p.team_id = {}")
        args.append(team_id)
    if currency:
        parts.append("i.currency = {}")
        args.append(currency)
    return " AND ".join(parts), args


async def ageing(
    principal: Principal,
    as_of: dt.date,
    group_by: str = "client",
    limits: Sequence[int] = DEFAULT_LIMITS,
    owner_id: int | None = None,
    team_id: int | None = None,
    currency: str | None = None,
) -> list[dict[str, Any]]:
    """One row per group and currency: the open amount in each bucket and in total."""
    principal.require("receivables.read")
    if group_by not in GROUPS:
        raise ValidationFailed.field("group_by", f"must be one of {', '.join(GROUPS)}")
    group = GROUPS[group_by]
    days = days_sql(as_of, "i.due_date")
    where, args = _where(principal, owner_id, team_id, currency)
    grouping = "" if group == "NULL" else f"{group}, "  # PostgreSQL refuses GROUP BY NULL
    join = "JOIN party p ON p.id = i.party_id" if _needs_party(principal, group_by, owner_id, team_id) else ""
    paid_later = await paid_after(as_of)
    invoices = open_invoices_sql(as_of, paid_later)
    if group_by == "client":
        # Groups as fine as the clients: one pass, the bucket of each invoice.
        sql = (
            f"SELECT {group} AS grp, i.currency AS currency, {bucket_sql(days, limits)} AS bucket, "
            f"{cents_sum_sql('i.open_amount')} AS cents, COUNT(*) AS n "
            f"FROM ({invoices}) i {join} "
            f"WHERE {where} GROUP BY {grouping}i.currency, {bucket_sql(days, limits)}"
        )
    else:
        # Company, manager, team: first the sums per due day (a few hundred rows per group
        # and currency, whatever the number of invoices), then the bucket of each day: the
        # per-invoice work is one addition, and the covering index delivers the invoices in
        # (currency, due day) order.
        day_days = days_sql(as_of, "d.due_date")
        sql = (
            f"SELECT {'NULL' if group == 'NULL' else 'd.grp'} AS grp, d.currency AS currency, "
            f"{bucket_sql(day_days, limits)} AS bucket, "
            "SUM(d.cents) AS cents, SUM(d.n) AS n FROM ("
            f"SELECT {group} AS grp, i.currency AS currency, i.due_date AS due_date, "
            f"{cents_sum_sql('i.open_amount')} AS cents, COUNT(*) AS n FROM ({invoices}) i {join} "
            f"WHERE {where} GROUP BY {grouping}i.currency, i.due_date) d "
            f"GROUP BY {'' if group == 'NULL' else 'd.grp, '}d.currency, {bucket_sql(day_days, limits)}"
        )
    rows = await read_open(sql, *args, fast=not paid_later)
    names = bucket_names(limits)
    out: dict[tuple[Any, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["grp"], r["currency"])
        cell = out.setdefault(
            key,
            {
                "group": r["grp"],
                "currency": r["currency"],
                "buckets": {n: Decimal("0.00") for n in names},
                "total": Decimal("0.00"),
                "invoices": 0,
            },
        )
        amount = _cents(r["cents"])
        cell["buckets"][r["bucket"]] += amount
        cell["total"] += amount
        cell["invoices"] += int(r["n"])
    await _labels(group_by, list(out.values()))
    return sorted(out.values(), key=lambda c: (-c["total"], str(c["group"]), c["currency"]))


async def _labels(group_by: str, cells: list[dict[str, Any]]) -> None:
    from tessera.entities.tables import CrmUser, Party, Team

    ids = [c["group"] for c in cells if c["group"] is not None] or [-1]
    table, column = {"client": (Party, "name"), "manager": (CrmUser, "name"), "team": (Team, "name")}.get(
        group_by, (None, "")
    )
    names: dict[Any, str] = {}
    if table is not None:
        names = {
            r["id"]: r[column]
            for r in await table.select(table.id, getattr(table, column)).where(table.id.is_in(ids))
        }
    for c in cells:
        c["label"] = names.get(c["group"], "") if table is not None else ""


async def cell_invoices(
    principal: Principal,
    as_of: dt.date,
    group_by: str = "client",
    group: int | None = None,
    bucket: str | None = None,
    limits: Sequence[int] = DEFAULT_LIMITS,
    currency: str | None = None,
    owner_id: int | None = None,
    team_id: int | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The invoices behind an ageing cell (a group, a bucket, a currency), oldest due first."""
    principal.require("receivables.read")
    if group_by not in GROUPS:
        raise ValidationFailed.field("group_by", f"must be one of {', '.join(GROUPS)}")
    names = bucket_names(limits)
    if bucket is not None and bucket not in names:
        raise ValidationFailed.field("bucket", f"must be one of {', '.join(names)}")
    days = days_sql(as_of, "i.due_date")
    where, args = _where(principal, owner_id, team_id, currency)
    if group is not None and group_by != "company":
        where += f" AND {GROUPS[group_by]} = {{}}"
        args.append(group)
    if bucket is not None:
        where += f" AND {bucket_sql(days, limits)} = {{}}"
        args.append(bucket)
    rows = await db.raw(
        f"SELECT i.id, i.party_id, i.number, i.currency, i.issue_date, i.due_date, i.amount, "
        f"{cents_sql('i.open_amount')} AS cents, {days} AS days, {bucket_sql(days, limits)} AS bucket "
        f"FROM ({open_invoices_sql(as_of, await paid_after(as_of))}) i JOIN party p ON p.id = i.party_id "
        f"WHERE {where} ORDER BY i.due_date, i.id LIMIT {int(limit)}",
        *args,
    )
    return [
        {
            "id": r["id"],
            "party_id": r["party_id"],
            "number": r["number"],
            "currency": r["currency"],
            "issue_date": _as_date(r["issue_date"]),
            "due_date": _as_date(r["due_date"]),
            "amount": Decimal(str(r["amount"])).quantize(Decimal("0.01")),
            "open_amount": _cents(r["cents"]),
            "days_overdue": max(int(r["days"]), 0),
            "bucket": r["bucket"],
        }
        for r in rows
    ]


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


async def overdue_clients(
    principal: Principal, as_of: dt.date, mine: bool = True, limit: int = 200
) -> list[dict[str, Any]]:
    """Clients with overdue invoices (the caller's own with ``mine``, else every client they
    see), most urgent first: open amount × days overdue, summed over the invoices."""
    principal.require("receivables.read")
    days = days_sql(as_of, "i.due_date")
    where, args = _where(principal, principal.user_id if mine else None, None, None)
    rows = await db.raw(
        f"SELECT i.party_id AS party_id, p.name AS name, p.owner_id AS owner_id, i.currency AS currency, "
        f"SUM({cents_sql('i.open_amount')}) AS cents, SUM({cents_sql('i.open_amount')} * {days}) AS weight, "
        f"MAX({days}) AS days, COUNT(*) AS n "
        f"FROM ({open_invoices_sql(as_of, await paid_after(as_of))}) i JOIN party p ON p.id = i.party_id "
        f"WHERE {where} AND {days} > 0 GROUP BY i.party_id, p.name, p.owner_id, i.currency "
        f"ORDER BY weight DESC, i.party_id LIMIT {int(limit)}",
        *args,
    )
    return [
        {
            "party_id": r["party_id"],
            "name": r["name"],
            "owner_id": r["owner_id"],
            "currency": r["currency"],
            "overdue": _cents(r["cents"]),
            "weight": _cents(r["weight"]),
            "max_days_overdue": int(r["days"]),
            "invoices": int(r["n"]),
        }
        for r in rows
    ]


def raw_ageing_sql(as_of: dt.date, limits: Sequence[int] = DEFAULT_LIMITS) -> str:
    """The statement company-wide ageing as of today is built on, as plain SQL (the
    benchmark's baseline): the same two-step ``GROUP BY`` over ``receivables_invoice`` alone,
    without the visibility condition, the check for later payments or the labels."""
    days = days_sql(as_of, "d.due_date")
    return (
        f"SELECT d.currency, {bucket_sql(days, limits)} AS bucket, SUM(d.cents) AS cents, SUM(d.n) AS n "
        f"FROM (SELECT i.currency, i.due_date, {cents_sum_sql('i.balance')} AS cents, COUNT(*) AS n "
        f"FROM receivables_invoice i WHERE i.balance > 0 AND i.issue_date <= {day_sql(as_of)} "
        "AND i.status <> 'cancelled' GROUP BY i.currency, i.due_date) d "
        f"GROUP BY d.currency, {bucket_sql(days, limits)}"
    )


def naive_ageing_sql(as_of: dt.date, limits: Sequence[int] = DEFAULT_LIMITS) -> str:
    """The earlier baseline (bucket and cents of every invoice, one ``GROUP BY``), printed
    for comparison."""
    days = days_sql(as_of, "i.due_date")
    return (
        f"SELECT i.currency, {bucket_sql(days, limits)} AS bucket, "
        f"SUM({cents_sql('i.balance')}) FROM receivables_invoice i WHERE i.balance > 0 "
        f"GROUP BY i.currency, {bucket_sql(days, limits)}"
    )
