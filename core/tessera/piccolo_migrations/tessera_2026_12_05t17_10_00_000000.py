"""Outbound webhooks (issue 16.5): tables ``webhook_subscription`` and ``webhook_delivery``,
created from a snapshot of their definition, so the DDL is Piccolo's for either engine."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

ID = "2026-12-05T17:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Outbound webhooks"


class WebhookSubscription(Table, tablename="webhook_subscription"):
    url = Varchar(length=2000)
    event_types = JSON(default=[])
    secret = Varchar(length=200)
    active = Boolean(default=True)
    description = Text(default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class WebhookDelivery(Table, tablename="webhook_delivery"):
    subscription_id = Integer(index=True)
    key = Varchar(length=200, unique=True)
    event_id = Integer(index=True)
    event_type = Varchar(length=100)
    status = Varchar(length=20, default="pending")
    attempts = Integer(default=0)
    last_status_code = Integer(null=True, default=None)
    last_error = Text(default="")
    job_id = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    last_attempt_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create_tables():
        await WebhookSubscription.create_table(if_not_exists=True)
        await WebhookDelivery.create_table(if_not_exists=True)

    async def drop_tables():
        await WebhookDelivery.alter().drop_table(if_exists=True)
        await WebhookSubscription.alter().drop_table(if_exists=True)

    manager.add_raw(create_tables)
    manager.add_raw_backwards(drop_tables)
    return manager
