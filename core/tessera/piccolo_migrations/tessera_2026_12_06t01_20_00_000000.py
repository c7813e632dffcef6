"""KPIs (issue 21): tables ``kpi`` (an indicator defined as a report measure) and
``kpi_target`` (plans per person, team or company and month)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from decimal import Decimal

from piccolo.columns.column_types import Integer, Numeric, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T01:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "kpi, kpi_target"


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
    ("Kpi", "kpi"): [
        ("name", Varchar, _params(length=200, default="")),
        ("report_key", Varchar, _params(length=100, default="")),
        ("measure", Varchar, _params(length=100, default="")),
        ("params", Text, _params(default="{}")),
        ("person_dimension", Varchar, _params(length=100, default="owner")),
        ("team_dimension", Varchar, _params(length=100, default="team")),
        ("created_by", Integer, _params(default=None, null=True)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow())),
    ],
    ("KpiTarget", "kpi_target"): [
        ("kpi_id", Integer, _params(default=0, index=True)),
        ("user_id", Integer, _params(default=None, null=True, index=True)),
        ("team_id", Integer, _params(default=None, null=True, index=True)),
        ("period", Varchar, _params(length=7, default="", index=True)),
        ("target", Numeric, _params(default=Decimal(0), digits=(18, 2))),
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
