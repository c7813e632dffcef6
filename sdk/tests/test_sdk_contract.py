"""The plugin contract: every first-party plugin passes it (found automatically, so a new
plugin under plugins/ is covered without editing this file), the ``--tessera-contract``
option works as a plugin author runs it, and a plugin that breaks the rules fails it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tessera_sdk import contract

FIRST_PARTY = contract.first_party_plugins()


def test_first_party_plugins_are_found() -> None:
    assert "probe" in FIRST_PARTY


@pytest.mark.parametrize("check", sorted(contract.CHECKS))
@pytest.mark.parametrize("plugin", FIRST_PARTY)
def test_first_party_plugin_passes_the_contract(plugin: str, check: str, tmp_path: Path) -> None:
    contract.CHECKS[check](plugin, tmp_path)


def _pytest(args: list[str], cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "PYTEST_"))}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_contract_option_runs_the_suite_against_a_named_plugin(tmp_path: Path) -> None:
    done = _pytest(["--tessera-contract", "tessera_probe"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"(\d+) passed", done.stdout)
    # six checks, the migration one on SQLite and (with CRM_TEST_POSTGRES) on PostgreSQL
    assert passed and int(passed.group(1)) >= 6 and "failed" not in done.stdout, done.stdout


def test_a_plugin_breaking_the_rules_fails_the_contract(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "tessera_badplug"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(
        textwrap.dedent(
            """
            from datetime import timedelta

            from tessera import audit
            from tessera.hookspecs import hookimpl
            from tessera.scheduler import JobSpec


            async def tick(ctx):
                await audit.record("tick", "badplug", None)  # a new row on every run


            @hookimpl
            def tessera_jobs():
                return [JobSpec("badplug.tick", tick, every=timedelta(minutes=1))]


            @hookimpl
            def tessera_permissions():
                return {"tick": "no plugin prefix"}
            """
        )
    )
    dist = site / "tessera_badplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tessera-badplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tessera.plugins]\nbadplug = tessera_badplug.plugin\n")
    work = tmp_path / "work"
    work.mkdir()
    done = _pytest(["--tessera-contract", "tessera-badplug", "-rf"], cwd=work, pythonpath=site)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "job 'badplug.tick' is not idempotent" in done.stdout
    assert "permission 'tick' must look like 'badplug.thing.action'" in done.stdout
    assert "2 failed" in done.stdout


def test_a_plugin_writing_without_audit_fails_the_contract(tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "tessera_forgetful"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(
        textwrap.dedent(
            '''
            from litestar import post
            from tessera import clock
            from tessera.entities.tables import Notification
            from tessera.hookspecs import hookimpl
            from tessera.permissions import Principal


            @post("/pings", operation_id="forgetful_ping", status_code=201)
            async def ping(principal: Principal) -> dict:
                """Writes a row and no audit entry."""
                await Notification.insert(
                    Notification(user_id=principal.user_id, kind="ping", title="ping", created_at=clock.now())
                )
                return {}


            @hookimpl
            def tessera_routes():
                return [ping]


            @hookimpl
            def tessera_permissions():
                return {"forgetful.ping": "Ping"}
            '''
        )
    )
    dist = site / "tessera_forgetful-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tessera-forgetful\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tessera.plugins]\nforgetful = tessera_forgetful.plugin\n")
    work = tmp_path / "work"
    work.mkdir()
    done = _pytest(
        ["--tessera-contract", "tessera-forgetful", "-rf", "-k", "writes_are_audited"],
        cwd=work,
        pythonpath=site,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "POST /api/forgetful/pings answered 201 but wrote no audit entry" in done.stdout
