"""Imports through the API: a CSV or XLSX file of parties (with their contact persons) runs as
a background job (``import.parties``) through the same importer as ``tessera import``
(``tessera.importer.import_parties``): same column names and mapping, same checks, same
deduplication by tax id, e-mail and phone, same bulk writes.

The file is stored under ``data_dir/imports/`` and imported in *chunks* of ``CHUNK_ROWS`` rows,
each in its own transaction that also records the job's checkpoint (the next chunk). A worker
killed in the middle leaves whole chunks behind it, and the retry (the job's lease expires,
another worker claims it) starts at the checkpoint: no row is imported twice. Progress is the
job's (``GET /api/jobs/background/{id}``); the result lists every rejected row with its line
and errors. The new parties become searchable when the worker delivers the import's events
(the scheduled ``kernel.events`` job, within a minute). docs/integrations.md, "Import through
the API".
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from tessera import jobs
from tessera.entities.tables import BackgroundJob
from tessera.importer import ImportFailed, ImportReport, _collector_paused, import_parties, read_rows
from tessera.permissions import build_principal

KIND = "import.parties"
#: Rows per transaction (and checkpoint).
CHUNK_ROWS = 50_000
#: Rejected rows listed in a job's result at most (the count is always exact).
REJECTED_SHOWN = 1000
SUFFIXES = (".csv", ".txt", ".xlsx")


def store_upload(data_dir: Path, filename: str, content: bytes) -> Path:
    """Keep the uploaded file (content-addressed) for the job, whichever worker runs it."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError("must be a .csv or .xlsx file")
    folder = data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(content).hexdigest()}{suffix}"
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(content)
        tmp.replace(path)
    return path


def _rows(path: Path, encoding: str | None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    report = ImportReport()
    header: list[str] | None = None
    data: list[tuple[int, list[str]]] = []
    for line, cells in read_rows(path, encoding, report):
        if not ((cells and cells[0].strip()) or any(c.strip() for c in cells)):
            continue
        if header is None:
            header = cells
        else:
            data.append((line, cells))
    if header is None:
        raise ImportFailed(f"{path.name} is empty: the first row must be a header")
    return header, data


def _summary(state: dict[str, Any], report: ImportReport, lines: list[int] | None) -> None:
    """Add a chunk's report to the job's running totals. ``lines``: the file's line of each of
    the chunk's rows (None: the report's lines are the file's already)."""
    for key in ("imported", "updated", "unchanged", "merged", "skipped", "contacts"):
        state[key] = state.get(key, 0) + getattr(report, key)
    state["rejected_count"] = state.get("rejected_count", 0) + len(report.rejected)
    shown = state.setdefault("rejected", [])
    for r in report.rejected:
        if len(shown) >= REJECTED_SHOWN:
            break
        # The chunk's line n is the file's line lines[n - 2] (line 1 is the header).
        line = lines[r.line - 2] if lines is not None and 2 <= r.line < len(lines) + 2 else r.line
        shown.append({"line": line, "errors": [e.as_dict() for e in r.errors], "values": r.values})
    state["columns"] = report.columns or state.get("columns", {})
    state["ignored_columns"] = report.ignored_columns or state.get("ignored_columns", [])


@jobs.kernel_kind(KIND, timeout=3600)
async def import_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Import ``payload["path"]`` chunk by chunk from the job's checkpoint."""
    # As the CLI import does: the cyclic collector would walk the file's rows again and again
    # while they are read and checked (nothing the import builds needs collecting before the end).
    with _collector_paused():
        return await _import_job(ctx, payload)


async def _import_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    if ctx.created_by is None:
        raise jobs.PermanentFailure("an API import needs the user who started it")
    try:
        principal = await build_principal(ctx.created_by)
    except Exception as exc:
        raise jobs.PermanentFailure(f"the user who started the import cannot act any more: {exc}") from exc
    path = Path(payload["path"])
    if not path.is_file():  # noqa: ASYNC240 - one stat of a local file
        raise jobs.PermanentFailure(f"the uploaded file {path.name} is gone")
    options = {
        "owner_email": payload.get("owner_email") or None,
        "on_duplicate": payload.get("on_duplicate", "skip"),
        "mapping": payload.get("mapping") or None,
        "principal": principal,
    }
    started = time.perf_counter()
    try:
        header, data = _rows(path, payload.get("encoding"))
    except (ImportFailed, UnicodeDecodeError, ValueError) as exc:
        raise jobs.PermanentFailure(str(exc)) from exc
    total = len(data)
    filename = payload.get("filename") or path.name
    if payload.get("dry_run") or not payload.get("skip_invalid", True):
        # The whole file checked at once: a dry run's report, or all-or-nothing's verdict.
        try:
            report = await import_parties(
                path, dry_run=True, skip_invalid=True, preread=(header, data), **options
            )
        except ImportFailed as exc:
            raise jobs.PermanentFailure(str(exc)) from exc
        if payload.get("dry_run") or report.rejected:
            state: dict[str, Any] = {
                "file": filename,
                "rows_read": total,
                "dry_run": bool(payload.get("dry_run")),
            }
            _summary(state, report, None)
            state["committed"] = False
            await ctx.progress(total, total, "checked")
            return state
    row = await BackgroundJob.select(BackgroundJob.progress).where(BackgroundJob.id == ctx.id).first()
    saved = row["progress"] if row else None
    saved = json.loads(saved) if isinstance(saved, str) else (saved or {})
    state = dict(saved.get("state") or {"file": filename, "rows_read": total, "dry_run": False})
    next_chunk = int(saved.get("chunk", 0))
    chunks = [data[i : i + CHUNK_ROWS] for i in range(0, total, CHUNK_ROWS)]
    for index in range(next_chunk, len(chunks)):
        chunk = chunks[index]
        after = dict(state)

        async def checkpoint(
            report: ImportReport,
            index: int = index,
            after: dict[str, Any] = after,
        ) -> None:
            _summary(after, report, None)
            done = min((index + 1) * CHUNK_ROWS, total)
            progress = {
                "done": done,
                "total": total,
                "message": f"chunk {index + 1} of {len(chunks)}",
                "chunk": index + 1,
                "state": after,
            }
            await BackgroundJob.update({BackgroundJob.progress: progress}).where(
                BackgroundJob.id == ctx.id, BackgroundJob.attempts == ctx.attempt
            )

        try:
            await import_parties(
                path,
                skip_invalid=True,
                before_commit=checkpoint,
                preread=(header, chunk),
                display_name=filename,
                # The new parties' events stay in the outbox: the worker's event delivery
                # (kernel.events) indexes them for search within a minute, so the search
                # index never holds the import (it is slower than the import itself).
                index=False,
                **options,
            )
        except ImportFailed as exc:
            raise jobs.PermanentFailure(str(exc)) from exc
        state = after
    state["committed"] = True
    state["seconds"] = round(time.perf_counter() - started, 3)
    return state
