from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the task an accepted task recommendation created"


async def forwards() -> MigrationManager:
    manager = MigrationManager(
        migration_id=ID, app_name="knowledge_base", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Recommendation",
        tablename="knowledge_base_recommendation",
        column_name="task_id",
        db_column_name="task_id",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
