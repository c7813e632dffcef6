"""Small helpers shared by the kernel entity API tests (not fixtures: plain async functions)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tessera.entities import tables

#: Tables a failed write must leave untouched.
WRITE_TABLES = {
    "party": tables.Party,
    "party_status_change": tables.PartyStatusChange,
    "contact": tables.Contact,
    "activity": tables.Activity,
    "activity_participant": tables.ActivityParticipant,
    "task": tables.Task,
    "task_handoff": tables.TaskHandoff,
    "note": tables.Note,
    "attachment": tables.Attachment,
    "audit_log": tables.AuditLog,
    "domain_event": tables.DomainEvent,
    "notification": tables.Notification,
    "idempotency_record": tables.IdempotencyRecord,
}


async def table_counts() -> dict[str, int]:
    return {name: await table.count() for name, table in WRITE_TABLES.items()}


def field_errors(response: Any) -> dict[str, str]:
    """``{field: message}`` of a 4xx error body, asserting its documented shape."""
    body = response.json()
    assert body["status"] == response.status_code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["errors"], list), body
    return {e["field"]: e["message"] for e in body["errors"]}


async def walk(crm: Any, user: dict[str, Any], url: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a keyset-paginated list, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        r = await crm.get(url, user, params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= int(params.get("limit", 50))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert page["items"], "a page with a next_cursor must not be empty"
    raise AssertionError("pagination did not end")


async def new_party(crm: Any, user: dict[str, Any], **values: Any) -> dict[str, Any]:
    body = {"name": "Acme"} | values
    r = await crm.post("/api/parties", user, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


TESSERA_CLI = str(Path(sys.executable).with_name("tessera"))


async def run_workers_once(crm: Any, count: int, plugins: str = "probe") -> None:
    """``count`` ``tessera worker --once`` processes at the same time on the test's database
    (with ``plugins``); each must exit 0."""
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": crm.settings.resolved_database_url,
        "TESSERA_PLUGINS": plugins,
        "TESSERA_DATA_DIR": str(crm.settings.data_dir),
    }
    procs = [
        await asyncio.create_subprocess_exec(
            TESSERA_CLI,
            "worker",
            "--once",
            env=env,
            cwd=str(crm.settings.data_dir.parent),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    outputs = [await p.communicate() for p in procs]
    for p, (_out, errout) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, errout.decode()
