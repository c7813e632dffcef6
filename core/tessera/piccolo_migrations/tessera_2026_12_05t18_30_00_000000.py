"""E-mail in (issue 16.3): tables ``mail_mailbox`` (UID checkpoint and errors per IMAP
mailbox) and ``mail_message`` (every incoming message once: ``message_id`` is unique, so two
workers polling at once store one copy), created from a snapshot of their definition, so the
DDL is Piccolo's for either engine."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON, BigInt, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

ID = "2026-12-05T18:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "E-mail in (IMAP)"


class MailMailbox(Table, tablename="mail_mailbox"):
    name = Varchar(length=100, unique=True)
    uidvalidity = BigInt(default=0)
    last_uid = BigInt(default=0)
    last_poll_at = Timestamptz(null=True, default=None)
    last_success_at = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    failures = Integer(default=0)
    next_poll_at = Timestamptz(null=True, default=None)
    stuck_uid = BigInt(default=0)
    stuck_failures = Integer(default=0)


class MailMessage(Table, tablename="mail_message"):
    message_id = Varchar(length=500, unique=True)
    mailbox = Varchar(length=100, index=True)
    uid = BigInt(default=0)
    uidvalidity = BigInt(default=0)
    thread_id = Varchar(length=500, index=True)
    in_reply_to = Varchar(length=500, default="")
    reference_ids = JSON(default=[])
    from_address = Varchar(length=320, index=True, default="")
    from_name = Varchar(length=300, default="")
    to_addresses = JSON(default=[])
    cc_addresses = JSON(default=[])
    subject = Varchar(length=500, default="")
    body_text = Text(default="")
    body_html = Text(default="")
    sent_at = Timestamptz(null=True, default=None)
    received_at = Timestamptz(default=TimestamptzNow())
    status = Varchar(length=20, default="matched", index=True)
    party_ids = JSON(default=[])
    contact_ids = JSON(default=[])
    activity_ids = JSON(default=[])
    attachments = JSON(default=[])
    raw_sha256 = Varchar(length=64, default="")
    raw_size = Integer(default=0)
    error = Text(default="")
    triaged_by = Integer(null=True, default=None)
    triaged_at = Timestamptz(null=True, default=None)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create_tables():
        await MailMailbox.create_table(if_not_exists=True)
        await MailMessage.create_table(if_not_exists=True)

    async def drop_tables():
        await MailMessage.alter().drop_table(if_exists=True)
        await MailMailbox.alter().drop_table(if_exists=True)

    manager.add_raw(create_tables)
    manager.add_raw_backwards(drop_tables)
    return manager
