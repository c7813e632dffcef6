"""Piccolo app of the service plugin."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera_service.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="service",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=TABLES,
    migration_dependencies=["tessera.piccolo_app"],
    commands=[],
)
