"""Login throttling per (client address, login) and per login: table ``login_throttle``."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-26T17:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "login_throttle"


def _params(**extra):  # type: ignore[no-untyped-def]
    params = {
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }
    params.update(extra)
    return params


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)
    manager.add_table(class_name="LoginThrottle", tablename="login_throttle", schema=None, columns=None)
    columns = [
        ("key_hash", Varchar, _params(length=64, default="", unique=True)),
        ("failures", Integer, _params(default=0)),
        ("window_started_at", Timestamptz, _params(default=TimestamptzNow())),
        ("locked_until", Timestamptz, _params(default=None, null=True)),
    ]
    for name, column_class, params in columns:
        manager.add_column(
            table_class_name="LoginThrottle",
            tablename="login_throttle",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )
    return manager
