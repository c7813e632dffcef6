"""``tessera plugins new NAME``: a new plugin with the standard layout, ready to install,
test and extend (see docs/plugins.md).

    tessera-NAME/
      pyproject.toml            entry point in tessera.plugins, test settings
      README.md
      tessera_NAME/
        plugin.py               the hook implementations, nothing else
        tables.py               Piccolo tables (prefixed NAME_)
        piccolo_app.py          the tables' Piccolo app
        piccolo_migrations/     the initial migration
        routes.py               Litestar handlers, mounted under /api/NAME/
        services.py             the rules, plain async functions
        jobs.py                 scheduled jobs (idempotent)
      tests/test_NAME.py        tests with the tessera_sdk kit

The generated plugin passes its own tests and the plugin contract as it is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from string import Template

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{1,30}")

FILES: dict[str, str] = {
    "pyproject.toml": """\
[project]
name = "$dist"
version = "0.1.0"
description = "$Title: a Tessera CRM plugin"
requires-python = ">=3.11"
dependencies = [
    # The Tessera kernel and the plugin author's kit (hookimpl, helpers, pytest fixtures).
    "tessera-sdk>=0.1",
]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.24", "httpx>=0.27"]

[project.entry-points."tessera.plugins"]
$name = "$package.plugin"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "session"
asyncio_default_test_loop_scope = "session"
filterwarnings = ["ignore::DeprecationWarning"]
""",
    "README.md": """\
# $dist

A Tessera CRM plugin. Its routes are under `/api/$name/`, its permissions start with
`$name.`, its tables with `${name}_`.

```bash
pip install -e .                  # into the environment Tessera runs in
tessera migrate                   # creates its tables
pytest                            # its tests
pytest --tessera-contract $name   # the plugin contract
```
""",
    "$package/__init__.py": '''\
"""$Title: a Tessera CRM plugin."""

__version__ = "0.1.0"
''',
    "$package/tables.py": '''\
"""The plugin's tables; every name carries the ``${name}_`` prefix."""

from piccolo.columns import Integer, Text, Timestamptz
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class ${Class}Entry(Table, tablename="${name}_entry"):
    """Something the plugin records about a party."""

    party_id = Integer(index=True)
    text = Text(default="")
    author_id = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


TABLES = [${Class}Entry]
''',
    "$package/piccolo_app.py": '''\
"""Piccolo app of the plugin (returned by ``tessera_tables``)."""

from tessera_sdk.plugin import tables_app

from $package.tables import TABLES

APP_CONFIG = tables_app("$name", TABLES, __file__)
''',
    "$package/piccolo_migrations/__init__.py": "",
    "$package/services.py": '''\
"""The plugin's rules as plain async functions, testable without HTTP."""

from __future__ import annotations

from typing import Any

from tessera import audit, clock, events
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from $package.tables import ${Class}Entry


async def add_entry(principal: Principal, party_id: int, text: str) -> dict[str, Any]:
    """Record an entry on a party the principal may see."""
    principal.require("$name.write")
    if not text.strip():
        raise ValidationFailed.field("text", "must not be empty")
    await service.get(PARTY, principal, party_id)  # 404 when invisible
    # Every write is audited in its own transaction (the plugin contract checks it).
    async with events.unit_of_work():
        rows = await ${Class}Entry.insert(
            ${Class}Entry(party_id=party_id, text=text, author_id=principal.user_id, created_at=clock.now())
        ).returning(*${Class}Entry.all_columns())
        await audit.record("create", "$name.entry", rows[0]["id"], audit.diff(None, rows[0]))
    return dict(rows[0])


async def entries(party_id: int) -> list[dict[str, Any]]:
    return await ${Class}Entry.select().where(${Class}Entry.party_id == party_id).order_by(${Class}Entry.id)


async def list_entries(principal: Principal, party_id: int) -> list[dict[str, Any]]:
    principal.require("$name.read")
    await service.get(PARTY, principal, party_id)
    return await entries(party_id)
''',
    "$package/routes.py": '''\
"""HTTP routes, mounted under ``/api/$name/``. Thin: the rules live in services."""

from __future__ import annotations

from datetime import datetime

from litestar import get, post
from msgspec import Struct
from tessera.permissions import Principal

from $package import services


class EntryIn(Struct, forbid_unknown_fields=True):
    party_id: int
    text: str


class EntryOut(Struct, kw_only=True):
    id: int
    party_id: int
    text: str
    author_id: int | None
    created_at: datetime


@post("/entries", operation_id="${name}_add_entry", status_code=201)
async def add_entry(principal: Principal, data: EntryIn) -> EntryOut:
    """Record an entry on a client (needs $name.write)."""
    row = await services.add_entry(principal, data.party_id, data.text)
    return EntryOut(**{k: row[k] for k in EntryOut.__struct_fields__})


@get("/entries/{party_id:int}", operation_id="${name}_entries")
async def list_entries(principal: Principal, party_id: int) -> list[EntryOut]:
    """A client's entries, oldest first (needs $name.read)."""
    rows = await services.list_entries(principal, party_id)
    return [EntryOut(**{k: r[k] for k in EntryOut.__struct_fields__}) for r in rows]


ROUTES = [add_entry, list_entries]
''',
    "$package/jobs.py": '''\
"""Scheduled jobs. A job must be idempotent: the contract runs it twice."""

from __future__ import annotations

from tessera.scheduler import JobContext


async def nightly(ctx: JobContext) -> None:
    """Nightly housekeeping (nothing to do yet)."""
''',
    "$package/plugin.py": '''\
"""Hook implementations of the $name plugin, and nothing else."""

from __future__ import annotations

from typing import Any

from tessera_sdk.plugin import hookimpl, job, permissions, routes, timeline_item

from $package import jobs, services
from $package.routes import ROUTES

PERMISSIONS = permissions("$name", {"read": "Read $name entries", "write": "Add $name entries"})


@hookimpl
def tessera_tables() -> str:
    return "$package.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    return routes(*ROUTES)


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return PERMISSIONS


@hookimpl
def tessera_jobs() -> list[Any]:
    return [job("$name.nightly", jobs.nightly, cron="0 2 * * *")]


@hookimpl
def tessera_timeline_items(party_id: int) -> Any:
    async def items() -> list[dict[str, Any]]:
        return [
            timeline_item("$name.entry", r["created_at"], r["text"][:120], id=r["id"], user_id=r["author_id"])
            for r in await services.entries(party_id)
        ]

    return items()
''',
    "tests/test_$name.py": '''\
"""Tests of the $name plugin with the tessera_sdk kit (fixtures tessera_app, api_client,
as_user, frozen_clock come from the SDK's pytest plugin)."""

from __future__ import annotations

import pytest
from tessera_sdk import errors

pytestmark = pytest.mark.plugins("$name")


async def test_entries_are_recorded_and_shown_on_the_client_card(api_client) -> None:
    party = await api_client.parties.create({"name": "First client"})
    await api_client.post("/api/$name/entries", {"party_id": party.id, "text": "Hello"})
    assert [e["text"] for e in await api_client.get(f"/api/$name/entries/{party.id}")] == ["Hello"]
    card = await api_client.parties.card(party.id)
    assert [item.title for item in card.timeline if item.source == "$name"] == ["Hello"]


async def test_empty_entries_are_refused_with_the_field_named(api_client) -> None:
    party = await api_client.parties.create({"name": "Second client"})
    with pytest.raises(errors.ValidationError) as refused:
        await api_client.post("/api/$name/entries", {"party_id": party.id, "text": " "})
    assert "text" in refused.value.field_errors


async def test_users_without_the_permission_are_refused(api_client, as_user) -> None:
    party = await api_client.parties.create({"name": "Third client"})
    manager = await as_user(role="manager")
    with pytest.raises(errors.PermissionDenied):
        await manager.post("/api/$name/entries", {"party_id": party.id, "text": "Hi"})
''',
}

MIGRATION = """\
from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer, Text, Timestamptz
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod

ID = "$migration_id"
VERSION = "1.38.0"
DESCRIPTION = "Initial tables of $name"


def _params(**params):
    return {
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
        **params,
    }


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="$name", description=DESCRIPTION)
    manager.add_table(class_name="${Class}Entry", tablename="${name}_entry", schema=None, columns=None)
    columns = [
        ("party_id", Integer, _params(default=0, null=False, index=True)),
        ("text", Text, _params(default="", null=False)),
        ("author_id", Integer, _params(default=None, null=True)),
        ("created_at", Timestamptz, _params(default=TimestamptzNow(), null=False)),
    ]
    for column_name, column_class, params in columns:
        manager.add_column(
            table_class_name="${Class}Entry",
            tablename="${name}_entry",
            column_name=column_name,
            db_column_name=column_name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )
    return manager
"""


class ScaffoldError(ValueError):
    """The name is unusable or the target exists."""


def create_plugin(name: str, directory: Path | str = ".", now: datetime | None = None) -> Path:
    """Write a new plugin ``tessera-<name>`` into ``directory``; returns its folder."""
    if not NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(
            f"plugin name {name!r}: use 2-31 lower-case letters, digits or underscores, "
            "starting with a letter"
        )
    dist = "tessera-" + name.replace("_", "-")
    root = Path(directory) / dist
    if root.exists():
        raise ScaffoldError(f"{root} already exists")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    values = {
        "name": name,
        "dist": dist,
        "package": f"tessera_{name}",
        "Class": "".join(part.capitalize() for part in name.split("_")),
        "Title": name.replace("_", " ").capitalize(),
        "migration_id": moment.strftime("%Y-%m-%dT%H:%M:%S:%f"),
    }
    files = dict(FILES)
    stamp = moment.strftime("%Y_%m_%dt%H_%M_%S_%f").lower()
    files[f"$package/piccolo_migrations/{name}_{stamp}.py"] = MIGRATION
    for raw_path, text in files.items():
        path = root / Template(raw_path).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(values), encoding="utf-8")
    return root


__all__ = ["ScaffoldError", "create_plugin"]
