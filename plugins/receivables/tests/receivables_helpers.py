"""Helpers of the receivables plugin's tests."""

from __future__ import annotations

from typing import Any


async def post(crm: Any, url: str, user: dict[str, Any], body: dict[str, Any], status: int = 201) -> Any:
    r = await crm.post(url, user, json=body)
    assert r.status_code == status, r.text
    return r.json()
