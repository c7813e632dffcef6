"""A contact-cadence rule may cover only clients of one ABC class (``client_class``: the custom
field ``abc_class`` a classifying plugin such as marketing computes; "" = any client)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-08T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "cadence rules by ABC class"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="sales", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        await db.raw("ALTER TABLE sales_cadence_rule ADD COLUMN client_class VARCHAR(1) NOT NULL DEFAULT ''")

    manager.add_raw(run)
    return manager
