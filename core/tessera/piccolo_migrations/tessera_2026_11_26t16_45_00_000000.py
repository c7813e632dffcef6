"""Hand-written: one idempotency record per (user, path, key), so two simultaneous creates with
the same Idempotency-Key cannot both run (the second waits for the first and replays its answer).
Piccolo columns cannot declare a unique index over several columns, hence raw SQL that both
engines accept. Duplicates an older version may have stored are dropped first (the oldest row,
the answer the client saw first, is kept)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-26T16:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Unique (user_id, path, key) of idempotency records"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def unique_idempotency_key():
        from tessera import db

        await db.raw(
            "DELETE FROM idempotency_record WHERE id NOT IN "
            "(SELECT MIN(id) FROM idempotency_record GROUP BY user_id, path, key)"
        )
        await db.raw(
            "CREATE UNIQUE INDEX IF NOT EXISTS idempotency_record_scope_key "
            "ON idempotency_record (user_id, path, key)"
        )

    async def drop_unique_idempotency_key():
        from tessera import db

        await db.raw("DROP INDEX IF EXISTS idempotency_record_scope_key")

    manager.add_raw(unique_idempotency_key)
    manager.add_raw_backwards(drop_unique_idempotency_key)
    return manager
