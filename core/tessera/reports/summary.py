"""Pre-computed activity figures (issue 21): ``activity_summary`` holds the activities per UTC
day, owner, team, type and status (count and minutes), so a report grouped by manager, team,
type, status and period (and KPI tiles over them) adds up a few rows per owner and day instead
of scanning every activity.

It is kept exact by database triggers on ``activity`` (installed by migration
``2026_12_06t03_00``): every insert, change of a counted column and delete — through the
kernel's services, a bulk import, raw SQL or an ``ON DELETE CASCADE`` — adds its difference in
the writing transaction, so the summary never lags behind the activities. ``rebuild`` (the
nightly job ``reports.reconcile_summary``) recomputes it from the activities with one
set-based query, dropping all-zero rows; ``snapshot`` is the stored summary (tests compare
the two).

A report reads the summary only when the result is the same by construction: the reader sees
all activities (no visibility condition), and every dimension, filter and measure asked for
has its column in the summary (``Report.summary``); otherwise it reads the activities.
"""

from __future__ import annotations

from typing import Any

from tessera import db

COLUMNS = "day, owner_id, team_id, type, status"

_SQLITE_DAY = "date({0}.starts_at) || ' 00:00:00+00:00'"
_PG_DAY = "date_trunc('day', {0}.starts_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"


def _values(row: str, sign: str, day: str) -> str:
    return (
        f"({day.format(row)}, COALESCE({row}.owner_id, 0), COALESCE({row}.team_id, 0), {row}.type, "
        f"{row}.status, {sign}1, {sign}COALESCE({row}.duration_minutes, 0))"
    )


_UPSERT = (
    f"INSERT INTO activity_summary ({COLUMNS}, n, minutes) VALUES {{values}} "
    f"ON CONFLICT ({COLUMNS}) DO UPDATE SET n = activity_summary.n + excluded.n, "
    "minutes = activity_summary.minutes + excluded.minutes"
)
WATCHED = "starts_at, owner_id, team_id, type, status, duration_minutes"


def install_sql(postgres: bool) -> list[str]:
    """The statements creating the summary's unique key and the triggers on ``activity``.

    Migration ``tessera_2026_12_06t03_00`` holds a frozen copy: a change here needs a new
    migration that replaces the triggers (the bench drops and re-creates them with these)."""
    out = [
        f"CREATE UNIQUE INDEX IF NOT EXISTS activity_summary_key ON activity_summary ({COLUMNS})",
        # A person's or a team's figures of a month (KPI panels) read their own rows only.
        "CREATE INDEX IF NOT EXISTS activity_summary_owner ON activity_summary (owner_id, day)",
        "CREATE INDEX IF NOT EXISTS activity_summary_team ON activity_summary (team_id, day)",
    ]
    if postgres:
        add = _UPSERT.format(values=_values("NEW", "", _PG_DAY))
        sub = _UPSERT.format(values=_values("OLD", "-", _PG_DAY))
        out.append(
            "CREATE OR REPLACE FUNCTION activity_summary_apply() RETURNS trigger AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP IN ('UPDATE', 'DELETE') THEN {sub}; END IF;\n"
            f"  IF TG_OP IN ('UPDATE', 'INSERT') THEN {add}; END IF;\n"
            "  RETURN NULL;\n"
            "END $$ LANGUAGE plpgsql"
        )
        out.append("DROP TRIGGER IF EXISTS activity_summary_trigger ON activity")
        out.append(
            f"CREATE TRIGGER activity_summary_trigger AFTER INSERT OR DELETE OR UPDATE OF {WATCHED} "
            "ON activity FOR EACH ROW EXECUTE FUNCTION activity_summary_apply()"
        )
        return out
    add = _UPSERT.format(values=_values("NEW", "", _SQLITE_DAY))
    sub = _UPSERT.format(values=_values("OLD", "-", _SQLITE_DAY))
    out += [
        f"CREATE TRIGGER IF NOT EXISTS activity_summary_insert AFTER INSERT ON activity BEGIN {add}; END",
        f"CREATE TRIGGER IF NOT EXISTS activity_summary_delete AFTER DELETE ON activity BEGIN {sub}; END",
        f"CREATE TRIGGER IF NOT EXISTS activity_summary_update AFTER UPDATE OF {WATCHED} ON activity "
        f"BEGIN {sub}; {add}; END",
    ]
    return out


def uninstall_sql(postgres: bool) -> list[str]:
    if postgres:
        return [
            "DROP TRIGGER IF EXISTS activity_summary_trigger ON activity",
            "DROP FUNCTION IF EXISTS activity_summary_apply()",
        ]
    return [f"DROP TRIGGER IF EXISTS activity_summary_{op}" for op in ("insert", "delete", "update")]


def fill_sql(postgres: bool) -> str:
    """One set-based statement computing the whole summary from the activities."""
    day = (_PG_DAY if postgres else _SQLITE_DAY).format("activity")
    return (
        f"INSERT INTO activity_summary ({COLUMNS}, n, minutes) "
        f"SELECT {day}, COALESCE(owner_id, 0), COALESCE(team_id, 0), type, status, COUNT(*), "
        f"COALESCE(SUM(duration_minutes), 0) FROM activity "
        f"GROUP BY {day}, COALESCE(owner_id, 0), COALESCE(team_id, 0), type, status"
    )


async def rebuild() -> int:
    """Recompute the summary from the activities (one transaction; the activities are locked
    against writes meanwhile on PostgreSQL, so no change slips between delete and fill).
    Returns the number of summary rows."""
    async with db.transaction():
        if db.is_postgres():
            await db.raw("LOCK TABLE activity IN SHARE MODE")
        await db.raw("DELETE FROM activity_summary")
        await db.raw(fill_sql(db.is_postgres()))
        rows = await db.raw("SELECT COUNT(*) AS n FROM activity_summary")
    return int(rows[0]["n"])


async def snapshot() -> dict[tuple[Any, ...], tuple[int, int]]:
    """The stored summary without all-zero rows: {(day, owner, team, type, status): (n, minutes)}."""
    rows = await db.raw(f"SELECT {COLUMNS}, n, minutes FROM activity_summary")
    out = {}
    for r in rows:
        if r["n"] or r["minutes"]:
            day = r["day"]
            key = (str(day)[:10], r["owner_id"], r["team_id"], r["type"], r["status"])
            out[key] = (int(r["n"]), int(r["minutes"]))
    return out


async def reconcile_job(ctx: Any = None) -> dict[str, int]:
    """The nightly job: rebuild the summary (a safety net; the triggers keep it exact)."""
    return {"rows": await rebuild()}


__all__ = ["fill_sql", "install_sql", "rebuild", "snapshot", "uninstall_sql"]
