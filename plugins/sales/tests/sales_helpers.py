"""Shared set-up of the sales plugin's tests: a team with a head and two managers, clients,
products and a price list."""

from __future__ import annotations

from typing import Any


async def log_call(crm: Any, user: dict[str, Any], party_id: int, kind: str = "call", at: Any = None) -> None:
    from tessera import clock

    r = await crm.post(
        "/api/activities",
        user,
        json={
            "type": kind,
            "subject": "Звонок клиенту",
            "status": "done",
            "starts_at": (at or clock.now()).isoformat(),
            "party_id": party_id,
        },
    )
    assert r.status_code == 201, r.text


async def open_deal(crm: Any, user: dict[str, Any], party_id: int, **extra: Any) -> dict[str, Any]:
    body = {"title": "Внедрение CRM", "party_id": party_id, "amount": "100000.00", **extra}
    r = await crm.post("/api/sales/deals", user, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def move(crm: Any, user: dict[str, Any], deal_id: int, **body: Any) -> dict[str, Any]:
    r = await crm.post(f"/api/sales/deals/{deal_id}/move", user, json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def tick(crm: Any, user: dict[str, Any], deal_id: int, item: str) -> None:
    r = await crm.post(f"/api/sales/deals/{deal_id}/checklist", user, json={"item": item})
    assert r.status_code == 200, r.text


async def to_proposal(crm: Any, user: dict[str, Any], deal: dict[str, Any]) -> dict[str, Any]:
    """Qualification (call) -> needs (checklist) -> proposal."""
    await log_call(crm, user, deal["party_id"])
    await move(crm, user, deal["id"])
    await tick(crm, user, deal["id"], "needs_recorded")
    return await move(crm, user, deal["id"])


async def win_from_proposal(crm: Any, user: dict[str, Any], deal_id: int) -> dict[str, Any]:
    await tick(crm, user, deal_id, "proposal_issued")
    await move(crm, user, deal_id)
    await tick(crm, user, deal_id, "terms_agreed")
    r = await crm.post(f"/api/sales/deals/{deal_id}/close", user, json={"outcome": "won"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]
