"""API fuzzing: schemathesis against the OpenAPI schema of the whole product.

The kernel, the sales plugin and the test-only probe plugin are enabled; every operation of
``/schema/openapi.json`` gets generated requests (valid ones and, separately, invalid ones) as
an administrator with a bearer token, and every response must pass two checks:

* ``not_a_server_error`` — no 5xx, whatever the input;
* ``response_schema_conformance`` — a documented status code comes with a body that matches the
  schema the OpenAPI promises;
* ``status_code_conformance`` — every status code a route answers is documented (so the OpenAPI
  describes what routes actually return, errors included).

How it runs, and why:

* **A real server**: ``tessera serve`` (uvicorn) in a child process on a loopback port
  (``tessera_sdk.live.LiveServer``) sharing the test's database. schemathesis is synchronous
  (hypothesis + requests); talking HTTP to another process keeps it out of the test's event
  loop and its PostgreSQL pool, exercises the real ASGI stack, and a crash in a handler
  cannot take the test process down with it.
* **Deterministic**: hypothesis runs with ``derandomize=True`` and no example database, so a
  run generates the same requests every time; CI is not flaky and a failure reproduces.
  Shrinking is off (it would multiply the time); the failure message carries the request as a
  curl command instead.
* **Bounded**: ``EXAMPLES`` examples per operation and generation mode on SQLite; PostgreSQL gets
  a smaller pass (``PG_EXAMPLES``) since most bugs are engine-independent and the engine
  specific ones (type errors, integer overflow, text collation) show up within a few examples.
* **Isolation between operations**: every operation is fuzzed with a fresh administrator and
  token, so an operation that deletes or deactivates users, or revokes tokens, cannot make the
  following operations answer 401 and hide their bugs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from tessera.entities.tables import Role
from tessera_sdk.live import LiveServer

EXAMPLES = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "5"))
PG_EXAMPLES = max(1, EXAMPLES // 3)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def _fuzz_operation(operation: Any, base_url: str, headers: dict[str, str], examples: int) -> list[str]:
    """Run both generation modes on one operation; the failures as readable strings."""
    failures: list[str] = []
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(generation_mode=mode)

        @given(case=strategy)
        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=60)
            try:
                case.validate_response(response, checks=CHECKS)
            except BaseExceptionGroup as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                raise AssertionError(
                    f"{exc}\n  -> {response.status_code} {response.text[:500]}\n"
                    f"  {case.as_curl_command(headers=headers)}"
                ) from None

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"[{mode.value}] {operation.label}: {exc}")
    return failures


def _tracebacks(log: str, limit: int = 30) -> str:
    """The last line of each traceback in the server's log, with the request it failed on."""
    lines = log.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            before = range(i - 1, max(i - 3, -1), -1)
            request = next((lines[j] for j in before if "unhandled" in lines[j]), "")
            end = next((j for j in range(i + 1, len(lines)) if lines[j] and not lines[j].startswith(" ")), i)
            out.append(f"{request}\n    {lines[end]}")
    return "\n".join(out[-limit:])


async def _seed(crm: Any) -> None:
    """A few records of each kind, so generated ids sometimes hit something real."""
    admin = await crm.user("admin")
    team = await crm.team("Fuzz team")
    manager = await crm.user("manager", team_id=team["id"])
    party = (await crm.post("/api/parties", manager, json={"name": "Fuzz Ltd"})).json()
    await crm.post("/api/contacts", manager, json={"party_id": party["id"], "name": "Ann"})
    await crm.post(
        "/api/activities",
        manager,
        json={"type": "call", "subject": "Hi", "starts_at": "2026-03-02T10:00:00Z", "party_id": party["id"]},
    )
    await crm.post("/api/tasks", manager, json={"title": "Follow up", "party_id": party["id"]})
    await crm.post("/api/notes", manager, json={"party_id": party["id"], "body": "note"})
    r = await crm.post(
        "/api/sales/deals", manager, json={"party_id": party["id"], "title": "Fuzz deal", "amount": "1000.00"}
    )
    assert r.status_code in (200, 201), r.text
    assert admin


async def _fresh_admin(crm: Any) -> dict[str, Any]:
    """A new administrator; the "admin" role is put back first in case an operation fuzzed
    before renamed it, deleted it or changed its permissions."""
    row = await Role.select(Role.id).where(Role.name == "admin").first()
    if row is None:
        await Role.insert(Role(name="admin", description="Everything", permissions=["*"], scope="all"))
    else:
        await Role.update({Role.permissions: ["*"], Role.scope: "all"}).where(Role.id == row["id"])
    return await crm.user("admin")  # type: ignore[no-any-return]


@pytest.mark.plugins("sales", "probe")
async def test_fuzz_whole_api(crm: Any) -> None:
    await _seed(crm)
    examples = EXAMPLES if crm.backend == "sqlite" else PG_EXAMPLES
    plugins = tuple(crm.settings.plugins)
    server = LiveServer(crm.settings.resolved_database_url, crm.settings.data_dir / "live", plugins)
    await asyncio.to_thread(server.start)
    try:
        schema = await asyncio.to_thread(schemathesis.openapi.from_url, f"{server.url}/schema/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 50  # the kernel and sales routes are all there
        failures: list[str] = []
        only = os.environ.get("TESSERA_FUZZ_ONLY")  # a substring of labels, to iterate on one bug
        for operation in operations:
            if only and only not in operation.label:
                continue
            admin = await _fresh_admin(crm)
            started = time.monotonic()
            failures += await asyncio.to_thread(
                _fuzz_operation, operation, server.url, dict(admin["headers"]), examples
            )
            print(f"{time.monotonic() - started:6.2f}s {operation.label}", file=sys.stderr)
    finally:
        await asyncio.to_thread(server.stop)
    if failures:
        log = server.log_path.read_text(errors="replace")
        failures.append("server log (tracebacks):\n" + _tracebacks(log))
    assert not failures, f"{len(failures)} failing operation(s):\n\n" + "\n\n".join(failures)
