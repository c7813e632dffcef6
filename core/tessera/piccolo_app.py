"""Piccolo app of the kernel: its tables and migrations. Plugins declare
``migration_dependencies=["tessera.piccolo_app"]``."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera.entities.tables import KERNEL_TABLES

APP_CONFIG = AppConfig(
    app_name="tessera",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=KERNEL_TABLES,
    migration_dependencies=[],
    commands=[],
)
