"""Scheduled reports (issue 21): tables ``report_schedule`` (a saved report, a cron schedule,
recipients) and ``report_delivery`` (the delivery log)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T01:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "report_schedule, report_delivery"


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


TABLES = {
    ("ReportSchedule", "report_schedule"): [
        ("saved_report_id", Integer, _params(default=0, index=True)),
        ("owner_id", Integer, _params(default=0, index=True)),
        ("cron", Varchar, _params(length=100, default="")),
        ("format", Varchar, _params(length=10, default="xlsx")),
        ("recipient_users", Text, _params(default="[]")),
        ("recipient_roles", Text, _params(default="[]")),
        ("active", Boolean, _params(default=True)),
        ("next_run_at", Timestamptz, _params(default=None, null=True, index=True)),
        ("last_run_at", Timestamptz, _params(default=None, null=True)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
    ],
    ("ReportDelivery", "report_delivery"): [
        ("schedule_id", Integer, _params(default=0, index=True)),
        ("user_id", Integer, _params(default=None, null=True)),
        ("email", Varchar, _params(length=254, default="")),
        ("rows", Integer, _params(default=0)),
        ("status", Varchar, _params(length=20, default="queued")),
        ("job_id", Integer, _params(default=None, null=True)),
        ("detail", Text, _params(default="")),
        ("at", Timestamptz, _params(default=TimestamptzNow(), index=True)),
    ],
}


async def forwards():  # type: ignore[no-untyped-def]
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)
    for (class_name, tablename), columns in TABLES.items():
        manager.add_table(class_name=class_name, tablename=tablename, schema=None, columns=None)
        for name, column_class, params in columns:
            manager.add_column(
                table_class_name=class_name,
                tablename=tablename,
                column_name=name,
                db_column_name=name,
                column_class_name=column_class.__name__,
                column_class=column_class,
                params=params,
                schema=None,
            )
    return manager
