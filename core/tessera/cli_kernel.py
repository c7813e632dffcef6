"""What every ``tessera`` sub-command shares: reading the configuration, running a body
against a booted kernel, migrating. ``tessera.cli`` and the sub-command modules it mounts
(``tessera.importer_cli``, ``tessera.search.cli``, ``tessera.backup``) all import from here, so none of them
imports the module that imports it (tests/test_import_graph.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from tessera import db, migrations
from tessera.config import Settings, load_settings
from tessera.plugins import PluginError

err = Console(stderr=True)


def load_cli_settings(config: Path | None) -> Settings:
    """The settings of ``--config`` (or the default file); exit 2 on a configuration error."""
    try:
        return load_settings(config)
    except ValueError as exc:
        err.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def safe_url(settings: Settings) -> str:
    """The database URL without its credentials, for messages."""
    url = settings.resolved_database_url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def run_kernel(settings: Settings, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Boot the kernel (plugins, database), run ``body(pm)``, close the database."""
    from tessera.app import boot

    try:
        pm = boot(settings)
    except PluginError as exc:
        err.print(f"[red]Plugin error:[/red] {exc}")
        raise typer.Exit(3) from exc

    async def main() -> Any:
        try:
            await db.start()
        except Exception as exc:  # unreachable server, unknown database, bad credentials
            err.print(f"[red]Cannot open the database[/red] {safe_url(settings)}: {exc}")
            raise typer.Exit(4) from exc
        try:
            return await body(pm)
        finally:
            await db.stop()

    return asyncio.run(main())


async def migrate_all(pm: Any) -> None:
    """What ``tessera migrate`` does: the kernel's and enabled plugins' migrations, default
    roles, scheduled jobs and plugins' process templates."""
    from tessera.permissions import ensure_default_roles
    from tessera.scheduler import sync_jobs
    from tessera.workflow.templates import sync_plugin_templates

    await migrations.migrate()
    await ensure_default_roles()
    await sync_jobs(pm)
    # Plugins' process templates are stored (as new versions when changed) at migrate time,
    # so the first request after a deploy does not pay for it.
    await sync_plugin_templates(pm)
