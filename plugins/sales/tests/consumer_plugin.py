"""A test-only plugin standing in for the future marketing and receivables plugins: it knows the
sales plugin only through hooks and events, as they will.

* receivables: records ``sales.invoice.issued`` (and deal won/lost) events, and what another
  database connection saw of the records they name when the event arrived (the invoice's number,
  the deal's status): the committed state;
* marketing: supplies campaigns through ``tessera_sales_deal_sources`` (an optional hook: the
  plugin would load without sales).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tessera.hookspecs import hookimpl

#: Set by the test: the database URL, to look from outside the app's transaction.
DATABASE_URL = ""
RECEIVED: list[dict[str, Any]] = []
CAMPAIGNS = {
    501: {"id": 501, "name": "Выставка «Связь-2026»", "source": "exhibition", "active": True},
    502: {"id": 502, "name": "Рассылка февраль", "source": "email", "active": False},
}


async def _seen_outside(table: str, row_id: int, column: str) -> Any:
    """``column`` of the row as another connection sees it (its committed value; None when the
    row is not committed)."""
    if DATABASE_URL.startswith("sqlite:///"):
        conn = sqlite3.connect(DATABASE_URL[len("sqlite:///") :])
        try:
            row = conn.execute(f"SELECT {column} FROM {table} WHERE id = ?", (row_id,)).fetchone()
            return None if row is None else row[0]
        finally:
            conn.close()
    import asyncpg

    pg = await asyncpg.connect(DATABASE_URL)
    try:
        return await pg.fetchval(f"SELECT {column} FROM {table} WHERE id = $1", row_id)
    finally:
        await pg.close()


@hookimpl
def tessera_on_event(event: Any) -> Any:
    if event.name not in ("sales.invoice.issued", "sales.deal.won", "sales.deal.lost"):
        return None

    async def record() -> None:
        # An invoice is a new row: committed means it exists. A deal existed before it was won
        # or lost: what is committed is its new status.
        if event.name == "sales.invoice.issued":
            seen = await _seen_outside("sales_document", int(event.entity_id), "number")
        else:
            seen = await _seen_outside("sales_deal", int(event.entity_id), "status")
        RECEIVED.append({"name": event.name, "payload": dict(event.payload), "seen_outside": seen})

    return record()


@hookimpl(optionalhook=True)
def tessera_sales_deal_sources(campaign_id: int | None) -> list[dict[str, Any]]:
    if campaign_id is not None:
        return [CAMPAIGNS[campaign_id]] if campaign_id in CAMPAIGNS else []
    return [c for c in CAMPAIGNS.values() if c["active"]]
