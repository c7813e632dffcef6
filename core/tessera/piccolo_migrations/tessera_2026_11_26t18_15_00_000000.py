"""Hand-written: composite indexes for the party list as managers and heads use it (their own or
their team's parties in one status). With single-column indexes PostgreSQL combined the owner
index with the status index (a third of the base for a common status): 41 ms at 1M parties, against
4-12 ms with (owner_id, status) (bench/run.py, docs/performance.md)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-26T18:15:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Party list indexes: (owner_id, status) and (team_id, status)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def party_list_indexes():
        from tessera import db

        await db.raw("CREATE INDEX IF NOT EXISTS party_owner_status ON party (owner_id, status)")
        await db.raw("CREATE INDEX IF NOT EXISTS party_team_status ON party (team_id, status)")
        # The planner needs fresh statistics to prefer the new indexes on an existing base.
        await db.raw("ANALYZE party")

    async def drop_party_list_indexes():
        from tessera import db

        await db.raw("DROP INDEX IF EXISTS party_owner_status")
        await db.raw("DROP INDEX IF EXISTS party_team_status")

    manager.add_raw(party_list_indexes)
    manager.add_raw_backwards(drop_party_list_indexes)
    return manager
