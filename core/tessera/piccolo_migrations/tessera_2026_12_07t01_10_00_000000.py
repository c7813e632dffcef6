"""``audit_log.entity_id_last``: an entry about a range of records (``entity_id`` ..
``entity_id_last``), so the one entry an import writes per contiguous range of the parties it
created answers "who created party X" when the log is filtered by X."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T01:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit_log.entity_id_last (entries about a range of records)"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)
    manager.add_column(
        table_class_name="AuditLog",
        tablename="audit_log",
        column_name="entity_id_last",
        db_column_name="entity_id_last",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )
    return manager
