"""PostgreSQL only: GIN indexes on the access lists, so a search for a common word by a user
who sees a small share of the records intersects bitmaps instead of reading every match."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-26T14:38:44:000000"
VERSION = "1.38.0"
DESCRIPTION = "Search: GIN indexes on acl_users / acl_teams (PostgreSQL only)"


async def _acl_indexes() -> None:
    from tessera.db import get_engine

    engine = get_engine()
    if engine.engine_type != "postgres":
        return
    for statement in (
        "CREATE INDEX IF NOT EXISTS search_document_acl_users_gin ON search_document USING gin (acl_users)",
        "CREATE INDEX IF NOT EXISTS search_document_acl_teams_gin ON search_document USING gin (acl_teams)",
    ):
        await engine.run_ddl(statement)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera_search", description=DESCRIPTION)
    manager.add_raw(_acl_indexes)
    return manager
