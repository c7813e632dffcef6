"""``tessera receivables import FILE``: invoices, payments and credit notes from accounting
(the formats of ``POST /api/receivables/import``, docs/receivables.md), acting as the system.

Idempotent by external id: a file imported twice changes nothing. A progress bar follows the
records; the rejected ones are listed with their line (CSV) or position (JSON) and reasons, the
rest are imported. Exit code 0 when every record was taken, 1 when some were rejected, 2 when
the file cannot be read, 3 when the plugin is not enabled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(help="Receivables: import invoices and payments from accounting", no_args_is_help=True)
console = Console(stderr=True)
#: Records per call of ``imports.import_records`` (each record is its own transaction).
CHUNK = 200


def _system() -> Any:
    from tessera.permissions import Principal

    return Principal(
        user_id=None,  # type: ignore[arg-type]  # the system
        name="receivables import",
        email="",
        permissions=frozenset({"*"}),
        scope="all",
        user_ids=None,
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help='A .csv file, or .json ({"records": [...]} or a list)')],
    encoding: Annotated[
        str | None, typer.Option(help="Encoding of a CSV file (default: UTF-8, else cp1251)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Path to tessera.toml")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Create or update invoices and payments by external id; prints the report as JSON."""
    from tessera.cli_kernel import load_cli_settings, run_kernel
    from tessera.errors import ValidationFailed

    from tessera_receivables import imports

    try:
        raw = file.read_bytes()
        records = (
            imports.parse_csv(raw, encoding) if file.suffix.lower() == ".csv" else imports.parse_json(raw)
        )
    except OSError as exc:
        console.print(f"[red]Cannot read {file}:[/red] {exc}")
        raise typer.Exit(2) from exc
    except ValidationFailed as exc:
        console.print(f"[red]{file}:[/red] " + "; ".join(f"{e.field}: {e.message}" for e in exc.errors))
        raise typer.Exit(2) from exc
    settings = load_cli_settings(config)

    async def body(pm: Any) -> dict[str, Any] | None:
        from tessera.plugins import enabled_plugin_names

        if "receivables" not in enabled_plugin_names(pm):
            return None
        report: dict[str, Any] = {"created": 0, "updated": 0, "unchanged": 0, "rejected": []}
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
        ) as progress:
            task = progress.add_task(file.name, total=len(records))
            for start in range(0, len(records), CHUNK):
                chunk = records[start : start + CHUNK]
                part = await imports.import_records(_system(), chunk)
                for key in ("created", "updated", "unchanged"):
                    report[key] += part[key]
                report["rejected"].extend(part["rejected"])
                progress.advance(task, len(chunk))
        return report

    report = run_kernel(settings, body)
    if report is None:
        console.print("[red]The receivables plugin is not enabled in this configuration.[/red]")
        raise typer.Exit(3)
    for row in report["rejected"]:
        reasons = "; ".join(f"{e['field']}: {e['message']}" for e in row["errors"])
        console.print(f"[yellow]line {row['line']}[/yellow] {row['external_id'] or '-'}: {reasons}")
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if report["rejected"]:
        raise typer.Exit(1)
