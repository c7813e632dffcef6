"""Hand-written: an index on ``task.controller_id``. Party visibility includes the parties shared
by an open task with its assignee or controller (``Principal.shared_party_sql``: ``... WHERE
assignee_id IN (...) OR controller_id IN (...)``); with both columns indexed that sub-select
reads only the caller's tasks instead of the whole task table (docs/security.md)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-27T09:13:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "task.controller_id index (implicit sharing)"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create_index():  # type: ignore[no-untyped-def]
        from tessera import db

        await db.raw("CREATE INDEX IF NOT EXISTS task_controller_id ON task (controller_id)")

    async def drop_index():  # type: ignore[no-untyped-def]
        from tessera import db

        await db.raw("DROP INDEX IF EXISTS task_controller_id")

    manager.add_raw(create_index)
    manager.add_raw_backwards(drop_index)
    return manager
