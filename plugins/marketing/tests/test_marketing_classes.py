"""ABC/XYZ on a hand-computed 10-client, 12-month data set (won deals supplied by sales through
``tessera_revenue_sources``), and the return of campaigns checked by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

pytestmark = pytest.mark.plugins("marketing", "sales")

#: The frozen clock is 2026-03-02: the window is 2025-03 .. 2026-02.
MONTHS = [(2025, m) for m in range(3, 13)] + [(2026, 1), (2026, 2)]
#: client -> monthly revenue (12 values). Totals 4800, 2400, 1200, 600, 360, 240, 180, 120, 60, 40
#: = 10000. Ranked, the share held by the clients above: 0, 48, 72 % -> A; 84, 90, 93.6 % -> B;
#: 96 % and more -> C. CV: 0 -> X; 160/240 alternating: 40/200 = 20 % -> Y; one month of 1200:
#: 331.7 % -> Z; six months of 100: 100 % -> Z; 14/16: 1/15 = 6.7 % -> X; four months of 10:
#: 141 % -> Z.
REVENUE = {
    1: [400] * 12,
    2: [160, 240] * 6,
    3: [1200] + [0] * 11,
    4: [100, 0] * 6,
    5: [30] * 12,
    6: [20] * 12,
    7: [14, 16] * 6,
    8: [10] * 12,
    9: [5] * 12,
    10: [10, 0, 0] * 4,
}
EXPECTED = {
    1: ("A", "X"),
    2: ("A", "Y"),
    3: ("A", "Z"),
    4: ("B", "Z"),
    5: ("B", "X"),
    6: ("B", "X"),
    7: ("C", "X"),
    8: ("C", "X"),
    9: ("C", "X"),
    10: ("C", "Z"),
}


async def _won(party_id: int, amount: Any, when: dt.datetime, campaign_id: int | None = None) -> None:
    from tessera_sales.tables import Deal

    await Deal.insert(
        Deal(
            title="won",
            party_id=party_id,
            amount=Decimal(str(amount)),
            currency="RUB",
            pipeline="sales.b2b",
            status="won",
            closed_at=when,
            campaign_id=campaign_id,
        )
    )


async def test_abc_xyz_by_hand(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin")
    ids: dict[int, int] = {}
    for client in REVENUE:
        r = await crm.post("/api/parties", admin, json={"name": f"Client {client}", "status": "current"})
        ids[client] = r.json()["id"]
        for (year, month), amount in zip(MONTHS, REVENUE[client], strict=True):
            if amount:
                await _won(ids[client], amount, dt.datetime(year, month, 15, 12, tzinfo=dt.UTC))
    # Outside the window (before it, and the current month): not counted.
    await _won(ids[10], 99999, dt.datetime(2025, 2, 10, tzinfo=dt.UTC))
    await _won(ids[9], 99999, dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    r = await crm.post("/api/marketing/classes/recompute", admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"classified": 10, "changed": 10}
    for client, (abc, xyz) in EXPECTED.items():
        party = (await crm.get(f"/api/parties/{ids[client]}", admin)).json()
        assert (party["custom"].get("abc_class"), party["custom"].get("xyz_class")) == (abc, xyz), client
        assert party["custom"]["abc_xyz_date"] == "2026-03-02"
    matrix = (await crm.get("/api/marketing/classes/matrix", admin)).json()
    assert {(c["abc_class"], c["xyz_class"]): c["clients"] for c in matrix} == {
        ("A", "X"): 1,
        ("A", "Y"): 1,
        ("A", "Z"): 1,
        ("B", "X"): 2,
        ("B", "Z"): 1,
        ("C", "X"): 3,
        ("C", "Z"): 1,
    }
    # A segment on the class.
    r = await crm.post(
        "/api/marketing/segments/preview",
        admin,
        json={"rules": {"all": [{"field": "abc_class", "op": "eq", "value": "A"}]}},
    )
    assert r.json()["count"] == 3
    # Thresholds 70/25: client 3 (72 % above it) falls to B; the history keeps both.
    r = await crm.put("/api/marketing/classes/settings", admin, json={"a": 70, "b": 25, "x": 10, "y": 25})
    assert r.status_code == 200, r.text
    r = await crm.post("/api/marketing/classes/recompute", admin)
    assert r.json() == {"classified": 10, "changed": 1}
    party = (await crm.get(f"/api/parties/{ids[3]}", admin)).json()
    assert party["custom"]["abc_class"] == "B"
    from tessera_marketing.tables import ClassHistory

    history = (
        await ClassHistory.select(ClassHistory.abc_class)
        .where(ClassHistory.party_id == ids[3])
        .order_by(ClassHistory.id)
    )
    assert [h["abc_class"] for h in history] == ["A", "B"]
    # Client 10 (the smallest, 40 of 10000) loses its revenue: unclassified, its custom fields
    # removed; the others keep their classes (72.3 % above client 3 stays B at a = 70) and the
    # class table, kept up to date in place, says so.
    from tessera import db

    await db.raw("DELETE FROM sales_deal WHERE party_id = {}", ids[10])
    r = await crm.post("/api/marketing/classes/recompute", admin)
    assert r.json() == {"classified": 9, "changed": 1}
    custom = (await crm.get(f"/api/parties/{ids[10]}", admin)).json()["custom"]
    assert "abc_class" not in custom and "xyz_class" not in custom
    matrix = (await crm.get("/api/marketing/classes/matrix", admin)).json()
    assert {(c["abc_class"], c["xyz_class"]): c["clients"] for c in matrix} == {
        ("A", "X"): 1,
        ("A", "Y"): 1,
        ("B", "X"): 2,
        ("B", "Z"): 2,
        ("C", "X"): 3,
    }
    bad = await crm.put("/api/marketing/classes/settings", admin, json={"a": 80, "b": 25})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "b"


async def test_campaign_return_by_hand(crm: Any, frozen_clock: Any) -> None:
    admin = await crm.user("admin")

    async def post(url: str, body: dict[str, Any], status: int = 201) -> Any:
        r = await crm.post(url, admin, json=body)
        assert r.status_code == status, r.text
        return r.json()

    expo = await post(
        "/api/marketing/campaigns",
        {"name": "Expo", "channel": "exhibition", "starts_on": "2026-02-01", "status": "active"},
    )
    mail = await post(
        "/api/marketing/campaigns",
        {"name": "Mail", "channel": "email", "starts_on": "2026-02-15", "status": "active"},
    )
    for campaign, amount in ((expo, "300"), (expo, "200"), (mail, "100")):
        await post(
            "/api/marketing/campaign-costs",
            {"campaign_id": campaign["id"], "spent_on": "2026-02-20", "amount": amount},
        )
    p1, p2, p3 = [await post("/api/parties", {"name": f"P{i}"}) for i in (1, 2, 3)]
    # P1: first touched by Expo (a lead), later by a deal of Mail: Expo keeps it (first touch).
    await post("/api/marketing/leads", {"party_id": p1["id"], "campaign_id": expo["id"]})
    frozen_clock.advance(hours=1)
    # Deals opened with a campaign: sales asks marketing (tessera_sales_deal_sources).
    sources = (await crm.get("/api/sales/sources", admin)).json()
    assert (
        {"Expo", "Mail"} <= {c["name"] for c in sources["campaigns"]} if isinstance(sources, dict) else True
    )
    d1 = await post(
        "/api/sales/deals", {"party_id": p1["id"], "title": "d1", "amount": "1000", "campaign_id": mail["id"]}
    )
    d2 = await post(
        "/api/sales/deals", {"party_id": p2["id"], "title": "d2", "amount": "300", "campaign_id": mail["id"]}
    )
    r = await crm.post(
        "/api/sales/deals", admin, json={"party_id": p2["id"], "title": "x", "campaign_id": 99999}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "campaign_id"
    await post("/api/marketing/leads", {"party_id": p3["id"], "campaign_id": mail["id"]})
    # Both deals are won this month (2026-03).
    from tessera_sales.tables import Deal

    now = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
    await Deal.update({Deal.status: "won", Deal.closed_at: now}).where(Deal.id.is_in([d1["id"], d2["id"]]))
    report = {r["name"]: r for r in (await crm.get("/api/marketing/reports/return", admin)).json()}
    assert {
        k: report["Expo"][k]
        for k in ("responses", "leads", "customers", "conversion", "revenue", "cost", "cost_per_lead", "roi")
    } == {
        "responses": 1,
        "leads": 1,
        "customers": 1,
        "conversion": 1.0,
        "revenue": "1000.00",
        "cost": "500.00",
        "cost_per_lead": "500.00",
        "roi": 1.0,
    }
    assert {
        k: report["Mail"][k]
        for k in ("responses", "leads", "customers", "conversion", "revenue", "cost", "cost_per_lead", "roi")
    } == {
        "responses": 3,
        "leads": 2,
        "customers": 1,
        "conversion": 0.5,
        "revenue": "300.00",
        "cost": "100.00",
        "cost_per_lead": "50.00",
        "roi": 2.0,
    }
    channels = {
        c["channel"]: c for c in (await crm.get("/api/marketing/reports/return/channels", admin)).json()
    }
    assert channels["email"]["roi"] == 2.0 and channels["exhibition"]["leads"] == 1
    one = (await crm.get(f"/api/marketing/campaigns/{expo['id']}/return", admin)).json()
    assert one["roi"] == 1.0
    # A closed campaign can no longer be picked for a deal.
    r = await crm.patch(
        f"/api/marketing/campaigns/{mail['id']}",
        admin,
        json={"status": "closed"},
        headers={"If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    r = await crm.post(
        "/api/sales/deals", admin, json={"party_id": p3["id"], "title": "late", "campaign_id": mail["id"]}
    )
    assert r.status_code == 422
