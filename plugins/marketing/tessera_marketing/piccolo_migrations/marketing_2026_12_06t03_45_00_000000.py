from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T03:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "web forms: required fields and the labels a visitor reads"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="marketing", description=DESCRIPTION
    )

    for name, default in (("required", "[]"), ("labels", "{}")):
        manager.add_column(
            table_class_name="WebForm",
            tablename="marketing_web_form",
            column_name=name,
            db_column_name=name,
            column_class_name="JSON",
            column_class=JSON,
            params={
                "default": default,
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
