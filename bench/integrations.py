"""Integrations benchmark: API import of parties with contacts next to the CLI import, and
webhook delivery throughput to a local receiver.

    .venv/bin/python bench/integrations.py --rows 100000 --deliveries 2000
    .venv/bin/python bench/integrations.py --rows 100000 --deliveries 2000 --pg postgresql://postgres@127.0.0.1:5432/test

Each measure is one function (``measure_webhook_delivery``; others may be added beside it) run
on a scratch database (SQLite in a temp dir, or a scratch database on ``--pg``, dropped after).
Webhooks: N committed events for one subscription are delivered by the background-job worker
(claim, resolve and check the target, sign, POST, log) to an HTTP receiver on 127.0.0.1 (allowed
through ``webhook_allowed_networks``); the figure is deliveries/s, printed next to a baseline:
the same number of bare signed POSTs from one loop to the same receiver.

Import: a generated client list (``bench/importer.py``'s generator plus a contact person and
position per row) is imported twice into the same database, emptied in between: by the CLI's
``tessera.importer.import_parties`` (the baseline), and as an API import — the file stored
and queued as ``POST /api/imports/parties`` does, then the ``import.parties`` background job
run by the worker (claim, read, checkpointed chunks of ``CHUNK_ROWS`` rows) until it is done.
Both leave the search indexing to the events outbox (as the worker does it afterwards), so the
figures compare the imports themselves. Figures: rows/s of each, and their ratio (issue 16
target: >= 20,000 rows/s for the API import on SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")
os.environ.setdefault("TESSERA_DISABLE_PLUGIN_AUTOLOAD", "1")


class _Receiver:
    """A local HTTP receiver that accepts every POST and counts them."""

    def __init__(self) -> None:
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def measure_webhook_delivery(deliveries: int, settings: Any, pm: Any) -> dict[str, Any]:
    """Deliveries/s of ``deliveries`` events to one subscription, and the bare-POST baseline."""
    import httpx
    from tessera import events, jobs, webhooks
    from tessera.entities.tables import WebhookDelivery, WebhookSubscription

    receiver = _Receiver()
    try:
        secret = webhooks.new_secret()
        await WebhookSubscription.insert(
            WebhookSubscription(url=receiver.url, event_types=["bench.*"], secret=secret, active=True)
        )
        # Inserted straight into the table, not through the API: tell the listener, whose list of
        # subscriptions (cached 2 s) may date from the import's events just before.
        webhooks.forget_subscriptions()
        for start in range(0, deliveries, 500):
            async with events.unit_of_work():
                for i in range(start, min(start + 500, deliveries)):
                    await events.emit("bench.ping", "bench", i, {"n": i})
        await events.settle()  # the after-commit handlers queue the deliveries
        queued = await WebhookDelivery.count()
        started = time.perf_counter()
        ran = await jobs.work(pm, settings)
        elapsed = time.perf_counter() - started
        done = sum(1 for _, status in ran if status == "done")
        received = receiver.count

        body = b'{"id": 1, "type": "bench.ping", "occurred_at": "2026-03-02T09:00:00+00:00", "data": {}}'
        base_started = time.perf_counter()
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(deliveries):
                headers = {
                    "Tessera-Signature": webhooks.sign(secret, body),
                    "Content-Type": "application/json",
                }
                (await client.post(receiver.url, content=body, headers=headers)).raise_for_status()
        base_elapsed = time.perf_counter() - base_started
    finally:
        receiver.stop()
    return {
        "deliveries": deliveries,
        "queued": queued,
        "delivered": done,
        "received": received,
        "deliveries_per_s": done / elapsed if elapsed else 0.0,
        "baseline_posts_per_s": deliveries / base_elapsed if base_elapsed else 0.0,
    }


def _client_list(path: Path, rows: int) -> None:
    """``bench/importer.py``'s client list with a contact person and position per row."""
    import csv

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from importer import generate  # bench/importer.py

    plain = path.with_suffix(".plain.csv")
    generate(plain, rows)
    with (
        plain.open(encoding="utf-8-sig", newline="") as src,
        path.open("w", encoding="utf-8", newline="") as out,
    ):
        reader, writer = csv.reader(src, delimiter=";"), csv.writer(out, delimiter=";")
        writer.writerow([*next(reader), "Контактное лицо", "Должность"])
        for i, row in enumerate(reader):
            writer.writerow([*row, f"Иван Петров {i}", "Директор" if i % 2 else "Бухгалтер"])
    plain.unlink()


async def measure_api_import(rows: int, settings: Any, pm: Any, workdir: Path) -> dict[str, Any]:
    """Rows/s of the CLI import and of the API import (background job) of the same file."""
    from tessera import db, events, importer, imports, jobs
    from tessera.demo import ensure_admin
    from tessera.entities.tables import BackgroundJob, Contact, CrmUser
    from tessera.permissions import ensure_default_roles

    await ensure_default_roles()
    await ensure_admin("owner@bench.example.com", "Owner", "bench-password-1")
    owner = await CrmUser.select(CrmUser.id).where(CrmUser.email == "owner@bench.example.com").first()
    path = workdir / "clients.csv"
    _client_list(path, rows)

    cpu = time.process_time()
    cli = await importer.import_parties(
        path, owner_email="owner@bench.example.com", skip_invalid=True, index=False
    )
    cli_cpu = time.process_time() - cpu
    cli_contacts = await Contact.count()
    for table in ("contact", "party_status_change", "party"):
        await db.raw(f"DELETE FROM {table}")

    started, cpu = time.perf_counter(), time.process_time()
    stored = imports.store_upload(settings.data_dir, "clients.csv", path.read_bytes())
    token = events.set_actor(owner["id"])
    try:
        async with events.unit_of_work():
            job_id = await jobs.enqueue(
                imports.KIND,
                {
                    "path": str(stored),
                    "filename": "clients.csv",
                    "mapping": {},
                    "dry_run": False,
                    "skip_invalid": True,
                    "on_duplicate": "skip",
                    "owner_email": "",
                    "encoding": None,
                },
            )
    finally:
        events._actor.reset(token)
    await jobs.work(pm, settings)
    elapsed, api_cpu = time.perf_counter() - started, time.process_time() - cpu
    job = await BackgroundJob.select().where(BackgroundJob.id == job_id).first().output(load_json=True)
    result = job["result"] or {}
    return {
        "rows": rows,
        "cli_imported": cli.imported,
        "cli_contacts": cli_contacts,
        "cli_rows_per_s": cli.rows_read / cli.seconds if cli.seconds else 0.0,
        "api_status": job["status"],
        "api_error": job["error"][-500:],
        "api_imported": result.get("imported", 0),
        "api_contacts": result.get("contacts", 0),
        "api_rows_per_s": rows / elapsed if elapsed else 0.0,
        # Rows per second of this process's CPU time (SQLite's work included: it runs in the
        # process): what the import costs, less sensitive to a loaded machine than wall time.
        "cli_rows_per_cpu_s": rows / cli_cpu if cli_cpu else 0.0,
        "api_rows_per_cpu_s": rows / api_cpu if api_cpu else 0.0,
    }


async def main(args: argparse.Namespace) -> int:
    from tessera import db, migrations
    from tessera.app import boot
    from tessera.config import Settings

    scratch = tempfile.mkdtemp(prefix="tessera-bench-")
    pg_name = None
    if args.pg:
        pg_name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
        await db.execute_on_server(args.pg, f'CREATE DATABASE "{pg_name}"')
        url = db.database_url_for(args.pg, pg_name)
        backend = "PostgreSQL"
    else:
        url = f"sqlite:///{scratch}/bench.sqlite3"
        backend = "SQLite"
    settings = Settings(
        database_url=url,
        data_dir=Path(scratch) / "data",
        plugins=(),
        webhook_allowed_networks=("127.0.0.0/8",),
    )
    pm = boot(settings)
    await db.start()
    try:
        await migrations.migrate()
        print(f"Integrations benchmark on {backend}")
        if args.rows:
            load_before = os.getloadavg()[0]
            imp = await measure_api_import(args.rows, settings, pm, Path(scratch))
            load_after = os.getloadavg()[0]
            print(
                f"  import of {imp['rows']} parties with a contact each "
                "(rows/s to the commit; search indexing follows)"
            )
            print(f"  {'API import (background job, checkpointed chunks)':58} {imp['api_rows_per_s']:10,.0f}")
            print(f"  {'  baseline: CLI import (one transaction)':58} {imp['cli_rows_per_s']:10,.0f}")
            ratio = imp["api_rows_per_s"] / imp["cli_rows_per_s"] if imp["cli_rows_per_s"] else 0.0
            print(f"  {'  ratio API / CLI':58} {ratio:10.2f}")
            print(f"  {'API import, rows per CPU second':58} {imp['api_rows_per_cpu_s']:10,.0f}")
            print(f"  {'  baseline: CLI import, rows per CPU second':58} {imp['cli_rows_per_cpu_s']:10,.0f}")
            # Wall time on a shared machine is mostly waiting for a core: say how busy it was.
            print(f"  {'load average (1 min) before / after':58} {load_before:5.1f} / {load_after:4.1f}")
            print(
                f"  imported: CLI {imp['cli_imported']} parties + {imp['cli_contacts']} contacts, "
                f"API {imp['api_imported']} + {imp['api_contacts']} ({imp['api_status']})"
            )
            if imp["api_status"] != "done" or imp["api_imported"] != imp["cli_imported"]:
                print(f"  ERROR: the API import did not import what the CLI did {imp['api_error']}")
                return 1
        hooks = await measure_webhook_delivery(args.deliveries, settings, pm)
        print(f"  webhook deliveries to a local receiver ({hooks['deliveries']} events)")
        print(
            f"  {'deliveries/s (worker: claim, check, sign, POST, log)':58} {hooks['deliveries_per_s']:10.1f}"
        )
        print(f"  {'  baseline: bare signed POSTs/s from one loop':58} {hooks['baseline_posts_per_s']:10.1f}")
        print(
            f"  delivered {hooks['delivered']} of {hooks['queued']} queued, receiver got {hooks['received']}"
        )
        if hooks["delivered"] != args.deliveries or hooks["received"] < args.deliveries:
            print("  ERROR: not every event was delivered")
            return 1
    finally:
        await db.stop()
        if pg_name:
            await db.execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        # The scratch directory holds the generated file, its stored copy and the SQLite
        # database: 130 MB at 100,000 rows, left behind by every run before.
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=2000, help="events delivered (default 2000)")
    parser.add_argument(
        "--rows", type=int, default=100_000, help="parties imported (default 100000; 0 skips)"
    )
    parser.add_argument("--pg", default=None, help="PostgreSQL URL; a scratch database is made there")
    sys.exit(asyncio.run(main(parser.parse_args())))
