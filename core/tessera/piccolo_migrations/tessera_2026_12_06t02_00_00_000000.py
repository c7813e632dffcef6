"""Telephony (issue 16.4): tables ``telephony_call`` (one row per call, unique by the PBX's
call id), ``telephony_popup`` (pop-ups waiting for a user's event stream) and
``telephony_extension`` (users' extensions), created from a snapshot of their definition so the
DDL is Piccolo's for either engine. On PostgreSQL the phone numbers of parties and contacts get
a GIN index over their ``contact_index`` words, so a caller is found without a table scan."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

ID = "2026-12-06T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Telephony"


class TelephonyCall(Table, tablename="telephony_call"):
    call_id = Varchar(length=200, unique=True)
    direction = Varchar(length=10, default="in")
    number = Varchar(length=100, default="")
    number_e164 = Varchar(length=30, default="", index=True)
    extension = Varchar(length=50, default="")
    user_id = Integer(null=True, default=None)
    party_id = Integer(null=True, default=None)
    contact_id = Integer(null=True, default=None)
    status = Varchar(length=20, default="ringing", index=True)
    started_at = Timestamptz(default=TimestamptzNow())
    answered_at = Timestamptz(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    recording_url = Varchar(length=2000, default="")
    source = Varchar(length=20, default="ami")
    activity_id = Integer(null=True, default=None)
    task_id = Integer(null=True, default=None)


class TelephonyPopup(Table, tablename="telephony_popup"):
    user_id = Integer(index=True)
    call_id = Varchar(length=200)
    payload = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow())


class TelephonyExtension(Table, tablename="telephony_extension"):
    user_id = Integer(unique=True)
    extension = Varchar(length=50, unique=True)
    updated_at = Timestamptz(default=TimestamptzNow())


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create_tables():
        from tessera import db

        await TelephonyCall.create_table(if_not_exists=True)
        await TelephonyPopup.create_table(if_not_exists=True)
        await TelephonyExtension.create_table(if_not_exists=True)
        if db.is_postgres():
            for table in ("party", "contact"):
                await db.raw(
                    f"CREATE INDEX IF NOT EXISTS {table}_contact_words ON {table} "
                    f"USING gin (string_to_array(contact_index, ' '))"
                )

    async def drop_tables():
        from tessera import db

        if db.is_postgres():
            await db.raw("DROP INDEX IF EXISTS party_contact_words")
            await db.raw("DROP INDEX IF EXISTS contact_contact_words")
        await TelephonyExtension.alter().drop_table(if_exists=True)
        await TelephonyPopup.alter().drop_table(if_exists=True)
        await TelephonyCall.alter().drop_table(if_exists=True)

    manager.add_raw(create_tables)
    manager.add_raw_backwards(drop_tables)
    return manager
