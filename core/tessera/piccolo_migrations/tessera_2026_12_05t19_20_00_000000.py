"""Hand-offs are accepted (issue 15.5): ``task.accepted_at``, when the task's current assignee
accepted it; NULL while a task someone else gave them waits for acceptance (the next
migration marks the tasks that exist already as accepted)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-05T19:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "task.accepted_at"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Task",
        tablename="task",
        column_name="accepted_at",
        db_column_name="accepted_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
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
