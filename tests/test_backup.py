"""``tessera backup`` / ``tessera restore`` (issue 13.12): a backup taken while the server
writes brings back every write acknowledged before it started, searchable, with its files.

The real server (``tessera serve`` in a child process) takes party creates from four
concurrent clients; ``tessera backup`` runs as a subprocess while they keep writing; the
archive is restored into a fresh data directory (SQLite) or a fresh database (PostgreSQL) and
served again.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import random
import sqlite3
import string
import sys
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tessera.db import database_url_for, execute_on_server
from tessera_sdk.live import LiveServer
from tessera_sdk.testing import postgres_url

WRITERS = 4
#: Parties acknowledged before the backup starts (then the writers go on during it).
ACKS_BEFORE_BACKUP = 30


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


async def _tessera(cwd: Path, data_dir: Path, database_url: str | None, *args: str) -> Run:
    """``tessera ARGS`` in a child process, configured by environment variables only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env |= {
        "TESSERA_CONFIG": str(cwd / "absent-tessera.toml"),
        "TESSERA_DATA_DIR": str(data_dir),
        "TESSERA_PLUGINS": "",
        "COLUMNS": "200",
    }
    if database_url:
        env["TESSERA_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tessera.cli",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(12))


async def _writer(
    client: httpx.AsyncClient, rng: random.Random, acked: dict[int, Any], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        r = await client.post("/api/parties", json={"name": f"{_word(rng).capitalize()} Trading"})
        assert r.status_code == 201, r.text
        acked[r.json()["id"]] = r.json()


async def _fresh_target(crm: Any, tmp_path: Path) -> tuple[Path, str | None, str | None]:
    """(data dir, database URL, PostgreSQL database to drop) of an empty restore target."""
    if crm.backend == "sqlite":
        return tmp_path / "restored", None, None
    base = postgres_url()
    assert base
    name = f"tessera_restore_{uuid.uuid4().hex[:10]}"
    await execute_on_server(base, f'CREATE DATABASE "{name}"')
    return tmp_path / "restored", database_url_for(base, name), name


async def test_backup_under_concurrent_writes_restores_every_acknowledged_write(crm, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    url = crm.settings.resolved_database_url
    live_dir = crm.settings.data_dir / "live"
    server = LiveServer(url, live_dir)
    await asyncio.to_thread(server.start)
    acked: dict[int, Any] = {}
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=admin["headers"], timeout=30.0) as client:
            party = (await client.post("/api/parties", json={"name": "Attachment Holder"})).json()
            content = os.urandom(50_000)
            r = await client.post(
                "/api/attachments/upload",
                files={"file": ("contract.pdf", content, "application/pdf")},
                data={"party_id": str(party["id"])},
            )
            assert r.status_code == 201, r.text
            attachment = r.json()

            rng = random.Random(1312)
            writers = [
                asyncio.create_task(_writer(client, random.Random(rng.random()), acked, stop))
                for _ in range(WRITERS)
            ]
            while len(acked) < ACKS_BEFORE_BACKUP:
                assert not any(w.done() for w in writers), [w.exception() for w in writers if w.done()]
                await asyncio.sleep(0.01)
            before = dict(acked)  # every one of these committed before the backup process exists
            archive = tmp_path / "backup.tar.gz"
            backup = await _tessera(tmp_path, live_dir, url, "backup", "--output", str(archive))
            during = len(acked) - len(before)
            stop.set()
            await asyncio.gather(*writers)
        assert backup.returncode == 0, backup.stderr
        assert during > 0, "the writers must have kept writing while the backup ran"
        assert "Backup written" in backup.stdout

        # The running server's own data is not a valid target without --force.
        refused = await _tessera(tmp_path, live_dir, url, "restore", str(archive))
        assert refused.returncode == 1 and "not empty" in refused.stderr, refused.stderr
        assert (await asyncio.to_thread(httpx.get, f"{server.url}/api/health")).status_code == 200
    finally:
        stop.set()
        server.stop()

    data_dir, target_url, pg_name = await _fresh_target(crm, tmp_path)
    try:
        restored = await _tessera(tmp_path, data_dir, target_url, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr + restored.stdout
        if crm.backend == "sqlite":
            conn = sqlite3.connect(data_dir / "tessera.sqlite3")
            try:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            finally:
                conn.close()
        again = LiveServer(target_url or f"sqlite:///{data_dir / 'tessera.sqlite3'}", data_dir)
        await asyncio.to_thread(again.start)
        try:
            async with httpx.AsyncClient(
                base_url=again.url, headers=admin["headers"], timeout=30.0
            ) as client:
                for party_id, body in before.items():
                    r = await client.get(f"/api/parties/{party_id}")
                    assert r.status_code == 200, f"party {party_id} acknowledged before the backup is lost"
                    assert r.json() == body
                    word = body["name"].split()[0]
                    hits = (await client.get("/api/search", params={"q": word, "type": "party"})).json()
                    assert party_id in {h["id"] for h in hits["hits"]}, f"party {party_id} is not searchable"
                r = await client.get(f"/api/attachments/{attachment['id']}/content")
                assert r.status_code == 200, r.text
                assert r.content == content
        finally:
            again.stop()
    finally:
        if pg_name:
            await execute_on_server(postgres_url() or "", f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


def _rewrite(archive: Path, damaged: Path, member: str) -> None:
    """Copy ``archive`` with one byte of ``member`` changed (the manifest left as it was)."""
    out = io.BytesIO()
    with tarfile.open(archive, "r:gz") as src, tarfile.open(fileobj=out, mode="w") as dst:
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == member:
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            dst.addfile(info, io.BytesIO(data))
    damaged.write_bytes(gzip.compress(out.getvalue()))


async def test_restore_refuses_a_damaged_archive_and_another_engine(crm, tmp_path: Path) -> None:
    await crm.user("admin")
    url = crm.settings.resolved_database_url
    archive = tmp_path / "backup.tar.gz"
    made = await _tessera(tmp_path, crm.settings.data_dir, url, "backup", "--output", str(archive))
    assert made.returncode == 0, made.stderr
    target = tmp_path / "target"
    member = "database.sqlite3" if crm.backend == "sqlite" else "database.pgdump"

    damaged = tmp_path / "damaged.tar.gz"
    _rewrite(archive, damaged, member)
    run = await _tessera(tmp_path, target, None, "restore", str(damaged))
    assert run.returncode == 2, run.stderr
    assert "checksum mismatch" in run.stderr and member in run.stderr
    assert not (target / "tessera.sqlite3").exists(), "nothing is restored from a damaged archive"

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    run = await _tessera(tmp_path, target, None, "restore", str(truncated))
    assert run.returncode == 2 and "damaged" in run.stderr, run.stderr
    assert not (target / "tessera.sqlite3").exists()

    # The other engine: refused before it connects to anything.
    other = None if crm.backend == "postgres" else "postgresql://postgres@127.0.0.1:1/nowhere"
    run = await _tessera(tmp_path, target, other, "restore", str(archive))
    assert run.returncode == 2, run.stderr
    expected = "backup is of a SQLite" if crm.backend == "sqlite" else "backup is of a PostgreSQL"
    assert expected in " ".join(run.stderr.split()), run.stderr
    assert not (target / "tessera.sqlite3").exists()


#: A kernel migration a backup from an older Tessera lacks (idempotent: GIN indexes on
#: PostgreSQL, nothing on SQLite).
LATER_MIGRATION = "2026-11-26T14:38:44:000000"


async def _restored_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import asyncpg

    pg = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await pg.fetch(sql)]
    finally:
        await pg.close()


async def test_restoring_a_backup_of_an_older_version_brings_it_up_to_date(crm, tmp_path: Path) -> None:
    from tessera import db

    await db.raw("DELETE FROM migration WHERE name = {}", LATER_MIGRATION)
    if crm.backend == "postgres":
        await db.raw("DROP INDEX IF EXISTS search_document_acl_users_gin")
    archive = tmp_path / "older.tar.gz"
    made = await _tessera(
        tmp_path, crm.settings.data_dir, crm.settings.resolved_database_url, "backup", "-o", str(archive)
    )
    assert made.returncode == 0, made.stderr
    with tarfile.open(archive) as tar:
        manifest = tar.extractfile("manifest.json").read().decode()  # type: ignore[union-attr]
    assert LATER_MIGRATION not in manifest

    data_dir, target_url, pg_name = await _fresh_target(crm, tmp_path)
    url = target_url or f"sqlite:///{data_dir / 'tessera.sqlite3'}"
    try:
        run = await _tessera(tmp_path, data_dir, target_url, "restore", str(archive))
        assert run.returncode == 0, run.stderr
        applied = await _restored_rows(url, f"SELECT name FROM migration WHERE name = '{LATER_MIGRATION}'")
        assert applied == [(LATER_MIGRATION,)]
        if crm.backend == "postgres":
            index = "SELECT indexname FROM pg_indexes WHERE indexname = 'search_document_acl_users_gin'"
            assert await _restored_rows(url, index) == [("search_document_acl_users_gin",)]
    finally:
        if pg_name:
            await execute_on_server(postgres_url() or "", f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
