"""``tessera accounting import FILE`` / ``tessera accounting export``: the accounting exchange
(``tessera.accounting``) from the command line, acting as the system (every party)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tessera.cli_kernel import load_cli_settings, run_kernel

app = typer.Typer(
    help="Exchange counterparties and documents with the accounting system", no_args_is_help=True
)
console = Console(stderr=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to tessera.toml")]
SystemOpt = Annotated[
    str, typer.Option("--system", help="The accounting system's name (external ids are unique in it)")
]


def _system() -> Any:
    from tessera.permissions import Principal

    return Principal(
        user_id=None,  # type: ignore[arg-type]  # the system: records without owner
        name="accounting exchange",
        email="",
        permissions=frozenset({"*"}),
        scope="all",
        user_ids=None,
    )


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help='Counterparties: .json (a list, or {"counterparties": [...]}) or .csv')
    ],
    system: SystemOpt = "accounting",
    config: ConfigOpt = None,
) -> None:
    """Create or update parties by external id; a file imported twice changes nothing. Prints
    the report as JSON; exits 1 when a row failed."""
    from tessera import accounting

    text = file.read_text(encoding="utf-8-sig")
    if file.suffix.lower() == ".csv":
        items = accounting.parse_csv(text)
    else:
        data = json.loads(text)
        items = data["counterparties"] if isinstance(data, dict) else data
    settings = load_cli_settings(config)

    async def body(pm: Any) -> Any:
        return await accounting.import_counterparties(_system(), system, items)

    report = run_kernel(settings, body)
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    if report.errors:
        raise typer.Exit(1)


@app.command("export")
def export(
    since: Annotated[
        str | None, typer.Option(help="Checkpoint: parties changed after it (ISO time with zone)")
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
    documents: Annotated[
        bool, typer.Option("--documents", help="Export plugins' documents (won deals) instead")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")
    ] = None,
    system: SystemOpt = "accounting",
    config: ConfigOpt = None,
) -> None:
    """Parties created or changed since the checkpoint (and the next checkpoint), or with
    --documents what plugins export (won deals)."""
    from tessera import accounting

    when = datetime.fromisoformat(since) if since else None
    if when is not None and when.tzinfo is None:
        raise typer.BadParameter("--since needs a time zone (2026-03-02T09:00:00+00:00)")
    settings = load_cli_settings(config)

    async def body(pm: Any) -> Any:
        if documents:
            return await accounting.documents(_system(), when), None
        return await accounting.export_counterparties(_system(), system, when, limit=10**9)

    rows, checkpoint = run_kernel(settings, body)
    if format_ == "csv" and not documents:
        text = accounting.to_csv(rows)
    else:
        key = "documents" if documents else "counterparties"
        payload: dict[str, Any] = {key: rows}
        if not documents:
            payload["next_since"] = checkpoint.isoformat() if checkpoint else None
        text = json.dumps(payload, ensure_ascii=False, indent=2, default=str)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(rows)} record(s) to {output}; next checkpoint {checkpoint or '-'}")
    else:
        sys.stdout.write(text)
