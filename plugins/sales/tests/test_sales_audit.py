"""Every write of the sales plugin is audited: products, price lists, loss reasons, cadence
rules, plans, proposal templates, exchange rates and settings leave an audit entry with the
old and new values; plan entries follow the plan's visibility, settings entries are for those
who see every entry. No write leaves the kernel's ``unaudited_write`` fallback behind."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.plugins("sales")


async def _entries(crm: Any, user: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    r = await crm.get("/api/audit", user, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_every_sales_settings_write_leaves_an_audit_entry(crm: Any, world: dict[str, Any]) -> None:
    admin = world["admin"]
    writes: list[tuple[str, str, dict[str, Any], str, str]] = [
        ("post", "/api/sales/products", {"sku": "P-1", "name": "Widget"}, "sales.product", "create"),
        (
            "post",
            "/api/sales/price-lists",
            {
                "name": "Retail",
                "currency": "EUR",
                "valid_from": "2026-01-01",
                "prices": [{"product_id": 1, "price": "9.50"}],
            },
            "sales.price_list",
            "create",
        ),
        ("post", "/api/sales/loss-reasons", {"name": "Too slow"}, "sales.loss_reason", "create"),
        (
            "post",
            "/api/sales/cadence-rules",
            {"name": "Every 14 days", "every_days": 14},
            "sales.cadence_rule",
            "create",
        ),
        (
            "post",
            "/api/sales/plans",
            {"period_start": "2026-01-01", "period_end": "2026-03-31", "amount": "1000"},
            "sales.plan",
            "create",
        ),
        (
            "post",
            "/api/sales/proposal-templates",
            {"name": "Ours", "body": "<h1>{{ deal.title }}</h1>"},
            "sales.proposal_template",
            "create",
        ),
        (
            "post",
            "/api/sales/rates",
            {"currency": "USD", "valid_from": "2026-01-01", "rate": "90.5"},
            "sales.exchange_rate",
            "create",
        ),
        ("put", "/api/sales/settings", {"base_currency": "EUR"}, "sales.setting", "update"),
    ]
    for method, url, body, entity, action in writes:
        r = await crm.call(method.upper(), url, admin, json=body)
        assert r.status_code in (200, 201), (url, r.text)
        latest = (await _entries(crm, admin, entity=entity))[0]
        assert latest["action"] == action, (url, latest)
        assert latest["user_id"] == admin["id"]
    product = (await _entries(crm, admin, entity="sales.product"))[0]
    assert product["changes"]["sku"] == [None, "P-1"]
    price_list = (await _entries(crm, admin, entity="sales.price_list"))[0]
    assert price_list["changes"]["prices"] == [None, [{"product_id": 1, "price": "9.50"}]]
    setting = (await _entries(crm, admin, entity="sales.setting"))[0]
    assert setting["changes"] == {"base_currency": ["RUB", "EUR"]}

    reason = (await _entries(crm, admin, entity="sales.loss_reason"))[0]["entity_id"]
    r = await crm.patch(
        f"/api/sales/loss-reasons/{reason}", admin, json={"name": "Far too slow", "active": False}
    )
    assert r.status_code == 200, r.text
    update = (await _entries(crm, admin, entity="sales.loss_reason"))[0]
    assert update["changes"] == {"name": ["Too slow", "Far too slow"], "active": [True, False]}

    rate = (await _entries(crm, admin, entity="sales.exchange_rate"))[0]["entity_id"]
    assert (await crm.delete(f"/api/sales/rates/{rate}", admin)).status_code == 204
    assert (await _entries(crm, admin, entity="sales.exchange_rate"))[0]["action"] == "delete"
    # Nothing went through the kernel's safety net.
    assert await _entries(crm, admin, action="unaudited_write") == []


async def test_plan_entries_follow_the_plans_visibility(crm: Any, world: dict[str, Any]) -> None:
    admin, head = world["admin"], world["head"]
    for owner in ("anna", "olena"):
        r = await crm.post(
            "/api/sales/plans",
            admin,
            json={"period_start": "2026-01-01", "period_end": "2026-03-31", "user_id": world[owner]["id"]},
        )
        assert r.status_code == 201, r.text
    r = await crm.put("/api/sales/settings", admin, json={"base_currency": "EUR"})
    assert r.status_code == 200, r.text
    # The head sees their team's manager's plan, not the other team's, and no company setting.
    seen = await _entries(crm, head, entity="sales.plan")
    assert [e["changes"]["user_id"][1] for e in seen] == [world["anna"]["id"]]
    assert await _entries(crm, head, entity="sales.setting") == []
    assert len(await _entries(crm, admin, entity="sales.plan")) == 2
