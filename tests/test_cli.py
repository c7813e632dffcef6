"""The real ``tessera`` command in a subprocess, in a temporary working directory, against a
fresh SQLite file or a throwaway PostgreSQL database: init, migrate (idempotent, runs a newly
enabled plugin's migrations), users, plugins, worker, demo, serve, and broken plugins."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from tessera_sdk.testing import _db_url, _pg_admin, drop_test_database, postgres_url

TESSERA = str(Path(sys.executable).with_name("tessera"))


@dataclass
class Cli:
    cwd: Path
    env: dict[str, str]
    backend: str
    database_url: str | None

    def run(self, *args: str, plugins: str | None = "", extra_env: dict[str, str] | None = None) -> Any:
        env = dict(self.env)
        if plugins is not None:
            env["TESSERA_PLUGINS"] = plugins
        env.update(extra_env or {})
        return subprocess.run(
            [TESSERA, *args], cwd=self.cwd, env=env, capture_output=True, text=True, timeout=300
        )

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            con = sqlite3.connect(self.cwd / "data" / "tessera.sqlite3")
            try:
                return list(con.execute(sql).fetchall())
            finally:
                con.close()
        import asyncpg

        assert self.database_url
        p = urlparse(self.database_url)
        conn = await asyncpg.connect(
            host=p.hostname, port=p.port or 5432, user=p.username or "postgres", database=p.path[1:]
        )
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def table_exists(self, name: str) -> bool:
        if self.backend == "sqlite":
            rows = await self.query(f"SELECT name FROM sqlite_master WHERE type='table' AND name='{name}'")
        else:
            rows = await self.query(f"SELECT to_regclass('{name}') WHERE to_regclass('{name}') IS NOT NULL")
        return bool(rows)


@pytest.fixture
async def cli(backend: str, tmp_path: Path) -> AsyncIterator[Cli]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TESSERA_SECURE_COOKIES": "0"})
    database_url = None
    name = None
    if backend == "postgres":
        base = postgres_url()
        assert base
        name = f"tessera_cli_{uuid.uuid4().hex[:10]}"
        await _pg_admin(base, f'CREATE DATABASE "{name}"')
        database_url = _db_url(base, name)
        env["TESSERA_DATABASE_URL"] = database_url
    try:
        yield Cli(cwd=tmp_path, env=env, backend=backend, database_url=database_url)
    finally:
        if name:
            drop_test_database(name)  # in the background (tessera_sdk.testing)


def _ok(result: Any) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return str(result.stdout)


# --------------------------------------------------------------------------- init / migrate


async def test_init_creates_config_schema_and_first_admin(cli: Cli) -> None:
    out = _ok(cli.run("init", "--admin-email", "Boss@Example.com", "--admin-password", "long-enough-pw"))
    assert "Initialised" in out and "Admin Boss@Example.com is ready" in out
    assert 'plugins = ["all"]' in (cli.cwd / "tessera.toml").read_text(encoding="utf-8")
    assert await cli.table_exists("party")
    rows = await cli.query(
        "SELECT u.email, r.name FROM crm_user u JOIN user_role ur ON ur.user_id = u.id "
        "JOIN role r ON r.id = ur.role_id"
    )
    assert rows == [("boss@example.com", "admin")]
    # Running it again changes nothing and does not fail.
    _ok(cli.run("init", "--admin-email", "boss@example.com", "--admin-password", "long-enough-pw"))
    assert len(await cli.query("SELECT id FROM crm_user")) == 1


async def test_migrate_is_idempotent_and_runs_newly_enabled_plugin(cli: Cli) -> None:
    out = _ok(cli.run("migrate", plugins=""))
    assert "Database is up to date" in out
    assert await cli.table_exists("job")
    assert not await cli.table_exists("probe_mark")  # a disabled plugin touches no tables
    migrations_before = await cli.query("SELECT app_name, name FROM migration ORDER BY id")
    _ok(cli.run("migrate", plugins=""))
    assert await cli.query("SELECT app_name, name FROM migration ORDER BY id") == migrations_before
    jobs = [r[0] for r in await cli.query("SELECT name FROM job ORDER BY name")]
    assert "probe.heartbeat" not in jobs and "kernel.purge_sessions" in jobs

    # Enabling the plugin later: migrate creates its table and records its jobs.
    _ok(cli.run("migrate", plugins="probe"))
    assert await cli.table_exists("probe_mark")
    assert ("probe.heartbeat",) in await cli.query("SELECT name FROM job")
    _ok(cli.run("migrate", plugins="probe"))
    assert [r[0] for r in await cli.query("SELECT app_name FROM migration")].count("probe") == 1


async def test_migrate_stores_the_process_templates_plugins_ship_once(cli: Cli) -> None:
    _ok(cli.run("migrate", plugins="sales"))
    _ok(cli.run("migrate", plugins="sales"))
    rows = await cli.query("SELECT key, version FROM workflow_template ORDER BY key")
    assert ("sales.b2b", 1) in rows  # stored at deploy time, and not again when unchanged
    assert [key for key, _ in rows].count("sales.b2b") == 1


async def test_database_url_password_is_not_printed(cli: Cli) -> None:
    if cli.backend != "postgres":
        pytest.skip("only a PostgreSQL URL carries credentials")
    assert cli.database_url
    p = urlparse(cli.database_url)
    with_secret = cli.database_url.replace(f"{p.username}@", f"{p.username}:s3cret-pw@")
    result = cli.run("migrate", extra_env={"TESSERA_DATABASE_URL": with_secret})
    assert "s3cret-pw" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- users


async def test_users_create_list_and_token(cli: Cli) -> None:
    _ok(cli.run("migrate"))
    out = _ok(
        cli.run(
            "users",
            "create",
            "first@example.com",
            "--name",
            "First Admin",
            "--password",
            "pw-123456789",
            "--role",
            "admin",
        )
    )
    assert "Created user" in out and "first@example.com" in out
    listing = _ok(cli.run("users", "list"))
    assert "first@example.com" in listing and "admin" in listing
    token = _ok(
        cli.run("users", "token", "first@example.com", "--name", "ci", "--scope", "party.read")
    ).strip()
    assert token.startswith("tsr_")
    rows = await cli.query("SELECT name, token_hash FROM api_token")
    assert [r[0] for r in rows] == ["ci"] and rows[0][1] != token

    short = cli.run("users", "create", "weak@example.com", "--name", "Weak", "--password", "short")
    assert short.returncode == 1
    assert "password" in short.stderr
    dup = cli.run("users", "create", "FIRST@example.com", "--name", "Again", "--password", "pw-123456789")
    assert dup.returncode == 1
    missing = cli.run("users", "token", "nobody@example.com")
    assert missing.returncode == 1 and "No user nobody@example.com" in missing.stderr


async def test_created_admin_can_sign_in_through_the_api(cli: Cli) -> None:
    """The CLI's first admin works in the app: the password hash is real argon2."""
    _ok(cli.run("migrate"))
    _ok(
        cli.run(
            "users",
            "create",
            "root@example.com",
            "--name",
            "Root",
            "--password",
            "pw-123456789",
            "--role",
            "admin",
        )
    )
    import httpx
    from tessera import db
    from tessera.app import create_app, startup
    from tessera.config import Settings

    settings = Settings(
        data_dir=cli.cwd / "data",
        database_url=cli.database_url or "",
        plugins=(),
        secure_cookies=False,
    )
    app = create_app(settings)
    await startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post(
                "/api/auth/login", json={"email": "root@example.com", "password": "pw-123456789"}
            )
            assert r.status_code == 200, r.text
            me = await client.get("/api/auth/me")
            assert me.json()["permissions"] == ["*"]
    finally:
        await db.stop()


# --------------------------------------------------------------------------- plugins


def test_plugins_list_shows_installed_and_enabled(cli: Cli) -> None:
    enabled = _ok(cli.run("plugins", "list", plugins="probe"))
    line = next(line for line in enabled.splitlines() if " probe " in line)
    assert "tessera-probe" in line and "yes" in line
    disabled = _ok(cli.run("plugins", "list", plugins=""))
    line = next(line for line in disabled.splitlines() if " probe " in line)
    assert "tessera-probe" in line and "yes" not in line and "no" in line
    missing = _ok(cli.run("plugins", "list", plugins="probe,ghost"))
    line = next(line for line in missing.splitlines() if " ghost " in line)
    assert "not installed" in line


def _fake_plugin(root: Path, entry: str, module: str, source: str) -> dict[str, str]:
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[tessera.plugins]\n{entry} = {module}\n", encoding="utf-8")
    return {"PYTHONPATH": str(root)}


def test_plugin_that_raises_at_load_fails_start_up_naming_it(cli: Cli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    env = _fake_plugin(site, "kaput", "tessera_kaput", "raise ImportError('no module named foo_sdk')\n")
    for command in (["migrate"], ["worker", "--once"], ["serve", "--port", "1"]):
        result = cli.run(*command, plugins="kaput", extra_env=env)
        assert result.returncode == 3, (command, result.stdout, result.stderr)
        assert "'kaput'" in result.stderr and "foo_sdk" in result.stderr
        assert "Traceback" not in result.stderr
    listed = _ok(cli.run("plugins", "list", plugins="", extra_env=env))
    assert any(" kaput " in line for line in listed.splitlines())
    # Disabled, the broken plugin is not even imported.
    _ok(cli.run("migrate", plugins="", extra_env=env))


def test_enabled_but_missing_plugin_fails_with_a_clear_message(cli: Cli) -> None:
    result = cli.run("migrate", plugins="ghost")
    assert result.returncode == 3
    assert "ghost" in result.stderr and "not installed" in result.stderr


# --------------------------------------------------------------------------- worker


async def test_worker_once_runs_due_jobs_and_records_them(cli: Cli) -> None:
    _ok(cli.run("migrate", plugins="probe"))
    out = _ok(cli.run("worker", "--once", plugins="probe"))
    assert "probe.heartbeat" in out and "kernel.purge_sessions" in out
    rows = await cli.query("SELECT job_name, outcome FROM job_run WHERE job_name = 'probe.heartbeat'")
    assert rows == [("probe.heartbeat", "ok")]
    assert len(await cli.query("SELECT id FROM probe_mark WHERE kind = 'heartbeat'")) == 1
    # Nothing is due again right away: a second run does not repeat the heartbeat.
    out = _ok(cli.run("worker", "--once", plugins="probe"))
    assert "probe.heartbeat" not in out
    # With the plugin disabled the worker never runs its job.
    out = _ok(cli.run("worker", "--once", plugins=""))
    assert "probe" not in out


# --------------------------------------------------------------------------- demo


async def test_demo_loads_kernel_and_plugin_data_with_progress(cli: Cli) -> None:
    result = cli.run("demo", "--no-serve", plugins="probe")
    out = _ok(result)
    assert "Demo: clients and history" in out and "100%" in out  # the progress bar
    assert "admin@example.com" in out
    parties = (await cli.query("SELECT count(*) FROM party"))[0][0]
    assert parties >= 20
    assert (await cli.query("SELECT count(*) FROM activity"))[0][0] > parties
    demo_marks = await cli.query("SELECT detail FROM probe_mark WHERE kind = 'demo'")
    assert demo_marks == [(str(parties),)]
    # The demo admin can sign in with the printed password.
    users = await cli.query("SELECT email FROM crm_user WHERE email = 'admin@example.com'")
    assert users == [("admin@example.com",)]
    # Loading again does not duplicate the data.
    _ok(cli.run("demo", "--no-serve", plugins="probe"))
    assert (await cli.query("SELECT count(*) FROM party"))[0][0] == parties


# --------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_migrates_and_answers(cli: Cli) -> None:
    import httpx

    port = _free_port()
    env = {**cli.env, "TESSERA_PLUGINS": "probe"}
    proc = await asyncio.create_subprocess_exec(
        TESSERA,
        "serve",
        "--port",
        str(port),
        cwd=cli.cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = None
        async with httpx.AsyncClient() as client:
            for _ in range(600):  # wait for start-up (bounded), not a timing assertion
                if proc.returncode is not None:
                    break
                try:
                    r = await client.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                    body = r.text
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert body is not None, "the server never answered"
        assert '"ok"' in body
        assert await cli.table_exists("probe_mark")  # serve applied the migrations first
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def test_serve_reads_the_config_file_it_was_given(cli: Cli, tmp_path: Path) -> None:
    """Settings that only the file carries (here: the lockout threshold) reach the server."""
    import httpx

    _ok(cli.run("migrate"))
    _ok(cli.run("users", "create", "u@example.com", "--name", "U", "--password", "pw-123456789"))
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    config = conf_dir / "tessera.toml"
    config.write_text(
        f'[tessera]\ndata_dir = "{cli.cwd / "data"}"\nplugins = []\nlogin_max_failures = 2\n',
        encoding="utf-8",
    )
    port = _free_port()
    env = {k: v for k, v in cli.env.items() if k != "TESSERA_PLUGINS"}
    proc = await asyncio.create_subprocess_exec(
        TESSERA,
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        cwd=cli.cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        statuses: list[int] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(600):  # bounded wait for start-up
                if proc.returncode is not None:
                    break
                try:
                    await client.get("/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            for _ in range(3):
                r = await client.post(
                    "/api/auth/login", json={"email": "u@example.com", "password": "wrong-password"}
                )
                statuses.append(r.status_code)
        assert statuses == [401, 401, 429]
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


def test_init_refuses_admin_without_password_before_touching_anything(cli: Cli) -> None:
    result = cli.run("init", "--admin-email", "boss@example.com")
    assert result.returncode == 2
    assert "--admin-password is required" in result.stdout + result.stderr
    assert not (cli.cwd / "tessera.toml").exists()
    assert not (cli.cwd / "data" / "tessera.sqlite3").exists()


def test_unreachable_database_is_a_clear_message(cli: Cli) -> None:
    result = cli.run(
        "migrate", extra_env={"TESSERA_DATABASE_URL": "postgresql://postgres:pw@127.0.0.1:1/nowhere"}
    )
    assert result.returncode == 4
    assert "Cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr and ":pw@" not in result.stderr
