"""The ``tessera`` command: init, migrate, serve, worker, demo, users, plugins."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from tessera import accounting_cli, importer_cli, migrations
from tessera import backup as backup_cmd
from tessera.cli_kernel import err, load_cli_settings, migrate_all, run_kernel, safe_url
from tessera.config import Settings
from tessera.plugins import PluginError
from tessera.search import cli as search_cli

app = typer.Typer(help="Tessera CRM", no_args_is_help=True, add_completion=False)
users_app = typer.Typer(help="Manage users", no_args_is_help=True)
plugins_app = typer.Typer(help="Installed and enabled plugins", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(plugins_app, name="plugins")
app.add_typer(search_cli.app, name="search")
app.add_typer(importer_cli.app, name="import")
app.add_typer(accounting_cli.app, name="accounting")
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to tessera.toml")]


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Apply pending migrations of the kernel and the enabled plugins (safe to repeat)."""
    settings = load_cli_settings(config)
    try:
        run_kernel(settings, migrate_all)
    except migrations.MigrationError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"[green]Database is up to date[/green] ({safe_url(settings)})")


@app.command()
def init(
    config: ConfigOpt = None,
    admin_email: Annotated[str | None, typer.Option(help="Create this first admin")] = None,
    admin_password: Annotated[str | None, typer.Option(help="Password of the first admin")] = None,
) -> None:
    """Create the data directory, a tessera.toml (when missing) and the schema; optionally the
    first admin."""
    if admin_email and not admin_password:
        raise typer.BadParameter("--admin-password is required with --admin-email")
    path = config or Path("tessera.toml")
    if not path.exists():
        path.write_text('[tessera]\ndata_dir = "data"\nplugins = ["all"]\n', encoding="utf-8")
        console.print(f"Wrote {path}")
    settings = load_cli_settings(path)

    async def body(pm: Any) -> None:
        await migrate_all(pm)
        if admin_email:
            from tessera.demo import ensure_admin

            assert admin_password is not None
            await ensure_admin(admin_email.lower(), "Administrator", admin_password)
            console.print(f"Admin {admin_email} is ready")

    run_kernel(settings, body)
    console.print("[green]Initialised[/green]")


def _serve(settings: Settings, config: Path | None = None, reload: bool = False) -> None:
    import uvicorn

    if config is not None:
        # The ASGI factory reads the settings again: it must read the same file.
        os.environ["TESSERA_CONFIG"] = str(config.resolve())
    os.environ["TESSERA_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["TESSERA_DATABASE_URL"] = settings.database_url
    os.environ["TESSERA_PLUGINS"] = ",".join(settings.plugins)
    os.environ["TESSERA_SECURE_COOKIES"] = "1" if settings.secure_cookies else "0"
    os.environ["TESSERA_TRUSTED_PROXIES"] = ",".join(settings.trusted_proxies)
    uvicorn.run(
        "tessera.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level="info",
        reload=reload,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default, letting any local
        # process pick its own client address (and lift the sign-in throttle); the app reads
        # the header itself, only from the configured trusted_proxies.
        proxy_headers=False,
        forwarded_allow_ips="",
    )


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port")] = None,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Do not apply pending migrations first")
    ] = False,
) -> None:
    """Run the HTTP server (applies pending migrations first)."""
    settings = load_cli_settings(config)
    settings = settings.with_(host=host or settings.host, port=port or settings.port)
    if not no_migrate:
        run_kernel(settings, migrate_all)
    _serve(settings, config)


@app.command()
def worker(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run the jobs that are due now, then exit")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between checks for due jobs")] = 1.0,
) -> None:
    """Run scheduled and background jobs. Start one per node; on PostgreSQL they share the work safely."""
    from tessera.scheduler import run_worker, sync_jobs, tick

    settings = load_cli_settings(config)

    async def body(pm: Any) -> None:
        if once:
            await sync_jobs(pm)
            ran = await tick(pm, settings)
            console.print(f"Ran {len(ran)} job(s): {', '.join(ran) or '-'}")
            from tessera.jobs import work

            done = await work(pm, settings)
            console.print(f"Ran {len(done)} background job(s)")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print("Worker running; Ctrl+C stops it")
        await run_worker(pm, settings, stop, poll)

    run_kernel(settings, body)


@app.command()
def demo(
    config: ConfigOpt = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server afterwards")
    ] = True,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port")] = 8000,
) -> None:
    """Load demo data from the kernel and every enabled plugin into the database, then serve."""
    from tessera import demo as demo_data

    settings = load_cli_settings(config)
    # The demo runs on plain http://localhost, where a Secure cookie would never be sent back.
    settings = settings.with_(secure_cookies=False, host=host, port=port)

    async def body(pm: Any) -> None:
        await migrate_all(pm)
        await demo_data.load(pm)

    run_kernel(settings, body)
    console.print(
        f"\n[bold green]Tessera CRM demo[/bold green] at http://{host}:{port}/  (API docs: http://{host}:{port}/schema)\n"
        f"Sign in as [bold]{demo_data.ADMIN_EMAIL}[/bold] / [bold]{demo_data.DEMO_PASSWORD}[/bold] "
        f"(also head@example.com, manager1@example.com ... same password)\n"
    )
    if serve_after:
        _serve(settings, config)


@users_app.command("create")
def users_create(
    email: str,
    name: Annotated[str, typer.Option(help="Display name")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    role: Annotated[list[str] | None, typer.Option(help="Role name (repeatable)")] = None,
    team_id: Annotated[int | None, typer.Option(help="Team id")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a user (e.g. the first admin: --role admin)."""
    from tessera.demo import system_principal
    from tessera.entities import admin, service
    from tessera.errors import DomainError
    from tessera.permissions import ensure_default_roles

    async def body(pm: Any) -> dict[str, Any]:
        await ensure_default_roles()
        return await service.create(
            admin.USER,
            system_principal(),
            {
                "email": email,
                "name": name,
                "password": password,
                "roles": role or ["manager"],
                "team_id": team_id,
            },
        )

    try:
        row = run_kernel(load_cli_settings(config), body)
    except DomainError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        for e in exc.errors:
            err.print(f"  {e.field}: {e.message}")
        raise typer.Exit(1) from exc
    console.print(f"Created user {row['id']} <{row['email']}>")


@users_app.command("list")
def users_list(config: ConfigOpt = None) -> None:
    """List users with their roles."""
    from tessera.entities.admin import with_roles
    from tessera.entities.tables import CrmUser

    async def body(pm: Any) -> list[dict[str, Any]]:
        return await with_roles(
            await CrmUser.select(CrmUser.id, CrmUser.email, CrmUser.name, CrmUser.is_active)
        )

    table = RichTable("id", "email", "name", "roles", "active")
    for r in run_kernel(load_cli_settings(config), body):
        table.add_row(
            str(r["id"]), r["email"], r["name"], ", ".join(r["roles"]), "yes" if r["is_active"] else "no"
        )
    console.print(table)


@users_app.command("token")
def users_token(
    email: str,
    name: Annotated[str, typer.Option(help="What the token is for")] = "cli",
    scope: Annotated[
        list[str] | None, typer.Option(help="Permission the token is limited to (repeatable)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API token for a user and print it (shown once)."""
    from tessera import auth
    from tessera.entities.tables import CrmUser

    async def body(pm: Any) -> str | None:
        user = await CrmUser.select(CrmUser.id).where(CrmUser.email == email.lower()).first()
        if user is None:
            return None
        return (await auth.create_token(user["id"], name, scope or []))[1]

    token = run_kernel(load_cli_settings(config), body)
    if token is None:
        err.print(f"[red]No user {email}[/red]")
        raise typer.Exit(1)
    console.print(token)


@plugins_app.command("list")
def plugins_list(config: ConfigOpt = None) -> None:
    """Installed plugins and whether each is enabled by the configuration."""
    from tessera.config import ALL_PLUGINS
    from tessera.plugins import installed_plugins

    settings = load_cli_settings(config)
    installed = installed_plugins()
    enabled = set(installed) if ALL_PLUGINS in settings.plugins else set(settings.plugins)
    table = RichTable("plugin", "version", "distribution", "enabled")
    for name in sorted(set(installed) | enabled):
        info = installed.get(name)
        table.add_row(
            name,
            info.version if info else "-",
            info.distribution if info else "[red]not installed[/red]",
            "[green]yes[/green]" if name in enabled else "no",
        )
    console.print(table)


@plugins_app.command("new")
def plugins_new(
    name: str,
    directory: Annotated[Path, typer.Option("--dir", help="Where to create tessera-NAME/")] = Path("."),
) -> None:
    """Scaffold a plugin with the standard layout (see docs/plugins.md)."""
    from tessera.scaffold import ScaffoldError, create_plugin

    try:
        root = create_plugin(name, directory)
    except ScaffoldError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"Created {root}: `pip install -e {root}` then `pytest {root}`")


# Defined in tessera.backup; registered last so they list after the daily commands.
app.command("backup")(backup_cmd.backup)
app.command("restore")(backup_cmd.restore)


def mount_plugin_commands(target: typer.Typer | None = None, only: str | None = None) -> list[str]:
    """Mount the command groups installed plugins declare (``tessera_cli_commands``) under
    their plugin's name; returns the names mounted. ``only``: just that plugin (the one the
    command line names), so other plugins are not even imported. A plugin that fails to load
    mounts nothing (the commands that boot the kernel name it)."""
    from tessera.plugins import call_each, get_plugin_manager, installed_plugins

    target = target or app
    taken = {group.name for group in target.registered_groups} | {
        command.name or (command.callback.__name__ if command.callback else "")
        for command in target.registered_commands
    }
    installed = installed_plugins()
    mounted = []
    for name in [only] if only else sorted(installed):
        if name not in installed or name in taken:
            continue
        try:
            pm = get_plugin_manager(Settings(plugins=(name,)))
            groups = call_each(pm, "tessera_cli_commands")
        except PluginError:
            continue
        for plugin, group in groups:
            if plugin == name and isinstance(group, typer.Typer):
                target.add_typer(group, name=name)
                mounted.append(name)
    return mounted


def main() -> None:
    try:
        # ``tessera receivables import ...`` mounts that plugin's commands; ``tessera --help``
        # lists every installed plugin's.
        words = [a for a in sys.argv[1:] if not a.startswith("-")]
        mount_plugin_commands(only=words[0] if words else None)
        app()
    except PluginError as exc:
        err.print(f"[red]Plugin error:[/red] {exc}")
        sys.exit(3)


if __name__ == "__main__":
    main()
