"""Composite indexes of the knowledge base (hand-written: Piccolo declares none). Works on
SQLite and PostgreSQL."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-05T20:31:57:000000"
VERSION = "1.38.0"
DESCRIPTION = "record lookups of links, recommendations and tree walks; one vote per reader"

STATEMENTS = [
    "CREATE INDEX IF NOT EXISTS knowledge_base_link_kind_key ON knowledge_base_link (kind, key)",
    "CREATE INDEX IF NOT EXISTS knowledge_base_recommendation_record ON knowledge_base_recommendation "
    "(kind, record_id)",
    "CREATE INDEX IF NOT EXISTS knowledge_base_tree_run_record ON knowledge_base_tree_run (kind, record_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS knowledge_base_vote_reader ON knowledge_base_vote (article_id, user_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS knowledge_base_article_revision ON knowledge_base_article_version "
    "(article_id, revision)",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="knowledge_base", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        for statement in STATEMENTS:
            await db.raw(statement)

    manager.add_raw(run)
    return manager
