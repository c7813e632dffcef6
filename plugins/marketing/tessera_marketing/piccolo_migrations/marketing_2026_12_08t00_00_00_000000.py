"""The ABC/XYZ class leaves the party row: it is kept in ``marketing_party_class`` only and shown
as the party's read-only custom fields (kernel hook ``tessera_custom_field_values``).

* ``marketing_party_class.class_since``: the day the client got its classes (the custom field
  ``abc_xyz_date``, which was stored in the party row).
* The values stored in ``party.custom`` by earlier versions are removed (once).
* PostgreSQL: the class and history tables' foreign keys to ``party`` are dropped (each checked
  insert locks the party's row: a write to every party page on a first run at a million
  clients; the plugin deletes a party's rows on ``party.deleted``), and the recomputation's
  scratch table is UNLOGGED (rebuilt by every run, nothing to recover after a crash). SQLite
  keeps its foreign keys (dropping one rebuilds the table; its checks write nothing).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-08T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ABC/XYZ class out of the party row"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="marketing", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        await db.raw("ALTER TABLE marketing_party_class ADD COLUMN class_since DATE")
        await db.raw("UPDATE marketing_party_class SET class_since = computed_on")
        if db.is_postgres():
            for table in ("marketing_party_class", "marketing_class_history"):
                for row in await db.raw(
                    "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass({}) AND contype = 'f'",
                    table,
                ):
                    await db.raw(f'ALTER TABLE {table} DROP CONSTRAINT "{row["conname"]}"')
            await db.raw("ALTER TABLE marketing_class_stage SET UNLOGGED")
            await db.raw(
                "UPDATE party SET custom = (custom::jsonb - 'abc_class' - 'xyz_class' - 'abc_xyz_date')::json "
                "WHERE custom::jsonb ?| ARRAY['abc_class', 'xyz_class', 'abc_xyz_date']"
            )
        else:
            await db.raw(
                "UPDATE party SET custom = json_remove(custom, '$.abc_class', '$.xyz_class', '$.abc_xyz_date') "
                "WHERE json_type(custom, '$.abc_class') IS NOT NULL OR json_type(custom, '$.xyz_class') IS NOT NULL "
                "OR json_type(custom, '$.abc_xyz_date') IS NOT NULL"
            )

    manager.add_raw(run)
    return manager
