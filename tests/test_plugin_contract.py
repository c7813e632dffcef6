"""The plugin contract, proved with the test-only ``probe`` plugin (installed in the test
environment through its ``tessera.plugins`` entry point): enabled, its table exists, its route
answers, its permission is known, its job runs in the worker, its events arrive, its timeline
item is on the client card; disabled, none of that happens. Broken plugins fail start-up with
a message naming them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tessera import db, scheduler
from tessera.app import create_app
from tessera.config import Settings, load_settings
from tessera.entities.tables import JobRun
from tessera.hookspecs import hookimpl
from tessera.plugins import PluginError, get_plugin_manager, installed_plugins


async def _table_exists(name: str) -> bool:
    if db.is_postgres():
        rows = await db.raw("SELECT to_regclass({}) IS NOT NULL AS found", name)
        return bool(rows[0]["found"])
    rows = await db.raw("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = {}", name)
    return rows[0]["n"] == 1


async def _probe_marks(crm: Any, admin: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    r = await crm.get("/api/probe/marks", admin, params={"kind": kind})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- enabled


@pytest.mark.plugins("probe")
async def test_enabled_plugin_table_route_and_permission(crm: Any) -> None:
    assert await _table_exists("probe_mark")
    admin = await crm.user("admin")
    manager = await crm.user("manager")
    assert (await crm.get("/api/probe/marks", admin)).status_code == 200
    assert (await crm.get("/api/probe/marks")).status_code == 401
    denied = await crm.get("/api/probe/marks", manager)
    assert denied.status_code == 403
    assert "probe.read" in denied.json()["detail"]

    permissions = (await crm.get("/api/permissions", admin)).json()
    assert permissions["probe.read"] == "Read the probe's marks"
    role = await crm.post(
        "/api/roles", admin, json={"name": "prober", "permissions": ["probe.read"], "scope": "own"}
    )
    assert role.status_code == 201, role.text
    prober = await crm.user("prober")
    assert (await crm.get("/api/probe/marks", prober)).status_code == 200

    schema = (await crm.get("/schema/openapi.json")).json()
    assert "/api/probe/marks" in schema["paths"]
    plugins = {p["name"]: p for p in (await crm.get("/api/plugins", admin)).json()}
    assert plugins["probe"]["enabled"] and plugins["probe"]["installed"]


@pytest.mark.plugins("probe")
async def test_enabled_plugin_job_runs_in_the_worker(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin")
    await scheduler.sync_jobs(crm.pm)
    jobs = {j["name"]: j for j in (await crm.get("/api/jobs", admin)).json()}
    assert jobs["probe.heartbeat"]["plugin"] == "probe"
    assert jobs["probe.heartbeat"]["schedule"] == "every 300s"

    ran = await scheduler.tick(crm.pm, crm.settings, node="test-node")
    assert "probe.heartbeat" in ran
    marks = await _probe_marks(crm, admin, "heartbeat")
    assert [m["detail"] for m in marks] == [frozen_clock().isoformat()]
    runs = (await crm.get("/api/jobs/runs", admin, params={"job_name": "probe.heartbeat"})).json()
    assert [(r["outcome"], r["node"]) for r in runs] == [("ok", "test-node")]
    assert runs[0]["finished_at"] is not None


@pytest.mark.plugins("probe")
async def test_enabled_plugin_receives_events(crm: Any) -> None:
    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Evented"})).json()
    marks = await _probe_marks(crm, admin, "event")
    assert {"kind": "event", "party_id": party["id"], "detail": "party.created"} in marks


@pytest.mark.plugins("probe")
async def test_enabled_plugin_timeline_item_on_client_card(crm: Any) -> None:
    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Carded"})).json()
    card = await crm.get(f"/api/parties/{party['id']}/card", admin)
    assert card.status_code == 200, card.text
    probe_items = [i for i in card.json()["timeline"] if i["source"] == "probe"]
    assert [(i["kind"], i["title"]) for i in probe_items] == [
        ("probe.visit", f"Probe saw party {party['id']}")
    ]
    # Items are merged by time: the probe's item (400 days old) is last when newest first.
    assert card.json()["timeline"][-1]["source"] == "probe"


@pytest.mark.plugins("probe")
async def test_enabled_plugin_custom_field_is_validated(crm: Any) -> None:
    admin = await crm.user("admin")
    ok = await crm.post("/api/parties", admin, json={"name": "Scored", "custom": {"probe_score": 42}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["custom"] == {"probe_score": 42}
    bad = await crm.post("/api/parties", admin, json={"name": "Overscored", "custom": {"probe_score": 101}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "custom.probe_score"


# --------------------------------------------------------------------------- disabled


async def test_disabled_plugin_contributes_nothing(crm: Any, frozen_clock: Any) -> None:
    assert "probe" in installed_plugins()  # installed in the environment, not enabled here
    assert not await _table_exists("probe_mark")
    admin = await crm.user("admin")
    assert (await crm.get("/api/probe/marks", admin)).status_code == 404
    assert "probe.read" not in (await crm.get("/api/permissions", admin)).json()
    role = await crm.post(
        "/api/roles", admin, json={"name": "prober", "permissions": ["probe.read"], "scope": "own"}
    )
    assert role.status_code == 422
    schema = (await crm.get("/schema/openapi.json")).json()
    assert not [p for p in schema["paths"] if p.startswith("/api/probe")]

    await scheduler.sync_jobs(crm.pm)
    jobs = [j["name"] for j in (await crm.get("/api/jobs", admin)).json()]
    assert "probe.heartbeat" not in jobs and "kernel.redeliver_events" in jobs
    ran = await scheduler.tick(crm.pm, crm.settings)
    assert "probe.heartbeat" not in ran
    assert not await JobRun.exists().where(JobRun.job_name == "probe.heartbeat")

    party = (await crm.post("/api/parties", admin, json={"name": "Plain"})).json()
    card = (await crm.get(f"/api/parties/{party['id']}/card", admin)).json()
    assert [i for i in card["timeline"] if i["source"] != "kernel"] == []
    bad = await crm.post("/api/parties", admin, json={"name": "X", "custom": {"probe_score": 1}})
    assert bad.status_code == 422
    plugins = {p["name"]: p for p in (await crm.get("/api/plugins", admin)).json()}
    assert plugins["probe"] == {"name": "probe", "enabled": False, "installed": True, "version": "0.1.0"}


def test_plugins_setting_from_env_and_file(tmp_path: Path) -> None:
    toml = tmp_path / "tessera.toml"
    toml.write_text('[tessera]\nplugins = ["probe"]\n', encoding="utf-8")
    assert load_settings(toml, env={}).plugins == ("probe",)
    assert load_settings(toml, env={"TESSERA_PLUGINS": " sales , probe "}).plugins == ("sales", "probe")
    assert load_settings(toml, env={"TESSERA_PLUGINS": ""}).plugins == ()
    assert load_settings(tmp_path / "missing.toml", env={}).plugins == ("all",)


def test_all_enables_every_installed_plugin(tmp_path: Path) -> None:
    pm = get_plugin_manager(Settings(data_dir=tmp_path, plugins=("all",)))
    assert pm.has_plugin("probe")
    pm = get_plugin_manager(Settings(data_dir=tmp_path, plugins=()))
    assert not pm.has_plugin("probe")


# --------------------------------------------------------------------------- broken plugins


def _install_fake_distribution(root: Path, module: str, source: str, entry_name: str) -> None:
    """A real installed distribution on sys.path: module + dist-info with the entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[tessera.plugins]\n{entry_name} = {module}\n", encoding="utf-8")


def test_plugin_that_raises_at_import_fails_startup_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path,
        "tessera_kaput",
        "raise RuntimeError('kaput plugin cannot find its licence file')\n",
        "kaput",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tessera_kaput", raising=False)
    assert "kaput" in installed_plugins()
    settings = Settings(data_dir=tmp_path / "data", plugins=("kaput",))
    with pytest.raises(PluginError, match=r"'kaput'.*licence file"):
        create_app(settings)
    # Not enabled, it is not even imported.
    get_plugin_manager(settings.with_(plugins=()))


def _plugin(**hooks: Any) -> SimpleNamespace:
    return SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_misspelt_hook_fails_naming_the_plugin(tmp_path: Path) -> None:
    def tessera_rutes() -> list[Any]:
        return []

    settings = Settings(data_dir=tmp_path, plugins=("typo",), autoload_plugins=False)
    with pytest.raises(PluginError, match="'typo'"):
        get_plugin_manager(settings, {"typo": _plugin(tessera_rutes=tessera_rutes)})


def test_hook_with_wrong_arguments_fails_naming_the_plugin(tmp_path: Path) -> None:
    def tessera_timeline_items(party: int) -> list[Any]:
        return []

    settings = Settings(data_dir=tmp_path, plugins=("args",), autoload_plugins=False)
    with pytest.raises(PluginError, match="'args'"):
        get_plugin_manager(settings, {"args": _plugin(tessera_timeline_items=tessera_timeline_items)})


def test_plugin_raising_in_a_startup_hook_fails_app_creation_naming_it(tmp_path: Path) -> None:
    def tessera_routes() -> list[Any]:
        raise KeyError("ROUTES_TABLE")

    settings = Settings(
        data_dir=tmp_path / "data", plugins=("crashy",), autoload_plugins=False, secure_cookies=False
    )
    with pytest.raises(PluginError, match="'crashy' failed in tessera_routes"):
        create_app(settings, {"crashy": _plugin(tessera_routes=tessera_routes)})


def test_plugin_returning_the_wrong_table_declaration_fails_naming_it(tmp_path: Path) -> None:
    def tessera_tables() -> Any:
        return object()

    settings = Settings(data_dir=tmp_path / "data", plugins=("tabby",), autoload_plugins=False)
    with pytest.raises(PluginError, match=r"'tabby'.*tessera_tables"):
        create_app(settings, {"tabby": _plugin(tessera_tables=tessera_tables)})


def test_duplicate_job_name_fails_naming_the_plugin(tmp_path: Path) -> None:
    async def job(ctx: Any) -> None:
        return None

    def tessera_jobs() -> list[Any]:
        from datetime import timedelta

        return [scheduler.JobSpec("kernel.purge_sessions", job, every=timedelta(minutes=1))]

    settings = Settings(data_dir=tmp_path, plugins=("thief",), autoload_plugins=False)
    pm = get_plugin_manager(settings, {"thief": _plugin(tessera_jobs=tessera_jobs)})
    with pytest.raises(PluginError, match=r"'thief'.*already taken"):
        scheduler.collect_jobs(pm)


def test_enabled_but_not_installed_plugin_fails_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"nonexistent.*not installed"):
        get_plugin_manager(Settings(data_dir=tmp_path, plugins=("nonexistent",)))


def test_autoload_can_be_switched_off(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "none.toml", env={"TESSERA_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert settings.autoload_plugins is False
    with pytest.raises(PluginError, match="not installed"):
        get_plugin_manager(settings.with_(plugins=("probe",)))


async def test_jobs_of_a_plugin_disabled_since_are_not_listed(crm: Any) -> None:
    from tessera.config import Settings
    from tessera.plugins import get_plugin_manager

    # The plugin was enabled once (its job was recorded), then switched off in the configuration.
    await scheduler.sync_jobs(get_plugin_manager(Settings(plugins=("probe",))))
    admin = await crm.user("admin")
    jobs = [j["name"] for j in (await crm.get("/api/jobs", admin)).json()]
    assert "probe.heartbeat" not in jobs and "kernel.search_retry" in jobs
