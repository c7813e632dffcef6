"""Hand-written: tasks that exist before hand-offs were accepted count as accepted when they
were last changed (nobody is asked to accept old work). A migration of its own because Piccolo
runs a migration's raw steps before its column changes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-05T19:20:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "Existing tasks count as accepted"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def accept_existing_tasks() -> None:
        from tessera import db

        await db.raw("UPDATE task SET accepted_at = updated_at WHERE accepted_at IS NULL")

    manager.add_raw(accept_existing_tasks)
    return manager
