"""Fixtures of the receivables plugin's tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
async def ledger(crm: Any) -> dict[str, Any]:
    """A sales team (its head and two managers with a client each) and an accountant who sees
    every record; the managers' role reads receivables on their own clients only."""
    from tessera.entities import admin, service

    await service.create(
        admin.ROLE,
        crm.system,
        {
            "name": "collector",
            "description": "Own clients' receivables",
            "permissions": [
                "party.read",
                "party.write",
                "receivables.read",
                "receivables.collect",
                "task.read",
            ],
            "scope": "own",
        },
    )
    sales = await crm.team("Sales")
    w: dict[str, Any] = {
        "admin": await crm.user("admin", name="Accountant"),
        "head": await crm.user("head", team_id=sales["id"], name="Head of sales"),
        "anna": await crm.user("collector", team_id=sales["id"], name="Anna"),
        "boris": await crm.user("collector", team_id=sales["id"], name="Boris"),
        "team": sales,
    }
    for key, owner in (("anna_party", "anna"), ("boris_party", "boris")):
        r = await crm.post(
            "/api/parties",
            w["admin"],
            json={
                "name": f"{owner.title()}'s client",
                "status": "current",
                "owner_id": w[owner]["id"],
                "team_id": sales["id"],
                "emails": [{"address": f"{owner}-client@example.com"}],
                "phones": [{"number": "+380441234567"}],
            },
        )
        assert r.status_code == 201, r.text
        w[key] = r.json()
    return w
