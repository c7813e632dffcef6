"""Indexes of the survey answers (raw SQL runs before a migration's tables are added, so it
lives in its own migration after the one that creates them)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-06T03:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "survey answer indexes"

STATEMENTS = [
    # Segment rules and reports read a question's latest answers.
    "CREATE INDEX IF NOT EXISTS marketing_survey_answer_q "
    "ON marketing_survey_answer (survey_id, question_key, latest, party_id)",
    "CREATE INDEX IF NOT EXISTS marketing_survey_response_party "
    "ON marketing_survey_response (party_id, survey_id, submitted_at)",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="marketing", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        for statement in STATEMENTS:
            await db.raw(statement)

    manager.add_raw(run)
    return manager
