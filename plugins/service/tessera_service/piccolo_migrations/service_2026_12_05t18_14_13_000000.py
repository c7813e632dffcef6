"""Indexes of the SLA scan and the ticket queue (hand-written: Piccolo declares neither
composite nor partial indexes). Works on SQLite and PostgreSQL."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-05T18:14:13:000000"
VERSION = "1.38.0"
DESCRIPTION = "open-ticket indexes for the SLA scan"

STATEMENTS = [
    "CREATE INDEX IF NOT EXISTS service_ticket_open_due ON service_ticket "
    "(resolution_due, first_response_due) WHERE status IN ('new', 'in_progress')",
    "CREATE INDEX IF NOT EXISTS service_ticket_queue_status ON service_ticket (queue_id, status, assignee_id)",
    # The queue page's default order (most urgent first) walks this index and stops at a page.
    "CREATE INDEX IF NOT EXISTS service_ticket_due_order ON service_ticket (resolution_due, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS service_ticket_message_id ON service_ticket (message_id) "
    "WHERE message_id <> ''",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="service", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        for statement in STATEMENTS:
            await db.raw(statement)

    manager.add_raw(run)
    return manager
