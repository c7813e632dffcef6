"""Piccolo app of the knowledge base plugin."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera_knowledge_base.tables import TABLES

APP_CONFIG = AppConfig(
    app_name="knowledge_base",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=TABLES,
    migration_dependencies=["tessera.piccolo_app"],
    commands=[],
)
