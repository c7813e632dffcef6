"""Keys and indexes the report summary and the open-deal reports need, and the summary of the
deals that exist already (hand-written: Piccolo declares neither composite nor partial
indexes). Works on SQLite and PostgreSQL."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-26T16:38:19:000000"
VERSION = "1.38.0"
DESCRIPTION = "report summary keys, open-deal indexes, summary of existing deals"

STATEMENTS = [
    # The upsert key of the summary; its leading columns also serve the funnel's range scan.
    "CREATE UNIQUE INDEX IF NOT EXISTS sales_stat_key "
    "ON sales_stat (kind, pipeline, day, stage, owner_id, team_id, currency)",
    "CREATE UNIQUE INDEX IF NOT EXISTS sales_exchange_rate_key "
    "ON sales_exchange_rate (base, currency, valid_from)",
    # Open deals only (the part of the reports that depends on "now"): stuck deals by due time,
    # weighted forecast by expected close, historical forecast by stage.
    "CREATE INDEX IF NOT EXISTS sales_deal_open_due ON sales_deal "
    "(pipeline, stage_due_at, created_at, stage, owner_id, team_id) WHERE status = 'open'",
    "CREATE INDEX IF NOT EXISTS sales_deal_open_close ON sales_deal "
    "(pipeline, expected_close, currency, amount, probability, owner_id, team_id) WHERE status = 'open'",
    "CREATE INDEX IF NOT EXISTS sales_deal_open_stage ON sales_deal "
    "(pipeline, stage, stage_entered_at, currency, amount, owner_id, team_id) WHERE status = 'open'",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="sales", description=DESCRIPTION)

    async def run() -> None:
        from tessera import db

        from tessera_sales import stats

        for statement in STATEMENTS:
            await db.raw(statement)
        await stats.rebuild()

    manager.add_raw(run)
    return manager
