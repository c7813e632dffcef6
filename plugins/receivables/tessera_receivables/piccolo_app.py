"""Piccolo app of the receivables plugin."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera_receivables.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="receivables",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=TABLES,
    migration_dependencies=["tessera.piccolo_app"],
    commands=[],
)
