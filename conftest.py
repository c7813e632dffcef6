"""Suite-wide ordering for parallel runs (``./run test`` runs ``pytest -n 4``).

The few tests that take tens of seconds (a live server, subprocesses, a fuzzing run) run
first, and the rest fill in behind them: with ``--maxschedchunk`` small (``./run test`` sets
it) xdist hands each worker the next test when it asks, so the long ones start at once on
different workers instead of one of them being handed out last and the whole run waiting for
it. Only the order changes; every test still runs. The list is measured, not guessed: see
docs/performance.md, "Test suite speed", for how to find the slowest tests of a run.
"""

from __future__ import annotations

import fnmatch

import pytest

#: Node-id patterns of the slowest tests, slowest first (``--durations=30`` of a full run).
SLOW_FIRST = (
    "tests/test_fuzz_api.py::*",
    "sdk/tests/test_sdk_contract.py::test_first_party_plugin_passes_the_contract[[]*-writes_are_audited]",
    "sdk/tests/test_sdk_contract.py::test_first_party_plugin_passes_the_contract[[]*-jobs_idempotent]",
    "sdk/tests/test_sdk_tutorial.py::*",
    "tests/test_request_bodies.py::test_every_route_with_a_body_refuses_nasty_bodies_with_a_4xx*",
    "tests/test_bench_smoke.py::*",
    "tests/test_durability.py::*",
    "tests/test_cli.py::test_demo_*",
    "tests/test_cli.py::test_worker_once_*",
    "tests/test_cli.py::test_serve_*",
    "tests/test_import.py::test_cli_import_*",
    "tests/test_scheduler.py::test_worker_processes_*",
    "sdk/tests/test_sdk_contract.py::test_a_plugin_*",
    "sdk/tests/test_sdk_contract.py::test_the_contract_option_*",
    "tests/test_visibility_matrix.py::*",
    "tests/test_cli.py::*",
    "tests/test_search.py::test_*_retr*",
    "tests/browser/test_browser_crawl.py::*",
    "examples/plugin-loyalty/tests/test_loyalty.py::test_the_plugin_passes_the_contract*",
)


def _rank(nodeid: str) -> int:
    for rank, pattern in enumerate(SLOW_FIRST):
        if fnmatch.fnmatchcase(nodeid, pattern):
            return rank
    return len(SLOW_FIRST)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: the rest keep pytest's order (module by module, fixtures reused).
    items.sort(key=lambda item: _rank(item.nodeid))
