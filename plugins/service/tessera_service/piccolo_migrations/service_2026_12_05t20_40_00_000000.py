"""SLA policies limited to clients of an ABC class (``service_sla_policy.client_class``,
"" = any client): key clients get faster targets without an agreement each."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-05T20:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "service_sla_policy.client_class"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="service", description=DESCRIPTION)
    manager.add_column(
        table_class_name="SlaPolicy",
        tablename="service_sla_policy",
        column_name="client_class",
        db_column_name="client_class",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 1,
            "default": "",
            "null": False,
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
