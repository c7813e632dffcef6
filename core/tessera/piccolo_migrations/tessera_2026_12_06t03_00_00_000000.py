"""Activity summary (issue 21): activities per UTC day, owner, team, type and status, kept exact
by triggers on ``activity``, filled from the existing activities.

The statements are a frozen copy of what ``tessera.reports.summary`` produced when this
migration was written: a migration must do the same thing forever, so a later change of the
triggers belongs in a new migration, not in an edit of that module."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt, Integer, Timestamptz, Varchar
from piccolo.table import Table

ID = "2026-12-06T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Activity summary for reports and KPIs"


_INSTALL_PG = [
    "CREATE UNIQUE INDEX IF NOT EXISTS activity_summary_key ON activity_summary (day, owner_id, "
    "team_id, type, status)",
    "CREATE INDEX IF NOT EXISTS activity_summary_owner ON activity_summary (owner_id, day)",
    "CREATE INDEX IF NOT EXISTS activity_summary_team ON activity_summary (team_id, day)",
    "CREATE OR REPLACE FUNCTION activity_summary_apply() RETURNS trigger AS $$\n"
    "BEGIN\n"
    "  IF TG_OP IN ('UPDATE', 'DELETE') THEN INSERT INTO activity_summary (day, owner_id, "
    "team_id, type, status, n, minutes) VALUES (date_trunc('day', OLD.starts_at AT TIME ZONE "
    "'UTC') AT TIME ZONE 'UTC', COALESCE(OLD.owner_id, 0), COALESCE(OLD.team_id, 0), OLD.type, "
    "OLD.status, -1, -COALESCE(OLD.duration_minutes, 0)) ON CONFLICT (day, owner_id, team_id, "
    "type, status) DO UPDATE SET n = activity_summary.n + excluded.n, minutes = "
    "activity_summary.minutes + excluded.minutes; END IF;\n"
    "  IF TG_OP IN ('UPDATE', 'INSERT') THEN INSERT INTO activity_summary (day, owner_id, "
    "team_id, type, status, n, minutes) VALUES (date_trunc('day', NEW.starts_at AT TIME ZONE "
    "'UTC') AT TIME ZONE 'UTC', COALESCE(NEW.owner_id, 0), COALESCE(NEW.team_id, 0), NEW.type, "
    "NEW.status, 1, COALESCE(NEW.duration_minutes, 0)) ON CONFLICT (day, owner_id, team_id, type, "
    "status) DO UPDATE SET n = activity_summary.n + excluded.n, minutes = "
    "activity_summary.minutes + excluded.minutes; END IF;\n"
    "  RETURN NULL;\n"
    "END $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS activity_summary_trigger ON activity",
    "CREATE TRIGGER activity_summary_trigger AFTER INSERT OR DELETE OR UPDATE OF starts_at, "
    "owner_id, team_id, type, status, duration_minutes ON activity FOR EACH ROW EXECUTE FUNCTION "
    "activity_summary_apply()",
]

_UNINSTALL_PG = [
    "DROP TRIGGER IF EXISTS activity_summary_trigger ON activity",
    "DROP FUNCTION IF EXISTS activity_summary_apply()",
]

_FILL_PG = (
    "INSERT INTO activity_summary (day, owner_id, team_id, type, status, n, minutes) SELECT "
    "date_trunc('day', activity.starts_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "
    "COALESCE(owner_id, 0), COALESCE(team_id, 0), type, status, COUNT(*), "
    "COALESCE(SUM(duration_minutes), 0) FROM activity GROUP BY date_trunc('day', "
    "activity.starts_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', COALESCE(owner_id, 0), "
    "COALESCE(team_id, 0), type, status"
)

_INSTALL_SQLITE = [
    "CREATE UNIQUE INDEX IF NOT EXISTS activity_summary_key ON activity_summary (day, owner_id, "
    "team_id, type, status)",
    "CREATE INDEX IF NOT EXISTS activity_summary_owner ON activity_summary (owner_id, day)",
    "CREATE INDEX IF NOT EXISTS activity_summary_team ON activity_summary (team_id, day)",
    "CREATE TRIGGER IF NOT EXISTS activity_summary_insert AFTER INSERT ON activity BEGIN INSERT "
    "INTO activity_summary (day, owner_id, team_id, type, status, n, minutes) VALUES "
    "(date(NEW.starts_at) || ' 00:00:00+00:00', COALESCE(NEW.owner_id, 0), COALESCE(NEW.team_id, "
    "0), NEW.type, NEW.status, 1, COALESCE(NEW.duration_minutes, 0)) ON CONFLICT (day, owner_id, "
    "team_id, type, status) DO UPDATE SET n = activity_summary.n + excluded.n, minutes = "
    "activity_summary.minutes + excluded.minutes; END",
    "CREATE TRIGGER IF NOT EXISTS activity_summary_delete AFTER DELETE ON activity BEGIN INSERT "
    "INTO activity_summary (day, owner_id, team_id, type, status, n, minutes) VALUES "
    "(date(OLD.starts_at) || ' 00:00:00+00:00', COALESCE(OLD.owner_id, 0), COALESCE(OLD.team_id, "
    "0), OLD.type, OLD.status, -1, -COALESCE(OLD.duration_minutes, 0)) ON CONFLICT (day, "
    "owner_id, team_id, type, status) DO UPDATE SET n = activity_summary.n + excluded.n, minutes "
    "= activity_summary.minutes + excluded.minutes; END",
    "CREATE TRIGGER IF NOT EXISTS activity_summary_update AFTER UPDATE OF starts_at, owner_id, "
    "team_id, type, status, duration_minutes ON activity BEGIN INSERT INTO activity_summary (day, "
    "owner_id, team_id, type, status, n, minutes) VALUES (date(OLD.starts_at) || ' "
    "00:00:00+00:00', COALESCE(OLD.owner_id, 0), COALESCE(OLD.team_id, 0), OLD.type, OLD.status, "
    "-1, -COALESCE(OLD.duration_minutes, 0)) ON CONFLICT (day, owner_id, team_id, type, status) "
    "DO UPDATE SET n = activity_summary.n + excluded.n, minutes = activity_summary.minutes + "
    "excluded.minutes; INSERT INTO activity_summary (day, owner_id, team_id, type, status, n, "
    "minutes) VALUES (date(NEW.starts_at) || ' 00:00:00+00:00', COALESCE(NEW.owner_id, 0), "
    "COALESCE(NEW.team_id, 0), NEW.type, NEW.status, 1, COALESCE(NEW.duration_minutes, 0)) ON "
    "CONFLICT (day, owner_id, team_id, type, status) DO UPDATE SET n = activity_summary.n + "
    "excluded.n, minutes = activity_summary.minutes + excluded.minutes; END",
]

_UNINSTALL_SQLITE = [
    "DROP TRIGGER IF EXISTS activity_summary_insert",
    "DROP TRIGGER IF EXISTS activity_summary_delete",
    "DROP TRIGGER IF EXISTS activity_summary_update",
]

_FILL_SQLITE = (
    "INSERT INTO activity_summary (day, owner_id, team_id, type, status, n, minutes) SELECT "
    "date(activity.starts_at) || ' 00:00:00+00:00', COALESCE(owner_id, 0), COALESCE(team_id, 0), "
    "type, status, COUNT(*), COALESCE(SUM(duration_minutes), 0) FROM activity GROUP BY "
    "date(activity.starts_at) || ' 00:00:00+00:00', COALESCE(owner_id, 0), COALESCE(team_id, 0), "
    "type, status"
)


class ActivitySummary(Table, tablename="activity_summary"):
    day = Timestamptz()
    owner_id = Integer(default=0)
    team_id = Integer(default=0)
    type = Varchar(length=20)
    status = Varchar(length=20)
    n = BigInt(default=0)
    minutes = BigInt(default=0)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create():
        from tessera import db

        postgres = db.is_postgres()
        await ActivitySummary.create_table(if_not_exists=True)
        for statement in _INSTALL_PG if postgres else _INSTALL_SQLITE:
            await db.raw(statement)
        await db.raw("DELETE FROM activity_summary")
        await db.raw(_FILL_PG if postgres else _FILL_SQLITE)

    async def drop():
        from tessera import db

        for statement in _UNINSTALL_PG if db.is_postgres() else _UNINSTALL_SQLITE:
            await db.raw(statement)
        await ActivitySummary.alter().drop_table(if_exists=True)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
