"""The contract tests collected by ``pytest --tessera-contract PLUGIN`` (see
``tessera_sdk.contract``). Each check runs in its own event loop on its own database, so it
works whatever asyncio mode the plugin's own test suite uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tessera_sdk import contract

# The kernel's own deprecation notices are not the plugin author's business.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "contract_plugin" in metafunc.fixturenames:
        names = contract.resolve_plugins(metafunc.config.getoption("tessera_contract") or [])
        metafunc.parametrize("contract_plugin", names)


def test_plugin_loads(contract_plugin: str, tmp_path: Path) -> None:
    contract.check_loads(contract_plugin, tmp_path)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_plugin_migrates_up_on_an_empty_database(contract_plugin: str, tmp_path: Path, backend: str) -> None:
    if backend == "postgres" and not os.environ.get(contract.POSTGRES_ENV):
        pytest.skip(f"set {contract.POSTGRES_ENV}=postgresql://... to check PostgreSQL too")
    contract.check_migrates(contract_plugin, tmp_path, backend)


def test_plugin_routes_appear_in_openapi(contract_plugin: str, tmp_path: Path) -> None:
    contract.check_routes_in_openapi(contract_plugin, tmp_path)


def test_plugin_permissions_are_declared(contract_plugin: str, tmp_path: Path) -> None:
    contract.check_permissions(contract_plugin, tmp_path)


def test_plugin_jobs_are_idempotent(contract_plugin: str, tmp_path: Path) -> None:
    contract.check_jobs_idempotent(contract_plugin, tmp_path)


def test_plugin_contributes_nothing_when_disabled(contract_plugin: str, tmp_path: Path) -> None:
    contract.check_disabled_contributes_nothing(contract_plugin, tmp_path)


def test_plugin_writes_are_audited(contract_plugin: str, tmp_path: Path) -> None:
    contract.check_writes_are_audited(contract_plugin, tmp_path)
