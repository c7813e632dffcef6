"""PostgreSQL-only part of the search tables: the tsvector column and GIN index.

A separate migration because Piccolo runs a migration's raw steps before its ``add_table``
steps; this one runs after the tables exist. On SQLite it does nothing.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-26T14:38:43:000000"
VERSION = "1.38.0"
DESCRIPTION = "Search: tsvector column and GIN index (PostgreSQL only)"


async def _postgres_fulltext() -> None:
    """PostgreSQL only: the tsvector column and GIN indexes (SQLite keeps a plain table that the
    whoosh backend never touches). Terms are computed in Python by tessera.search.analysis and
    stored as a ready tsvector, so no text-search configuration is involved."""
    from tessera.db import get_engine

    engine = get_engine()
    if engine.engine_type != "postgres":
        return
    for statement in (
        "ALTER TABLE search_document ADD COLUMN IF NOT EXISTS tsv tsvector NOT NULL DEFAULT ''",
        "CREATE INDEX IF NOT EXISTS search_document_tsv_gin ON search_document USING gin (tsv)",
        "CREATE INDEX IF NOT EXISTS search_document_type_idx ON search_document (type)",
        "CREATE INDEX IF NOT EXISTS search_document_indexed_at_idx ON search_document (type, indexed_at)",
    ):
        await engine.run_ddl(statement)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera_search", description=DESCRIPTION)
    manager.add_raw(_postgres_fulltext)
    return manager
