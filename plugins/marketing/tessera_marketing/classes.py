"""ABC/XYZ classification of clients by the revenue other plugins supply (``revenue``).

* **ABC** by cumulative revenue share over the last 12 full months: clients ranked by revenue
  (ties by id); a client is **A** while the clients ranked above it hold less than ``a`` % of
  the total (default 80), **B** while they hold less than ``a + b`` % (default 95), else **C**.
* **XYZ** by the coefficient of variation (population standard deviation / mean) of the
  client's monthly revenue over the same 12 months, months without revenue counting as 0:
  **X** below ``x`` % (default 10), **Y** up to ``y`` % (default 25), **Z** above.

Only clients with revenue in the window are classified. Everything is computed by one SQL
statement (window functions; the comparison uses CV² so no square root is needed for the
class), staged in ``marketing_class_stage`` and then, in the same transaction: every change
appended to ``marketing_class_history`` and ``marketing_party_class`` brought up to date in
place (the rows whose figures changed only). The class is **not** written into the party row:
it is shown as the party's read-only custom fields ``abc_class`` / ``xyz_class`` /
``abc_xyz_date`` (the day the class last changed) through the kernel's hook
``tessera_custom_field_values``, which every reader of a party gets (the API, the card, the
service plugin's SLA by class, receivables' dunning, the knowledge base's facts); segments join
the class table. So a first run at a million clients rewrites no party row and none of the
party table's indexes (docs/performance.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from decimal import Decimal
from typing import Any

from tessera import audit, clock, db
from tessera.errors import ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal

from tessera_marketing import revenue
from tessera_marketing.tables import Setting

log = logging.getLogger(__name__)

#: PostgreSQL ``work_mem`` of the recompute's transaction (a nightly batch job).
WORK_MEM = "512MB"
DEFAULTS: dict[str, Any] = {"a": 80, "b": 15, "x": 10, "y": 25, "sources": []}
#: The party's read-only custom fields this module keeps (``custom_field_values``).
CUSTOM_FIELDS: dict[str, dict[str, Any]] = {
    "abc_class": {"type": "string", "enum": ["A", "B", "C"], "title": N_("ABC class"), "readOnly": True},
    "xyz_class": {"type": "string", "enum": ["X", "Y", "Z"], "title": N_("XYZ class"), "readOnly": True},
    "abc_xyz_date": {
        "type": "string",
        "format": "date",
        "title": N_("ABC/XYZ class date"),
        "readOnly": True,
    },
}


async def settings() -> dict[str, Any]:
    row = await Setting.select(Setting.value).where(Setting.key == "classes").first()
    value = row["value"] if row else {}
    if isinstance(value, str):
        value = json.loads(value)
    return {**DEFAULTS, **(value or {})}


def _check(values: dict[str, Any]) -> None:
    for key in ("a", "b", "x", "y"):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 100:
            raise ValidationFailed.field(key, "must be a percentage between 0 and 100")
    if values["a"] + values["b"] >= 100:
        raise ValidationFailed.field("b", "a + b must stay below 100 % (C takes the rest)")
    if values["x"] >= values["y"]:
        raise ValidationFailed.field("y", "must be more than x")
    known = {s["key"] for s in revenue.sources()}
    for i, key in enumerate(values["sources"]):
        if key not in known:
            raise ValidationFailed.field(f"sources[{i}]", f"no enabled plugin supplies revenue {key!r}")


async def update_settings(principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    principal.require("marketing.settings.manage")
    async with db.transaction():
        old = await settings()
        new = {**old, **values}
        _check(new)
        if new == old:
            audit.unchanged()
            return new
        if await Setting.exists().where(Setting.key == "classes"):
            await Setting.update({Setting.value: new}).where(Setting.key == "classes")
        else:
            await Setting.insert(Setting(key="classes", value=new))
        await audit.record("update", "marketing.setting", None, audit.diff(old, new))
    return new


def window(today: dt.date) -> tuple[str, str]:
    """The 12 full months before ``today``'s month: (first month, the month after the last)."""
    index = today.year * 12 + today.month - 1
    start = index - 12
    return f"{start // 12:04d}-{start % 12 + 1:02d}", f"{index // 12:04d}-{index % 12 + 1:02d}"


def _classified_sql(union: str) -> str:
    """``party_id, revenue, cv_pct, abc, xyz`` of every client with revenue in the window;
    placeholders: start month, end month, a share, a+b share, x², y².

    ``OFFSET 0`` keeps the revenue sources' rows a subquery of their own: PostgreSQL would
    otherwise pull it up and compute each row's month (``to_char``) and amount (the currency
    CASE) once for the SELECT and again for each filter on them (3 times a row, 12 million rows
    at a million clients). SQLite keeps its plan (its OFFSET needs a LIMIT)."""
    fence = "OFFSET 0" if db.is_postgres() else ""
    return f"""
WITH monthly AS (
    SELECT r.party_id AS party_id, r.month AS month, SUM(r.amount) AS amt
    FROM (SELECT u.party_id, u.month, u.amount FROM ({union}) u {fence}) r
    WHERE r.month >= {{}} AND r.month < {{}}
    GROUP BY r.party_id, r.month
), per AS (
    SELECT m.party_id AS party_id, SUM(m.amt) AS total, SUM(m.amt * m.amt) AS sq
    FROM monthly m JOIN party p ON p.id = m.party_id
    GROUP BY m.party_id HAVING SUM(m.amt) > 0
), ranked AS (
    SELECT party_id, total, sq,
        SUM(total) OVER (ORDER BY total DESC, party_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            - total AS above,
        SUM(total) OVER () AS grand
    FROM per
)
SELECT party_id, total,
    100.0 * sqrt(CASE WHEN 12.0 * sq - total * total > 0 THEN 12.0 * sq - total * total ELSE 0 END)
        / total AS cv_pct,
    CASE WHEN above < grand * {{}} THEN 'A' WHEN above < grand * {{}} THEN 'B' ELSE 'C' END AS abc,
    CASE WHEN 12.0 * sq - total * total < {{}} * total * total THEN 'X'
         WHEN 12.0 * sq - total * total <= {{}} * total * total THEN 'Y' ELSE 'Z' END AS xyz
FROM ranked"""


async def _step(sql: str, *args: Any) -> list[dict[str, Any]]:
    """One statement of the recomputation, its time logged at DEBUG (bench/marketing.py shows
    where a run's time goes)."""
    started = time.perf_counter()
    rows = await db.raw(sql, *args)
    log.debug("%.2f s %s", time.perf_counter() - started, " ".join(sql.split())[:70])
    return rows


async def recompute(today: dt.date | None = None) -> dict[str, int]:
    """Classify every client again; returns how many are classified and how many changed."""
    today = today or clock.now().date()
    conf = await settings()
    union = revenue.union_sql(conf["sources"] or None)
    now = clock.now()
    start, end = window(today)
    pg = db.is_postgres()
    num = (lambda v: Decimal(str(v))) if pg else float
    args = [
        start,
        end,
        num(conf["a"] / 100),
        num((conf["a"] + conf["b"]) / 100),
        num((conf["x"] / 100) ** 2),
        num((conf["y"] / 100) ** 2),
    ]
    empty_stage = "TRUNCATE marketing_class_stage" if pg else "DELETE FROM marketing_class_stage"
    async with db.transaction(bulk=True):
        if pg:
            # The (client, month) sort of a year of revenue: at a million clients, 12 million
            # rows spilled ~500 MB to disk under the default 4 MB (bench/marketing.py).
            await _step(f"SET LOCAL work_mem = '{WORK_MEM}'")
            # Every join here is over whole tables: hashed, never a nested loop. The planner took
            # one for the insert of new class rows when the class table was empty (a first run):
            # it then re-read the rows the insert itself was adding, for each of a million rows.
            await _step("SET LOCAL enable_nestloop = off")
        await _step(empty_stage)
        if union is not None:
            await _step(
                "INSERT INTO marketing_class_stage (party_id, revenue, cv_pct, abc_class, xyz_class) "
                f"SELECT party_id, total, cv_pct, abc, xyz FROM ({_classified_sql(union)}) c",
                *args,
            )
            if pg:
                await _step("ANALYZE marketing_class_stage")  # its size, for the joins below
        # Clients that lost their class (no revenue in the window any more, or deleted): counted
        # once; the statements about them (anti-joins of the class table and the stage, seconds
        # each at a million clients) are skipped on the usual night when there are none.
        lost_where = (
            "FROM marketing_party_class c "
            # NOT EXISTS, never NOT IN: PostgreSQL can only hash a NOT IN list that fits in
            # work_mem; at a million clients it rescanned the stage for every row (hours).
            "WHERE NOT EXISTS (SELECT 1 FROM marketing_class_stage s WHERE s.party_id = c.party_id)"
        )
        lost = (await _step(f"SELECT COUNT(*) AS n {lost_where}"))[0]["n"]
        # History: new or changed classes, then clients that lost theirs.
        changed_where = (
            "FROM marketing_class_stage s LEFT JOIN marketing_party_class c ON c.party_id = s.party_id "
            "WHERE c.party_id IS NULL OR c.abc_class <> s.abc_class OR c.xyz_class <> s.xyz_class"
        )
        changed = (await _step(f"SELECT COUNT(*) AS n {changed_where}"))[0]["n"]
        if changed:
            await _step(
                "INSERT INTO marketing_class_history (party_id, abc_class, xyz_class, revenue, "
                "cv_pct, computed_on, at) "
                "SELECT s.party_id, s.abc_class, s.xyz_class, s.revenue, s.cv_pct, {}, {} " + changed_where,
                today,
                now,
            )
        if lost:
            await _step(
                "INSERT INTO marketing_class_history (party_id, abc_class, xyz_class, revenue, "
                "cv_pct, computed_on, at) SELECT c.party_id, '', '', 0, NULL, {}, {} " + lost_where,
                today,
                now,
            )
            await _step(
                "DELETE FROM marketing_party_class WHERE NOT EXISTS (SELECT 1 FROM marketing_class_stage s "
                "WHERE s.party_id = marketing_party_class.party_id)"
            )
        # The class rows brought to the stage's in place, only those whose figures changed (a
        # night within a month changes the revenue of the clients who bought something).
        distinct = "IS DISTINCT FROM" if pg else "IS NOT"
        c = "marketing_party_class"
        await _step(
            f"UPDATE {c} SET abc_class = s.abc_class, xyz_class = s.xyz_class, "
            "revenue = s.revenue, cv_pct = s.cv_pct, computed_on = {}, class_since = CASE WHEN "
            f"{c}.abc_class = s.abc_class AND {c}.xyz_class = s.xyz_class "
            f"THEN {c}.class_since ELSE {{}} END FROM marketing_class_stage s "
            f"WHERE s.party_id = {c}.party_id AND ({c}.abc_class <> s.abc_class "
            f"OR {c}.xyz_class <> s.xyz_class OR {c}.revenue <> s.revenue OR {c}.cv_pct {distinct} s.cv_pct)",
            today,
            today,
        )
        if changed:
            await _step(
                "INSERT INTO marketing_party_class (party_id, abc_class, xyz_class, revenue, "
                "cv_pct, computed_on, class_since) "
                "SELECT s.party_id, s.abc_class, s.xyz_class, s.revenue, s.cv_pct, {}, {} "
                "FROM marketing_class_stage s WHERE NOT EXISTS "
                "(SELECT 1 FROM marketing_party_class c WHERE c.party_id = s.party_id)",
                today,
                today,
            )
        classified = (await db.raw("SELECT COUNT(*) AS n FROM marketing_class_stage"))[0]["n"]
        await db.raw(empty_stage)
        if changed or lost:
            await audit.record(
                "recompute",
                "marketing.classes",
                None,
                detail=f"ABC/XYZ {start}..{end}: {classified} classified, {changed} changed, "
                f"{lost} unclassified",
            )
        else:
            audit.unchanged()  # a run that changes no class leaves no trace (the job runs nightly)
    return {"classified": int(classified), "changed": int(changed) + int(lost)}


async def custom_field_values(ids: list[int]) -> dict[int, dict[str, Any]]:
    """The parties' read-only custom fields ``abc_class``, ``xyz_class`` and ``abc_xyz_date``
    from the class table (the kernel merges them into ``custom`` wherever a party is read)."""
    from tessera_marketing.tables import PartyClass

    out: dict[int, dict[str, Any]] = {}
    for chunk in db.chunks(sorted(set(ids))):
        rows = await PartyClass.select(
            PartyClass.party_id, PartyClass.abc_class, PartyClass.xyz_class, PartyClass.class_since
        ).where(PartyClass.party_id.is_in(chunk))
        for r in rows:
            since = r["class_since"]
            out[r["party_id"]] = {
                "abc_class": r["abc_class"],
                "xyz_class": r["xyz_class"],
                **({"abc_xyz_date": since.isoformat()} if since else {}),
            }
    return out


async def list_values(principal: Principal, ids: list[int]) -> dict[int, str]:
    """The parties list's ABC/XYZ column: ``"A/X"`` per classified party of the page (the
    page holds only parties the principal reads; the class is one of their custom fields)."""
    return {pid: f"{v['abc_class']}/{v['xyz_class']}" for pid, v in (await custom_field_values(ids)).items()}


def list_columns(list_name: str) -> list[dict[str, Any]]:
    """Columns this plugin adds to the kernel's lists: the class on the parties list."""
    if list_name != "parties":
        return []
    return [{"key": "marketing.abc_xyz", "label": N_("ABC/XYZ"), "values": list_values}]


async def forget_party(party_id: int) -> None:
    """A deleted party's class and history (the tables hold no foreign key to ``party``)."""
    from tessera_marketing.tables import ClassHistory, PartyClass

    await PartyClass.delete().where(PartyClass.party_id == party_id)
    await ClassHistory.delete().where(ClassHistory.party_id == party_id)


async def matrix(principal: Principal) -> list[dict[str, Any]]:
    """Clients and revenue per ABC x XYZ cell, over the clients the caller may read (the
    kernel's party read rule, in the same query)."""
    from piccolo.query.functions.aggregate import Count, Sum
    from tessera.entities.parties import party_visibility
    from tessera.entities.tables import Party

    from tessera_marketing.tables import PartyClass

    principal.require("marketing.segment.read")
    query = PartyClass.select(
        PartyClass.abc_class,
        PartyClass.xyz_class,
        Count(alias="clients"),
        Sum(PartyClass.revenue, alias="revenue"),
    ).group_by(PartyClass.abc_class, PartyClass.xyz_class)
    visible = party_visibility(principal)
    if visible is not None:
        query = query.where(PartyClass.party_id.is_in(Party.select(Party.id).where(visible)))
    rows = await query
    return sorted(
        (
            {
                "abc_class": r["abc_class"],
                "xyz_class": r["xyz_class"],
                "clients": int(r["clients"]),
                "revenue": Decimal(str(r["revenue"] or 0)).quantize(Decimal("0.01")),
            }
            for r in rows
        ),
        key=lambda r: (r["abc_class"], r["xyz_class"]),
    )
