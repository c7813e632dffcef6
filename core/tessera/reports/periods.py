"""Report periods (day, week, month, quarter): the SQL expression that names a row's period and
the time range a period name stands for, the same on SQLite and PostgreSQL.

Periods are UTC calendar periods; a week starts on Monday and is named by that Monday's date.
Names sort in time order: ``2026-03-02`` (day or week), ``2026-03`` (month), ``2026-Q1``.
The expressions are kernel-written SQL around a column the report declared (never user input).
"""

from __future__ import annotations

import datetime as dt
import re

from piccolo.columns import Column
from piccolo.querystring import QueryString

from tessera import db

GRAINS = ("day", "week", "month", "quarter")


def expression(column: Column, grain: str, alias: str | None = None) -> QueryString:
    """The period name of ``column`` (a timestamp) for ``grain``, as SQL."""
    if grain not in GRAINS:
        raise ValueError(grain)
    if db.is_postgres():
        utc = "({} AT TIME ZONE 'UTC')"
        template = {
            "day": f"to_char({utc}, 'YYYY-MM-DD')",
            "week": f"to_char(date_trunc('week', {utc}), 'YYYY-MM-DD')",
            "month": f"to_char({utc}, 'YYYY-MM')",
            "quarter": f"to_char({utc}, 'YYYY-\"Q\"Q')",
        }[grain]
        return QueryString(template, column, alias=alias)
    template = {
        "day": "strftime('%Y-%m-%d', {})",
        "week": "date({}, 'weekday 0', '-6 days')",
        "month": "strftime('%Y-%m', {})",
        "quarter": "(strftime('%Y', {}) || '-Q' || ((CAST(strftime('%m', {}) AS INTEGER) + 2) / 3))",
    }[grain]
    return QueryString(template, *([column] * template.count("{}")), alias=alias)


_PATTERNS = {
    "day": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "week": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "month": re.compile(r"^\d{4}-\d{2}$"),
    "quarter": re.compile(r"^\d{4}-Q[1-4]$"),
}


def bounds(grain: str, name: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` in UTC of the period called ``name``; ValueError when it is not one."""
    if not isinstance(name, str) or not _PATTERNS[grain].match(name):
        raise ValueError(f"not a {grain}: {name!r}")
    if grain == "quarter":
        year, quarter = int(name[:4]), int(name[-1])
        start = dt.date(year, 3 * quarter - 2, 1)
        end = dt.date(year + (quarter == 4), 1 if quarter == 4 else 3 * quarter + 1, 1)
    elif grain == "month":
        start = dt.date(int(name[:4]), int(name[5:7]), 1)
        end = dt.date(start.year + (start.month == 12), 1 if start.month == 12 else start.month + 1, 1)
    else:
        start = dt.date.fromisoformat(name)
        if grain == "week":
            if start.weekday() != 0:
                raise ValueError(f"a week is named by its Monday: {name!r}")
            end = start + dt.timedelta(days=7)
        else:
            end = start + dt.timedelta(days=1)
    return _utc(start), _utc(end)


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
