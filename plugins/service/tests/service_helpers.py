"""Helpers of the service plugin's tests."""

from __future__ import annotations

from typing import Any

#: 9:00-18:00 Monday to Friday, UTC, no public holidays.
OFFICE = {"timezone": "UTC", "start": "09:00", "end": "18:00", "weekdays": [0, 1, 2, 3, 4]}


async def post(crm: Any, url: str, user: dict[str, Any], body: dict[str, Any], status: int = 201) -> Any:
    r = await crm.post(url, user, json=body)
    assert r.status_code == status, r.text
    return r.json()
