"""Activity summary (issue 21): activities per UTC day, owner, team, type and status, kept exact
by triggers on ``activity`` (``tessera.reports.summary``), filled from the existing activities."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt, Integer, Timestamptz, Varchar
from piccolo.table import Table

ID = "2026-12-06T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Activity summary for reports and KPIs"


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
        from tessera.reports import summary

        await ActivitySummary.create_table(if_not_exists=True)
        for statement in summary.install_sql(db.is_postgres()):
            await db.raw(statement)
        await db.raw("DELETE FROM activity_summary")
        await db.raw(summary.fill_sql(db.is_postgres()))

    async def drop():
        from tessera import db
        from tessera.reports import summary

        for statement in summary.uninstall_sql(db.is_postgres()):
            await db.raw(statement)
        await ActivitySummary.alter().drop_table(if_exists=True)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
