from pathlib import Path

from piccolo.conf.apps import AppConfig

from tessera_probe.tables import ProbeMark

APP_CONFIG = AppConfig(
    app_name="probe",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[ProbeMark],
    migration_dependencies=["tessera.piccolo_app"],
    commands=[],
)
