"""Piccolo app of the kernel's search component."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera.search.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="tessera_search",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=TABLES,
    migration_dependencies=["tessera.piccolo_app"],
    commands=[],
)
