"""The plugin contract: checks every Tessera plugin must pass, whoever wrote it.

Run them against your plugin with::

    pytest --tessera-contract mypkg        # entry-point name, package or distribution name

They check that the plugin

1. **loads**: its entry point imports and registers, every ``@hookimpl`` names a real hook;
2. **migrates up on an empty database** (SQLite, and PostgreSQL when ``CRM_TEST_POSTGRES``
   is set), its tables exist afterwards and carry the plugin's prefix, and a second migrate
   changes nothing;
3. **shows its routes in the OpenAPI schema**, under ``/api/<plugin>/``, each with an
   ``operationId`` and a description;
4. **declares its permissions**: dotted names starting with ``<plugin>.``, each described,
   listed by ``GET /api/permissions``;
5. **has idempotent jobs**: running each job twice for the same due time (on a database with
   demo data, clock frozen) leaves every table as the first run left it;
6. **contributes nothing when disabled**: installed but not enabled, it adds no route, job,
   permission, table, custom field or client-card item;
7. **audits every write**: each POST/PUT/PATCH/DELETE route that succeeds (called as an admin
   on demo data, bodies from the OpenAPI schema's examples and defaults) leaves an audit entry
   of the plugin's own, not only the kernel's ``unaudited_write`` fallback.

The same checks are plain functions (``check_loads(name, tmp_path)`` ...) so a project can
call them from its own tests; this repository runs them over every first-party plugin.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import Distribution, EntryPoint, entry_points
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from tessera.db import database_url_for, execute_on_server

ENTRY_POINT_GROUP = "tessera.plugins"
POSTGRES_ENV = "CRM_TEST_POSTGRES"
SUITE = Path(__file__).with_name("_contract_suite.py")
FROZEN_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: Where this SDK's own repository keeps first-party plugins (when installed from a checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]


class ContractViolation(AssertionError):
    """The plugin breaks the contract; the message says how and names the plugin."""


# --------------------------------------------------------------------------- finding plugins


def _plugin_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve_plugins(wanted: list[str]) -> list[str]:
    """Entry-point names of the plugins meant by ``wanted`` (each an entry-point name, the
    plugin's import package or its distribution name)."""
    eps = _plugin_entry_points()
    found: list[str] = []
    for item in wanted:
        matches = [
            name
            for name, ep in eps.items()
            if item == name
            or ep.value.split(":")[0].split(".")[0] == item
            or (ep.dist is not None and _normalise(ep.dist.name) == _normalise(item))
        ]
        if not matches:
            raise pytest.UsageError(
                f"--tessera-contract {item}: no installed Tessera plugin has that entry-point, package or "
                f"distribution name (installed: {', '.join(sorted(eps)) or 'none'}). Install it first, "
                f"e.g. `pip install -e .`"
            )
        found.extend(m for m in sorted(matches) if m not in found)
    return found


def _installed_from(dist: Distribution | None) -> Path | None:
    if dist is None:
        return None
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    url = json.loads(raw).get("url", "")
    if not url.startswith("file://"):
        return None
    return Path(unquote(urlparse(url).path)).resolve()


def first_party_plugins(
    include_tests: bool = True, include_examples: bool = False, root: Path = REPO_ROOT
) -> list[str]:
    """Installed plugins built from this repository: ``plugins/*``, with ``include_tests`` the
    test-only plugins under ``tests/``, with ``include_examples`` those under ``examples/``
    (which run the contract in their own test suites)."""
    folders = [root / "plugins"]
    if include_tests:
        folders.append(root / "tests")
    if include_examples:
        folders.append(root / "examples")
    names = []
    for name, ep in _plugin_entry_points().items():
        source = _installed_from(ep.dist)
        if source is not None and any(source.is_relative_to(folder) for folder in folders):
            names.append(name)
    return sorted(names)


# --------------------------------------------------------------------------- helpers


def _settings(data_dir: Path, plugins: tuple[str, ...], database_url: str = "") -> Any:
    from tessera.config import Settings

    from tessera_sdk.testing import TEST_PASSWORD_COST

    return Settings(
        data_dir=data_dir,
        plugins=plugins,
        database_url=database_url,
        secure_cookies=False,
        **TEST_PASSWORD_COST,
    )


def _pg_url(name: str) -> str:
    return database_url_for(os.environ[POSTGRES_ENV], name)


async def _pg_admin(*statements: str) -> None:
    await execute_on_server(os.environ[POSTGRES_ENV], *statements)


@contextmanager
def empty_database(tmp_path: Path, backend: str = "sqlite") -> Iterator[str]:
    """URL of a new, empty database (SQLite file, or a PostgreSQL database that is dropped
    afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'contract-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    name = f"tessera_contract_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run(settings: Any, body: Callable[[Any], Awaitable[Any]], migrate: bool = True) -> Any:
    """Boot the kernel with ``settings``, optionally migrate, run ``body(pm)``, close."""
    from tessera import clock, db, migrations
    from tessera.app import boot
    from tessera.permissions import ensure_default_roles

    pm = boot(settings)

    async def main() -> Any:
        await db.start()
        try:
            if migrate:
                await migrations.migrate()
                await ensure_default_roles()
            return await body(pm)
        finally:
            clock.set_clock(None)
            await db.stop()

    return asyncio.run(main())


def _plugin_app(pm: Any, name: str) -> Any:
    """The plugin's Piccolo ``AppConfig``, or ``None`` when it has no tables."""
    from tessera.plugins import call_each

    for plugin, value in call_each(pm, "tessera_tables"):
        if plugin == name and value:
            from piccolo.conf.apps import AppRegistry

            return next(iter(AppRegistry(apps=[value]).app_configs.values()))
    return None


def _hook_value(pm: Any, hook: str, name: str, **kwargs: Any) -> Any:
    from tessera.plugins import call_each

    for plugin, value in call_each(pm, hook, **kwargs):
        if plugin == name:
            return value
    return None


def _fail(name: str, message: str) -> None:
    raise ContractViolation(f"Plugin {name!r}: {message}")


# --------------------------------------------------------------------------- the checks


def check_loads(name: str, tmp_path: Path) -> None:
    """The entry point imports, registers and implements only real hooks."""
    from tessera.plugins import PluginError, enabled_plugin_names, get_plugin_manager

    eps = _plugin_entry_points()
    if name not in eps:
        _fail(name, f"no entry point in group {ENTRY_POINT_GROUP!r}")
    try:
        pm = get_plugin_manager(_settings(tmp_path, (name,)))
    except PluginError as exc:
        _fail(name, f"does not load: {exc}")
    if name not in enabled_plugin_names(pm):
        _fail(name, "was not registered")
    plugin = pm.get_plugin(name)
    hooks = [impl for caller in pm.get_hookcallers(plugin) or [] for impl in caller.get_hookimpls()]
    if not hooks:
        _fail(name, "implements no hook: mark functions with @hookimpl (tessera_sdk.hookimpl)")


def check_migrates(name: str, tmp_path: Path, backend: str = "sqlite") -> None:
    """Migrations run on an empty database, create prefixed tables, and are idempotent."""
    from tessera import migrations

    with empty_database(tmp_path, backend) as url:

        async def body(pm: Any) -> None:
            from tessera.app import pending_migrations

            pending = await pending_migrations()
            if pending:
                _fail(name, f"migrations still pending after `tessera migrate`: {pending}")
            config = _plugin_app(pm, name)
            if config is None:
                return
            for table in config.table_classes:
                tablename = table._meta.tablename
                if not (tablename == name or tablename.startswith(f"{name}_")):
                    _fail(name, f"table {tablename!r} must carry the plugin prefix ({name}_...)")
                if not await table.table_exists():
                    _fail(name, f"table {tablename!r} does not exist after migrating an empty database")
            report = await migrations.migrate()
            if await pending_migrations():
                _fail(name, f"a second migrate left migrations pending: {report}")

        try:
            _run(_settings(tmp_path / "data", (name,), url), body)
        except migrations.MigrationError as exc:
            _fail(name, f"migrating an empty {backend} database failed: {exc}")


def _openapi(settings: Any) -> dict[str, Any]:
    from tessera.app import create_app

    return create_app(settings).openapi_schema.to_schema()  # type: ignore[no-any-return]


def check_routes_in_openapi(name: str, tmp_path: Path) -> None:
    """Every route is mounted under /api/<plugin>/ and documented in the OpenAPI schema."""
    from tessera.app import boot

    pm = boot(_settings(tmp_path, (name,)))
    handlers = _hook_value(pm, "tessera_routes", name) or []
    from tessera.app import create_app

    app = create_app(_settings(tmp_path, (name,)))
    for route in app.routes:
        if not route.path.startswith(f"/api/{name}"):
            continue
        for handler in getattr(route, "route_handlers", []):
            if not (handler.description or (handler.fn.__doc__ or "")).strip():
                _fail(
                    name,
                    f"handler {handler.handler_name} ({route.path}) needs a docstring saying what it does",
                )
    with_plugin = app.openapi_schema.to_schema()
    kernel_only = _openapi(_settings(tmp_path, ()))
    added = sorted(set(with_plugin["paths"]) - set(kernel_only["paths"]))
    if handlers and not added:
        _fail(name, "returns routes from tessera_routes but none appear in the OpenAPI schema")
    for path in added:
        if not (path == f"/api/{name}" or path.startswith(f"/api/{name}/")):
            _fail(name, f"route {path} is outside /api/{name}/")
        for method, operation in with_plugin["paths"][path].items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if not operation.get("operationId"):
                _fail(name, f"{method.upper()} {path} has no operation_id")
            if name not in (operation.get("tags") or []):
                _fail(name, f"{method.upper()} {path} is not tagged {name!r}")


def check_permissions(name: str, tmp_path: Path) -> None:
    """Permissions are dotted, prefixed with the plugin name, described and listed."""
    from tessera.app import boot
    from tessera.permissions import all_permissions

    pm = boot(_settings(tmp_path, (name,)))
    declared = _hook_value(pm, "tessera_permissions", name) or {}
    if not isinstance(declared, dict):
        _fail(name, "tessera_permissions must return {permission: description}")
    for permission, description in declared.items():
        if not re.fullmatch(rf"{re.escape(name)}(\.[a-z0-9_]+)+", permission):
            _fail(name, f"permission {permission!r} must look like '{name}.thing.action'")
        if not isinstance(description, str) or not description.strip():
            _fail(name, f"permission {permission!r} needs a one-line description")
    listed = all_permissions(pm)
    missing = sorted(set(declared) - set(listed))
    if missing:
        _fail(name, f"permissions not listed by GET /api/permissions: {missing}")
    if _hook_value(pm, "tessera_routes", name) and not declared:
        _fail(name, "has routes but declares no permission to guard them")


def _snapshot_tables() -> Callable[[], Awaitable[dict[str, list[str]]]]:
    from tessera.migrations import app_registry

    tables = [t for config in app_registry().app_configs.values() for t in config.table_classes]

    existing: list[Any] = []

    async def snapshot() -> dict[str, list[str]]:
        from tessera import events

        await events.settle()  # deliveries still finishing mark their events delivered
        if not existing:
            existing.extend([t for t in tables if await t.table_exists()])
        out: dict[str, list[str]] = {}
        for table in existing:
            rows = await table.select()
            out[table._meta.tablename] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
        return out

    return snapshot


def check_jobs_idempotent(name: str, tmp_path: Path) -> None:
    """Each job, run twice for the same due time, changes nothing the second time."""
    from tessera import clock, demo
    from tessera.scheduler import JobContext, JobSpec

    settings = _settings(tmp_path / "data", (name,), f"sqlite:///{tmp_path / 'jobs.sqlite3'}")

    async def body(pm: Any) -> None:
        specs = _hook_value(pm, "tessera_jobs", name) or []
        if not specs:
            return
        clock.set_clock(clock.FrozenClock(FROZEN_AT))
        await demo.load(pm, managers=2, parties_count=4)
        snapshot = _snapshot_tables()
        for spec in specs:
            if not isinstance(spec, JobSpec):
                _fail(name, f"tessera_jobs must return tessera.scheduler.JobSpec, got {type(spec).__name__}")
            if not spec.name.startswith(f"{name}."):
                _fail(name, f"job {spec.name!r} must be named '{name}.<job>'")
            ctx = JobContext(
                name=spec.name, scheduled_for=FROZEN_AT, now=FROZEN_AT, run_id=0, settings=settings, pm=pm
            )
            try:
                await spec.func(ctx)
            except Exception as exc:
                _fail(name, f"job {spec.name!r} failed on its first run: {exc!r}")
            after_first = await snapshot()
            try:
                await spec.func(ctx)
            except Exception as exc:
                _fail(name, f"job {spec.name!r} failed when run a second time: {exc!r}")
            after_second = await snapshot()
            changed = sorted(t for t in after_first if after_first[t] != after_second.get(t))
            if changed:
                _fail(name, f"job {spec.name!r} is not idempotent: a second run changed {changed}")

    _run(settings, body)


def check_disabled_contributes_nothing(name: str, tmp_path: Path) -> None:
    """Installed but not enabled: no routes, jobs, permissions, tables, fields or card items."""
    import httpx
    from tessera import db
    from tessera.app import create_app, startup
    from tessera.auth import create_token
    from tessera.demo import ensure_admin
    from tessera.permissions import all_permissions
    from tessera.plugins import enabled_plugin_names
    from tessera.scheduler import collect_jobs

    if name not in _plugin_entry_points():
        _fail(name, "is not installed")
    settings = _settings(tmp_path / "data", (), f"sqlite:///{tmp_path / 'disabled.sqlite3'}")

    async def body(pm: Any) -> None:
        if name in enabled_plugin_names(pm):
            _fail(name, "is registered although the configuration does not enable it")
        leaked = [p for p in all_permissions(pm) if p.startswith(f"{name}.")]
        if leaked:
            _fail(name, f"permissions present while disabled: {leaked}")
        jobs = [job for job, (plugin, _) in collect_jobs(pm).items() if plugin == name]
        if jobs:
            _fail(name, f"jobs present while disabled: {jobs}")
        tables = await db.raw(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND (name = {} OR name LIKE {})",
            name,
            f"{name}\\_%",
        )
        tables = [t for t in tables if t["name"] == name or t["name"].startswith(f"{name}_")]
        if tables:
            _fail(name, f"tables created while disabled: {[t['name'] for t in tables]}")

    _run(settings, body)
    app = create_app(settings)
    paths = [p for p in app.openapi_schema.to_schema()["paths"] if p.startswith(f"/api/{name}")]
    if paths:
        _fail(name, f"routes present while disabled: {paths}")

    async def card() -> None:
        await startup()
        try:
            admin_id = await ensure_admin("contract@example.com", "Contract", "contract-password")
            _, token = await create_token(admin_id, "contract")
            headers = {"Authorization": f"Bearer {token}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://contract") as client:
                party = (await client.post("/api/parties", json={"name": "Contract"}, headers=headers)).json()
                r = await client.get(f"/api/parties/{party['id']}/card", headers=headers)
                assert r.status_code == 200, r.text
                sources = {item["source"] for item in r.json()["timeline"]}
                if name in sources:
                    _fail(name, "adds client-card items while disabled")
                r = await client.get("/api/custom-fields", headers=headers)
                fields = json.dumps(r.json())
                if re.search(rf'"{re.escape(name)}_', fields):
                    _fail(name, "adds custom fields while disabled")
        finally:
            await db.stop()

    asyncio.run(card())


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        target: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _example(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Any:
    """A value for ``schema``: its own example or default when it has one, else a plain value
    of its type (only required properties of objects)."""
    schema = _resolve(schema, spec)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        examples = schema["examples"]
        return examples[0] if isinstance(examples, list) else next(iter(examples.values())).get("value")
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        options = [o for o in schema.get(key, []) if _resolve(o, spec).get("type") != "null"]
        if options:
            return _example(options[0], spec, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        if depth > 5:
            return {}
        props = schema.get("properties", {})
        return {k: _example(props[k], spec, depth + 1) for k in schema.get("required", []) if k in props}
    if kind == "array":
        if schema.get("minItems"):
            return [_example(schema.get("items", {}), spec, depth + 1)] * int(schema["minItems"])
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return FROZEN_AT.date().isoformat()
        if fmt == "date-time":
            return FROZEN_AT.isoformat()
        text = "Contract check"
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        if high is not None and len(text) > int(high):
            text = "X" * max(low, min(int(high), 8))
        return text.ljust(low, "x")
    return None


def _write_operations(name: str, spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The plugin's write operations, deletes last (they would remove what the others use)."""
    found = []
    for path, item in spec["paths"].items():
        if not (path == f"/api/{name}" or path.startswith(f"/api/{name}/")):
            continue
        for method, operation in item.items():
            if method in ("post", "put", "patch", "delete") and isinstance(operation, dict):
                found.append((path, method, operation))
    return sorted(found, key=lambda op: (op[1] == "delete", op[0], op[1]))


def check_writes_are_audited(name: str, tmp_path: Path) -> None:
    """Every write route (POST, PUT, PATCH, DELETE) that succeeds leaves an audit entry of the
    plugin's own (or declares that it changed nothing, ``tessera.audit.unchanged()``): the
    kernel had to write no ``unaudited_write`` fallback for it. Each route is called as
    an administrator on a database with demo data, with the body built from its OpenAPI schema
    (its examples and defaults first, give your request structs ``examples`` where a plain value
    of each type would be refused) and ``1`` for path ids; a route that refuses the call (4xx)
    is not judged, but at least one write route must succeed."""
    import httpx
    from tessera import audit, db, demo
    from tessera.app import create_app, startup
    from tessera.auth import create_token
    from tessera.demo import ensure_admin
    from tessera.entities.tables import AuditLog

    settings = _settings(tmp_path / "data", (name,), f"sqlite:///{tmp_path / 'audited.sqlite3'}")

    async def seed(pm: Any) -> None:
        await demo.load(pm, managers=2, parties_count=4)

    _run(settings, seed)
    app = create_app(settings)
    spec = app.openapi_schema.to_schema()
    operations = _write_operations(name, spec)
    if not operations:
        return
    judged: list[str] = []
    refused: list[str] = []

    async def fallbacks() -> int:
        return await AuditLog.count().where(AuditLog.action == audit.UNAUDITED)

    async def calls() -> None:
        await startup()
        try:
            admin_id = await ensure_admin("contract@example.com", "Contract", "contract-password")
            _, token = await create_token(admin_id, "contract")
            headers = {"Authorization": f"Bearer {token}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://contract") as client:
                for path, method, operation in _write_operations(name, spec):
                    url = re.sub(r"\{[^}]+\}", "1", path)
                    params = {
                        p["name"]: _example(p.get("schema", {}), spec)
                        for p in operation.get("parameters", [])
                        if p.get("in") == "query" and p.get("required")
                    }
                    kwargs: dict[str, Any] = {"params": params, "headers": headers}
                    content = (operation.get("requestBody") or {}).get("content", {})
                    if "application/json" in content:
                        media = content["application/json"]
                        body = media.get("example")
                        if body is None and media.get("examples"):
                            body = next(iter(media["examples"].values())).get("value")
                        kwargs["json"] = body if body is not None else _example(media.get("schema", {}), spec)
                    before = await fallbacks()
                    r = await client.request(method.upper(), url, **kwargs)
                    label = f"{method.upper()} {path}"
                    if r.status_code >= 400:
                        refused.append(f"{label} ({r.status_code})")
                        continue
                    judged.append(label)
                    if await fallbacks() != before:
                        _fail(
                            name,
                            f"{label} answered {r.status_code} but wrote no audit entry: write through "
                            "tessera.entities.service (an EntitySpec) or add tessera.audit.entry/record "
                            "to the same transaction",
                        )
        finally:
            await db.stop()

    asyncio.run(calls())
    if not judged:
        _fail(
            name,
            "none of its write routes could be called to check its audit entries (all refused: "
            f"{', '.join(refused)}); give the request bodies examples (msgspec Meta(examples=[...]))",
        )


CHECKS: dict[str, Callable[..., None]] = {
    "loads": check_loads,
    "migrates": check_migrates,
    "routes_in_openapi": check_routes_in_openapi,
    "permissions": check_permissions,
    "jobs_idempotent": check_jobs_idempotent,
    "disabled_contributes_nothing": check_disabled_contributes_nothing,
    "writes_are_audited": check_writes_are_audited,
}


# --------------------------------------------------------------------------- pytest plugin


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tessera")
    group.addoption(
        "--tessera-contract",
        action="append",
        default=[],
        metavar="PLUGIN",
        help="Run the Tessera plugin contract tests against PLUGIN (entry-point, package or "
        "distribution name); repeatable.",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("tessera_contract", default=None):
        # Collect the contract suite alongside whatever else was asked for.
        config.args.append(str(SUITE))


__all__ = [
    "CHECKS",
    "ContractViolation",
    "check_disabled_contributes_nothing",
    "check_jobs_idempotent",
    "check_loads",
    "check_migrates",
    "check_permissions",
    "check_routes_in_openapi",
    "check_writes_are_audited",
    "empty_database",
    "first_party_plugins",
    "resolve_plugins",
]
