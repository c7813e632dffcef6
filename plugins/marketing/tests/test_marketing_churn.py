"""Churn of clients per acquisition channel, hand-computed: who each channel brought, who left
(status former, or no revenue and no done activity for 6 months) and why (sales' loss reasons)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

pytestmark = pytest.mark.plugins("marketing", "sales")


def _at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=12, tzinfo=dt.UTC)


async def _deal(party_id: int, status: str, day: str, reason_id: int | None = None) -> None:
    from tessera_sales.tables import Deal

    await Deal.insert(
        Deal(
            title=status,
            party_id=party_id,
            amount=Decimal(1000),
            currency="RUB",
            pipeline="sales.b2b",
            status=status,
            closed_at=_at(day),
            loss_reason_id=reason_id,
        )
    )


async def test_churn_per_channel(crm: Any, frozen_clock: Any) -> None:
    from tessera_sales.tables import LossReason

    admin = await crm.user("admin")

    async def post(url: str, body: dict[str, Any]) -> Any:
        r = await crm.post(url, admin, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    channels = {}
    for name, channel in (("Expo", "exhibition"), ("Mail", "email"), ("Site", "web")):
        channels[channel] = await post(
            "/api/marketing/campaigns", {"name": name, "channel": channel, "starts_on": "2025-01-01"}
        )
    price = (await LossReason.insert(LossReason(name="Price")).returning(LossReason.id))[0]["id"]
    rival = (await LossReason.insert(LossReason(name="Competitor")).returning(LossReason.id))[0]["id"]
    p = {}
    for n, (channel, touched) in enumerate(
        [
            ("exhibition", "2025-01-10"),  # P1: bought in Feb 2025, then nothing: lost (Price)
            ("exhibition", "2025-01-12"),  # P2: bought in Jan 2026: stays
            ("exhibition", "2025-02-01"),  # P3: status former (Price, then Competitor: the latest)
            ("email", "2025-03-01"),  # P4: no revenue since April 2025 but a call in Feb 2026: stays
            ("email", "2025-03-05"),  # P5: bought in April 2025, then nothing, no reason: lost
            ("web", "2025-05-01"),  # P6: never bought, potential: not acquired
            ("exhibition", "2026-02-01"),  # P7: bought in Feb 2026: stays
        ],
        start=1,
    ):
        p[n] = await post("/api/parties", {"name": f"P{n}"})
        await post(
            "/api/marketing/leads",
            {
                "party_id": p[n]["id"],
                "campaign_id": channels[channel]["id"],
                "received_at": f"{touched}T10:00:00Z",
            },
        )
    await _deal(p[1]["id"], "won", "2025-02-15")
    await _deal(p[1]["id"], "lost", "2025-06-01", price)
    await _deal(p[2]["id"], "won", "2026-01-20")
    await _deal(p[3]["id"], "won", "2025-03-10")
    await _deal(p[3]["id"], "lost", "2025-04-01", price)
    await _deal(p[3]["id"], "lost", "2025-05-01", rival)
    r = await crm.patch(f"/api/parties/{p[3]['id']}", admin, json={"status": "former"})
    assert r.status_code == 200, r.text
    await _deal(p[4]["id"], "won", "2025-04-10")
    r = await crm.post(
        "/api/activities",
        admin,
        json={
            "party_id": p[4]["id"],
            "type": "call",
            "subject": "Check-in",
            "status": "done",
            "starts_at": "2026-02-10T10:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    await _deal(p[5]["id"], "won", "2025-04-12")
    await _deal(p[7]["id"], "won", "2026-02-05")

    r = await crm.get("/api/marketing/reports/return/churn", admin, params={"months": 6})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {
            "channel": "email",
            "acquired": 2,
            "lost": 1,
            "churn_rate": 0.5,
            "reasons": [],
            "no_reason": 1,
            "months": 6,
        },
        {
            "channel": "exhibition",
            "acquired": 4,
            "lost": 2,
            "churn_rate": 0.5,
            "reasons": [{"reason": "Competitor", "count": 1}, {"reason": "Price", "count": 1}],
            "no_reason": 0,
            "months": 6,
        },
    ]
    # A longer window: P5's April 2025 revenue is inside 12 months, P1's February 2025 too.
    r = await crm.get("/api/marketing/reports/return/churn", admin, params={"months": 13})
    assert [(c["channel"], c["lost"]) for c in r.json()] == [("email", 0), ("exhibition", 1)]
    assert (
        await crm.get("/api/marketing/reports/return/churn", admin, params={"months": 0})
    ).status_code == 422

    # The page, in Ukrainian.
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "uk"
    r = await crm.client.post("/login", data={"email": admin["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    page = await crm.client.get("/marketing/churn", params={"months": 6})
    assert page.status_code == 200
    for word in ("Відтік за каналами", "Competitor: 1", "50 %"):
        assert word in page.text, word
