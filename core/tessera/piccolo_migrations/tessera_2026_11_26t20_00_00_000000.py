"""Hand-written, PostgreSQL only: a trigram index on party names, so the party list's name filter
(``q``: ILIKE '%text%') narrows a manager's parties through the index instead of reading every one
of their rows: at 1M parties a cold list read ~1,600 table pages (~50 ms), with the index ~60
(bench/run.py, docs/performance.md). Needs the ``pg_trgm`` extension (in PostgreSQL's contrib,
trusted since PostgreSQL 13); where it cannot be created the list works as before, only slower."""

import logging

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-26T20:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Party name trigram index (PostgreSQL)"

log = logging.getLogger("tessera")


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def party_name_trigrams():
        from tessera import db

        if not db.is_postgres():
            return  # SQLite matches names with GLOB over the owner's rows
        installed = await db.raw("SELECT 1 AS ok FROM pg_extension WHERE extname = 'pg_trgm'")
        if not installed:
            allowed = await db.raw(
                "SELECT 1 AS ok FROM pg_available_extensions WHERE name = 'pg_trgm' "
                "AND has_database_privilege(current_database(), 'CREATE')"
            )
            if not allowed:
                log.warning("pg_trgm is not available: the party list's name filter works without an index")
                return
            await db.raw("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        await db.raw("CREATE INDEX IF NOT EXISTS party_name_trgm ON party USING gin (name gin_trgm_ops)")

    async def drop_party_name_trigrams():
        from tessera import db

        if db.is_postgres():
            await db.raw("DROP INDEX IF EXISTS party_name_trgm")

    manager.add_raw(party_name_trigrams)
    manager.add_raw_backwards(drop_party_name_trigrams)
    return manager
