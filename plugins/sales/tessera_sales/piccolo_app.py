"""Piccolo app of the sales plugin."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera_sales.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="sales",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=TABLES,
    migration_dependencies=["tessera.piccolo_app", "tessera.workflow.piccolo_app"],
    commands=[],
)
