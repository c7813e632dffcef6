"""Indexes Piccolo does not declare (composite, unique pairs). Works on SQLite and PostgreSQL."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-05T20:56:42:000000"
VERSION = "1.38.0"
DESCRIPTION = "segment member and first-touch indexes"

STATEMENTS = [
    "CREATE UNIQUE INDEX IF NOT EXISTS marketing_segment_member_pair "
    "ON marketing_segment_member (segment_id, party_id)",
    # First touch: a party's earliest lead with a campaign.
    "CREATE INDEX IF NOT EXISTS marketing_lead_touch ON marketing_lead (party_id, received_at, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS marketing_mailing_recipient_email "
    "ON marketing_mailing_recipient (mailing_id, email)",
    "CREATE INDEX IF NOT EXISTS marketing_mailing_recipient_next "
    "ON marketing_mailing_recipient (mailing_id, status, id)",
    "CREATE INDEX IF NOT EXISTS marketing_class_history_party ON marketing_class_history (party_id, at)",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="marketing", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        for statement in STATEMENTS:
            await db.raw(statement)

    manager.add_raw(run)
    return manager
