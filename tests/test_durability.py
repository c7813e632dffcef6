"""Durability: the real server killed with SIGKILL mid-write loses nothing it acknowledged
(issue 7, item 2).

``tessera serve`` runs in a child process on a fresh database (SQLite in WAL mode, and
PostgreSQL when ``CRM_TEST_POSTGRES`` is set). Several async clients create parties (with
phones, e-mails, addresses, tags, custom fields), contacts and activities with participants,
and update their parties with the version they read, each create carrying an
Idempotency-Key. At a random moment the server is killed with SIGKILL, restarted, and checked:

* it starts cleanly: the outbox is fully delivered and the search index has caught up;
* every write that got a 2xx is there with exactly the data acknowledged;
* a write whose answer was lost is either wholly there or wholly absent: a retry with its
  Idempotency-Key replays the stored answer if it committed, creates it if it did not;
* nothing is half-written: every record has exactly its create in the audit log and the
  outbox, one update entry and event per version, one status-history row per status
  transition, its participants; no audit entry or stored idempotent answer without its record.

Three kills per engine. The random seed is printed (and named in every failure); set
``TESSERA_DURABILITY_SEED`` to replay one run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from tessera import db
from tessera.entities import tables
from tessera_sdk.live import LiveServer

KILLS = 3
CLIENTS = 6
#: Writes acknowledged in a round before the kill may come (then a random extra delay).
MIN_ACKS_BEFORE_KILL = 8
SCHEMA = {
    "properties": {
        "score": {"type": "integer", "minimum": 0},
        "segment": {"type": "string", "enum": ["a", "b", "c"]},
    }
}


@dataclass
class Pending:
    """A request whose answer was lost with the server: its outcome is unknown."""

    method: str
    url: str
    body: dict[str, Any]
    key: str | None = None


@dataclass
class Ledger:
    """What the server acknowledged (the latest 2xx body of each record)."""

    parties: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    activities: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: party id -> client that created it (only its creator updates it, so an update never
    #: conflicts and at most one update per party is in doubt after a kill).
    owner: dict[int, int] = field(default_factory=dict)
    creates: list[Pending] = field(default_factory=list)
    patches: dict[int, Pending] = field(default_factory=dict)
    acks: int = 0
    #: In-doubt creates that had committed before the kill (their answer was lost).
    committed_in_doubt: int = 0
    unexpected: list[str] = field(default_factory=list)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(10))


def _party_body(rng: random.Random) -> dict[str, Any]:
    word = _word(rng)
    return {
        "name": f"{word.capitalize()} Trading",
        "status": rng.choice(["potential", "current"]),
        "phones": [{"number": f"+7 495 {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"}],
        "emails": [{"address": f"{word}@example.com"}],
        "addresses": [{"text": f"{rng.randint(1, 99)} {word.capitalize()} street", "city": "Moscow"}],
        "tags": [rng.choice(["vip", "retail", "wholesale"])],
        "custom": {"score": rng.randint(0, 100), "segment": rng.choice("abc")},
    }


def _party_patch(rng: random.Random, acked: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {"version": acked["version"], "custom": {"score": rng.randint(0, 1000)}}
    if rng.random() < 0.4:
        patch["name"] = f"{_word(rng).capitalize()} Holding"
    if rng.random() < 0.4:
        patch["status"] = {"potential": "current", "current": "former", "former": "current"}[acked["status"]]
    if rng.random() < 0.3:
        patch["tags"] = [*acked["tags"], _word(rng)[:6]]
    return patch


async def _client_loop(
    index: int, client: httpx.AsyncClient, rng: random.Random, ledger: Ledger, admin_id: int
) -> None:
    """Write until the server goes away; requests in flight then are recorded as pending."""
    n = 0
    while True:
        n += 1
        mine = [p for p, o in ledger.owner.items() if o == index and p not in ledger.patches]
        op = rng.choices(("party", "contact", "activity", "update"), (4, 2, 2, 3))[0] if mine else "party"
        key = f"c{index}-{n}-{rng.getrandbits(32):08x}"
        if op == "party":
            pending = Pending("POST", "/api/parties", _party_body(rng), key)
        elif op == "contact":
            word = _word(rng)
            body = {"party_id": rng.choice(mine), "name": f"{word.capitalize()} Person", "role": "buyer"}
            pending = Pending(
                "POST", "/api/contacts", body | {"emails": [{"address": f"{word}@example.org"}]}, key
            )
        elif op == "activity":
            party_id = rng.choice(mine)
            contacts = [c for c, body in ledger.contacts.items() if body["party_id"] == party_id]
            when = datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 10_000))
            body = {
                "type": rng.choice(["call", "meeting"]),
                "subject": f"Talk {_word(rng)}",
                "starts_at": when.isoformat(),
                "status": rng.choice(["planned", "done"]),
                "party_id": party_id,
                "participant_user_ids": [admin_id],
                "participant_contact_ids": rng.sample(contacts, min(len(contacts), 2)),
                "outcome": "agreed",
            }
            pending = Pending("POST", "/api/activities", body, key)
        else:
            party_id = rng.choice(mine)
            pending = Pending(
                "PATCH", f"/api/parties/{party_id}", _party_patch(rng, ledger.parties[party_id])
            )
        try:
            headers = {"Idempotency-Key": pending.key} if pending.key else {}
            r = await client.request(pending.method, pending.url, json=pending.body, headers=headers)
        except httpx.TransportError:
            # The server died with this request in flight (or before it connected).
            if pending.method == "POST":
                ledger.creates.append(pending)
            else:
                ledger.patches[int(pending.url.rsplit("/", 1)[1])] = pending
            return
        if r.status_code not in (200, 201):
            ledger.unexpected.append(f"{pending.method} {pending.url} -> {r.status_code} {r.text[:300]}")
            return
        _acknowledge(ledger, pending, r.json(), index)


def _acknowledge(ledger: Ledger, pending: Pending, body: dict[str, Any], index: int | None) -> None:
    ledger.acks += 1
    if pending.url.startswith("/api/parties"):
        ledger.parties[body["id"]] = body
        if index is not None:
            ledger.owner.setdefault(body["id"], index)
    elif pending.url.startswith("/api/contacts"):
        ledger.contacts[body["id"]] = body
    else:
        ledger.activities[body["id"]] = body


async def _all(client: httpx.AsyncClient, url: str) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 500}
    while True:
        r = await client.get(url, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out.update({item["id"]: item for item in page["items"]})
        if not page["next_cursor"]:
            return out
        params["cursor"] = page["next_cursor"]


async def _exists(pending: Pending) -> bool:
    """Whether the create whose answer was lost committed (looked up directly in the DB)."""
    body = pending.body
    if pending.url == "/api/parties":
        return await tables.Party.exists().where(tables.Party.name == body["name"])
    if pending.url == "/api/contacts":
        return await tables.Contact.exists().where(tables.Contact.name == body["name"])
    return await tables.Activity.exists().where(tables.Activity.subject == body["subject"])


def _patched(acked: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The record ``acked`` with ``patch`` applied, less the fields the server stamps."""
    expected = dict(acked) | {k: v for k, v in patch.items() if k not in ("version", "custom")}
    expected["custom"] = acked["custom"] | patch["custom"]
    return expected


async def _resolve_in_doubt(client: httpx.AsyncClient, ledger: Ledger, seed: int) -> None:
    """Settle the requests whose answers the kill swallowed, checking each is all-or-nothing."""
    for party_id, pending in sorted(ledger.patches.items()):
        acked = ledger.parties[party_id]
        stored = (await client.get(f"/api/parties/{party_id}")).json()
        stamped = {"updated_at", "version", "status_changed_at"}
        if stored["version"] == acked["version"]:
            assert stored == acked, f"seed {seed}: party {party_id} changed without an update"
            r = await client.patch(pending.url, json=pending.body)  # never applied: retry it
            assert r.status_code == 200, f"seed {seed}: {r.text}"
            stored = r.json()
        else:
            assert stored["version"] == acked["version"] + 1, f"seed {seed}: {stored} vs {acked}"
        expected = _patched(acked, pending.body)
        assert {k: v for k, v in stored.items() if k not in stamped} == {
            k: v for k, v in expected.items() if k not in stamped
        }, f"seed {seed}: update of party {party_id} half-applied"
        _acknowledge(ledger, pending, stored, None)
    ledger.patches.clear()

    for pending in ledger.creates:
        committed = await _exists(pending)
        ledger.committed_in_doubt += committed
        r = await client.post(pending.url, json=pending.body, headers={"Idempotency-Key": pending.key or ""})
        assert r.status_code == 201, f"seed {seed}: retry of {pending.url} -> {r.status_code} {r.text}"
        replayed = r.headers.get("idempotent-replay") == "true"
        assert replayed == committed, (
            f"seed {seed}: {pending.url} committed={committed} but retry replayed={replayed}: "
            "the stored answer must commit with the record"
        )
        _acknowledge(ledger, pending, r.json(), None)
    ledger.creates.clear()


async def _wait_for(check: Any, what: str, seed: int, within: float = 60.0) -> None:
    """Poll ``check()`` until it returns True (background catch-up after a restart)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"seed {seed}: {what} did not catch up"
        await asyncio.sleep(0.2)


async def _verify(client: httpx.AsyncClient, ledger: Ledger, seed: int) -> None:
    """After a restart: what was acknowledged is there, exactly; nothing is half-written."""
    await _resolve_in_doubt(client, ledger, seed)

    # Every acknowledged record, exactly as acknowledged (and no record nobody asked for).
    for url, acked in (
        ("/api/parties", ledger.parties),
        ("/api/contacts", ledger.contacts),
        ("/api/activities", ledger.activities),
    ):
        stored = await _all(client, url)
        assert set(stored) == set(acked), f"seed {seed}: {url}: stored ids differ from acknowledged"
        for record_id, body in acked.items():
            assert stored[record_id] == body, f"seed {seed}: {url}/{record_id} is not what was acknowledged"

    # The audit log and the outbox match the records exactly.
    audits = await db.raw("SELECT entity, entity_id, action, changes FROM audit_log")
    counted = Counter((a["entity"], a["entity_id"], a["action"]) for a in audits)
    events = Counter(
        (e["entity"], e["entity_id"], e["name"])
        for e in await db.raw("SELECT entity, entity_id, name FROM domain_event")
    )
    status_rows = Counter(r["party_id"] for r in await db.raw("SELECT party_id FROM party_status_change"))
    status_updates: Counter[int] = Counter()
    for a in audits:
        changes = a["changes"]
        if isinstance(changes, str):
            changes = json.loads(changes)
        if a["entity"] == "party" and a["action"] == "update" and "status" in changes:
            status_updates[a["entity_id"]] += 1
    for party_id, body in ledger.parties.items():
        where = f"seed {seed}: party {party_id}"
        assert counted[("party", party_id, "create")] == 1, where
        assert counted[("party", party_id, "update")] == body["version"] - 1, where
        assert events[("party", party_id, "party.created")] == 1, where
        assert events[("party", party_id, "party.updated")] == body["version"] - 1, where
        assert status_rows[party_id] == 1 + status_updates[party_id], f"{where}: status history"
    for entity, acked in (("contact", ledger.contacts), ("activity", ledger.activities)):
        for record_id, body in acked.items():
            where = f"seed {seed}: {entity} {record_id}"
            assert counted[(entity, record_id, "create")] == 1, where
            assert events[(entity, record_id, f"{entity}.created")] == 1, where
            if entity == "activity":
                logged = events[(entity, record_id, "activity.logged")]
                assert logged == (1 if body["status"] == "done" else 0), where
    for (entity, record_id, _), _n in counted.items():
        known = {"party": ledger.parties, "contact": ledger.contacts, "activity": ledger.activities}.get(
            entity
        )
        if known is not None:
            assert record_id in known, (
                f"seed {seed}: audit entry for {entity} {record_id} that does not exist"
            )
    participants = Counter(
        r["activity_id"] for r in await db.raw("SELECT activity_id FROM activity_participant")
    )
    for record_id, body in ledger.activities.items():
        expected = len(body["participant_user_ids"]) + len(body["participant_contact_ids"])
        assert participants[record_id] == expected, f"seed {seed}: participants of activity {record_id}"

    # Stored idempotent answers exist exactly with their records.
    for row in await db.raw("SELECT status_code, body FROM idempotency_record"):
        assert row["status_code"] == 201, f"seed {seed}: an unfinished idempotency record was committed"
    keys = await tables.IdempotencyRecord.count()
    assert keys == len(ledger.parties) + len(ledger.contacts) + len(ledger.activities), f"seed {seed}"

    # Start-up delivered what the kill left in the outbox, and search caught up.
    async def outbox_empty() -> bool:
        return not await tables.DomainEvent.exists().where(tables.DomainEvent.dispatched_at.is_null())

    await _wait_for(outbox_empty, "outbox redelivery", seed)

    async def searchable() -> bool:
        for party_id, body in ledger.parties.items():
            word = body["name"].split()[0]
            r = await client.get("/api/search", params={"q": word, "type": "party"})
            assert r.status_code == 200, r.text
            if party_id not in {h["id"] for h in r.json()["hits"]}:
                return False
        return True

    await _wait_for(searchable, "search index", seed)


async def _start(server: LiveServer) -> None:
    await asyncio.to_thread(server.start)


async def _kill(server: LiveServer) -> None:
    assert server.process is not None
    server.process.kill()  # SIGKILL: no shutdown hooks, no flush, no goodbye
    await asyncio.to_thread(server.process.wait)
    server.process = None


async def test_acknowledged_writes_survive_sigkill(crm) -> None:
    seed = int(os.environ.get("TESSERA_DURABILITY_SEED") or random.SystemRandom().randrange(2**31))
    print(f"durability seed: {seed} ({crm.backend}); replay with TESSERA_DURABILITY_SEED={seed}")
    rng = random.Random(seed)

    if crm.backend == "sqlite":
        mode = await db.raw("PRAGMA journal_mode")
        assert mode[0]["journal_mode"] == "wal"
        assert (await db.raw("PRAGMA synchronous"))[0]["synchronous"] == 2  # FULL
    admin = await crm.user("admin")
    assert (await crm.put("/api/custom-fields/party", admin, json=SCHEMA)).status_code == 200

    server = LiveServer(crm.settings.resolved_database_url, crm.settings.data_dir / "live")
    ledger = Ledger()
    await _start(server)
    try:
        for kill in range(KILLS):
            async with httpx.AsyncClient(
                base_url=server.url, headers=admin["headers"], timeout=30.0
            ) as client:
                before = ledger.acks
                clients = [
                    asyncio.create_task(
                        _client_loop(i, client, random.Random(rng.random()), ledger, admin["id"])
                    )
                    for i in range(CLIENTS)
                ]
                deadline = asyncio.get_running_loop().time() + 30
                while ledger.acks - before < MIN_ACKS_BEFORE_KILL and not all(c.done() for c in clients):
                    assert asyncio.get_running_loop().time() < deadline, f"seed {seed}: no writes got through"
                    await asyncio.sleep(0.02)
                await asyncio.sleep(rng.uniform(0.0, 2.5))
                await _kill(server)
                await asyncio.gather(*clients)
            assert not ledger.unexpected, f"seed {seed}: {ledger.unexpected}"
            in_doubt = len(ledger.creates) + len(ledger.patches)
            committed = ledger.committed_in_doubt
            acknowledged = ledger.acks - before

            await _start(server)
            async with httpx.AsyncClient(
                base_url=server.url, headers=admin["headers"], timeout=30.0
            ) as client:
                await _verify(client, ledger, seed)
            log = server.log_path.read_text(errors="replace")
            assert "Traceback" not in log and "ERROR" not in log, (
                f"seed {seed}: restart was not clean:\n{log[-3000:]}"
            )
            print(
                f"kill {kill + 1}: {acknowledged} writes acknowledged, {in_doubt} in doubt "
                f"({ledger.committed_in_doubt - committed} of the creates had committed)"
            )
    finally:
        server.stop()
    print(
        f"verified {len(ledger.parties)} parties, {len(ledger.contacts)} contacts, "
        f"{len(ledger.activities)} activities after {KILLS} kills"
    )
    assert ledger.parties and ledger.contacts and ledger.activities
