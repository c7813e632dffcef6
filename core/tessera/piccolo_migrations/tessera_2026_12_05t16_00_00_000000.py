"""Background jobs (issue 16.1): table ``background_job``, one-off work enqueued in the
transaction of the change that asks for it and claimed by ``tessera worker``."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-05T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "background_job"


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
    manager.add_table(class_name="BackgroundJob", tablename="background_job", schema=None, columns=None)
    columns = [
        ("kind", Varchar, _params(length=150, default="", index=True)),
        ("payload", JSON, _params(default="{}")),
        ("status", Varchar, _params(length=20, default="queued", index=True)),
        ("run_at", Timestamptz, _params(default=TimestamptzNow(), index=True)),
        ("attempts", Integer, _params(default=0)),
        ("max_attempts", Integer, _params(default=5)),
        ("dedup_key", Varchar, _params(length=200, default=None, null=True, unique=True)),
        ("claimed_by", Varchar, _params(length=200, default="")),
        ("lease_until", Timestamptz, _params(default=None, null=True)),
        ("progress", JSON, _params(default="{}")),
        ("result", JSON, _params(default=None, null=True)),
        ("error", Text, _params(default="")),
        ("created_by", Integer, _params(default=None, null=True, index=True)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
        ("started_at", Timestamptz, _params(default=None, null=True)),
        ("finished_at", Timestamptz, _params(default=None, null=True)),
    ]
    for name, column_class, params in columns:
        manager.add_column(
            table_class_name="BackgroundJob",
            tablename="background_job",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )
    return manager
