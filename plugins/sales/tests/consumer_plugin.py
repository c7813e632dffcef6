"""A test-only plugin standing in for the future marketing and receivables plugins: it knows the
sales plugin only through hooks and events, as they will.

* receivables: records ``sales.invoice.issued`` (and deal won/lost) events, and whether the
  records they name were already committed when the event arrived (read over a separate
  database connection);
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


async def _committed(table: str, row_id: int) -> bool:
    """Is the row visible to another connection (i.e. committed)?"""
    if DATABASE_URL.startswith("sqlite:///"):
        conn = sqlite3.connect(DATABASE_URL[len("sqlite:///") :])
        try:
            return conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is not None
        finally:
            conn.close()
    import asyncpg

    pg = await asyncpg.connect(DATABASE_URL)
    try:
        return await pg.fetchval(f"SELECT 1 FROM {table} WHERE id = $1", row_id) is not None
    finally:
        await pg.close()


@hookimpl
def tessera_on_event(event: Any) -> Any:
    if event.name not in ("sales.invoice.issued", "sales.deal.won", "sales.deal.lost"):
        return None

    async def record() -> None:
        table = "sales_document" if event.name == "sales.invoice.issued" else "sales_deal"
        RECEIVED.append(
            {
                "name": event.name,
                "payload": dict(event.payload),
                "committed": await _committed(table, int(event.entity_id)),
            }
        )

    return record()


@hookimpl(optionalhook=True)
def tessera_sales_deal_sources(campaign_id: int | None) -> list[dict[str, Any]]:
    if campaign_id is not None:
        return [CAMPAIGNS[campaign_id]] if campaign_id in CAMPAIGNS else []
    return [c for c in CAMPAIGNS.values() if c["active"]]
