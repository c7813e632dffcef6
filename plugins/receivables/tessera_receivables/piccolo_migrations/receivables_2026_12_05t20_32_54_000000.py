"""Indexes of the receivables plugin (hand-written: Piccolo declares neither composite nor
partial indexes). Works on SQLite and PostgreSQL."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-05T20:32:54:000000"
VERSION = "1.38.0"
DESCRIPTION = "external ids, one open collection case per client, open-invoice indexes"

STATEMENTS = [
    # Imports are idempotent by external id.
    "CREATE UNIQUE INDEX IF NOT EXISTS receivables_invoice_external ON receivables_invoice (external_id) "
    "WHERE external_id <> ''",
    "CREATE UNIQUE INDEX IF NOT EXISTS receivables_payment_external ON receivables_payment (external_id) "
    "WHERE external_id <> ''",
    # The overdue scan and ageing walk the open invoices by due date.
    "CREATE INDEX IF NOT EXISTS receivables_invoice_open_due ON receivables_invoice (due_date, id) "
    "WHERE balance > 0",
    "CREATE INDEX IF NOT EXISTS receivables_invoice_party_due ON receivables_invoice (party_id, due_date)",
    # One collection case per client at a time (two workers opening one: the second is a no-op).
    "CREATE UNIQUE INDEX IF NOT EXISTS receivables_case_one_open ON receivables_case (party_id) "
    "WHERE status <> 'closed'",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        for statement in STATEMENTS:
            await db.raw(statement)

    manager.add_raw(run)
    return manager
