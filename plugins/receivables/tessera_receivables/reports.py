"""Collection reports over the receivables the caller may read, per month and manager (the
client's owner) and currency: DSO, overdue ratio, collection effectiveness index (CEI) and the
promises kept ratio; as JSON, CSV or XLSX (through the kernel's spreadsheet-safe exports).

* receivables at a day: the open amount of invoices issued by then (``ageing.open_invoices_sql``);
* DSO = closing receivables / credit sales of the month × days in the month;
* overdue ratio = overdue at the month's end / closing receivables;
* CEI = (opening + credit sales − closing) / (opening + credit sales − closing current) × 100;
* promises kept ratio = kept / (kept + broken) of the promises whose day fell in the month.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
from decimal import Decimal
from typing import Any

from tessera import db
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_receivables import ageing
from tessera_receivables.services import visibility_sql

FIELDS = (
    "month",
    "manager_id",
    "currency",
    "opening",
    "sales",
    "closing",
    "closing_current",
    "overdue",
    "collected",
    "dso",
    "overdue_ratio",
    "cei",
    "promises_kept",
    "promises_broken",
    "promises_kept_ratio",
)


def _months(date_from: dt.date, date_to: dt.date) -> list[tuple[dt.date, dt.date]]:
    out, year, month = [], date_from.year, date_from.month
    while (year, month) <= (date_to.year, date_to.month):
        first = dt.date(year, month, 1)
        last = dt.date(year, month, calendar.monthrange(year, month)[1])
        out.append((first, last))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


async def _balances(principal: Principal, day: dt.date) -> dict[tuple[Any, str], tuple[Decimal, Decimal]]:
    """(manager, currency) -> (receivables, of which not yet due) as of ``day``."""
    days = ageing.days_sql(day, "i.due_date")
    vis, args = visibility_sql(principal, "p")
    invoices = ageing.open_invoices_sql(day, await ageing.paid_after(day))
    rows = await db.raw(
        "SELECT p.owner_id AS grp, i.currency AS currency, "
        f"SUM({ageing.cents_sql('i.open_amount')}) AS cents, "
        f"SUM(CASE WHEN {days} <= 0 THEN {ageing.cents_sql('i.open_amount')} ELSE 0 END) AS current_cents "
        f"FROM ({invoices}) i JOIN party p ON p.id = i.party_id "
        f"WHERE {vis} AND i.open_amount > 0 GROUP BY p.owner_id, i.currency",
        *args,
    )
    return {(r["grp"], r["currency"]): (_c(r["cents"]), _c(r["current_cents"])) for r in rows}


def _c(value: Any) -> Decimal:
    return (Decimal(str(value or 0)) / 100).quantize(Decimal("0.01"))


async def _sums(
    principal: Principal, sql: str, first: dt.date, last: dt.date
) -> dict[tuple[Any, str], Decimal]:
    vis, args = visibility_sql(principal, "p")
    rows = await db.raw(sql.format(vis=vis, first=ageing.day_sql(first), last=ageing.day_sql(last)), *args)
    return {(r["grp"], r["currency"]): _c(r["cents"]) for r in rows}


async def collection_report(
    principal: Principal, date_from: dt.date, date_to: dt.date
) -> list[dict[str, Any]]:
    principal.require("receivables.read")
    if date_to < date_from:
        raise ValidationFailed.field("date_to", "must not be before date_from")
    months = _months(date_from, date_to)
    if len(months) > 36:
        raise ValidationFailed.field("date_to", "at most 36 months at a time")
    cents = ageing.cents_sql
    sales_sql = (
        f"SELECT p.owner_id AS grp, i.currency AS currency, SUM({cents('i.amount')}) AS cents "
        "FROM receivables_invoice i JOIN party p ON p.id = i.party_id "
        "WHERE {vis} AND i.issue_date >= {first} AND i.issue_date <= {last} AND i.status <> 'cancelled' "
        "GROUP BY p.owner_id, i.currency"
    )
    collected_sql = (
        f"SELECT p.owner_id AS grp, y.currency AS currency, SUM({cents('y.amount')}) AS cents "
        "FROM receivables_payment y JOIN party p ON p.id = y.party_id "
        "WHERE {vis} AND y.kind = 'payment' AND y.paid_on >= {first} AND y.paid_on <= {last} "
        "GROUP BY p.owner_id, y.currency"
    )
    vis, args = visibility_sql(principal, "p")
    promise_rows = await db.raw(
        "SELECT p.owner_id AS grp, r.currency AS currency, r.promised_on AS day, r.status AS status "
        f"FROM receivables_promise r JOIN party p ON p.id = r.party_id WHERE {vis} "
        f"AND r.status IN ('kept', 'broken') AND r.promised_on >= {ageing.day_sql(months[0][0])} "
        f"AND r.promised_on <= {ageing.day_sql(months[-1][1])}",
        *args,
    )
    out: list[dict[str, Any]] = []
    opening = await _balances(principal, months[0][0] - dt.timedelta(days=1))
    for first, last in months:
        closing = await _balances(principal, last)
        sales = await _sums(principal, sales_sql, first, last)
        collected = await _sums(principal, collected_sql, first, last)
        keys = set(opening) | set(closing) | set(sales) | set(collected)
        for key in sorted(keys, key=lambda k: (str(k[0]), k[1])):
            open_amount = opening.get(key, (Decimal("0.00"), Decimal("0.00")))[0]
            close_amount, close_current = closing.get(key, (Decimal("0.00"), Decimal("0.00")))
            sold = sales.get(key, Decimal("0.00"))
            kept = broken = 0
            for p in promise_rows:
                d = p["day"] if isinstance(p["day"], dt.date) else dt.date.fromisoformat(str(p["day"])[:10])
                if (p["grp"], p["currency"]) == key and first <= d <= last:
                    kept += p["status"] == "kept"
                    broken += p["status"] == "broken"
            overdue = close_amount - close_current
            denominator = open_amount + sold - close_current
            out.append(
                {
                    "month": first.strftime("%Y-%m"),
                    "manager_id": key[0],
                    "currency": key[1],
                    "opening": open_amount,
                    "sales": sold,
                    "closing": close_amount,
                    "closing_current": close_current,
                    "overdue": overdue,
                    "collected": collected.get(key, Decimal("0.00")),
                    "dso": round(close_amount / sold * (last.day), 1) if sold else None,
                    "overdue_ratio": round(overdue / close_amount, 4) if close_amount else None,
                    "cei": round((open_amount + sold - close_amount) / denominator * 100, 1)
                    if denominator
                    else None,
                    "promises_kept": kept,
                    "promises_broken": broken,
                    "promises_kept_ratio": round(Decimal(kept) / (kept + broken), 4)
                    if kept + broken
                    else None,
                }
            )
        opening = closing
    return out


def as_csv(rows: list[dict[str, Any]]) -> str:
    from tessera import exports

    buffer = io.StringIO()
    writer = exports.csv_writer(buffer)
    writer.writerow(FIELDS)
    for r in rows:
        writer.writerow(["" if r.get(k) is None else r[k] for k in FIELDS])
    return buffer.getvalue()


def as_xlsx(rows: list[dict[str, Any]]) -> bytes:
    from tessera import exports

    return exports.xlsx_bytes(list(FIELDS), ([r.get(k) for k in FIELDS] for r in rows), title="Collection")
