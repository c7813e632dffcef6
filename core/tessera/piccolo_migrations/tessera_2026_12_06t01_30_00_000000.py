"""Dashboards (issue 21): table ``dashboard``, tiles of reports and KPIs, shared with roles
and teams."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T01:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dashboard"


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
    manager.add_table(class_name="Dashboard", tablename="dashboard", schema=None, columns=None)
    columns = [
        ("owner_id", Integer, _params(default=0, index=True)),
        ("name", Varchar, _params(length=200, default="")),
        ("tiles", Text, _params(default="[]")),
        ("shared_roles", Text, _params(default="[]")),
        ("shared_teams", Text, _params(default="[]")),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
    ]
    for name, column_class, params in columns:
        manager.add_column(
            table_class_name="Dashboard",
            tablename="dashboard",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )
    return manager
