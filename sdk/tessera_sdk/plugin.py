"""The plugin author's kit: the ``hookimpl`` marker and small helpers that build the
declarations hooks return, checking them early so mistakes surface at import, not in
production.

    from tessera_sdk.plugin import hookimpl, job, permissions, routes, timeline_item

    PERMISSIONS = permissions("loyalty", {"read": "See points", "award": "Award points"})

    @hookimpl
    def tessera_permissions():
        return PERMISSIONS

See ``docs/plugins.md`` for a walk-through and ``docs/plugin_hooks.md`` for every hook.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from piccolo.conf.apps import AppConfig
from piccolo.table import Table
from tessera.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from tessera.hookspecs import hookimpl
from tessera.permissions import Principal
from tessera.scheduler import JobContext, JobFunc, JobSpec

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _check_name(plugin: str) -> None:
    if not _NAME.fullmatch(plugin):
        raise ValueError(f"plugin name {plugin!r} must be lower-case letters, digits and underscores")


def tables_app(
    plugin: str, tables: Iterable[type[Table]], package_file: str, migrations: str = "piccolo_migrations"
) -> AppConfig:
    """The Piccolo ``AppConfig`` of a plugin (define it as ``APP_CONFIG`` in its
    ``piccolo_app.py`` and return that module's dotted path from ``tessera_tables``).

    :param plugin: the plugin's name; every table name must start with ``<plugin>_``.
    :param tables: the plugin's Piccolo table classes.
    :param package_file: ``__file__`` of the module beside the migrations folder.
    """
    _check_name(plugin)
    classes = list(tables)
    for table in classes:
        name = table._meta.tablename
        if not name.startswith(f"{plugin}_"):
            raise ValueError(f"table {name!r} must carry the plugin prefix: tablename='{plugin}_...'")
    return AppConfig(
        app_name=plugin,
        migrations_folder_path=str(Path(package_file).resolve().parent / migrations),
        table_classes=classes,
        migration_dependencies=["tessera.piccolo_app"],
        commands=[],
    )


def permissions(plugin: str, actions: Mapping[str, str]) -> dict[str, str]:
    """``permissions("loyalty", {"read": "See points"})`` -> ``{"loyalty.read": "See points"}``.
    Keys may already carry the prefix; every permission needs a description."""
    _check_name(plugin)
    out: dict[str, str] = {}
    for action, description in actions.items():
        name = action if action.startswith(f"{plugin}.") else f"{plugin}.{action}"
        if not re.fullmatch(rf"{plugin}(\.[a-z0-9_]+)+", name):
            raise ValueError(f"permission {name!r} must look like '{plugin}.thing.action'")
        if not description.strip():
            raise ValueError(f"permission {name!r} needs a one-line description")
        out[name] = description
    return out


def routes(*handlers: Any) -> list[Any]:
    """The list ``tessera_routes`` returns, after checking that every route handler has an
    ``operation_id`` and a docstring (both become the OpenAPI documentation)."""
    for handler in handlers:
        fn = getattr(handler, "fn", None)
        if fn is None:  # a Controller or Router: Litestar checks those itself
            continue
        label = getattr(fn, "__name__", repr(handler))
        if not getattr(handler, "operation_id", None):
            raise ValueError(f"route {label}: give it an operation_id")
        if not (fn.__doc__ or getattr(handler, "description", None) or "").strip():
            raise ValueError(f"route {label}: give it a docstring saying what it does")
    return list(handlers)


def job(
    name: str,
    func: JobFunc,
    *,
    every: timedelta | None = None,
    cron: str | None = None,
    timeout: float = 600.0,
    description: str = "",
) -> JobSpec:
    """A ``JobSpec``: ``job("loyalty.expire", expire, cron="0 3 * * *")``. The function is
    ``async def f(ctx: JobContext)``; it must be idempotent (the contract tests run it twice)."""
    if "." not in name:
        raise ValueError(f"job {name!r} must be named '<plugin>.<job>'")
    return JobSpec(
        name=name,
        func=func,
        every=every,
        cron=cron,
        timeout=timeout,
        description=description or (func.__doc__ or "").strip().split("\n")[0],
    )


def timeline_item(
    kind: str,
    at: datetime,
    title: str,
    *,
    id: int | None = None,
    user_id: int | None = None,
    status: str | None = None,
    detail: str = "",
) -> dict[str, Any]:
    """One entry for the client card's history (what ``tessera_timeline_items`` returns a list
    of). ``kind`` is dotted with the plugin name (``loyalty.award``); ``at`` must be aware."""
    if at.tzinfo is None:
        raise ValueError("timeline items need a timezone-aware 'at' (use tessera.clock.now())")
    if "." not in kind:
        raise ValueError(f"timeline kind {kind!r} must be '<plugin>.<what>'")
    return {
        "kind": kind,
        "at": at,
        "title": title,
        "id": id,
        "user_id": user_id,
        "status": status,
        "detail": detail,
    }


__all__ = [
    "Conflict",
    "JobContext",
    "JobSpec",
    "NotFound",
    "PermissionDenied",
    "Principal",
    "ValidationFailed",
    "hookimpl",
    "job",
    "permissions",
    "routes",
    "tables_app",
    "timeline_item",
]
