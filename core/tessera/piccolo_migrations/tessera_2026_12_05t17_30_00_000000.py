"""Languages (issue 15.1): ``crm_user.locale``, the language the user chose for the web UI
(``ru``, ``uk`` or ``en``; empty: the browser's ``Accept-Language``, then the default)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-05T17:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "crm_user.locale"


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)
    manager.add_column(
        table_class_name="CrmUser",
        tablename="crm_user",
        column_name="locale",
        db_column_name="locale",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 10,
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
