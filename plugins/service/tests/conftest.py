"""Fixtures of the service plugin's tests."""

from __future__ import annotations

from typing import Any

import pytest
from service_helpers import OFFICE, post


@pytest.fixture
async def desk(crm: Any) -> dict[str, Any]:
    """A support team (lead, two agents, a head), a sales manager with a client, a queue on
    the office calendar and a default SLA policy (P1: 4 h / 16 h)."""
    support = await crm.team("Support")
    sales = await crm.team("Sales")
    w: dict[str, Any] = {
        "admin": await crm.user("admin", name="Admin"),
        "head": await crm.user("head", team_id=support["id"], name="Head of support"),
        "lead": await crm.user("manager", team_id=None, name="Queue lead"),
        "agent1": await crm.user("manager", team_id=support["id"], name="Agent One"),
        "agent2": await crm.user("manager", team_id=support["id"], name="Agent Two"),
        "seller": await crm.user("manager", team_id=sales["id"], name="Seller"),
        "other_seller": await crm.user("manager", team_id=sales["id"], name="Other seller"),
        "support": support,
    }
    r = await crm.post("/api/parties", w["seller"], json={"name": "Client Ltd", "status": "current"})
    assert r.status_code == 201, r.text
    w["party"] = r.json()
    r = await crm.post("/api/parties", w["other_seller"], json={"name": "Other client", "status": "current"})
    w["other_party"] = r.json()
    w["queue"] = await post(
        crm,
        "/api/service/queues",
        w["admin"],
        {"name": "Support", "team_id": support["id"], "lead_id": w["lead"]["id"], "calendar": OFFICE},
    )
    w["policy"] = await post(
        crm,
        "/api/service/sla-policies",
        w["admin"],
        {
            "name": "Default P1",
            "priority": "p1",
            "first_response_hours": "4",
            "resolution_hours": "16",
            "is_default": True,
        },
    )
    return w
