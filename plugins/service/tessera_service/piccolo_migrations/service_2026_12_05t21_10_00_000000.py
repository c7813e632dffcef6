"""The ticket's run of the life-cycle process (``service_ticket.process_id``)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-05T21:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "service_ticket.process_id"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="service", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Ticket",
        tablename="service_ticket",
        column_name="process_id",
        db_column_name="process_id",
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
