"""``tessera import parties FILE``: load a client list from CSV or XLSX (see ``tessera.importer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from tessera.cli_kernel import load_cli_settings, run_kernel

app = typer.Typer(help="Import records from spreadsheets (CSV, XLSX)", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to tessera.toml")]
STAGES = {"check": "Checking rows", "write": "Writing", "index": "Indexing for search"}
#: Rejected rows printed on the terminal (all of them go to the report file).
SHOWN_ERRORS = 50


@app.command("parties")
def parties(
    file: Annotated[
        Path, typer.Argument(help="CSV (any delimiter; UTF-8, UTF-8 with BOM or cp1251) or XLSX")
    ],
    owner: Annotated[
        str | None, typer.Option("--owner", help="E-mail of the owner of rows without an owner column")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row, write nothing")] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Import the good rows; write the rejected ones to --report"),
    ] = False,
    on_duplicate: Annotated[
        str,
        typer.Option(
            "--on-duplicate",
            help="A row with the tax id, e-mail or phone of an existing party or an earlier row: "
            "error (reject it), skip, or update (fill the existing party)",
        ),
    ] = "error",
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="COLUMN=FIELD (repeatable): name, phones, emails, custom.<name>, - ..."),
    ] = None,
    report_path: Annotated[
        Path | None,
        typer.Option("--report", help="Where to write rejected rows (default FILE.rejected.csv here)"),
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="Encoding of a CSV file (detected by default)")] = None,
    no_index: Annotated[
        bool, typer.Option("--no-index", help="Leave search indexing to the worker (faster import)")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Import organisations and people. All or nothing unless --skip-invalid: one transaction,
    and any invalid row (reported with its line and field) means nothing is written."""
    from tessera import importer

    settings = load_cli_settings(config)

    async def body(pm: Any) -> importer.ImportReport:
        with Progress(
            TextColumn("[bold]{task.description}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in STAGES:
                    return
                if stage not in tasks:
                    tasks[stage] = bar.add_task(STAGES[stage], total=total)
                bar.update(tasks[stage], completed=done, total=total)

            return await importer.import_parties(
                file,
                owner_email=owner,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                on_duplicate=on_duplicate,
                mapping=map_,
                progress=progress,
                encoding=encoding,
                index=not no_index,
            )

    try:
        report = run_kernel(settings, body)
    except (importer.ImportFailed, LookupError, UnicodeDecodeError) as exc:
        err.print(f"[red]Cannot import:[/red] {exc}")
        raise typer.Exit(2) from exc
    _print(report, file, report_path, skip_invalid)
    if report.rejected and not (skip_invalid or dry_run):
        raise typer.Exit(1)
    if report.rejected and dry_run:
        raise typer.Exit(1)


def _print(report: Any, file: Path, report_path: Path | None, skip_invalid: bool) -> None:
    mapped = ", ".join(f"{h} → {t}" for h, t in report.columns.items())
    console.print(
        f"{file.name}: {report.encoding}, delimiter {report.delimiter!r}" if report.delimiter else ""
    )
    console.print(f"Columns: {mapped}")
    if report.ignored_columns:
        console.print(f"[yellow]Ignored columns:[/yellow] {', '.join(report.ignored_columns)}")
    for warning in report.warnings:
        console.print(f"[yellow]Warning:[/yellow] {warning}")
    if report.rejected:
        table = RichTable("line", "field", "problem", title=f"{len(report.rejected)} rejected row(s)")
        shown = 0
        for r in report.rejected:
            for e in r.errors:
                if shown < SHOWN_ERRORS:
                    table.add_row(str(r.line), e.field, e.message)
                shown += 1
        console.print(table)
        if shown > SHOWN_ERRORS:
            console.print(f"... and {shown - SHOWN_ERRORS} more problem(s)")
        target = report_path or Path.cwd() / f"{file.stem}.rejected.csv"
        report.write_rejected_csv(target)
        console.print(f"Rejected rows written to {target}")
    counts = (
        f"{report.rows_read} row(s) read: {report.imported} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.merged} merged, {report.skipped} skipped, "
        f"{len(report.rejected)} rejected"
    )
    if report.dry_run:
        console.print(f"[bold]Dry run[/bold], nothing written. Would import: {counts}")
    elif not report.committed:
        console.print(
            f"[red]Nothing imported:[/red] {len(report.rejected)} invalid row(s). Fix them, or pass "
            "--skip-invalid to import the good rows"
        )
    else:
        console.print(f"[green]Imported[/green] {counts}")
    console.print(
        f"{report.rows_read} rows in {report.seconds:.2f} s: "
        f"[bold]{report.rows_per_second:,.0f} rows/s[/bold]"
        + (f"; search index updated in {report.index_seconds:.2f} s" if report.index_seconds else "")
    )
