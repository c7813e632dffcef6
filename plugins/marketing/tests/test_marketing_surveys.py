"""Surveys: questionnaires checked with jsonschema, answered by staff on a call and by clients
through a signed link (once, until it expires), answers in segment rules (422 naming the rule
path for an unknown survey or question), the report, the card and the knowledge-base facts."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.plugins("marketing")

QUESTIONS = [
    {
        "key": "score",
        "text": "How likely are you to recommend us?",
        "type": "scale",
        "min": 0,
        "max": 10,
        "required": True,
    },
    {
        "key": "source",
        "text": "Where did you hear of us?",
        "type": "choice",
        "options": [{"key": "expo", "label": "Exhibition"}, {"key": "web", "label": "Search"}],
    },
    {
        "key": "needs",
        "text": "What do you need?",
        "type": "choices",
        "options": [{"key": "cable", "label": "Cable"}, {"key": "fibre", "label": "Fibre"}],
    },
    {"key": "competitor", "text": "Do you also buy from a competitor?", "type": "yes_no"},
    {"key": "comment", "text": "Anything else?", "type": "text"},
]


async def test_surveys(crm: Any, frozen_clock: Any) -> None:
    from tessera_marketing import plugin

    admin = await crm.user("admin")
    anna = await crm.user("manager", name="Anna")
    boris = await crm.user("manager", name="Boris")
    a = (await crm.post("/api/parties", anna, json={"name": "Alpha"})).json()
    b = (await crm.post("/api/parties", anna, json={"name": "Beta"})).json()
    c = (await crm.post("/api/parties", boris, json={"name": "Gamma"})).json()

    # Definitions are checked with jsonschema: the path of the bad part is named.
    bad = [{"key": "q", "text": "Pick", "type": "choice"}]
    r = await crm.post("/api/marketing/surveys", admin, json={"key": "x", "name": "X", "questions": bad})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "questions[0]", r.text
    bad = [{"key": "q", "text": "Q", "type": "text"}, {"key": "q", "text": "Again", "type": "number"}]
    r = await crm.post("/api/marketing/surveys", admin, json={"key": "x", "name": "X", "questions": bad})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "questions[1].key"
    r = await crm.post(
        "/api/marketing/surveys", admin, json={"key": "nps", "name": "Satisfaction", "questions": QUESTIONS}
    )
    assert r.status_code == 201, r.text
    survey = r.json()
    sid = survey["id"]
    r = await crm.patch(f"/api/marketing/surveys/{sid}", admin, json={"key": "other"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "key"
    # Managers may answer (default role) but not define surveys.
    r = await crm.post("/api/marketing/surveys", anna, json={"key": "y", "name": "Y", "questions": QUESTIONS})
    assert r.status_code == 403

    # Staff on a call: answers checked against the questions.
    url = f"/api/marketing/surveys/{sid}/responses"
    r = await crm.post(url, anna, json={"party_id": a["id"], "answers": {"score": 11}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "answers.score"
    r = await crm.post(url, anna, json={"party_id": a["id"], "answers": {"score": 5, "ghost": 1}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "answers.ghost"
    r = await crm.post(url, anna, json={"party_id": a["id"], "answers": {"source": "expo"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "answers.score"  # required
    r = await crm.post(url, anna, json={"party_id": c["id"], "answers": {"score": 5}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "party_id"  # Boris's client
    r = await crm.post(
        url,
        anna,
        json={"party_id": a["id"], "answers": {"score": 6, "source": "expo", "needs": ["fibre", "cable"]}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["answers"] == {"score": 6, "source": "expo", "needs": ["cable", "fibre"]}
    frozen_clock.advance(days=1)
    # A later call: the latest answer counts, earlier answers to other questions stay.
    r = await crm.post(url, anna, json={"party_id": a["id"], "answers": {"score": 9, "competitor": True}})
    assert r.status_code == 201
    r = await crm.post(url, boris, json={"party_id": c["id"], "answers": {"score": 3, "needs": ["cable"]}})
    assert r.status_code == 201

    # The client through a signed link: once, until it expires.
    r = await crm.post(f"/api/marketing/surveys/{sid}/links", anna, json={"party_id": b["id"], "days": 7})
    assert r.status_code == 201, r.text
    link = r.json()
    token = link["token"]
    public = f"/api/marketing/survey-links/{link['id']}"
    assert (await crm.client.get(public, params={"t": "forged"})).status_code == 404
    opened = await crm.client.get(public, params={"t": token})
    assert opened.status_code == 200 and opened.json()["name"] == "Satisfaction"
    r = await crm.client.post(public, params={"t": token}, json={"answers": {"score": "x"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "answers.score"
    r = await crm.client.post(public, params={"t": token}, json={"answers": {"score": 10, "source": "web"}})
    assert r.status_code == 201, r.text
    r = await crm.client.post(public, params={"t": token}, json={"answers": {"score": 1}})
    assert r.status_code == 410
    late = (
        await crm.post(f"/api/marketing/surveys/{sid}/links", anna, json={"party_id": b["id"], "days": 1})
    ).json()
    frozen_clock.advance(days=2)
    r = await crm.client.post(
        f"/api/marketing/survey-links/{late['id']}",
        params={"t": late["token"]},
        json={"answers": {"score": 1}},
    )
    assert r.status_code == 410

    # Segment rules on the latest answers (compiled to SQL), within the caller's visibility.
    async def count(user: dict[str, Any], *rules: dict[str, Any]) -> Any:
        return await crm.post("/api/marketing/segments/preview", user, json={"rules": {"all": list(rules)}})

    for rule, expected in (
        ({"field": "survey.nps.score", "op": "gte", "value": 9}, {a["id"], b["id"]}),
        ({"field": "survey.nps.score", "op": "lt", "value": 7}, {c["id"]}),  # Alpha's 6 is not latest
        ({"field": "survey.nps.needs", "op": "eq", "value": "fibre"}, {a["id"]}),
        ({"field": "survey.nps.needs", "op": "ne", "value": "fibre"}, {c["id"]}),
        ({"field": "survey.nps.source", "op": "in", "value": ["expo", "web"]}, {a["id"], b["id"]}),
        ({"field": "survey.nps.competitor", "op": "eq", "value": True}, {a["id"]}),
        ({"field": "survey.nps.comment", "op": "not_answered"}, {a["id"], b["id"], c["id"]}),
    ):
        r = await count(admin, rule)
        assert r.status_code == 200, (rule, r.text)
        assert r.json()["count"] == len(expected), rule
    seg = await crm.post(
        "/api/marketing/segments",
        admin,
        json={
            "name": "Promoters",
            "rules": {"all": [{"field": "survey.nps.score", "op": "gte", "value": 9}]},
        },
    )
    members = (await crm.get(f"/api/marketing/segments/{seg.json()['id']}/members", admin)).json()["items"]
    assert {m["id"] for m in members} == {a["id"], b["id"]}
    r = await count(
        admin,
        {"field": "status", "op": "eq", "value": "potential"},
        {"field": "survey.ghost.score", "op": "eq", "value": 1},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rules.all[1].field"
    assert "ghost" in r.json()["errors"][0]["message"]
    r = await count(admin, {"field": "survey.nps.ghost", "op": "answered"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rules.all[0].field"
    r = await count(admin, {"field": "survey.nps.source", "op": "eq", "value": "tv"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rules.all[0].value"

    # A question with answers cannot be removed; a new one can be added.
    r = await crm.patch(f"/api/marketing/surveys/{sid}", admin, json={"questions": QUESTIONS[1:]})
    assert r.status_code == 422 and "score" in r.json()["errors"][0]["message"]
    more = [*QUESTIONS, {"key": "staff", "text": "Employees", "type": "number"}]
    assert (
        await crm.patch(f"/api/marketing/surveys/{sid}", admin, json={"questions": more})
    ).status_code == 200

    # The report over the latest answers of the parties the caller reads.
    rep = (await crm.get(f"/api/marketing/surveys/{sid}/report", admin)).json()
    score = rep["questions"][0]
    assert score["answered"] == 3 and score["average"] == 7.33  # (9 + 10 + 3) / 3, rounded
    assert score["minimum"] == 3 and score["maximum"] == 10
    needs = {o["key"]: o["count"] for o in rep["questions"][2]["options"]}
    assert needs == {"cable": 2, "fibre": 1}
    mine = (await crm.get(f"/api/marketing/surveys/{sid}/report", anna)).json()
    assert mine["questions"][0]["answered"] == 2
    listed = (await crm.get(f"/api/marketing/surveys/{sid}/responses", anna)).json()
    assert [(x["party_name"], x["channel"]) for x in listed] == [
        ("Beta", "link"),
        ("Alpha", "call"),
        ("Alpha", "call"),
    ]

    # Knowledge-base facts: the party's latest answer per question (kind party or a record's party).
    names = await plugin.tessera_advice_fact_names("party")
    assert names["survey.nps.score"] == "Satisfaction: How likely are you to recommend us?"
    facts = await plugin.tessera_advice_facts("party", {"id": a["id"], "name": "Alpha"})
    assert facts == {
        "survey.nps.score": 9,
        "survey.nps.source": "expo",
        "survey.nps.needs": ["cable", "fibre"],
        "survey.nps.competitor": True,
    }
    assert (await plugin.tessera_advice_facts("deal", {"id": 77, "party_id": b["id"]}))[
        "survey.nps.source"
    ] == "web"
    assert await plugin.tessera_advice_facts("task", {"id": 5}) == {}

    # The card: timeline items and the block with the "fill in" link.
    card = (await crm.get(f"/api/parties/{a['id']}/card", anna)).json()
    kinds = [item["kind"] for item in card["timeline"]]
    assert kinds.count("marketing.survey") == 2

    # Pages: the list, the survey (report and responses), the form filled on a call, the link.
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "ru"
    r = await crm.client.post("/login", data={"email": anna["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    csrf = crm.client.cookies.get("csrf_token") or ""
    page = await crm.client.get(f"/app/parties/{b['id']}")
    assert f"/marketing/surveys/{sid}/fill?party_id={b['id']}" in page.text
    page = await crm.client.get(f"/marketing/surveys/{sid}")
    assert page.status_code == 200 and "Beta" in page.text and "Ответы" in page.text
    fill = await crm.client.get(f"/marketing/surveys/{sid}/fill", params={"party_id": b["id"]})
    assert fill.status_code == 200 and 'name="q.needs.fibre"' in fill.text
    import re

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', fill.text).group(1)  # type: ignore[union-attr]
    r = await crm.client.post(
        f"/marketing/surveys/{sid}/fill?party_id={b['id']}",
        data={"csrf_token": csrf, "q.score": "", "q.comment": "call me"},
    )
    assert r.status_code == 422 and "error-score" in r.text
    r = await crm.client.post(
        f"/marketing/surveys/{sid}/fill?party_id={b['id']}",
        data={"csrf_token": csrf, "q.score": "8", "q.needs.fibre": "on", "q.competitor": "no"},
    )
    assert r.status_code == 303, r.text[:300]
    facts = await plugin.tessera_advice_facts("party", {"id": b["id"]})
    assert facts["survey.nps.score"] == 8 and facts["survey.nps.needs"] == ["fibre"]
    assert facts["survey.nps.source"] == "web" and facts["survey.nps.competitor"] is False
    r = await crm.client.post(
        f"/marketing/surveys/{sid}/fill?party_id={b['id']}", data={"csrf_token": csrf, "action": "link"}
    )
    shown = re.search(r'id="survey-link"|value="(http[^"]+)"', html.unescape(r.text))
    assert r.status_code == 200 and shown
    link_url = re.search(r'value="(http[^"]+/marketing/survey/[^"]+)"', html.unescape(r.text)).group(1)  # type: ignore[union-attr]
    crm.client.cookies.clear()
    path = urlsplit(link_url)
    public_url = f"{path.path}?{path.query}"
    page = await crm.client.get(public_url)
    assert (
        page.status_code == 200
        and "Где вы о нас узнали" not in page.text
        and "Where did you hear" in page.text
    )
    r = await crm.client.post(public_url, data={"q.score": "7"})
    assert r.status_code == 200 and "Спасибо" in r.text
    r = await crm.client.post(public_url, data={"q.score": "7"})
    assert r.status_code == 410


async def test_demo_surveys_and_competitors(crm: Any, frozen_clock: Any) -> None:
    import random

    from tessera.demo import DemoContext, system_principal
    from tessera_marketing import demo_competitors, demo_surveys
    from tessera_marketing.tables import CompetitorProduct, CompetitorSupply, SurveyResponse

    ctx = DemoContext(random=random.Random(5), admin=system_principal())
    manager = await crm.user("manager")
    ctx.managers = [manager]
    ctx.parties = [
        (await crm.post("/api/parties", manager, json={"name": f"Demo {i}"})).json() for i in range(14)
    ]
    await demo_surveys.load(ctx)
    await demo_surveys.load(ctx)  # idempotent
    assert await SurveyResponse.count().where(SurveyResponse.channel == "call") == 12
    assert await SurveyResponse.count().where(SurveyResponse.channel == "link") == 1
    await demo_competitors.load(ctx)
    await demo_competitors.load(ctx)  # idempotent
    assert await CompetitorProduct.count() == 3 and await CompetitorSupply.count() == 8
