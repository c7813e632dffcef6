"""Plan vs actual, funnel, forecast, loss reasons, KPIs and contact cadence, with numbers
computed by hand from the scenario below."""

from __future__ import annotations

import datetime as dt

import pytest
from sales_helpers import log_call, move, open_deal, tick, to_proposal, win_from_proposal

pytestmark = pytest.mark.plugins("sales")


async def _scenario(crm, w, frozen_clock):
    """Anna (2026-03-02): A 100 000 won on day 10, B 50 000 lost at needs (reason "price"),
    C 200 000 open at proposal, D 40 000 open at qualification. Boris: E 70 000 won."""
    anna, boris = w["anna"], w["boris"]
    pa, pb = w["anna_party"]["id"], w["boris_party"]["id"]
    a = await open_deal(crm, anna, pa, title="A", amount="100000", expected_close="2026-03-20")
    b = await open_deal(crm, anna, pa, title="B", amount="50000")
    c = await open_deal(crm, anna, pa, title="C", amount="200000", expected_close="2026-04-10")
    d = await open_deal(crm, anna, pa, title="D", amount="40000", expected_close="2026-03-25")
    e = await open_deal(crm, boris, pb, title="E", amount="70000")
    frozen_clock.advance(days=2)  # 03-04
    await to_proposal(crm, anna, a)  # qualification 2 d, needs 0 d
    await log_call(crm, anna, pa)
    await move(crm, anna, b["id"])  # B -> needs
    await to_proposal(crm, anna, c)
    await to_proposal(crm, boris, e)
    frozen_clock.advance(days=8)  # 03-12: A spent 8 days in proposal (norm 7)
    await win_from_proposal(crm, anna, a["id"])
    await win_from_proposal(crm, boris, e["id"])
    reasons = (await crm.get("/api/sales/loss-reasons", anna)).json()
    r = await crm.post(
        f"/api/sales/deals/{b['id']}/close",
        anna,
        json={"outcome": "lost", "loss_reason_id": reasons[0]["id"], "comment": "дорого"},
    )
    assert r.status_code == 200, r.text
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "reason": reasons[0]}


async def test_plan_vs_actual_funnel_and_loss_reasons(crm, world, frozen_clock):
    s = await _scenario(crm, world, frozen_clock)
    r = await crm.post(
        "/api/sales/plans",
        world["head"],
        json={
            "user_id": world["anna"]["id"],
            "period_start": "2026-03-01",
            "period_end": "2026-03-31",
            "pipeline": "sales.b2b",
            "amount": "400000",
            "stage_targets": {"proposal": 4, "won": 2},
        },
    )
    assert r.status_code == 201, r.text
    plan = r.json()
    # Won in March: A 100 000 of 400 000 = 25 %. Entered proposal: A and C (2 of 4); won: A (1 of 2).
    assert plan["amount"] == {"target": "400000.00", "actual": "100000.00", "percent": 25.0}
    assert plan["stages"] == [
        {"stage": "proposal", "target": 4, "actual": 2, "percent": 50.0},
        {"stage": "won", "target": 2, "actual": 1, "percent": 50.0},
    ]
    team_plan = await crm.post(
        "/api/sales/plans",
        world["head"],
        json={
            "team_id": world["team"]["id"],
            "period_start": "2026-03-01",
            "period_end": "2026-03-31",
            "amount": "200000",
        },
    )
    assert team_plan.json()["amount"]["actual"] == "170000.00"  # A + E

    r = await crm.get(
        "/api/sales/reports/funnel",
        world["head"],
        params={"date_from": "2026-03-01", "date_to": "2026-03-31"},
    )
    assert r.status_code == 200, r.text
    stages = {x["stage"]: x for x in r.json()["groups"][0]["stages"]}
    # 5 deals; qualification 5, needs 4 (A B C E), proposal 3 (A C E), negotiation 2, won 2, lost 1.
    assert [
        stages[k]["entered"] for k in ("qualification", "needs", "proposal", "negotiation", "won", "lost")
    ] == [
        5,
        4,
        3,
        2,
        2,
        1,
    ]
    assert stages["needs"]["conversion_from_previous"] == 0.8
    assert stages["proposal"]["conversion_from_previous"] == 0.75
    assert stages["won"]["conversion_from_first"] == 0.4
    # Proposal stays that ended: A and E, 8 days each (norm 7): both over the norm.
    assert stages["proposal"]["avg_days"] == 8.0 and stages["proposal"]["over_norm"] == 3
    # C is in proposal since 03-04 and D in qualification since 03-02: stuck now (03-12).
    assert stages["proposal"]["stuck"] == 1 and stages["qualification"]["stuck"] == 1
    r = await crm.get(
        "/api/sales/reports/funnel/deals",
        world["head"],
        params={"stage": "proposal", "date_from": "2026-03-01", "date_to": "2026-03-31", "only": "stuck"},
    )
    assert [d["title"] for d in r.json()] == ["C"]
    # The same funnel on the kernel's report framework, with a drill-down to the stuck deal.
    period = {"date_from": "2026-03-01", "date_to": "2026-03-31"}
    r = await crm.post("/api/reports/sales.funnel/run", world["head"], json=period)
    assert r.status_code == 200, r.text
    cells = {row["values"]["stage"]: row["values"] for row in r.json()["rows"]}
    assert cells["proposal"]["entered"] == 3 and cells["proposal"]["conversion_from_previous"] == 75.0
    r = await crm.post(
        "/api/reports/sales.funnel/drill",
        world["head"],
        json={"params": period, "cell": {"group": None, "stage": "proposal"}, "measure": "stuck"},
    )
    assert r.json()["ids"] == [s["c"]["id"]] and r.json()["entity"] == "sales.deal"
    r = await crm.get(
        "/api/reports/sales.funnel/export", world["head"], params={"params": '{"date_from": "2026-03-01"}'}
    )
    assert r.status_code == 200 and "Conversion from previous, %" in r.text.splitlines()[0]
    # Per manager: Anna's funnel has 4 deals, Boris's 1.
    r = await crm.get(
        "/api/sales/reports/funnel",
        world["head"],
        params={"date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": "owner"},
    )
    by_owner = {g["group"]: {x["stage"]: x["entered"] for x in g["stages"]} for g in r.json()["groups"]}
    assert by_owner[world["anna"]["id"]]["qualification"] == 4 and by_owner[world["boris"]["id"]]["won"] == 1
    # Anna alone sees only her deals.
    r = await crm.get(
        "/api/sales/reports/funnel",
        world["anna"],
        params={"date_from": "2026-03-01", "date_to": "2026-03-31"},
    )
    assert r.json()["groups"][0]["stages"][0]["entered"] == 4

    r = await crm.get(
        "/api/sales/reports/loss-reasons",
        world["head"],
        params={"date_from": "2026-03-01", "date_to": "2026-03-31"},
    )
    assert r.json() == [
        {
            "group": None,
            "reason_id": s["reason"]["id"],
            "reason": s["reason"]["name"],
            "currency": "RUB",
            "deals": 1,
            "amount": "50000.00",
        }
    ]


async def test_forecast_two_methods_and_accuracy(crm, world, frozen_clock):
    from tessera_sales import reports

    await _scenario(crm, world, frozen_clock)
    r = await crm.get(
        "/api/sales/reports/forecast",
        world["head"],
        params={"date_from": "2026-03-01", "date_to": "2026-05-31"},
    )
    assert r.status_code == 200, r.text
    f = r.json()
    # Weighted: C 200 000 × 50 % in April (expected close 04-10); D 40 000 × 10 % in March.
    assert f["weighted"] == [
        {"month": "2026-03", "currency": "RUB", "amount": "4000.00"},
        {"month": "2026-04", "currency": "RUB", "amount": "100000.00"},
    ]
    # Historical: closed deals A, E (won) and B (lost). Through proposal: A, E -> win rate 1, and
    # won 8 days after entering it: C entered 03-04 -> 03-12 (today) -> March, 200 000.
    # Through qualification: A, B, E -> 2/3; won 10 days after: D 03-02 -> 03-12 -> 26 666.67.
    assert f["historical"] == [{"month": "2026-03", "currency": "RUB", "amount": "226666.67"}]
    stats = {x["stage"]: x for x in f["stage_stats"]}
    assert stats["qualification"]["win_rate"] == 0.6667 and stats["proposal"]["win_rate"] == 1.0

    # Accuracy: snapshot now for March, close C on 03-20, look in April.
    assert await reports.snapshot_forecast("sales.b2b", dt.date(2026, 3, 1), dt.date(2026, 3, 31)) == 2
    # The monthly job may run twice (retry, second worker): the day's snapshot is kept once.
    assert await reports.snapshot_forecast("sales.b2b", dt.date(2026, 3, 1), dt.date(2026, 3, 31)) == 0
    frozen_clock.advance(days=8)
    s_id = await _deal_id(crm, world, "C")
    await tick(crm, world["anna"], s_id, "proposal_issued")
    await move(crm, world["anna"], s_id)
    await tick(crm, world["anna"], s_id, "terms_agreed")
    await move(crm, world["anna"], s_id, to="won")
    frozen_clock.advance(days=15)
    r = await crm.get("/api/sales/reports/forecast/accuracy", world["head"])
    acc = {x["method"]: x for x in r.json()}
    # Won in March: A 100 000 + E 70 000 + C 200 000 = 370 000.
    assert acc["weighted"]["forecast"] == "4000.00" and acc["weighted"]["actual"] == "370000.00"
    assert acc["historical"]["forecast"] == "226666.67" and acc["historical"]["error"] == "143333.33"


async def _deal_id(crm, world, title):
    r = await crm.get("/api/sales/deals", world["anna"], params={"q": title})
    return next(d["id"] for d in r.json()["items"] if d["title"] == title)


async def test_kpis_and_contact_cadence(crm, world, frozen_clock):
    from tessera_sales import cadence

    await _scenario(crm, world, frozen_clock)
    r = await crm.get(
        "/api/sales/reports/kpi", world["head"], params={"date_from": "2026-03-01", "date_to": "2026-03-31"}
    )
    kpi = {k["user_id"]: k for k in r.json()}
    anna = kpi[world["anna"]["id"]]
    # Anna: open C + D = 240 000; 4 new deals; won A 100 000; lost B; calls: A, B, C = 3.
    assert anna["open_deals"] == 2 and anna["open_amount"] == {"RUB": "240000.00"}
    assert anna["new_deals"] == 4 and anna["won_deals"] == 1 and anna["won_amount"] == {"RUB": "100000.00"}
    assert anna["lost_deals"] == 1 and anna["calls"] == 3 and anna["activities"] == 3
    assert kpi[world["boris"]["id"]]["won_amount"] == {"RUB": "70000.00"}

    # Cadence: category A clients need a call or meeting every 14 days.
    r = await crm.post(
        "/api/sales/cadence-rules",
        world["admin"],
        json={"name": "A: каждые 14 дней", "every_days": 14, "category": "A"},
    )
    assert r.status_code == 201, r.text
    rule = r.json()
    # A rule by ABC class needs a plugin that classifies clients (marketing): none is enabled.
    r = await crm.post(
        "/api/sales/cadence-rules",
        world["admin"],
        json={"name": "Class A", "every_days": 14, "client_class": "A"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "client_class", r.text
    for who in ("anna", "boris"):
        r = await crm.patch(
            f"/api/parties/{world[who + '_party']['id']}",
            world[who],
            json={"custom": {"sales_category": "A"}},
        )
        assert r.status_code == 200, r.text
    frozen_clock.advance(days=5)  # 03-17: Anna's last call 03-04 (13 days), Boris's 03-04 too
    await log_call(crm, world["boris"], world["boris_party"]["id"], kind="meeting")
    frozen_clock.advance(days=3)  # 03-20: Anna 16 days -> overdue; Boris met 03-17 -> fine
    result = await cadence.evaluate()
    assert result["overdue"] == 1 and result["notified"] == 1
    assert (await cadence.evaluate())["notified"] == 0  # idempotent
    r = await crm.get("/api/sales/reports/cadence", world["head"])
    cells = {c["owner_id"]: c for c in r.json() if c["rule_id"] == rule["id"]}
    assert cells[world["anna"]["id"]]["overdue"] == 1 and cells[world["anna"]["id"]]["compliance"] == 0.0
    assert cells[world["boris"]["id"]]["compliance"] == 1.0
    r = await crm.get("/api/notifications", world["anna"])
    assert any(n["kind"] == "sales.cadence_overdue" and "ООО Ромашка" in n["body"] for n in r.json())
    r = await crm.get("/api/sales/reports/cadence/overdue", world["anna"])
    assert [x["party_id"] for x in r.json()] == [world["anna_party"]["id"]]
    r = await crm.get(
        "/api/sales/reports/contacts",
        world["head"],
        params={"date_from": "2026-03-01", "date_to": "2026-03-31"},
    )
    assert {"owner_id": world["boris"]["id"], "type": "meeting", "count": 1} in r.json()
    # The same reports on the kernel's report framework.
    period = {"date_from": "2026-03-01", "date_to": "2026-03-31"}
    r = await crm.post("/api/reports/sales.kpi/run", world["head"], json=period)
    assert {row["values"]["manager"]: row["values"]["won_deals"] for row in r.json()["rows"]} == {
        world["anna"]["id"]: 1,
        world["boris"]["id"]: 1,
    }
    r = await crm.post("/api/reports/sales.contacts/run", world["head"], json=period)
    assert {"manager": world["boris"]["id"], "type": "meeting", "count": 1} in [
        x["values"] for x in r.json()["rows"]
    ]
    r = await crm.post("/api/reports/sales.cadence/run", world["head"], json={})
    mine = [x["values"] for x in r.json()["rows"] if x["values"]["rule"] == rule["id"]]
    assert {x["manager"]: x["compliance"] for x in mine} == {
        world["anna"]["id"]: 0.0,
        world["boris"]["id"]: 100.0,
    }
    r = await crm.post(
        "/api/reports/sales.cadence/drill",
        world["head"],
        json={"cell": {"rule": rule["id"], "manager": world["anna"]["id"]}, "measure": "overdue"},
    )
    assert r.json()["ids"] == [world["anna_party"]["id"]]
    r = await crm.post("/api/reports/sales.forecast/run", world["head"], json=period)
    assert r.status_code == 200 and r.json()["columns"][1]["unit"] == "RUB"
