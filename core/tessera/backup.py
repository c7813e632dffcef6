"""``tessera backup`` and ``tessera restore``: one archive holding a consistent copy of the
database, the attachments and a manifest, taken while the server keeps serving.

The archive is a ``.tar.gz`` with:

* ``database.sqlite3`` (SQLite: a copy made with SQLite's online backup API in one step, i.e.
  inside one read transaction: under WAL the server keeps writing, the copy is the database as
  of the moment the copy started) or ``database.pgdump`` (PostgreSQL: ``pg_dump
  --format=custom``, which reads one snapshot);
* ``attachments/...``, the content-addressed files under ``<data_dir>/attachments``, copied
  *after* the database snapshot: a file is written before its row commits and never changes
  or goes away, so every attachment the copied database mentions is in the archive;
* ``manifest.json`` (written last): format and product version, engine, enabled plugins,
  applied migrations, creation time, and the size and SHA-256 of every other member.

The whoosh search index is not copied: indexing runs after a write commits, so no copy of
the index can match a database snapshot (it is either behind, and the events that would
catch it up are marked delivered in the snapshot, or ahead with records the snapshot lacks).
``tessera restore`` rebuilds it from the restored database instead; the PostgreSQL search
backend lives in the database and comes back with it.

``tessera restore`` checks the manifest and every checksum before it touches anything,
refuses a backup of the other engine and a non-empty target (unless ``--force``), puts the
database and attachments in place, applies pending migrations (a backup of an older version
comes up to date) and rebuilds the search index.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Annotated, Any
from urllib.parse import unquote, urlparse

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from tessera.config import Settings

FORMAT = "tessera-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
ATTACHMENTS = "attachments"
#: Exit codes: 1 refused or failed, 2 unusable archive (damaged, other engine, newer format),
#: 4 the database cannot be reached (as the other commands).
EXIT_REFUSED, EXIT_ARCHIVE, EXIT_DATABASE = 1, 2, 4
CHUNK = 1024 * 1024

console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Path to tessera.toml")]


class BackupError(Exception):
    """A refusal or failure, with the exit code the command ends with."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- helpers


def engine_name(settings: Settings) -> str:
    return "postgresql" if settings.is_postgres else "sqlite"


def sqlite_path(settings: Settings) -> Path:
    url = settings.resolved_database_url
    return Path(url[len("sqlite:///") :] if url.startswith("sqlite:///") else urlparse(url).path)


def _pg_env(settings: Settings) -> dict[str, str]:
    """libpq variables for pg_dump/pg_restore: the password never appears on a command line."""
    parsed = urlparse(settings.resolved_database_url)
    env = dict(os.environ)
    env.update(
        {
            "PGHOST": parsed.hostname or "127.0.0.1",
            "PGPORT": str(parsed.port or 5432),
            "PGUSER": unquote(parsed.username or "postgres"),
            "PGDATABASE": parsed.path.lstrip("/") or "postgres",
        }
    )
    if parsed.password:
        env["PGPASSWORD"] = unquote(parsed.password)
    return env


def pg_tool(name: str) -> str:
    """``pg_dump``/``pg_restore``: on PATH (Debian's wrapper picks the server's version), else
    the newest under /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    raise BackupError(f"{name} is not installed: install the PostgreSQL client tools (postgresql-client)")


def _run_tool(command: list[str], settings: Settings, what: str) -> None:
    done = subprocess.run(command, env=_pg_env(settings), capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{what} failed (exit {done.returncode}):\n{done.stderr.strip()}", EXIT_DATABASE)


async def _pg_query(settings: Settings, sql: str) -> list[dict[str, Any]]:
    import asyncpg

    parsed = urlparse(settings.resolved_database_url)
    try:
        conn = await asyncpg.connect(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password or "") or None,
            database=parsed.path.lstrip("/") or "postgres",
            timeout=10,
        )
    except Exception as exc:
        raise BackupError(f"Cannot open the database {_safe_url(settings)}: {exc}", EXIT_DATABASE) from exc
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def _pg_rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    import asyncio

    return asyncio.run(_pg_query(settings, sql))


def _safe_url(settings: Settings) -> str:
    url = settings.resolved_database_url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingReader:
    """A file object that hashes what tarfile reads from it (one pass per file)."""

    def __init__(self, fh: IO[bytes], advance: Callable[[int], None]) -> None:
        self._fh = fh
        self._advance = advance
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.digest.update(data)
        self._advance(len(data))
        return data


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
    )


def enabled_plugins(settings: Settings) -> dict[str, str | None]:
    """Enabled plugin -> installed version (None when not installed)."""
    from tessera.config import ALL_PLUGINS
    from tessera.plugins import installed_plugins

    installed = installed_plugins()
    names = sorted(installed) if ALL_PLUGINS in settings.plugins else list(settings.plugins)
    return {n: (installed[n].version if n in installed else None) for n in names}


def _attachment_files(data_dir: Path) -> Iterator[Path]:
    root = data_dir / ATTACHMENTS
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        # ``*.tmp``: an upload being written; its row is not committed, so not in the snapshot.
        if path.is_file() and path.suffix != ".tmp":
            yield path


# --------------------------------------------------------------------------- backup


def _copy_sqlite(settings: Settings, target: Path) -> list[dict[str, str]]:
    """Copy the live database with SQLite's backup API in one step (one read transaction: a
    consistent snapshot; WAL lets the server write meanwhile). Returns the applied migrations."""
    source_path = sqlite_path(settings)
    if not source_path.is_file():
        raise BackupError(f"No database at {source_path}: nothing to back up", EXIT_DATABASE)
    source = sqlite3.connect(source_path, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # pages=-1: the whole file in one step
            check = copy.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise BackupError(f"The copy failed SQLite's integrity check: {check[:5]}")
            # A self-contained file: no -wal beside it (restore switches WAL on again).
            copy.execute("PRAGMA journal_mode=DELETE")
            rows = copy.execute("SELECT app_name, name FROM migration ORDER BY id").fetchall()
        finally:
            copy.close()
    finally:
        source.close()
    return [{"app": a, "name": n} for a, n in rows]


def _dump_postgres(settings: Settings, target: Path) -> list[dict[str, str]]:
    rows = _pg_rows(settings, "SELECT app_name, name FROM migration ORDER BY id")
    _run_tool([pg_tool("pg_dump"), "--format=custom", f"--file={target}"], settings, "pg_dump")
    return [{"app": r["app_name"], "name": r["name"]} for r in rows]


def default_output(directory: Path) -> Path:
    return directory / f"tessera-backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz"


def create_backup(settings: Settings, output: Path) -> dict[str, Any]:
    """Write the archive to ``output`` (via ``output.partial``, renamed when complete)."""
    from tessera import __version__

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    created_at = datetime.now(UTC)
    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix=".tessera-backup-", dir=output.parent) as work:
        member = PG_MEMBER if settings.is_postgres else SQLITE_MEMBER
        db_copy = Path(work) / member
        with err.status("Copying the database ..."):
            if settings.is_postgres:
                applied = _dump_postgres(settings, db_copy)
            else:
                applied = _copy_sqlite(settings, db_copy)
        # After the snapshot: every attachment row in it has its file on disk by now.
        attachments = list(_attachment_files(settings.data_dir))
        total = db_copy.stat().st_size + sum(p.stat().st_size for p in attachments)
        root = settings.data_dir / ATTACHMENTS
        try:
            with _progress() as bar, tarfile.open(partial, "w:gz", compresslevel=6) as tar:
                task = bar.add_task("Writing the archive", total=total)
                sources = [
                    (member, db_copy),
                    *((f"{ATTACHMENTS}/{p.relative_to(root).as_posix()}", p) for p in attachments),
                ]
                for name, path in sources:
                    info = tar.gettarinfo(str(path), arcname=name)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    with path.open("rb") as fh:
                        reader = _HashingReader(fh, lambda n: bar.advance(task, n))
                        tar.addfile(info, reader)  # type: ignore[arg-type]
                    files[name] = {"size": info.size, "sha256": reader.digest.hexdigest()}
                manifest = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "product_version": __version__,
                    "created_at": created_at.isoformat(),
                    "engine": engine_name(settings),
                    "search_backend": settings.search_backend,
                    "plugins": enabled_plugins(settings),
                    "migrations": applied,
                    "search_index": "rebuilt from the database on restore",
                    "files": files,
                }
                data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size = len(data)
                info.mtime = int(created_at.timestamp())
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
            with partial.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def backup(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Archive to write (.tar.gz), or a directory (a name without an extension) for "
            "tessera-backup-<UTC time>.tar.gz",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Write a consistent backup (database, attachments, manifest) to one .tar.gz, while the
    server keeps running."""
    from tessera.cli_kernel import load_cli_settings as _settings

    settings = _settings(config)
    target = output or default_output(Path.cwd())
    if target.is_dir() or not target.suffix:  # a directory, existing or not ("--output backups/")
        target.mkdir(parents=True, exist_ok=True)
        target = default_output(target)
    if target.exists():
        err.print(f"[red]{target} exists:[/red] choose another --output (or a directory)")
        raise typer.Exit(EXIT_REFUSED)
    try:
        manifest = create_backup(settings, target)
    except BackupError as exc:
        err.print(f"[red]Backup failed:[/red] {exc}")
        raise typer.Exit(exc.code) from exc
    n_files = sum(1 for f in manifest["files"] if f.startswith(f"{ATTACHMENTS}/"))
    console.print(
        f"[green]Backup written[/green] to {target} ({target.stat().st_size:,} bytes; "
        f"{manifest['engine']} database, {n_files} attachment file(s), "
        f"{len(manifest['migrations'])} migrations applied)"
    )


# --------------------------------------------------------------------------- restore


def _safe_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"The archive holds an unsafe path {name!r}: not a Tessera backup", EXIT_ARCHIVE)
    return path


def unpack(archive: Path, staging: Path) -> dict[str, Any]:
    """Extract ``archive`` into ``staging``, checking the manifest and every checksum."""
    if not archive.is_file():
        raise BackupError(f"No such file: {archive}", EXIT_ARCHIVE)
    digests: dict[str, tuple[int, str]] = {}
    manifest_bytes: bytes | None = None
    try:
        with _progress() as bar, tarfile.open(archive, "r:gz") as tar:
            task = bar.add_task("Reading and checking the archive", total=archive.stat().st_size)
            raw = tar.fileobj
            for member in tar:
                if raw is not None:
                    bar.update(task, completed=min(raw.tell(), archive.stat().st_size))
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BackupError(f"The archive holds {member.name!r}, not a regular file", EXIT_ARCHIVE)
                rel = _safe_member_path(member.name)
                source = tar.extractfile(member)
                assert source is not None
                if member.name == MANIFEST:
                    manifest_bytes = source.read()
                    continue
                target = staging.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                size = 0
                with target.open("wb") as out:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                digests[member.name] = (size, digest.hexdigest())
            bar.update(task, completed=archive.stat().st_size)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{archive} is damaged or not a Tessera backup: {exc}", EXIT_ARCHIVE) from exc
    if manifest_bytes is None:
        raise BackupError(f"{archive} has no {MANIFEST}: not a Tessera backup", EXIT_ARCHIVE)
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise BackupError(f"{MANIFEST} is damaged: {exc}", EXIT_ARCHIVE) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is not a Tessera backup", EXIT_ARCHIVE)
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise BackupError(
            f"The backup has format version {manifest['format_version']} (Tessera "
            f"{manifest.get('product_version')}); this Tessera reads up to {FORMAT_VERSION}: "
            "upgrade it first",
            EXIT_ARCHIVE,
        )
    listed: dict[str, Any] = manifest.get("files") or {}
    missing = sorted(set(listed) - set(digests))
    extra = sorted(set(digests) - set(listed))
    bad = sorted(
        name
        for name, (size, sha) in digests.items()
        if name in listed and (listed[name].get("sha256") != sha or listed[name].get("size") != size)
    )
    if missing or extra or bad:
        problems = [
            f"checksum mismatch: {', '.join(bad[:5])}" if bad else "",
            f"missing: {', '.join(missing[:5])}" if missing else "",
            f"not in the manifest: {', '.join(extra[:5])}" if extra else "",
        ]
        raise BackupError(
            f"{archive} is damaged ({'; '.join(p for p in problems if p)}): nothing was restored",
            EXIT_ARCHIVE,
        )
    return manifest


def _check_target(settings: Settings, force: bool) -> None:
    """Refuse to overwrite a database or attachments that hold data, unless ``force``."""
    reasons: list[str] = []
    if settings.is_postgres:
        rows = _pg_rows(settings, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'")
        if rows[0]["n"]:
            reasons.append(f"the database {_safe_url(settings)} has {rows[0]['n']} table(s)")
    else:
        path = sqlite_path(settings)
        if path.is_file() and path.stat().st_size:
            conn = sqlite3.connect(path, timeout=30)
            try:
                n = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            except sqlite3.DatabaseError:
                n = 1  # not even a readable database: still something we would destroy
            finally:
                conn.close()
            if n:
                reasons.append(f"the database {path} has {n} table(s)")
    if any(_attachment_files(settings.data_dir)):
        reasons.append(f"{settings.data_dir / ATTACHMENTS} holds files")
    if reasons and not force:
        raise BackupError(
            f"The target is not empty ({'; '.join(reasons)}). Restoring replaces it: stop the "
            "server and pass --force to overwrite it, or configure an empty data directory / database"
        )


def _restore_sqlite(settings: Settings, staged: Path) -> None:
    target = sqlite_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.move(str(staged), target)
    from tessera.db import prepare_sqlite_file

    prepare_sqlite_file(str(target))


def _restore_postgres(settings: Settings, staged: Path) -> None:
    _run_tool(
        [
            pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={_pg_env(settings)['PGDATABASE']}",
            str(staged),
        ],
        settings,
        "pg_restore",
    )


def _restore_attachments(settings: Settings, staging: Path) -> int:
    source = staging / ATTACHMENTS
    if not source.is_dir():
        return 0
    placed = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        target = settings.data_dir / ATTACHMENTS / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():  # content-addressed: an existing file has these very bytes
            shutil.move(str(path), target)
            placed += 1
    return placed


async def _after_restore(pm: Any, settings: Settings) -> int:
    """Migrate, point attachment rows at this data directory, rebuild the search index."""
    from tessera import db
    from tessera.cli_kernel import migrate_all as _migrate
    from tessera.search import service

    await _migrate(pm)
    # Rows store absolute file:// URLs of the data directory they were uploaded to.
    prefix = (settings.data_dir / ATTACHMENTS).resolve().as_uri()
    async with db.transaction():
        await db.raw(
            "UPDATE attachment SET storage_url = "
            "CAST({} AS TEXT) || '/' || substr(sha256, 1, 2) || '/' || sha256 "
            "WHERE storage_url LIKE 'file:%'",
            prefix,
        )
    s = service.searcher()
    with Progress(
        TextColumn("[bold]Rebuilding the search index[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("reindex", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        written = 0
        if await s.open():
            written = await service.reindex(progress=progress)
            await s.mark_built()
        await service.drain_pending()
    return written


def restore_archive(settings: Settings, archive: Path, force: bool) -> dict[str, Any]:
    """Check, then put the backup in place; returns the manifest. Booting and migrating is the
    caller's (``restore``) second step."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tessera-restore-", dir=settings.data_dir.resolve().parent))
    try:
        manifest = unpack(archive, staging)
        engine = engine_name(settings)
        if manifest.get("engine") != engine:
            names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
            raise BackupError(
                f"This backup is of a {names.get(manifest.get('engine'), manifest.get('engine'))} "
                f"database, but the configured database is {names[engine]} ({_safe_url(settings)}). "
                "Restore it with a configuration of the same engine.",
                EXIT_ARCHIVE,
            )
        _check_target(settings, force)
        missing = [p for p, v in manifest.get("plugins", {}).items() if p not in enabled_plugins(settings)]
        if missing:
            err.print(
                f"[yellow]Warning:[/yellow] the backup was taken with plugin(s) {', '.join(missing)} "
                "enabled, which are not enabled here; their data is restored but unused"
            )
        with err.status("Restoring the database ..."):
            if settings.is_postgres:
                _restore_postgres(settings, staging / PG_MEMBER)
            else:
                _restore_sqlite(settings, staging / SQLITE_MEMBER)
        _restore_attachments(settings, staging)
        if settings.search_backend == "whoosh":
            # Rebuilt from the restored database by the next step (see the module docstring).
            shutil.rmtree(settings.data_dir / "search" / "whoosh", ignore_errors=True)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def restore(
    archive: Annotated[Path, typer.Argument(help="A .tar.gz written by tessera backup")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a database / attachments that hold data")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Restore a backup into the configured database and data directory (stop the server
    first), then apply pending migrations and rebuild the search index."""
    from tessera import migrations
    from tessera.cli_kernel import load_cli_settings as _settings
    from tessera.cli_kernel import run_kernel as _run

    settings = _settings(config)
    try:
        manifest = restore_archive(settings, archive, force)
    except BackupError as exc:
        err.print(
            f"[red]Restore refused:[/red] {exc}"
            if exc.code != EXIT_DATABASE
            else f"[red]Restore failed:[/red] {exc}"
        )
        raise typer.Exit(exc.code) from exc
    try:
        written = _run(settings, lambda pm: _after_restore(pm, settings))
    except migrations.MigrationError as exc:
        err.print(f"[red]The backup was restored but migrating it failed:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc
    console.print(
        f"[green]Restored[/green] the backup of {manifest['created_at']} (Tessera "
        f"{manifest.get('product_version')}) into {_safe_url(settings)}; "
        f"{written} document(s) indexed for search"
    )
