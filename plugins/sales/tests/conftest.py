"""Fixtures of the sales plugin's tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
async def world(crm: Any) -> dict[str, Any]:
    team = await crm.team("Продажи Москва")
    other = await crm.team("Продажи Киев")
    w: dict[str, Any] = {
        "team": team,
        "other_team": other,
        "admin": await crm.user("admin", name="Админ"),
        "head": await crm.user("head", team_id=team["id"], name="Руководитель"),
        "anna": await crm.user("manager", team_id=team["id"], name="Анна"),
        "boris": await crm.user("manager", team_id=team["id"], name="Борис"),
        "olena": await crm.user("manager", team_id=other["id"], name="Олена"),
    }
    for who, name in (("anna", "ООО Ромашка"), ("boris", "АО Вектор"), ("olena", "ТОВ Промінь")):
        r = await crm.post("/api/parties", w[who], json={"name": name, "status": "current"})
        assert r.status_code == 201, r.text
        w[f"{who}_party"] = r.json()
    return w
