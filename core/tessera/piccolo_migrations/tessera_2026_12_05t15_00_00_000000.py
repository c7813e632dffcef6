"""Single-use password reset tokens (stored as SHA-256, like API tokens). The table is created
from a snapshot of its definition, so the DDL is Piccolo's for either engine."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.column_types import ForeignKey, Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

ID = "2026-12-05T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Password reset tokens"


class CrmUser(Table, tablename="crm_user"):
    id = Serial(primary_key=True)


class PasswordReset(Table, tablename="password_reset"):
    user_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade)
    token_hash = Varchar(length=64, unique=True)
    created_by = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create_password_reset():
        await PasswordReset.create_table(if_not_exists=True)

    async def drop_password_reset():
        await PasswordReset.alter().drop_table(if_exists=True)

    manager.add_raw(create_password_reset)
    manager.add_raw_backwards(drop_password_reset)
    return manager
