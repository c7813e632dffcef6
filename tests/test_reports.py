"""The report framework and the kernel's reports (issue 21): hand-computed figures on both
databases, drill-down to exactly the records of a cell, visibility, parameter validation and
CSV/XLSX exports."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
from entity_helpers import field_errors, new_party


def _rows(result: dict[str, Any], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r["values"][k] for k in keys): r["values"] for r in result["rows"]}


async def _run(crm: Any, user: dict[str, Any], key: str, **params: Any) -> dict[str, Any]:
    r = await crm.post(f"/api/reports/{key}/run", user, json=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _activity(crm: Any, user: dict[str, Any], party: dict[str, Any], **values: Any) -> dict[str, Any]:
    body = {"type": "call", "subject": "Talk", "party_id": party["id"]} | values
    r = await crm.post("/api/activities", user, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_activity_report_drill_down_visibility_and_exports(crm, frozen_clock):
    team = await crm.team()
    admin = await crm.user("admin")
    head = await crm.user("head", team_id=team["id"])
    m1 = await crm.user("manager", team_id=team["id"], name="Anna")
    m2 = await crm.user("manager", team_id=team["id"], name="Boris")
    p1 = await new_party(crm, m1, name="=HYPERLINK(1)")
    p2 = await new_party(crm, m2, name="Beta")
    a1 = await _activity(crm, m1, p1, starts_at="2026-03-02T10:00:00Z", status="done", duration_minutes=15)
    await _activity(crm, m1, p1, starts_at="2026-03-03T10:00:00Z")
    a3 = await _activity(
        crm, m1, p1, type="meeting", starts_at="2026-04-01T10:00:00Z", status="done", duration_minutes=60
    )
    a4 = await _activity(crm, m2, p2, starts_at="2026-03-05T10:00:00Z", status="done", duration_minutes=30)

    # By manager and type: counted by hand.
    result = await _run(crm, admin, "activities", group_by=["owner", "type"])
    rows = _rows(result, "owner", "type")
    assert {k: (v["activities"], v["done"], v["minutes"], v["clients"]) for k, v in rows.items()} == {
        (m1["id"], "call"): (2, 1, 15, 1),
        (m1["id"], "meeting"): (1, 1, 60, 1),
        (m2["id"], "call"): (1, 1, 30, 1),
    }
    assert rows[(m1["id"], "call")]["done_share"] == 50.0
    assert result["totals"]["activities"] == 4 and result["totals"]["minutes"] == 105
    labels = {r["labels"]["owner"] for r in result["rows"]}
    assert labels == {"Anna", "Boris"}
    assert [c["key"] for c in result["columns"]][:2] == ["owner", "type"]
    assert next(c for c in result["columns"] if c["key"] == "minutes")["unit"] == "min"

    # By manager and month, then a drill-down from one cell to exactly its records.
    result = await _run(crm, admin, "activities", group_by=["owner", "period"], period="month")
    rows = _rows(result, "owner", "period")
    assert {k: v["activities"] for k, v in rows.items()} == {
        (m1["id"], "2026-03"): 2,
        (m1["id"], "2026-04"): 1,
        (m2["id"], "2026-03"): 1,
    }
    r = await crm.post(
        "/api/reports/activities/drill",
        admin,
        json={
            "params": {"group_by": ["owner", "period"], "period": "month"},
            "cell": {"owner": m1["id"], "period": "2026-03"},
            "measure": "done",
        },
    )
    assert r.status_code == 200, r.text
    drill = r.json()
    assert (drill["ids"], drill["count"], drill["entity"]) == ([a1["id"]], 1, "activity")
    assert drill["list_url"].startswith("/app/activities?")
    assert f"owner_id={m1['id']}" in drill["list_url"] and "status=done" in drill["list_url"]
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": admin["email"], "password": "correct-horse-battery"})
    listed = await crm.client.get(drill["list_url"])
    # The pages: the list of reports, one report with a chart, and a figure's drill-down link.
    page = await crm.client.get("/app/reports")
    assert page.status_code == 200 and 'href="/app/reports/tasks.discipline"' in page.text
    page = await crm.client.get("/app/reports/activities?group_by=owner&group_by=period&period=month")
    assert page.status_code == 200, page.text
    assert "<svg" in page.text and "Anna" in page.text
    link = re.search(r'href="(/app/reports/activities/drill\?[^"]+measure=done)"', page.text).group(1)
    r = await crm.client.get(link.replace("&amp;", "&"))
    assert r.status_code == 303 and r.headers["location"].startswith("/app/activities?")
    page = await crm.client.get("/app/reports/activities?period=year")
    assert page.status_code == 200 and "period" in page.text and 'class="field-error"' in page.text
    assert (await crm.client.get("/app/kpis")).status_code == 200
    crm.client.cookies.clear()
    assert listed.status_code == 200, listed.text
    assert listed.text.count('<tr data-id="') == 1 and f'<tr data-id="{a1["id"]}"' in listed.text
    # Quarters and weeks name their periods in time order.
    result = await _run(crm, admin, "activities", group_by=["period"], period="quarter")
    assert {r["values"]["period"]: r["values"]["activities"] for r in result["rows"]} == {
        "2026-Q1": 3,
        "2026-Q2": 1,
    }
    result = await _run(crm, admin, "activities", group_by=["period"], period="week", date_from="2026-03-01")
    assert {r["values"]["period"]: r["values"]["activities"] for r in result["rows"]} == {
        "2026-03-02": 3,
        "2026-03-30": 1,
    }

    # Own scope: a manager's totals are the sum of their own records only; the head sees the team.
    own = await _run(crm, m2, "activities", group_by=["owner"])
    assert [(r["values"]["owner"], r["values"]["activities"]) for r in own["rows"]] == [(m2["id"], 1)]
    assert own["totals"]["activities"] == 1
    r = await crm.post("/api/reports/activities/drill", m2, json={"cell": {"owner": m1["id"]}})
    assert r.json()["ids"] == [] and r.json()["count"] == 0
    assert (await _run(crm, head, "activities", group_by=[]))["totals"]["activities"] == 4

    # A KPI: calls done per manager, planned per month; actual from the report, percent of plan.
    r = await crm.post(
        "/api/kpis",
        admin,
        json={
            "name": "Calls",
            "report_key": "activities",
            "measure": "done",
            "params": {"filters": {"type": "call"}},
        },
    )
    assert r.status_code == 201, r.text
    kpi = r.json()
    assert (
        await crm.post("/api/kpis", m1, json={"name": "x", "report_key": "activities", "measure": "done"})
    ).status_code == 403
    bad = await crm.post(
        "/api/kpis", admin, json={"name": "x", "report_key": "activities", "measure": "nope"}
    )
    assert bad.status_code == 422 and "measure" in field_errors(bad)
    for body in (
        {"period": "2026-03", "target": "4", "user_id": m1["id"]},
        {"period": "2026-03", "target": "10"},
    ):
        r = await crm.put(f"/api/kpis/{kpi['id']}/targets", admin, json=body)
        assert r.status_code == 200, r.text
    r = await crm.get("/api/kpis/panel", m1, params={"period": "2026-03", "user_id": m1["id"], "history": 2})
    assert r.status_code == 200, r.text
    [item] = r.json()
    assert (item["target"], item["actual"], item["percent"]) == ("4.00", 1, 25.0)
    assert [(h["period"], h["actual"]) for h in item["history"]] == [("2026-03", 1), ("2026-02", 0)]
    company = (await crm.get("/api/kpis/panel", admin, params={"period": "2026-03"})).json()[0]
    assert (company["actual"], company["percent"]) == (2, 20.0)  # a1 and a4: the company's calls done
    own = (await crm.get("/api/kpis/panel", m2, params={"period": "2026-03"})).json()[0]
    assert own["actual"] == 1  # Boris reads his own calls only
    load = {x["user_id"]: x for x in (await crm.get("/api/kpis/load", admin)).json()}
    assert load[m1["id"]]["planned_activities"] == 1

    # Bad parameters: 422 naming the field.
    for params, field in [
        ({"group_by": ["nope"]}, "group_by.0"),
        ({"period": "year"}, "period"),
        ({"bogus": 1}, "bogus"),
        ({"date_from": "2026-13-01"}, "date_from"),
        ({"filters": {"owner": "x' OR 1=1 --"}}, "filters.owner"),
    ]:
        r = await crm.post("/api/reports/activities/run", admin, json=params)
        assert r.status_code == 422, (params, r.text)
        assert field in field_errors(r), (field, r.text)
    r = await crm.post(
        "/api/reports/activities/drill",
        admin,
        json={"cell": {"period": "March"}, "params": {"group_by": ["period"]}},
    )
    assert r.status_code == 422 and "cell.period" in field_errors(r)
    assert (await crm.post("/api/reports/nope/run", admin, json={})).status_code == 404

    # Exports: CSV and XLSX, units in headers, formula-like text neutralised, numbers typed.
    r = await crm.get("/api/reports/activities/export", m1, params={"params": '{"group_by": ["party"]}'})
    assert r.status_code == 403  # managers may not export
    r = await crm.get(
        "/api/reports/activities/export", admin, params={"format": "csv", "params": '{"group_by": ["party"]}'}
    )
    assert r.status_code == 200, r.text
    lines = r.text.splitlines()
    assert lines[0].startswith('Client,Activities,Done,"Duration, min"')
    assert any(line.startswith("'=HYPERLINK(1),3,2,75") for line in lines), lines
    r = await crm.get(
        "/api/reports/activities/export",
        admin,
        params={"format": "xlsx", "params": '{"group_by": ["party"]}'},
    )
    assert r.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][:4] == ["Client", "Activities", "Done", "Duration, min"]
    first = next(row for row in sheet.iter_rows(min_row=2) if row[0].value == "'=HYPERLINK(1)")
    assert first[3].value == 75 and first[3].number_format == "#,##0"
    assert a3["id"] and a4["id"]


async def test_task_and_client_reports(crm, frozen_clock):
    admin = await crm.user("admin")
    m1 = await crm.user("manager", name="Anna")
    m2 = await crm.user("manager", name="Boris")
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    async def task(**values: Any) -> dict[str, Any]:
        r = await crm.post("/api/tasks", admin, json={"title": "Do", "assignee_id": m1["id"]} | values)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    t1 = await task(deadline=(now - timedelta(days=1)).isoformat())  # overdue
    t2 = await task(deadline=(now + timedelta(days=8)).isoformat())  # open, in time
    t3 = await task(deadline=(now - timedelta(days=1)).isoformat())
    r = await crm.post(f"/api/tasks/{t3['id']}/complete", admin, json={"result": "ok"})
    assert r.status_code == 200, r.text  # done late
    result = await _run(crm, admin, "tasks.discipline", group_by=["assignee"])
    assert [
        (
            r["values"]["assignee"],
            r["values"]["tasks"],
            r["values"]["open"],
            r["values"]["overdue"],
            r["values"]["done_late"],
        )
        for r in result["rows"]
    ] == [(m1["id"], 3, 2, 1, 1)]
    r = await crm.post(
        "/api/reports/tasks.discipline/drill",
        admin,
        json={"cell": {"assignee": m1["id"]}, "measure": "overdue"},
    )
    assert r.json()["ids"] == [t1["id"]]
    assert "overdue=true" in r.json()["list_url"]

    # A hand-off not accepted within 24 hours is late.
    r = await crm.post(f"/api/tasks/{t2['id']}/handoff", m1, json={"to_user_id": m2["id"]})
    assert r.status_code == 200, r.text
    # Giving a task to an assignee is a hand-off too: 3 on creation, then this one.
    assert (await _run(crm, admin, "tasks.handoffs"))["totals"] == {
        "handoffs": 4,
        "late": 0,
        "late_share": 0.0,
    }
    frozen_clock.advance(hours=25)
    result = await _run(crm, admin, "tasks.handoffs")
    assert {r["values"]["to_user"]: r["values"]["late"] for r in result["rows"]} == {m1["id"]: 1, m2["id"]: 1}
    r = await crm.post(
        "/api/reports/tasks.handoffs/drill", admin, json={"cell": {"to_user": m2["id"]}, "measure": "late"}
    )
    assert (r.json()["ids"], r.json()["entity"]) == ([t2["id"]], "task")
    assert (await _run(crm, admin, "tasks.handoffs", hours=48))["totals"]["late"] == 0

    # Client base dynamics and contact coverage.
    p1 = await new_party(crm, m1, name="One")
    p2 = await new_party(crm, m2, name="Two")
    p3 = await new_party(crm, m2, name="Three")
    assert (await crm.patch(f"/api/parties/{p1['id']}", m1, json={"status": "current"})).status_code == 200
    assert (await crm.patch(f"/api/parties/{p2['id']}", m2, json={"status": "former"})).status_code == 200
    result = await _run(crm, admin, "parties.dynamics", group_by=["period"], period="month")
    assert [
        (
            r["values"]["period"],
            r["values"]["new"],
            r["values"]["became_current"],
            r["values"]["became_former"],
        )
        for r in result["rows"]
    ] == [("2026-03", 3, 1, 1)]
    r = await crm.post(
        "/api/reports/parties.dynamics/drill",
        admin,
        json={"params": {"period": "month"}, "cell": {"period": "2026-03"}, "measure": "became_current"},
    )
    assert (r.json()["ids"], r.json()["entity"]) == ([p1["id"]], "party")
    own = await _run(crm, m2, "parties.dynamics", group_by=[])
    assert own["totals"]["new"] == 2 and own["totals"]["became_current"] == 0

    await _activity(crm, m1, p1, starts_at=frozen_clock().isoformat(), status="done")
    await _activity(crm, m2, p3, starts_at=(frozen_clock() - timedelta(days=40)).isoformat(), status="done")
    result = await _run(crm, admin, "parties.coverage", group_by=["owner"])
    assert {
        r["values"]["owner"]: (r["values"]["clients"], r["values"]["contacted"], r["values"]["coverage"])
        for r in result["rows"]
    } == {
        m1["id"]: (1, 1, 100.0),
        m2["id"]: (2, 0, 0.0),
    }
    result = await _run(crm, admin, "parties.coverage", group_by=["owner"], days=60)
    assert {r["values"]["owner"]: r["values"]["contacted"] for r in result["rows"]} == {
        m1["id"]: 1,
        m2["id"]: 1,
    }
    r = await crm.post(
        "/api/reports/parties.coverage/drill",
        admin,
        json={"params": {"days": 60}, "cell": {"owner": m2["id"]}, "measure": "coverage"},
    )
    assert r.json()["ids"] == [p3["id"]]
    listed = await crm.get("/api/reports", m1)
    keys = {r["key"] for r in listed.json()}
    assert {
        "activities",
        "tasks.discipline",
        "tasks.handoffs",
        "parties.dynamics",
        "parties.coverage",
    } <= keys


# --------------------------------------------------------------------------- report builder

INJECTIONS = [
    "x' OR '1'='1",
    "x'; DROP TABLE party; --",
    "x' /* comment */ OR 1=1 --",
    "x' || pg_sleep(5) || '",
    "x' AND randomblob(1000000000) --",
    "x; SELECT pg_sleep(5)",
]


async def test_report_builder_safe_queries_saving_and_sharing(crm):
    admin = await crm.user("admin")
    team = await crm.team()
    m1 = await crm.user("manager", team_id=team["id"], name="Anna")
    m2 = await crm.user("manager", name="Boris")
    r = await crm.put(
        "/api/custom-fields/party",
        admin,
        json={"properties": {"industry": {"type": "string"}, "employees": {"type": "integer"}}},
    )
    assert r.status_code == 200, r.text
    p1 = await new_party(crm, m1, name="One", custom={"industry": "it", "employees": 9})
    p2 = await new_party(crm, m1, name="Two", custom={"industry": "it", "employees": 30})
    p3 = await new_party(crm, m2, name="Three", custom={"industry": "retail", "employees": 5})
    definition = {
        "entity": "party",
        "filters": [{"field": "custom.employees", "op": "ge", "value": 5}],
        "group_by": ["custom.industry", "owner"],
        "measures": [
            {"agg": "count"},
            {"agg": "sum", "field": "custom.employees"},
            {"agg": "avg", "field": "custom.employees"},
            {"agg": "max", "field": "custom.employees"},
            {"agg": "count_distinct", "field": "owner"},
        ],
    }
    r = await crm.post("/api/report-builder/run", admin, json={"definition": definition})
    assert r.status_code == 200, r.text
    rows = {(x["values"]["custom.industry"], x["values"]["owner"]): x["values"] for x in r.json()["rows"]}
    assert {k: (v["m0"], v["m1"], v["m2"], v["m3"], v["m4"]) for k, v in rows.items()} == {
        ("it", m1["id"]): (2, 39, 19.5, 30, 1),  # 30 > 9 as numbers (not as text)
        ("retail", m2["id"]): (1, 5, 5.0, 5, 1),
    }
    assert r.json()["columns"][3]["label"] == "Sum: employees"
    r = await crm.post(
        "/api/report-builder/drill",
        admin,
        json={
            "definition": definition,
            "cell": {"custom.industry": "it", "owner": m1["id"]},
            "measure": "m0",
        },
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["ids"]) == sorted([p1["id"], p2["id"]])
    # Own scope: the manager's totals cover their own clients only.
    r = await crm.post("/api/report-builder/run", m2, json={"definition": definition})
    assert r.json()["totals"]["m0"] == 1 and r.json()["totals"]["m1"] == 5
    # Group by month of a time field.
    r = await crm.post(
        "/api/report-builder/run",
        admin,
        json={
            "definition": {
                "entity": "party",
                "group_by": ["created_at:month"],
                "measures": [{"agg": "count"}],
            }
        },
    )
    assert [x["values"]["m0"] for x in r.json()["rows"]] == [3]

    # SQL in a filter value is a value: no rows (text) or 422 (numbers), never run.
    for text in INJECTIONS:
        for field in ("name", "custom.industry"):
            for op in ("eq", "contains", "ge"):  # every name sorts before "x"
                body = {
                    "entity": "party",
                    "filters": [{"field": field, "op": op, "value": text}],
                    "measures": [{"agg": "count"}],
                }
                r = await crm.post("/api/report-builder/run", admin, json={"definition": body})
                assert r.status_code == 200, r.text
                assert r.json()["totals"]["m0"] == 0, (field, op, text)
        body = {
            "entity": "party",
            "filters": [{"field": "owner", "op": "eq", "value": text}],
            "measures": [{"agg": "count"}],
        }
        r = await crm.post("/api/report-builder/run", admin, json={"definition": body})
        assert r.status_code == 422 and "filters.0.value" in field_errors(r)
    assert await crm.post(
        "/api/report-builder/run",
        admin,
        json={"definition": {"entity": "party", "measures": [{"agg": "count"}]}},
    )
    # Fields, operators and aggregates outside the whitelist: 422 naming the place.
    for bad, field in [
        ({"group_by": ["name; DROP TABLE party"]}, "group_by.0"),
        ({"group_by": ["custom.x'--"]}, "group_by.0"),
        ({"filters": [{"field": "id) OR (1=1", "op": "eq", "value": 1}]}, "filters.0.field"),
        ({"filters": [{"field": "name", "op": "LIKE", "value": "x"}]}, "filters.0.op"),
        ({"measures": [{"agg": "sum(1);--", "field": "name"}]}, "measures.0.agg"),
        ({"measures": [{"agg": "sum", "field": "name"}]}, "measures.0.field"),
        ({"entity": "crm_user"}, "entity"),
    ]:
        body = {"entity": "party", "measures": [{"agg": "count"}]} | bad
        r = await crm.post("/api/report-builder/run", admin, json={"definition": body})
        assert r.status_code == 422, (bad, r.text)
        assert field in field_errors(r), (field, r.text)
    # A field the user may not read is a 400 (not an oracle), in filters, groups and measures.
    for bad in (
        {"group_by": ["tax_id"]},
        {"filters": [{"field": "tax_id", "op": "eq", "value": "7707083893"}]},
        {"measures": [{"agg": "count_distinct", "field": "tax_id"}]},
    ):
        body = {"entity": "party", "measures": [{"agg": "count"}]} | bad
        r = await crm.post("/api/report-builder/run", m1, json={"definition": body})
        assert r.status_code == 400, r.text
    entities = {e["key"]: e for e in (await crm.get("/api/report-builder/entities", m1)).json()}
    assert "tax_id" not in {f["key"] for f in entities["party"]["fields"]}
    assert "custom.industry" in {f["key"] for f in entities["party"]["fields"]}

    # Save, share with a team: a team member runs it with their own visibility; others do not see it.
    r = await crm.post(
        "/api/report-builder/saved",
        admin,
        json={"name": "By industry", "definition": definition, "shared_teams": [team["id"]]},
    )
    assert r.status_code == 201, r.text
    saved = r.json()
    assert [s["id"] for s in (await crm.get("/api/report-builder/saved", m1)).json()] == [saved["id"]]
    assert (await crm.get("/api/report-builder/saved", m2)).json() == []
    assert (await crm.get(f"/api/report-builder/saved/{saved['id']}", m2)).status_code == 404
    r = await crm.post(f"/api/report-builder/saved/{saved['id']}/run", m1)
    assert r.status_code == 200 and r.json()["totals"]["m0"] == 2 and r.json()["title"] == "By industry"
    assert (await crm.delete(f"/api/report-builder/saved/{saved['id']}", m1)).status_code == 404
    r = await crm.post(
        "/api/report-builder/saved",
        admin,
        json={"name": "x", "definition": definition, "shared_roles": ["nope"]},
    )
    assert r.status_code == 422 and "shared_roles.0" in field_errors(r)
    r = await crm.put(
        f"/api/report-builder/saved/{saved['id']}",
        admin,
        json={"name": "By industry", "definition": definition, "shared_roles": ["manager"]},
    )
    assert r.status_code == 200, r.text
    assert [s["id"] for s in (await crm.get("/api/report-builder/saved", m2)).json()] == [saved["id"]]
    r = await crm.get(f"/api/report-builder/saved/{saved['id']}/export", admin, params={"format": "xlsx"})
    assert r.status_code == 200
    # A dashboard of a kernel report and the saved report, shared with the team; tiles drill down.
    tiles = [
        {"kind": "report", "key": "parties.coverage", "params": {"group_by": ["owner"]}},
        {"kind": "saved", "id": saved["id"]},
    ]
    r = await crm.post(
        "/api/dashboards", admin, json={"name": "Base", "tiles": tiles, "shared_teams": [team["id"]]}
    )
    assert r.status_code == 201, r.text
    board = r.json()
    bad = await crm.post(
        "/api/dashboards", admin, json={"name": "x", "tiles": [{"kind": "report", "key": "nope"}]}
    )
    assert bad.status_code == 422 and "tiles.0.key" in field_errors(bad)
    r = await crm.get(f"/api/dashboards/{board['id']}/tiles", m1)
    assert r.status_code == 200, r.text
    coverage, mine = r.json()
    assert coverage["result"]["totals"]["clients"] == 2 and mine["result"]["totals"]["m0"] == 2  # Anna's own
    assert (await crm.get(f"/api/dashboards/{board['id']}/tiles", m2)).status_code == 404
    crm.client.cookies.clear()
    await crm.client.post("/login", data={"email": admin["email"], "password": "correct-horse-battery"})
    page = await crm.client.get(f"/app/dashboards/{board['id']}")
    assert page.status_code == 200 and page.text.count("<svg") == 2, page.text[:2000]
    links = re.findall(r'href="(/app/(?:reports|saved-reports)/[^/"]+/drill\?[^"]+)"', page.text)
    coverage_link = next(x for x in links if "parties.coverage" in x).replace("&amp;", "&")
    r = await crm.client.get(coverage_link)
    assert r.status_code == 303 and r.headers["location"].startswith("/app/parties?"), r.text[:500]
    # A custom field has no list filter: the drill-down page lists the records' ids instead.
    saved_link = next(x for x in links if "saved-reports" in x).replace("&amp;", "&")
    r = await crm.client.get(saved_link)
    assert r.status_code == 200 and f'data-id="{p1["id"]}"' in r.text and f'data-id="{p2["id"]}"' in r.text
    assert (await crm.client.get(f"/app/saved-reports/{saved['id']}")).status_code == 200
    crm.client.cookies.clear()
    assert (await crm.delete(f"/api/report-builder/saved/{saved['id']}", admin)).status_code == 204
    assert p3["id"]


# --------------------------------------------------------------------------- scheduled reports


async def test_scheduled_report_each_recipient_gets_their_own_rows(crm, frozen_clock):
    from aiosmtpd.controller import Controller
    from mail_helpers import MailServer, _free_port
    from tessera import email as mail
    from tessera import jobs
    from tessera.reports import schedules

    box = MailServer(port=_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    configured = crm.settings.with_(
        smtp_host="127.0.0.1", smtp_port=box.port, smtp_security="none", mail_from="CRM <crm@example.com>"
    )
    mail.configure(configured)
    try:
        admin = await crm.user("admin", name="Admin")
        m1 = await crm.user("manager", name="Anna")
        m2 = await crm.user("manager", name="Boris")
        await new_party(crm, m1, name="Anna's client")
        await new_party(crm, m2, name="Boris's client")
        definition = {"entity": "party", "group_by": ["owner"], "measures": [{"agg": "count"}]}
        saved = (
            await crm.post(
                "/api/report-builder/saved", admin, json={"name": "Clients", "definition": definition}
            )
        ).json()
        r = await crm.post(
            f"/api/report-builder/saved/{saved['id']}/schedules",
            admin,
            json={
                "cron": "0 8 * * 1",
                "format": "csv",
                "recipient_users": [m1["id"]],
                "recipient_roles": ["admin"],
            },
        )
        assert r.status_code == 201, r.text
        schedule = r.json()
        assert schedule["next_run_at"].startswith("2026-03-09T08:00:00")  # next Monday 08:00 UTC
        bad = await crm.post(
            f"/api/report-builder/saved/{saved['id']}/schedules", admin, json={"cron": "every day"}
        )
        assert bad.status_code == 422 and "cron" in field_errors(bad)

        assert await schedules.run_due(crm.pm) == 0  # not yet
        frozen_clock.advance(days=7)
        assert await schedules.run_due(crm.pm) == 2
        assert await schedules.run_due(crm.pm) == 0  # once per due time
        assert box.received == []  # sent by the background job
        assert {status for _, status in await jobs.work(crm.pm, configured)} == {"done"}
        copies = {}
        for rcpt, message, _ in box.received:
            [part] = [p for p in message.iter_attachments()]
            assert part.get_filename().startswith("Clients-2026-03-09")
            copies[rcpt[0]] = part.get_content()
            if isinstance(copies[rcpt[0]], bytes):
                copies[rcpt[0]] = copies[rcpt[0]].decode()
        assert set(copies) == {m1["email"], admin["email"]}
        assert copies[m1["email"]].splitlines()[1:] == ["Anna,1"]  # her own clients only
        assert sorted(copies[admin["email"]].splitlines()[1:]) == ["Anna,1", "Boris,1"]
        r = await crm.get(f"/api/report-builder/schedules/{schedule['id']}/deliveries", admin)
        assert sorted((d["email"], d["rows"], d["status"]) for d in r.json()) == sorted(
            [(m1["email"], 1, "queued"), (admin["email"], 2, "queued")]
        )
        assert (
            await crm.get(f"/api/report-builder/schedules/{schedule['id']}/deliveries", m1)
        ).status_code == 404
    finally:
        controller.stop()
        mail.configure(crm.settings)


async def test_report_builder_page(crm, frozen_clock):
    """The builder page: the API's validation beside each field, a table with drill-down links
    to the list page (where the records can be reassigned in bulk), saving with shares, and a
    saved report added to a new dashboard."""
    team = await crm.team()
    m1 = await crm.user("manager", team_id=team["id"], name="Anna")
    party = await new_party(crm, m1, name="Alpha")
    for kind in ("call", "call", "meeting"):
        await _activity(crm, m1, party, type=kind, starts_at="2026-03-02T10:00:00Z")
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": m1["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303, r.text
    page = await crm.client.get("/app/report-builder?entity=activity")
    assert page.status_code == 200 and 'name="filters.0.field"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {
        "csrf_token": token,
        "entity": "activity",
        "filters.0.field": "duration_minutes",
        "filters.0.op": "ge",
        "filters.0.value": "ten",
        "group_by.0": "owner",
        "group_by.1": "starts_at:month",
        "measures.0.agg": "count",
        "chart": "bar",
        "action": "show",
    }

    def beside(text: str, name: str) -> str:
        block = next(
            b for b in re.findall(r'<p class="field[^"]*">(.*?)</p>', text, re.S) if f'name="{name}"' in b
        )
        match = re.search(r'class="field-error"[^>]*>([^<]+)<', block)
        return match.group(1) if match else ""

    r = await crm.client.post("/app/report-builder", data=form)
    assert r.status_code == 422
    assert beside(r.text, "filters.0.value") == "must be a whole number"
    assert 'value="ten"' in r.text  # what the user typed is kept
    form |= {"filters.0.field": "type", "filters.0.op": "eq", "filters.0.value": "call"}
    r = await crm.client.post(
        "/app/report-builder", data=form | {"measures.1.agg": "sum", "measures.1.field": "subject"}
    )
    assert r.status_code == 422 and beside(r.text, "measures.1.field") == "needs a number field"
    r = await crm.client.post("/app/report-builder", data=form)
    assert r.status_code == 200 and "<svg" in r.text and "Anna" in r.text, r.text[:3000]
    link = re.search(r'href="(/app/report-builder/drill\?[^"]+)"', r.text).group(1).replace("&amp;", "&")
    r = await crm.client.get(link)
    location = r.headers["location"]
    assert r.status_code == 303 and location.startswith("/app/activities?") and "type=call" in location
    listing = await crm.client.get(location)
    assert listing.text.count('name="ids"') == 2 and 'name="action" value="owner"' in listing.text
    # Act on exactly those records from there: a task about each call's client, for its owner.
    ids = re.findall(r'name="ids" value="(\d+)"', listing.text)
    r = await crm.client.post(
        "/app/lists/activities/bulk",
        data={"csrf_token": token, "ids": ids, "action": "task", "task_title": "Call back"},
    )
    assert r.status_code == 303, r.text[:2000]
    made = (await crm.get(f"/api/tasks?party_id={party['id']}", m1)).json()["items"]
    assert [(t["title"], t["assignee_id"]) for t in made] == [("Call back", m1["id"])] * 2

    # A report page computes only the figures chosen (the activity summary serves those).
    page = await crm.client.get("/app/reports/activities?group_by=owner&measures=activities&measures=done")
    head = re.search(r"<thead>(.*?)</thead>", page.text, re.S).group(1)
    assert page.status_code == 200 and re.findall(r"<th[^>]*>([^<,]+)", head) == [
        "Manager",
        "Activities",
        "Done",
    ]

    r = await crm.client.post("/app/report-builder", data=form | {"action": "save", "name": " "})
    assert r.status_code == 422 and beside(r.text, "name")
    r = await crm.client.post(
        "/app/report-builder",
        data=form | {"action": "save", "name": "Calls by month", "shared_teams": [str(team["id"])]},
    )
    assert r.status_code == 303, r.text[:2000]
    saved_url = r.headers["location"]
    saved = await crm.get("/api/report-builder/saved/" + saved_url.rsplit("/", 1)[1], m1)
    assert saved.json()["shared_teams"] == [team["id"]]
    assert saved.json()["definition"]["filters"] == [{"field": "type", "op": "eq", "value": "call"}]
    page = await crm.client.get(saved_url)
    assert "Add to dashboard" in page.text and "/app/report-builder?saved=" in page.text
    r = await crm.client.post(
        saved_url + "/dashboard", data={"csrf_token": token, "dashboard_id": "", "new_name": ""}
    )
    assert r.status_code == 303 and "dashboard_error=" in r.headers["location"]
    r = await crm.client.post(
        saved_url + "/dashboard", data={"csrf_token": token, "dashboard_id": "", "new_name": "Mine"}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/app/dashboards/")
    board = await crm.client.get(r.headers["location"])
    assert "Calls by month" in board.text and "<svg" in board.text
    crm.client.cookies.clear()


async def test_activity_summary_is_exact_and_reports_read_it(crm):
    """The activity summary kept by triggers equals its rebuild from the activities after
    creates, changes (owner, status, time, duration), deletes and a client's cascade delete;
    the ``activities`` report read from it equals the report from the activities themselves
    for every grouping it serves, and KPIs read it too."""
    from tessera.permissions import build_principal
    from tessera.reports import framework, kernel, summary

    team = await crm.team()
    admin = await crm.user("admin")
    m1 = await crm.user("manager", team_id=team["id"], name="Anna")
    m2 = await crm.user("manager", name="Boris")
    p1 = await new_party(crm, m1, name="Kept")
    p2 = await new_party(crm, m2, name="Dropped")
    made = []
    for i, (user, party, kind, when) in enumerate(
        [
            (m1, p1, "call", "2026-01-31T23:59:00Z"),
            (m1, p1, "call", "2026-02-01T00:00:00Z"),
            (m1, p1, "meeting", "2026-02-14T09:00:00Z"),
            (m2, p2, "call", "2026-02-15T12:00:00Z"),
            (m2, p2, "email", "2026-03-30T12:00:00Z"),
            (m2, p2, "call", "2026-04-02T08:00:00Z"),
        ]
    ):
        status = "done" if i % 2 == 0 else "planned"
        made.append(
            await _activity(
                crm, user, party, type=kind, starts_at=when, status=status, duration_minutes=5 * i
            )
        )
    before = await summary.snapshot()
    assert sum(n for n, _ in before.values()) == 6 and sum(m for _, m in before.values()) == 75
    # Changes of every counted column, a delete, and a client deleted with its activities.
    a = made[1]
    r = await crm.patch(
        f"/api/activities/{a['id']}",
        admin,
        json={
            "owner_id": m2["id"],
            "status": "done",
            "starts_at": "2026-03-01T10:00:00Z",
            "version": a["version"],
        },
    )
    assert r.status_code == 200, r.text
    b = made[2]
    r = await crm.patch(
        f"/api/activities/{b['id']}",
        admin,
        json={"duration_minutes": 90, "type": "call", "version": b["version"]},
    )
    assert r.status_code == 200, r.text
    assert (await crm.delete(f"/api/activities/{made[0]['id']}", admin)).status_code == 204
    assert (await crm.delete(f"/api/parties/{p2['id']}", admin)).status_code == 204
    kept = await summary.snapshot()
    await summary.rebuild()
    assert kept == await summary.snapshot()
    assert sum(n for n, _ in kept.values()) == 2  # made[1] (moved to Boris, March) and made[2]
    assert {k[1:]: v for k, v in kept.items()} == {
        (m2["id"], 0, "call", "done"): (1, 5),
        (m1["id"], team["id"], "call", "done"): (1, 90),
    }

    # More rows, then the report from the summary against the report from the activities.
    for i in range(12):
        await _activity(
            crm,
            m1 if i % 3 else admin,
            p1,
            type=("call", "meeting", "email")[i % 3],
            starts_at=f"2026-0{1 + i % 6}-{10 + i:02d}T{i:02d}:30:00Z",
            status=("done", "planned", "cancelled")[i % 3],
            duration_minutes=i,
        )
    report = kernel.ACTIVITIES
    boss = await build_principal(admin["id"])
    figures = ["activities", "done", "minutes", "done_share"]
    cases = [
        {"group_by": ["owner", "period"], "period": "month"},
        {"group_by": ["team", "type"]},
        {"group_by": ["status", "period"], "period": "week"},
        {"group_by": ["period"], "period": "quarter", "date_from": "2026-02-01", "date_to": "2026-03-31"},
        {"group_by": ["owner"], "filters": {"team": None}},
        {"group_by": ["period"], "period": "day", "filters": {"type": "call", "owner": m1["id"]}},
    ]
    for case in cases:
        params = case | {"measures": figures}
        assert (
            framework._summary_source(report, boss, framework.validate_params(report, params), []) is not None
        )
        fast = await framework.run_report(report, boss, params)
        full = await framework.run_report(report, boss, params, use_summary=False)
        assert fast == full, case
        assert fast["totals"]["activities"] == 14 or case.get("filters") or case.get("date_from")
    # Not from the summary: a reader who sees only their own, or a figure it does not hold.
    anna = await build_principal(m1["id"])
    params = framework.validate_params(report, {"group_by": ["owner"], "measures": figures})
    assert framework._summary_source(report, anna, params, []) is None
    params = framework.validate_params(report, {"group_by": ["owner"]})
    assert framework._summary_source(report, boss, params, list(report.measures)) is None

    # A KPI reads the same figures: its actual equals the full report's total.
    r = await crm.post(
        "/api/kpis",
        admin,
        json={
            "name": "Done calls",
            "report_key": "activities",
            "measure": "done",
            "params": {"filters": {"type": "call"}},
        },
    )
    assert r.status_code == 201, r.text
    panel = (await crm.get("/api/kpis/panel?period=2026-01&history=1", admin)).json()
    full = await framework.run_report(
        report,
        boss,
        {"filters": {"type": "call"}, "date_from": "2026-01-01", "date_to": "2026-01-31"},
        use_summary=False,
    )
    assert panel[0]["actual"] == full["totals"]["done"] > 0
