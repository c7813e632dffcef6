"""Piccolo app of the kernel's workflow component."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera.workflow.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="tessera_workflow",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=TABLES,
    migration_dependencies=["tessera.piccolo_app"],
    commands=[],
)
