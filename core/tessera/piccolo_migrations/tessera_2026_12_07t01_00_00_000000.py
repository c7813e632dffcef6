"""Hand-written: drop the party table's single-column indexes on ``owner_id`` and ``team_id``.
The composite indexes ``party_owner_status`` (owner_id, status) and ``party_team_status``
(team_id, status) lead with the same columns, so every query that used one of them (a manager's
or a team's parties, the foreign keys' ON DELETE SET NULL) uses the composite instead; the
single ones only cost a B-tree insert per new party (a sixth of a 100,000-row import's SQLite
time, bench/integrations.py)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import ForeignKey

ID = "2026-12-07T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Drop party_owner_id and party_team_id (served by the (owner_id|team_id, status) indexes)"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)
    for column in ("owner_id", "team_id"):
        manager.alter_column(
            table_class_name="Party",
            tablename="party",
            column_name=column,
            db_column_name=column,
            params={"index": False},
            old_params={"index": True},
            column_class=ForeignKey,
            old_column_class=ForeignKey,
            schema=None,
        )
    return manager
