"""The service reports on the kernel's report framework (issue 17.7): volume per priority,
backlog ageing with drill-down, response and resolution time bands, SLA attainment, an XLSX
export, and an own-scope manager seeing none of another client's tickets. Figures computed by
hand from three tickets on a frozen clock; both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from service_helpers import post

pytestmark = pytest.mark.plugins("service")

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # a Tuesday


async def _run(crm: Any, user: dict[str, Any], key: str, params: dict[str, Any]) -> dict[str, Any]:
    r = await crm.post(f"/api/reports/{key}/run", user, json=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {r["values"][key]: r["values"] for r in rows}


async def test_service_reports_by_hand(crm: Any, frozen_clock: Any, desk: Any) -> None:
    base = {"party_id": desk["party"]["id"], "queue_id": desk["queue"]["id"]}
    frozen_clock.set(T0 - timedelta(days=10))
    tickets = "/api/service/tickets"
    old = await post(crm, tickets, desk["seller"], {**base, "subject": "Old", "priority": "p1"})
    frozen_clock.set(T0)
    quick = await post(crm, tickets, desk["seller"], {**base, "subject": "Quick", "priority": "p1"})
    waiting = await post(crm, tickets, desk["seller"], {**base, "subject": "New", "priority": "p3"})
    frozen_clock.set(T0 + timedelta(minutes=30))
    url = f"/api/service/tickets/{quick['id']}"
    await post(crm, f"{url}/messages", desk["admin"], {"body": "Looking", "kind": "reply"})
    frozen_clock.set(T0 + timedelta(hours=2))
    await post(crm, f"{url}/status", desk["admin"], {"status": "resolved"}, 200)
    frozen_clock.set(T0 + timedelta(hours=3))
    period = {"date_from": "2026-02-20", "date_to": "2026-03-10"}

    volume = await _run(crm, desk["admin"], "service.tickets", {**period, "group_by": ["priority"]})
    rows = _by(volume["rows"], "priority")
    assert (rows["p1"]["tickets"], rows["p1"]["open"], rows["p1"]["resolved"]) == (2, 1, 1)
    assert (rows["p3"]["tickets"], rows["p3"]["open"], rows["p3"]["resolved"]) == (1, 1, 0)

    backlog = await _run(crm, desk["admin"], "service.backlog", {})
    ages = _by(backlog["rows"], "priority")
    assert ages["p1"]["d7_30"] == 1 and ages["p1"]["total"] == 1  # "Quick" is resolved
    assert ages["p3"]["d0_1"] == 1 and ages["p3"]["total"] == 1
    drill = await crm.post(
        "/api/reports/service.backlog/drill",
        desk["admin"],
        json={"params": {}, "cell": {"priority": "p1"}, "measure": "d7_30"},
    )
    assert drill.status_code == 200, drill.text
    assert drill.json()["ids"] == [old["id"]]

    times = _by((await _run(crm, desk["admin"], "service.times", period))["rows"], "measure")
    assert times["first_response"]["h0_1"] == 1 and times["first_response"]["total"] == 1
    assert times["resolution"]["h1_4"] == 1 and times["resolution"]["total"] == 1

    sla = await _run(crm, desk["admin"], "service.sla", {**period, "group_by": "priority"})
    p1 = _by(sla["rows"], "group")["p1"]
    assert p1["tickets"] == 2 and p1["first_response_met"] == 1 and p1["median_first_response_hours"] == 0.5
    assert {r["labels"]["group"] for r in sla["rows"]} >= {"P1 urgent"}

    export = await crm.get(
        "/api/reports/service.backlog/export", desk["admin"], params={"format": "xlsx", "params": "{}"}
    )
    assert export.status_code == 200 and export.content[:2] == b"PK"

    # Another client's manager reads none of these tickets, so none are counted for them.
    theirs = await _run(crm, desk["other_seller"], "service.backlog", {})
    assert sum(r["values"]["total"] for r in theirs["rows"]) == 0
    bad = await crm.post("/api/reports/service.sla/run", desk["admin"], json={"group_by": "galaxy"})
    assert bad.status_code == 422 and "group_by" in bad.text
    assert waiting["id"]
