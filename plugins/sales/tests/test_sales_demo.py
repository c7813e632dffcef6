"""Demo data loads through the real services and gives every report something to show."""

from __future__ import annotations

import random

import pytest

pytestmark = pytest.mark.plugins("sales")


async def test_demo_deals_spread_over_stages_and_outcomes(crm, world, frozen_clock):
    from tessera.demo import DemoContext, system_principal
    from tessera_sales import demo
    from tessera_sales.tables import Deal, Proposal

    ctx = DemoContext(random=random.Random(3), admin=system_principal())
    ctx.managers = [world["anna"], world["boris"]]
    ctx.parties = [world["anna_party"], world["boris_party"]]
    await demo.load(ctx, deals=16)
    assert await Deal.count() == 16
    statuses = {r["status"] for r in await Deal.select(Deal.status)}
    assert "open" in statuses and len(statuses) >= 2
    assert await Proposal.count() > 0
    r = await crm.get(
        "/api/sales/reports/funnel",
        world["head"],
        params={"date_from": "2025-09-01", "date_to": "2026-03-31"},
    )
    assert r.status_code == 200 and r.json()["groups"][0]["stages"][0]["entered"] == 16
