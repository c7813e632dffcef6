"""The ABC/XYZ class lives in the marketing plugin's table, not in the party row: a
recomputation writes no party, yet every reader sees the class as the party's read-only custom
fields (the API, the card, the service plugin's SLA, receivables' dunning, the knowledge base's
facts), no write may set it, and a deleted party's class goes with it."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

pytestmark = pytest.mark.plugins("marketing", "sales", "service", "receivables", "knowledge_base")


async def _won(party_id: int, amount: int, when: dt.datetime) -> None:
    from tessera_sales.tables import Deal

    await Deal.insert(
        Deal(
            title="won",
            party_id=party_id,
            amount=Decimal(amount),
            currency="RUB",
            pipeline="sales.b2b",
            status="won",
            closed_at=when,
        )
    )


async def _stored(ids: list[int]) -> dict[int, tuple[Any, ...]]:
    from tessera import db

    rows = await db.raw(
        "SELECT id, version, updated_at, custom FROM party WHERE id IN ({}, {}) ORDER BY id", *ids
    )
    return {r["id"]: (r["version"], r["updated_at"], str(r["custom"])) for r in rows}


async def test_the_class_is_read_everywhere_and_never_written_into_the_party(
    crm: Any, frozen_clock: Any
) -> None:
    admin = await crm.user("admin")
    big = (await crm.post("/api/parties", admin, json={"name": "Big", "status": "current"})).json()
    small = (await crm.post("/api/parties", admin, json={"name": "Small", "status": "current"})).json()
    for month in range(1, 13):  # the frozen clock is 2026-03-02: the window is 2025-03 .. 2026-02
        when = dt.datetime(2025 + (month + 1) // 12, (month + 1) % 12 + 1, 15, tzinfo=dt.UTC)
        await _won(big["id"], 1000, when)
        await _won(small["id"], 1 + month % 2, when)
    before = await _stored([big["id"], small["id"]])

    r = await crm.post("/api/marketing/classes/recompute", admin)
    assert r.json() == {"classified": 2, "changed": 2}
    # No party row was written: same version, same time, no class in its stored custom fields.
    assert await _stored([big["id"], small["id"]]) == before
    assert "abc_class" not in before[big["id"]][2]

    got = (await crm.get(f"/api/parties/{big['id']}", admin)).json()["custom"]
    assert got == {"abc_class": "A", "xyz_class": "X", "abc_xyz_date": "2026-03-02"}
    listed = (await crm.get("/api/parties", admin)).json()["items"]
    assert {p["name"]: p["custom"].get("abc_class") for p in listed} == {"Big": "A", "Small": "C"}
    card = (await crm.get(f"/api/parties/{small['id']}/card", admin)).json()
    assert card["party"]["custom"]["xyz_class"] == "Z"  # 1, 2, 1, 2 ...: CV 33 %
    await crm.sign_in(admin)
    page = await crm.page(f"/app/parties/{big['id']}")
    assert "ABC class: A" in page

    # The parties list shows it as a column.
    parties_page = await crm.page("/app/parties")
    assert "ABC/XYZ" in parties_page and "A/X" in parties_page and "C/Z" in parties_page

    # A contact-cadence rule of the sales plugin may cover class-A clients only.
    from tessera_sales import cadence

    r = await crm.post(
        "/api/sales/cadence-rules", admin, json={"name": "Key clients", "every_days": 14, "client_class": "A"}
    )
    assert r.status_code == 201 and r.json()["client_class"] == "A", r.text
    frozen_clock.advance(days=15)  # neither client has been contacted since it became current
    assert (await cadence.evaluate())["checked"] == 1  # Big only; Small is class C
    overdue = (await crm.get("/api/sales/reports/cadence/overdue", admin)).json()
    assert [o["party_id"] for o in overdue] == [big["id"]], overdue

    # No write sets it, and other writes keep it.
    r = await crm.patch(f"/api/parties/{big['id']}", admin, json={"custom": {"abc_class": "C"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "custom.abc_class", r.text
    r = await crm.post("/api/parties", admin, json={"name": "Sneaky", "custom": {"abc_class": "A"}})
    assert r.status_code == 422 and "custom.abc_class" in r.text
    r = await crm.patch(f"/api/parties/{big['id']}", admin, json={"name": "Big Ltd"})
    assert r.status_code == 200 and r.json()["custom"]["abc_class"] == "A"

    # The other plugins read it without importing marketing.
    from tessera_knowledge_base.rules import facts_of
    from tessera_receivables.dunning import load_party, template_for
    from tessera_service.sla import party_class

    assert (await party_class(big["id"]), await party_class(small["id"])) == ("A", "C")
    gentle, standard = "receivables.dunning.gentle", "receivables.dunning.standard"
    ordinary = {"reliability": 50}
    assert template_for(await load_party(big["id"]) or {}, ordinary) == gentle
    assert template_for(await load_party(small["id"]) or {}, ordinary) == standard
    facts = await facts_of("party", {**big, "custom": {}})
    assert facts["party.custom.abc_class"] == "A"

    # A deleted party's class and history go with it (its party.deleted event).
    from tessera import db

    await db.raw("DELETE FROM sales_deal WHERE party_id = {}", small["id"])
    assert (await crm.delete(f"/api/parties/{small['id']}", admin)).status_code == 204
    left: list[Any] = []
    for _ in range(100):
        left = await db.raw(
            "SELECT party_id FROM marketing_party_class WHERE party_id = {} UNION ALL "
            "SELECT party_id FROM marketing_class_history WHERE party_id = {}",
            small["id"],
            small["id"],
        )
        if not left:
            break
        await asyncio.sleep(0.05)
    assert left == []
