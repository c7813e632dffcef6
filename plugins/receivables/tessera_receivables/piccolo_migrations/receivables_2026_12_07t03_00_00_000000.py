"""Covering indexes of the open invoices for ageing (hand-written: Piccolo declares neither
partial nor covering indexes). Works on SQLite and PostgreSQL."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-07T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "covering indexes of the open invoices for ageing"

#: Open invoices only (a paid invoice does not age; most of a ledger's invoices are paid), with
#: every column ageing as of today reads, so that an index-only scan serves it without reading
#: the table: company, manager and team ageing by (currency, due day), client and own-scope
#: ageing by client.
OPEN = "WHERE balance > 0 AND status <> 'cancelled'"
POSTGRES = [
    "CREATE INDEX IF NOT EXISTS receivables_invoice_ageing ON receivables_invoice "
    f"(currency, due_date) INCLUDE (balance, issue_date, party_id) {OPEN}",
    "CREATE INDEX IF NOT EXISTS receivables_invoice_ageing_party ON receivables_invoice "
    f"(party_id, currency, due_date) INCLUDE (balance, issue_date) {OPEN}",
]
#: SQLite has no INCLUDE: the same columns as keys, and ``status`` too (SQLite reads the
#: columns of a condition the index's own WHERE already implies; without it the "covering"
#: index sends every row to the table).
SQLITE = [
    "CREATE INDEX IF NOT EXISTS receivables_invoice_ageing ON receivables_invoice "
    f"(currency, due_date, balance, issue_date, party_id, status) {OPEN}",
    "CREATE INDEX IF NOT EXISTS receivables_invoice_ageing_party ON receivables_invoice "
    f"(party_id, currency, due_date, balance, issue_date, status) {OPEN}",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="receivables", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        for statement in POSTGRES if db.is_postgres() else SQLITE:
            await db.raw(statement)

    manager.add_raw(run)
    return manager
