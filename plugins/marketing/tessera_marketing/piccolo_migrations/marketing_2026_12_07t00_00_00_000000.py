"""Give the default ``manager`` role the marketing permissions added after it was created.

``ensure_default_roles`` only creates missing roles (it never overwrites an administrator's
edits), so a deployment whose ``manager`` role predates surveys and the lead inbox would keep
answering 403 to managers filling a survey on a call or opening the leads handed to them. This
adds just the missing names to that one role, once; other roles are the administrator's."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Array, Varchar
from piccolo.table import Table

ID = "2026-12-07T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "manager role: survey and lead permissions"

GRANTS = ["marketing.survey.read", "marketing.survey.answer", "marketing.lead.read", "marketing.lead.write"]


class Role(Table, tablename="role"):  # frozen: the columns this migration reads and writes
    name = Varchar(length=100, unique=True)
    permissions = Array(base_column=Varchar(length=100))


async def grant_to_managers() -> int:
    """Add the missing grants to the ``manager`` role; returns how many were added."""
    added = 0
    for row in await Role.select(Role.id, Role.permissions).where(Role.name == "manager"):
        have = list(row["permissions"] or [])
        missing = [p for p in GRANTS if p not in have]
        if missing:
            await Role.update({Role.permissions: have + missing}).where(Role.id == row["id"])
            added += len(missing)
    return added


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="marketing", description=DESCRIPTION)

    async def run() -> None:
        await grant_to_managers()

    manager.add_raw(run)
    return manager
