"""Sales pages of issue 15 (items 6 and 7), driven like a person with the real app and a signed-in
session: a deal opened from the client card and won from pages only (checklist, proposal with its
PDF), the kanban with its no-JavaScript move form, and the report pages' SVG charts checked on
their data attributes, within each user's visibility."""

from __future__ import annotations

import html
import io
import re
from decimal import Decimal
from typing import Any

import pytest
from sales_helpers import log_call, open_deal, to_proposal, win_from_proposal

pytestmark = pytest.mark.plugins("sales")


def _visible(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", text))


def _data(text: str, **where: str) -> list[dict[str, str]]:
    """The chart values (``<rect class="datum" ...>``) whose attributes match ``where``
    (``series_key="target"`` -> ``data-series-key``)."""
    out = []
    for tag in re.findall(r'<rect class="datum"[^>]*>', text):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        if all(attrs.get("data-" + k.replace("_", "-")) == v for k, v in where.items()):
            out.append(attrs)
    return out


async def _product(crm: Any, admin: dict[str, Any]) -> dict[str, Any]:
    product = (
        await crm.post("/api/sales/products", admin, json={"sku": "CRM-1", "name": "Лицензия CRM"})
    ).json()
    r = await crm.post(
        "/api/sales/price-lists",
        admin,
        json={
            "name": "Базовый",
            "currency": "RUB",
            "valid_from": "2026-01-01",
            "prices": [{"product_id": product["id"], "price": "40000.00"}],
        },
    )
    assert r.status_code == 201, r.text
    return product  # type: ignore[no-any-return]


async def test_a_deal_is_opened_from_the_card_and_won_from_pages_only(crm, world, frozen_clock):
    anna, party = world["anna"], world["anna_party"]
    product = await _product(crm, world["admin"])
    await crm.sign_in(anna, language="ru")

    # The client card's Deals tab offers a new deal for this client.
    tab = await crm.page(f"/sales/parties/{party['id']}/deals")
    assert f'href="/sales/deals/new?party_id={party["id"]}"' in tab
    form = await crm.page(f"/sales/deals/new?party_id={party['id']}")
    assert f'<option value="{party["id"]}" selected>ООО Ромашка</option>' in form
    token = crm.csrf(form)

    # Refusals come back beside the field with what was typed kept (same rules as the API).
    sent = {
        "csrf_token": token,
        "title": "",
        "party_id": str(party["id"]),
        "pipeline": "sales.b2b",
        "currency": "RUB",
        "amount": "0",
        "lines-0-product_id": str(product["id"]),
        "lines-0-quantity": "2",
    }
    r = await crm.client.post("/sales/deals/new", data=sent)
    assert r.status_code == 422
    refused = html.unescape(r.text)
    assert re.search(r'id="error-title">[^<]+<', refused)
    assert f'<option value="{product["id"]}" selected>Лицензия CRM</option>' in refused
    r = await crm.client.post(
        "/sales/deals/new", data={**sent, "title": "Внедрение CRM", "lines-0-quantity": "0"}
    )
    assert r.status_code == 422
    refused = html.unescape(r.text)
    beside = re.search(r'id="error-lines-0-quantity">([^<]+)<', refused)
    assert beside and "Expected" not in beside.group(1), refused[-2000:]
    assert 'value="Внедрение CRM"' in refused

    r = await crm.client.post("/sales/deals/new", data={**sent, "title": "Внедрение CRM"})
    assert r.status_code == 303, r.text[-2000:]
    deal_id = int(r.headers["location"].rsplit("/", 1)[1])
    api = (await crm.get(f"/api/sales/deals/{deal_id}", anna)).json()
    assert api["party_id"] == party["id"] and api["owner_id"] == anna["id"]
    assert api["amount"] == "80000.00" and api["lines"][0]["product_id"] == product["id"]
    assert api["stage"] == "qualification"

    url = f"/sales/deals/{deal_id}"
    page = await crm.page(url)
    text = _visible(page)
    assert "Первый звонок — не выполнено" in text
    # Qualification needs a call: logged with the card's own form.
    card = await crm.page(f"/app/parties/{party['id']}")
    r = await crm.client.post(
        f"/app/parties/{party['id']}/activities",
        data={"csrf_token": crm.csrf(card), "type": "call", "subject": "Первый звонок"},
    )
    assert r.status_code == 303
    frozen_clock.advance(minutes=5)
    assert "Первый звонок — выполнено" in _visible(await crm.page(url))
    assert (await crm.client.post(f"{url}/move", data={"csrf_token": token})).status_code == 303

    # Needs: a checklist item ticked on the page.
    page = await crm.page(url)
    assert "Потребности записаны — не выполнено" in _visible(page)
    assert 'name="item" value="needs_recorded"' in page
    r = await crm.client.post(
        f"{url}/checklist", data={"csrf_token": token, "item": "needs_recorded", "done": "true"}
    )
    assert r.status_code == 303
    assert "Потребности записаны — выполнено" in _visible(await crm.page(url))
    assert (await crm.client.post(f"{url}/move", data={"csrf_token": token})).status_code == 303

    # Proposal stage: moving on is refused in words until a proposal is issued.
    r = await crm.client.post(f"{url}/move", data={"csrf_token": token})
    assert r.status_code == 409
    refused = _visible(html.unescape(r.text))
    assert "«КП выпущено» ещё не отмечено" in refused.replace("“", "«").replace("”", "»")
    assert "proposal_issued" not in refused and "required." not in refused
    r = await crm.client.post(f"{url}/proposals", data={"csrf_token": token})
    assert r.status_code == 303, r.text[-1500:]
    page = await crm.page(url)
    assert "КП выпущено — выполнено" in _visible(page)
    proposal_id = int(re.search(r'href="/sales/proposals/(\d+)"', page).group(1))  # type: ignore[union-attr]
    preview = await crm.page(f"/sales/proposals/{proposal_id}")
    assert "Коммерческое предложение №" in preview and "Лицензия CRM" in preview
    pdf = await crm.client.get(f"/sales/proposals/{proposal_id}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and len(pdf.content) > 1000
    from pypdf import PdfReader

    words = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "Лицензия CRM" in words and "80 000,00" in words

    assert (await crm.client.post(f"{url}/move", data={"csrf_token": token})).status_code == 303
    r = await crm.client.post(
        f"{url}/checklist", data={"csrf_token": token, "item": "terms_agreed", "done": "true"}
    )
    assert r.status_code == 303
    r = await crm.client.post(f"{url}/close", data={"csrf_token": token, "outcome": "won"})
    assert r.status_code == 303, r.text[-1500:]
    won = await crm.page(url)
    assert "Выиграна" in won and f'action="{url}/close"' not in won
    assert (await crm.get(f"/api/sales/deals/{deal_id}", anna)).json()["status"] == "won"


async def test_kanban_columns_fallback_move_and_refusals(crm, world, frozen_clock):
    anna = world["anna"]
    deal = await open_deal(crm, anna, world["anna_party"]["id"], title="Сделка Анны", amount="125000")
    await open_deal(crm, world["boris"], world["boris_party"]["id"], title="Сделка Бориса")
    await crm.sign_in(anna, language="ru")
    board = await crm.page("/sales/kanban")
    column = board.split('data-stage="qualification"')[1].split("</section>")[0]
    assert "Сделка Анны" in column and "125 000,00 ₽" in column.replace("\xa0", " ")
    assert "Сделка Бориса" not in board  # an own-scope manager sees her own deals only
    assert '<script src="/sales/static/kanban.js"' in board and "<script>" not in board
    script = await crm.client.get("/sales/static/kanban.js")
    assert script.status_code == 200 and "form.submit()" in script.text

    token = crm.csrf(board)
    move = {"csrf_token": token, "deal_id": str(deal["id"]), "pipeline": "sales.b2b", "scope": "all"}
    # No call yet: refused, and the board says why in words.
    r = await crm.client.post("/sales/kanban/move", data={**move, "to": "needs"})
    assert r.status_code == 409
    refused = _visible(html.unescape(r.text))
    assert "«Сделка Анны» не перемещена" in refused.replace("“", "«").replace("”", "»")
    assert "Первый звонок" in refused and "first_call" not in refused
    # A stage this one does not lead to: refused with the stages' names.
    r = await crm.client.post("/sales/kanban/move", data={**move, "to": "negotiation"})
    assert r.status_code == 422
    assert "Выявление потребностей" in _visible(html.unescape(r.text))

    await log_call(crm, anna, deal["party_id"])
    frozen_clock.advance(minutes=5)
    r = await crm.client.post("/sales/kanban/move", data={**move, "to": "needs"})
    assert r.status_code == 303 and r.headers["location"].startswith("/sales/kanban")
    board = await crm.page("/sales/kanban")
    assert "Сделка Анны" in board.split('data-stage="needs"')[1].split("</section>")[0]
    assert (await crm.get(f"/api/sales/deals/{deal['id']}", anna)).json()["stage"] == "needs"

    # Past the stage's norm (5 days) the card says it is stuck, in words.
    frozen_clock.advance(days=6)
    await crm.sign_in(anna, language="ru")  # the session would have expired meanwhile
    board = await crm.page("/sales/kanban")
    card = board.split(f'data-deal="{deal["id"]}"')[1].split("</article>")[0]
    assert "Застряла" in card and "6,0 дн. на этапе" in _visible(card).replace("\xa0", " ")

    # The head sees the team's deals on the board.
    await crm.sign_in(world["head"], language="ru")
    board = await crm.page("/sales/kanban")
    assert "Сделка Анны" in board and "Сделка Бориса" in board


async def test_report_charts_carry_the_figures_within_visibility(crm, world, frozen_clock):
    anna, boris, admin = world["anna"], world["boris"], world["admin"]
    # Anna: one deal won (125 000), one open with an expected close in April; Boris: one open.
    won = await open_deal(crm, anna, world["anna_party"]["id"], title="Выигранная", amount="125000")
    await to_proposal(crm, anna, won)
    await win_from_proposal(crm, anna, won["id"])
    await open_deal(
        crm, anna, world["anna_party"]["id"], title="Открытая", amount="100000", expected_close="2026-04-15"
    )
    await open_deal(crm, boris, world["boris_party"]["id"], title="Бориса", amount="50000")
    await log_call(crm, boris, world["boris_party"]["id"])
    for body in (
        {"user_id": anna["id"], "amount": "200000.00"},
        {"user_id": boris["id"], "amount": "90000.00"},
    ):
        r = await crm.post(
            "/api/sales/plans",
            admin,
            json={"period_start": "2026-03-01", "period_end": "2026-03-31", "currency": "RUB", **body},
        )
        assert r.status_code == 201, r.text
    plans = {p["user_id"]: p["id"] for p in (await crm.get("/api/sales/plans", admin)).json()}

    await crm.sign_in(world["head"], language="ru")
    funnel = await crm.page("/sales/funnel?date_from=2026-03-01&date_to=2026-03-31")
    assert _data(funnel, key="qualification")[0]["data-value"] == "3"
    assert _data(funnel, key="proposal")[0]["data-value"] == "1"
    assert _data(funnel, key="won")[0]["data-value"] == "1"
    assert not _data(funnel, key="lost")
    assert "<title" in funnel and 'role="img"' in funnel

    page = await crm.page("/sales/plans")
    target = _data(page, key=str(plans[anna["id"]]), series_key="target")
    actual = _data(page, key=str(plans[anna["id"]]), series_key="actual")
    assert target[0]["data-value"] == "200000.00" and actual[0]["data-value"] == "125000.00"
    assert _data(page, key=str(plans[boris["id"]]), series_key="actual")[0]["data-value"] == "0.00"
    api = (await crm.get(f"/api/sales/plans/{plans[anna['id']]}/actual", world["head"])).json()
    assert api["amount"]["actual"] == "125000.00"  # the page and the API agree

    forecast = await crm.page("/sales/forecast?date_from=2026-03-01&date_to=2026-08-31")
    april = _data(forecast, key="2026-04", series_key="weighted")
    assert april[0]["data-value"] == "10000.00"  # 100 000 at the qualification stage's 10 %
    assert len({d["data-key"] for d in _data(forecast, series_key="weighted")}) == 6
    api = (
        await crm.get("/api/sales/reports/forecast?date_from=2026-03-01&date_to=2026-08-31", world["head"])
    ).json()
    assert {"month": "2026-04", "amount": "10000.00"} in api["weighted_base"]

    kpi = await crm.page("/sales/kpi?date_from=2026-03-01&date_to=2026-03-31")
    activities = {d["data-key"]: d["data-value"] for d in _data(kpi)}
    assert activities[str(anna["id"])] == "1" and activities[str(boris["id"])] == "1"
    assert "125 000,00 ₽" in _visible(kpi).replace("\xa0", " ")

    # An own-scope manager's charts count her own deals and activities only.
    await crm.sign_in(anna, language="ru")
    funnel = await crm.page("/sales/funnel?date_from=2026-03-01&date_to=2026-03-31")
    assert _data(funnel, key="qualification")[0]["data-value"] == "2"
    page = await crm.page("/sales/plans")
    assert _data(page, key=str(plans[anna["id"]]), series_key="actual")
    assert not _data(page, key=str(plans[boris["id"]]))
    kpi = await crm.page("/sales/kpi?date_from=2026-03-01&date_to=2026-03-31")
    assert {d["data-key"] for d in _data(kpi)} == {str(anna["id"])}
    forecast = await crm.page("/sales/forecast?date_from=2026-03-01&date_to=2026-08-31")
    assert _data(forecast, key="2026-04", series_key="weighted")[0]["data-value"] == "10000.00"


CODES = re.compile(
    r"\b(qualification|needs|proposal|negotiation|first_call|needs_recorded|proposal_issued|"
    r"terms_agreed|weighted|historical|open|won|lost|sales\.\w+|required\.\w+)\b"
)


async def test_report_pages_and_navigation_in_ukrainian(crm, world, frozen_clock):
    anna = world["anna"]
    deal = await open_deal(crm, anna, world["anna_party"]["id"], title="Угода", amount="1000")
    await to_proposal(crm, anna, deal)
    assert (await crm.patch("/api/auth/me", anna, json={"locale": "uk"})).status_code == 200
    await crm.sign_in(anna, language="ru")
    for url, heading in (
        (f"/sales/deals/{deal['id']}", "КП випущено"),  # the shipped pipeline's label, translated
        ("/sales/kanban", "Канбан"),
        ("/sales/plans", "План і факт"),
        ("/sales/forecast", "Прогноз"),
        ("/sales/kpi", "KPI"),
        ("/sales/cadence", "Частота контактів"),
        ("/sales/deals/new", "Нова угода"),
    ):
        text = _visible(re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", await crm.page(url), flags=re.S))
        assert heading in text, (url, text[:600])
        assert not re.search(r"\b(Deals|Stage|Amount|Plan|Forecast|Won)\b", text), (url, text[:1500])
        assert not CODES.search(text), (url, CODES.search(text), text[:1500])  # labels, never codes
    nav = await crm.page("/app")
    for href in ("/sales/kanban", "/sales/plans", "/sales/forecast", "/sales/kpi"):
        assert f'href="{href}"' in nav


async def test_cadence_page_shows_compliance(crm, frozen_clock, world):
    from tessera_sales import cadence

    r = await crm.post(
        "/api/sales/cadence-rules", world["admin"], json={"name": "A: каждые 14 дней", "every_days": 14}
    )
    assert r.status_code == 201, r.text
    rule = r.json()
    await log_call(crm, world["boris"], world["boris_party"]["id"])
    frozen_clock.advance(days=15)
    await log_call(crm, world["boris"], world["boris_party"]["id"], kind="meeting")
    await cadence.evaluate()  # the scheduled job's work: Anna's client is overdue, Boris's is not

    await crm.sign_in(world["head"], language="ru")
    page = await crm.page("/sales/cadence")
    assert _data(page, key=f"{rule['id']}:{world['anna']['id']}")[0]["data-value"] == "0"
    assert _data(page, key=f"{rule['id']}:{world['boris']['id']}")[0]["data-value"] == "1"
    overdue = page.split("Клиенты, с которыми пора связаться")[1]
    assert "ООО Ромашка" in overdue and "АО Вектор" not in overdue
    await crm.sign_in(world["anna"], language="ru")
    page = await crm.page("/sales/cadence")
    assert {d["data-key"] for d in _data(page)} == {f"{rule['id']}:{world['anna']['id']}"}
    assert "АО Вектор" not in page


async def test_plans_are_added_from_the_page_by_planners_only(crm, world, frozen_clock):
    await crm.sign_in(world["anna"], language="ru")
    page = await crm.page("/sales/plans")
    assert 'action="/sales/plans"' not in page  # a manager has no sales.plan.manage
    r = await crm.client.post(
        "/sales/plans",
        data={
            "csrf_token": crm.csrf(page),
            "period_start": "2026-03-01",
            "period_end": "2026-03-31",
            "amount": "1",
        },
    )
    assert r.status_code == 403

    await crm.sign_in(world["admin"], language="ru")
    page = await crm.page("/sales/plans")
    sent = {
        "csrf_token": crm.csrf(page),
        "period_start": "2026-03-31",
        "period_end": "2026-03-01",
        "user_id": str(world["anna"]["id"]),
        "team_id": "",
        "currency": "RUB",
        "amount": "300000",
    }
    r = await crm.client.post("/sales/plans", data=sent)
    assert r.status_code == 422
    refused = html.unescape(r.text)
    assert re.search(r'id="error-period_end">[^<]+<', refused) and 'value="300000"' in refused
    r = await crm.client.post(
        "/sales/plans", data={**sent, "period_start": "2026-03-01", "period_end": "2026-03-31"}
    )
    assert r.status_code == 303
    plans = (await crm.get("/api/sales/plans", world["admin"])).json()
    assert [(p["user_id"], Decimal(p["amount"])) for p in plans] == [(world["anna"]["id"], Decimal(300000))]
    page = await crm.page("/sales/plans")
    assert _data(page, key=str(plans[0]["id"]), series_key="target")[0]["data-value"] == "300000.00"


async def test_forecast_page_shows_past_forecasts_against_what_was_won(crm, frozen_clock, world):
    import datetime as dt

    from tessera_sales import reports

    await open_deal(
        crm, world["anna"], world["anna_party"]["id"], amount="100000", expected_close="2026-03-20"
    )
    # The daily job's snapshot (company-wide), made on 2026-03-02 for March.
    assert await reports.snapshot_forecast("sales.b2b", dt.date(2026, 3, 1), dt.date(2026, 3, 31)) > 0
    frozen_clock.advance(days=31)
    await crm.sign_in(world["head"], language="ru")
    page = await crm.page("/sales/forecast")
    table = _visible(page.split('id="forecast-accuracy"')[1].split("</table>")[0]).replace("\xa0", " ")
    assert "2026-03 С учётом вероятности 10 000,00 ₽ 0,00 ₽" in table
    assert "weighted" not in table
