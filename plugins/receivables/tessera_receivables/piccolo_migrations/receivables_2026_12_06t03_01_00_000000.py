"""The overdue scan's candidates as a partial index (hand-written: Piccolo declares no partial
indexes). Works on SQLite and PostgreSQL."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-06T03:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index of the invoices the overdue scan has not marked yet"

STATEMENTS = [
    # Open invoices not marked overdue yet, by id: the scan walks them a thousand at a time,
    # and once everything due is marked the index holds only invoices not due yet, so an idle
    # scan over 1,000,000 invoices reads a handful of entries instead of the whole table.
    "CREATE INDEX IF NOT EXISTS receivables_invoice_unmarked ON receivables_invoice (id) "
    "WHERE overdue_at IS NULL AND balance > 0",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        for statement in STATEMENTS:
            await db.raw(statement)

    manager.add_raw(run)
    return manager
