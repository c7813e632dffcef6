"""Accounting exchange (issue 16.6): ``external_ref`` maps a record to its id in another system
(unique per system, entity and external id), so an exchange file imported twice changes
nothing."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

ID = "2026-12-06T02:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "External ids (accounting exchange)"


class ExternalRef(Table, tablename="external_ref"):
    system = Varchar(length=50)
    entity = Varchar(length=50, default="party")
    external_id = Varchar(length=200)
    entity_id = Integer(index=True)
    created_at = Timestamptz(default=TimestamptzNow())


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create_table():
        from tessera import db

        await ExternalRef.create_table(if_not_exists=True)
        await db.raw(
            "CREATE UNIQUE INDEX IF NOT EXISTS external_ref_key ON external_ref (system, entity, external_id)"
        )

    async def drop_table():
        await ExternalRef.alter().drop_table(if_exists=True)

    manager.add_raw(create_table)
    manager.add_raw_backwards(drop_table)
    return manager
