"""Competitors: their products and prices, and the clients x product groups matrix, where what
a client bought from us comes from sales (won deal lines, through marketing's hook) and what it
buys from competitors from marketing's own records; gaps show where to cross-sell."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal
from typing import Any

import pytest

pytestmark = pytest.mark.plugins("marketing", "sales")


async def test_competitor_matrix(crm: Any, frozen_clock: Any) -> None:
    from tessera_sales.tables import Deal, DealLine, Product

    admin = await crm.user("admin")
    anna = await crm.user("manager", name="Anna")

    async def post(url: str, body: dict[str, Any], user: Any = admin, status: int = 201) -> Any:
        r = await crm.post(url, user, json=body)
        assert r.status_code == status, r.text
        return r.json()

    rival = await post("/api/parties", {"name": "OptiCorp", "relations": ["competitor"]})
    other = await post("/api/parties", {"name": "CableKing", "relations": ["competitor"]})
    plain = await post("/api/parties", {"name": "Not a rival"})
    alpha = await post("/api/parties", {"name": "Alpha"}, anna)
    beta = await post("/api/parties", {"name": "Beta"})
    fibre = await post(
        "/api/marketing/product-groups", {"key": "fibre", "name": "Fibre", "skus": ["F-1", "F-2"]}
    )
    cable = await post(
        "/api/marketing/product-groups", {"key": "cable", "name": "Cable", "skus": ["C-1"], "position": 1}
    )
    r = await crm.post(
        "/api/marketing/product-groups", admin, json={"key": "x", "name": "X", "skus": ["C-1"]}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "skus"
    # Competitors' products and prices; a party without the competitor relation is refused.
    await post(
        "/api/marketing/competitor-products",
        {"competitor_id": rival["id"], "group_id": fibre["id"], "name": "OptiLine", "price": "1450.00"},
    )
    r = await crm.post(
        "/api/marketing/competitor-products", admin, json={"competitor_id": plain["id"], "name": "Thing"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "competitor_id"
    listed = (
        await crm.get("/api/marketing/competitor-products", admin, params={"group_id": fibre["id"]})
    ).json()
    assert [(p["name"], Decimal(p["price"])) for p in listed["items"]] == [("OptiLine", Decimal(1450))]

    # What clients buy from us: won deal lines (sales); the lost one does not count.
    ids = {}
    for sku in ("F-1", "F-2", "C-1", "Z-9"):
        ids[sku] = (await Product.insert(Product(sku=sku, name=sku)).returning(Product.id))[0]["id"]

    async def deal(party: dict[str, Any], status: str, lines: list[tuple[str, str]]) -> None:
        made = await Deal.insert(
            Deal(
                title="d",
                party_id=party["id"],
                pipeline="sales.b2b",
                status=status,
                closed_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
            )
        ).returning(Deal.id)
        for sku, amount in lines:
            await DealLine.insert(
                DealLine(
                    deal_id=made[0]["id"],
                    product_id=ids[sku],
                    name=sku,
                    unit_price=Decimal(amount),
                    amount=Decimal(amount),
                )
            )

    await deal(alpha, "won", [("F-1", "100"), ("F-2", "50"), ("Z-9", "7")])
    await deal(alpha, "lost", [("C-1", "999")])
    await deal(beta, "won", [("C-1", "30")])
    # What they buy from competitors (a manager records it for a client they read).
    await post(
        "/api/marketing/competitor-supplies",
        {"party_id": alpha["id"], "competitor_id": other["id"], "group_id": cable["id"]},
    )
    await post(
        "/api/marketing/competitor-supplies",
        {"party_id": beta["id"], "competitor_id": rival["id"], "group_id": fibre["id"]},
    )
    await post(
        "/api/marketing/competitor-supplies",
        {"party_id": beta["id"], "competitor_id": other["id"], "group_id": fibre["id"]},
    )

    m = (await crm.get("/api/marketing/competitors/matrix", admin)).json()
    assert [g["key"] for g in m["groups"]] == ["fibre", "cable"]
    grid = {
        (row["name"], cell["group_id"]): (cell["ours"], cell["competitors"], cell["gap"])
        for row in m["rows"]
        for cell in row["cells"]
    }
    assert grid == {
        ("Alpha", fibre["id"]): ("150.00", [], False),
        ("Alpha", cable["id"]): (None, ["CableKing"], True),
        ("Beta", fibre["id"]): (None, ["CableKing", "OptiCorp"], True),
        ("Beta", cable["id"]): ("30.00", [], False),
    }
    # Paged by client id; within the caller's visibility (a role reading every party here).
    first = (await crm.get("/api/marketing/competitors/matrix", admin, params={"limit": 1})).json()
    assert [r["name"] for r in first["rows"]] == ["Alpha"] and first["next_after"] == alpha["id"]
    rest = (await crm.get("/api/marketing/competitors/matrix", admin, params={"after": alpha["id"]})).json()
    assert [r["name"] for r in rest["rows"]] == ["Beta"] and rest["next_after"] is None

    # The page, in Russian.
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "ru"
    r = await crm.client.post("/login", data={"email": admin["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    page = await crm.client.get("/marketing/competitors")
    assert page.status_code == 200, page.text[:300]
    text = html.unescape(page.text)
    for word in ("Конкуренты", "OptiLine", "1450.00", "CableKing", "Alpha", "150.00"):
        assert word in text, word
