"""Hand-written: one template row per (key, version). Runs after the tables exist (Piccolo
runs a migration's raw steps before its table creation, hence a migration of its own)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-26T14:41:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Unique (key, version) of workflow templates"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera_workflow", description=DESCRIPTION)

    async def unique_template_version():
        from tessera import db

        await db.raw(
            "CREATE UNIQUE INDEX IF NOT EXISTS workflow_template_key_version ON workflow_template (key, version)"
        )

    async def drop_unique_template_version():
        from tessera import db

        await db.raw("DROP INDEX IF EXISTS workflow_template_key_version")

    manager.add_raw(unique_template_version)
    manager.add_raw_backwards(drop_unique_template_version)
    return manager
