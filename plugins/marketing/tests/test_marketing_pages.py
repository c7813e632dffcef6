"""The marketing pages for a signed-in user, through the same validation as the API: the segment
editor (rules as rows, a refused rule shown beside its row, the count of the parties the user
sees, the API count the page's script calls), the campaign card (a cost line added, its return
and ROI chart changing with a won deal), the mailing composer (a template error beside the
field, the sandboxed preview, sending and its progress) and the ABC/XYZ chart, in English and
Russian."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from tessera.entities.tables import Role

pytestmark = pytest.mark.plugins("marketing", "sales")


async def _sign_in(crm: Any, user: dict[str, Any], language: str = "en") -> None:
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = language
    r = await crm.client.post("/login", data={"email": user["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303, r.text


async def _page(crm: Any, url: str, status: int = 200) -> str:
    r = await crm.client.get(url)
    assert r.status_code == status, r.text[:800]
    return html.unescape(r.text)


def _csrf(text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match
    return match.group(1)


def _count(text: str) -> str:
    match = re.search(r'<output id="segment-count" data-count>([^<]*)</output>', text)
    assert match, text[:2000]
    return match.group(1)


def _figure(text: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', text)
    assert match
    return match.group(1)


async def _parties(crm: Any) -> dict[str, Any]:
    await Role.insert(
        Role(
            name="marketer-own",
            description="own",
            permissions=["party.read", "party.write", "activity.*", "marketing.*"],
            scope="own",
        )
    )
    admin = await crm.user("admin")
    own = await crm.user("marketer-own", name="Own")
    made = []
    for i, (user, status, tags) in enumerate(
        [
            (admin, "current", ["vip"]),
            (admin, "current", []),
            (own, "current", ["vip"]),
            (admin, "potential", ["vip"]),
        ]
    ):
        r = await crm.post(
            "/api/parties",
            user,
            json={
                "name": f"Client {i}",
                "status": status,
                "tags": tags,
                "emails": [{"address": f"client{i}@mail.example", "type": "work"}],
            },
        )
        assert r.status_code == 201, r.text
        made.append(r.json())
    return {"admin": admin, "own": own, "parties": made}


async def test_segment_editor_counts_and_refuses_like_the_api(crm: Any) -> None:
    w = await _parties(crm)
    await _sign_in(crm, w["admin"])
    page = await _page(crm, "/marketing/segments/new")
    assert "/marketing/static/segments.js" in page
    token = _csrf(page)
    rows = {
        "csrf_token": token,
        "name": "Current VIP",
        "kind": "dynamic",
        "match": "all",
        "rule-0-field": "status",
        "rule-0-op": "eq",
        "rule-0-value": "current",
        "rule-1-field": "",
        "rule-1-op": "",
        "rule-1-value": "",
        "rule-2-field": "tag",
        "rule-2-op": "has",
        "rule-2-value": "vip",
    }
    r = await crm.client.post("/marketing/segments/new", data={**rows, "action": "count"})
    assert r.status_code == 200 and _count(html.unescape(r.text)) == "2"
    # A rule the API refuses is refused here, beside its row (the third row is the second rule).
    r = await crm.client.post("/marketing/segments/new", data={**rows, "rule-2-op": "eq", "action": "save"})
    assert r.status_code == 422 and 'id="error-rule-2-op"' in r.text
    assert 'value="Current VIP"' in r.text  # the input is kept
    # The live count the page's script asks: the API's preview, on the session.
    r = await crm.client.post(
        "/api/marketing/segments/preview",
        json={"rules": {"any": [{"field": "tag", "op": "has", "value": "vip"}]}},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and r.json() == {"count": 3}
    r = await crm.client.post("/marketing/segments/new", data={**rows, "action": "save"})
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    page = await _page(crm, url)
    assert _count(page) == "2" and 'value="vip"' in page
    segments = await _page(crm, "/marketing/segments")
    assert f'href="{url}"' in segments
    # Changed to "any" of the rules: the saved segment counts again.
    r = await crm.client.post(url, data={**rows, "match": "any", "action": "save"})
    assert r.status_code == 303
    assert _count(await _page(crm, url)) == "4"
    # A user who reads only their own parties sees only theirs (an "any" group stays inside
    # the visibility condition).
    await _sign_in(crm, w["own"])
    assert _count(await _page(crm, url)) == "1"
    # Nested rules are edited as the JSON document.
    await _sign_in(crm, w["admin"])
    token = _csrf(await _page(crm, url))
    nested = (
        '{"all": [{"field": "tag", "op": "has", "value": "vip"}, '
        '{"not": {"field": "status", "op": "eq", "value": "potential"}}]}'
    )
    r = await crm.client.post(
        url, data={"csrf_token": token, "name": "Current VIP", "rules_json": nested, "action": "save"}
    )
    assert r.status_code == 303
    page = await _page(crm, url)
    assert _count(page) == "2" and '"not"' in page and "data-rule-row" not in page
    r = await crm.client.post(
        url, data={"csrf_token": token, "name": "Current VIP", "rules_json": "{oops", "action": "save"}
    )
    assert r.status_code == 422 and 'id="error-rules_json"' in r.text


async def test_campaign_card_costs_and_roi_follow_a_won_deal(crm: Any) -> None:
    w = await _parties(crm)
    admin = w["admin"]
    await _sign_in(crm, admin)
    page = await _page(crm, "/marketing/campaigns/new")
    token = _csrf(page)
    form = {"csrf_token": token, "name": "Spring expo", "channel": "exhibition", "status": "active"}
    r = await crm.client.post(
        "/marketing/campaigns/new", data={**form, "starts_on": "2026-03-01", "budget": "-5"}
    )
    assert r.status_code == 422 and 'id="error-budget"' in r.text
    r = await crm.client.post(
        "/marketing/campaigns/new", data={**form, "starts_on": "2026-03-01", "budget": "500"}
    )
    assert r.status_code == 303, r.text
    card_url = r.headers["location"]
    campaign_id = int(card_url.rsplit("/", 1)[1])
    r = await crm.client.post(
        f"{card_url}/costs", data={"csrf_token": token, "spent_on": "2026-03-02", "amount": "abc"}
    )
    assert r.status_code == 422 and 'id="error-amount"' in r.text
    r = await crm.client.post(
        f"{card_url}/costs",
        data={"csrf_token": token, "spent_on": "2026-03-02", "amount": "100", "description": "Stand"},
    )
    assert r.status_code == 303
    card = await _page(crm, card_url)
    assert _figure(card, "cost") == "100.00" and "Stand" in card and _figure(card, "roi") == "-100 %"
    assert 'id="campaign-plan"' in card or "campaign-plan" in card
    # A deal opened with the campaign is its response and lead; won, its revenue is the return.
    r = await crm.post(
        "/api/sales/deals",
        admin,
        json={
            "party_id": w["parties"][0]["id"],
            "title": "Stand deal",
            "amount": "300",
            "campaign_id": campaign_id,
        },
    )
    assert r.status_code == 201, r.text
    card = await _page(crm, card_url)
    assert _figure(card, "leads") == "1" and _figure(card, "revenue") == "0.00"
    from tessera_sales.tables import Deal

    await Deal.update({Deal.status: "won", Deal.closed_at: dt.datetime.now(dt.UTC)}).where(
        Deal.id == r.json()["id"]
    )
    card = await _page(crm, card_url)
    assert _figure(card, "revenue") == "300.00" and _figure(card, "roi") == "200 %"
    assert (
        'data-key="' + str(campaign_id) + '" data-series="" data-series-key="" data-value="200"' in card
    )  # the ROI bar
    listing = await _page(crm, "/marketing/campaigns")
    assert f'href="{card_url}"' in listing
    # The edit form goes through the API's patch.
    r = await crm.client.post(
        f"{card_url}/edit",
        data={"csrf_token": token, "name": "Spring expo", "starts_on": "2026-03-01", "ends_on": "2026-02-01"},
    )
    assert r.status_code == 422 and 'id="error-ends_on"' in r.text
    r = await crm.client.post(
        f"{card_url}/edit", data={"csrf_token": token, "name": "Spring expo 2026", "status": "closed"}
    )
    assert r.status_code == 303
    assert "Spring expo 2026" in await _page(crm, card_url)


async def test_mailing_composer_previews_sends_and_shows_progress(crm: Any) -> None:
    w = await _parties(crm)
    admin = w["admin"]
    r = await crm.post(
        "/api/marketing/segments",
        admin,
        json={"name": "VIP", "rules": {"all": [{"field": "tag", "op": "has", "value": "vip"}]}},
    )
    segment = r.json()
    await _sign_in(crm, admin)
    page = await _page(crm, "/marketing/mailings/new")
    token = _csrf(page)
    form = {
        "csrf_token": token,
        "name": "Spring news",
        "subject": "{{ party.name }}, spring news",
        "segment_id": str(segment["id"]),
        "promotional": "true",
        "per_minute": "600",
    }
    r = await crm.client.post("/marketing/mailings/new", data={**form, "html": "<p>{{ party.name </p>"})
    assert r.status_code == 422 and 'id="error-html"' in r.text
    r = await crm.client.post(
        "/marketing/mailings/new",
        data={**form, "html": "<p>Dear {{ party.name }}</p><script>steal()</script>"},
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    page = await _page(crm, url)
    first = w["parties"][0]
    assert "Client 0, spring news" in page and 'sandbox=""' in page
    raw = (await crm.client.get(url)).text
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', raw).group(1))  # type: ignore[union-attr]
    assert "<p>Dear Client 0</p>" in srcdoc and "steal()" not in srcdoc  # sanitised
    page = await _page(crm, f"{url}?party_id={w['parties'][2]['id']}")
    assert "Client 2, spring news" in page
    assert first["id"]
    r = await crm.client.post(f"{url}/send", data={"csrf_token": token})
    assert r.status_code == 303
    page = await _page(crm, url)
    assert 'data-status="sending"' in page and 'data-progress="queued">3<' in page
    assert "Save the draft" not in page
    r = await crm.client.post(f"{url}/send", data={"csrf_token": token})
    assert r.status_code == 409 and "not a draft" in r.text
    assert "Spring news" in await _page(crm, "/marketing/mailings")
    js = await crm.client.get("/marketing/static/mailing.js")
    assert js.status_code == 200 and "progress" in js.text
    assert (await crm.client.get("/marketing/static/other.js")).status_code == 404


async def test_pages_in_russian_and_the_abc_xyz_chart(crm: Any) -> None:
    admin = await crm.user("admin")
    await _sign_in(crm, admin, "ru")
    assert "Новый сегмент" in await _page(crm, "/marketing/segments/new")
    assert "Новая кампания" in await _page(crm, "/marketing/campaigns/new")
    assert "Новая рассылка" in await _page(crm, "/marketing/mailings/new")
    classes = await _page(crm, "/marketing/classes")
    assert "abc-xyz" in classes and "<svg" in classes
    await _sign_in(crm, admin, "uk")
    assert "Новий сегмент" in await _page(crm, "/marketing/segments/new")
