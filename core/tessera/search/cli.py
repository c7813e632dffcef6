"""``tessera search ...``: rebuild and inspect the full-text index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tessera.cli_kernel import load_cli_settings, run_kernel

app = typer.Typer(help="Full-text search index", no_args_is_help=True)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to tessera.toml")]


@app.command("reindex")
def reindex(
    type_: Annotated[
        list[str] | None, typer.Option("--type", help="Only this document type (repeatable)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Rebuild the index from the database, in place: safe while the server serves traffic
    (searches keep answering; documents are replaced batch by batch)."""
    from tessera.search import service

    settings = load_cli_settings(config)

    async def body(pm: Any) -> int:
        s = service.searcher()
        with Progress(
            TextColumn("[bold]Indexing[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("reindex", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if await s.open():
                # A missing or outdated index is rebuilt whole, whatever --type says.
                written = await service.reindex(progress=progress)
                await s.mark_built()
            else:
                written = await service.reindex(type_ or None, progress=progress)
            await service.drain_pending()
        return written

    try:
        written = run_kernel(settings, body)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"[green]Indexed {written} document(s)[/green] with the {settings.search_backend} backend")


@app.command("status")
def status(config: ConfigOpt = None) -> None:
    """Backend, document count and pending (failed, to be retried) index work."""
    from tessera.search import service

    settings = load_cli_settings(config)

    async def body(pm: Any) -> tuple[int, int]:
        await service.start()
        return await service.searcher().count(), await service.pending_count()

    count, pending = run_kernel(settings, body)
    console.print(f"backend: {settings.search_backend}\ndocuments: {count}\npending: {pending}")
