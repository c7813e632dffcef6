"""The receivables reports on the kernel's report framework (``tessera_reports``,
docs/analytics.md): listed with the kernel's reports, run, charted on dashboards and exported to
CSV/XLSX through ``/api/reports``, over the clients the caller may read (own/team/all, in SQL).

* ``receivables.collection`` — DSO, overdue ratio, CEI and promises kept per month, manager and
  currency (``reports.collection_report``, also at ``/api/receivables/reports/collection``);
* ``receivables.cash_forecast`` — cash collected versus forecast per month and currency: the
  forecast of a month is what fell due in it and was still open when it began (the amount of
  each invoice due in the month, less what was applied to it before the month's first day);
  collected is what was received in the month (payments, not credit notes).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import clock, db
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.reports import Report, column, percent
from tessera.reports.framework import Params

from tessera_receivables import ageing, reports
from tessera_receivables.services import visibility_sql


def _dates(params: Params) -> tuple[dt.date, dt.date]:
    today = clock.now().date()
    date_to = params.get("date_to") or today
    return params.get("date_from") or date_to.replace(day=1), date_to


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


# --------------------------------------------------------------------------- cash vs forecast

FORECAST_COLUMNS = [
    column("month", N_("Month"), "text", dimension=True),
    column("currency", N_("Currency"), "text", dimension=True),
    column("forecast", N_("Forecast"), "decimal"),
    column("collected", N_("Collected"), "decimal"),
    column("difference", N_("Collected less forecast"), "decimal"),
    column("collected_share", N_("Collected of forecast"), "percent", "%"),
]


async def cash_forecast(principal: Principal, date_from: dt.date, date_to: dt.date) -> list[dict[str, Any]]:
    """Per month and currency: ``forecast``, ``collected`` (Decimal), their difference and
    ``collected_share`` (collected / forecast, None without a forecast)."""
    principal.require("receivables.read")
    months = reports._months(date_from, date_to)
    vis, args = visibility_sql(principal, "p")
    cents = ageing.cents_sql
    out: list[dict[str, Any]] = []
    for first, last in months:
        day_first, day_last = ageing.day_sql(first), ageing.day_sql(last)
        forecast_rows = await db.raw(
            f"SELECT i.currency AS currency, SUM({cents('i.amount')} - COALESCE(a.cents, 0)) AS cents "
            "FROM receivables_invoice i JOIN party p ON p.id = i.party_id "
            f"LEFT JOIN (SELECT invoice_id, SUM({cents('amount')}) AS cents FROM receivables_allocation "
            f"WHERE paid_on < {day_first} GROUP BY invoice_id) a ON a.invoice_id = i.id "
            f"WHERE {vis} AND i.status <> 'cancelled' AND i.due_date >= {day_first} "
            f"AND i.due_date <= {day_last} GROUP BY i.currency",
            *args,
        )
        collected_rows = await db.raw(
            f"SELECT y.currency AS currency, SUM({cents('y.amount')}) AS cents "
            "FROM receivables_payment y JOIN party p ON p.id = y.party_id "
            f"WHERE {vis} AND y.kind = 'payment' AND y.paid_on >= {day_first} "
            f"AND y.paid_on <= {day_last} GROUP BY y.currency",
            *args,
        )
        forecast = {r["currency"]: reports._c(r["cents"]) for r in forecast_rows}
        collected = {r["currency"]: reports._c(r["cents"]) for r in collected_rows}
        for currency in sorted(set(forecast) | set(collected)):
            expected = forecast.get(currency, Decimal("0.00"))
            got = collected.get(currency, Decimal("0.00"))
            out.append(
                {
                    "month": first.strftime("%Y-%m"),
                    "currency": currency,
                    "forecast": expected,
                    "collected": got,
                    "difference": got - expected,
                    "collected_share": float(got / expected) if expected > 0 else None,
                }
            )
    return out


async def _cash_forecast(principal: Principal, params: Params) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    rows = await cash_forecast(principal, date_from, date_to)
    return {
        "columns": FORECAST_COLUMNS,
        "rows": [
            {
                "values": {
                    **{k: r[k] for k in ("month", "currency")},
                    **{k: _money(r[k]) for k in ("forecast", "collected", "difference")},
                    "collected_share": percent(r["collected_share"]),
                },
                "labels": {},
            }
            for r in rows
        ],
    }


CASH_FORECAST = Report(
    key="receivables.cash_forecast",
    title=N_("Cash collected versus forecast"),
    description=N_(
        "Per month and currency: what fell due in the month and was open when it began (the "
        "forecast) against the payments received in it."
    ),
    permission="receivables.read",
    run=_cash_forecast,
    columns=FORECAST_COLUMNS,
    chart="bar",
)


# --------------------------------------------------------------------------- collection

COLLECTION_COLUMNS = [
    column("month", N_("Month"), "text", dimension=True),
    column("manager_id", N_("Manager"), "user", dimension=True),
    column("currency", N_("Currency"), "text", dimension=True),
    column("closing", N_("Receivables at the month's end"), "decimal"),
    column("overdue", N_("Overdue"), "decimal"),
    column("collected", N_("Collected"), "decimal"),
    column("dso", N_("DSO"), "days"),
    column("overdue_ratio", N_("Overdue ratio"), "percent", "%"),
    column("cei", N_("Collection effectiveness index"), "percent", "%"),
    column("promises_kept_ratio", N_("Promises kept"), "percent", "%"),
]


async def _collection(principal: Principal, params: Params) -> dict[str, Any]:
    date_from, date_to = _dates(params)
    rows = await reports.collection_report(principal, date_from, date_to)

    def share(value: Any) -> float | None:
        return None if value is None else percent(float(value))

    return {
        "columns": COLLECTION_COLUMNS,
        "rows": [
            {
                "values": {
                    "month": r["month"],
                    "manager_id": r["manager_id"],
                    "currency": r["currency"],
                    **{k: _money(r[k]) for k in ("closing", "overdue", "collected")},
                    "dso": None if r["dso"] is None else float(r["dso"]),
                    "overdue_ratio": share(r["overdue_ratio"]),
                    "cei": None if r["cei"] is None else float(r["cei"]),
                    "promises_kept_ratio": share(r["promises_kept_ratio"]),
                },
                "labels": {},
            }
            for r in rows
        ],
    }


COLLECTION = Report(
    key="receivables.collection",
    title=N_("Collection effectiveness"),
    description=N_(
        "DSO, overdue ratio, collection effectiveness index and promises kept per month and manager."
    ),
    permission="receivables.read",
    run=_collection,
    columns=COLLECTION_COLUMNS,
    chart="line",
)

REPORTS = [COLLECTION, CASH_FORECAST]
