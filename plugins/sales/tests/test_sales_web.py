"""The sales web pages, rendered by the real app for a signed-in user: what each user sees,
and that forms need the session's CSRF token."""

from __future__ import annotations

import html
import re

import pytest
from sales_helpers import log_call, open_deal

pytestmark = pytest.mark.plugins("sales")


async def _deals(crm, w):
    return {
        "anna": await open_deal(crm, w["anna"], w["anna_party"]["id"], title="Сделка Анны", amount="125000"),
        "boris": await open_deal(crm, w["boris"], w["boris_party"]["id"], title="Сделка Бориса"),
        "olena": await open_deal(crm, w["olena"], w["olena_party"]["id"], title="Угода Олени"),
    }


async def test_deal_lists_follow_visibility(crm, world):
    deals = await _deals(crm, world)
    await crm.sign_in(world["anna"], language="ru")
    mine = await crm.page("/sales/deals")
    assert "Сделка Анны" in mine and "125 000,00 ₽" in mine.replace("\xa0", " ") and "ООО Ромашка" in mine
    assert "Сделка Бориса" not in mine and "Угода Олени" not in mine
    assert 'href="/sales/deals"' in mine  # the navigation entry
    everything = await crm.page("/sales/deals")
    assert "Сделка Анны" in everything and "Сделка Бориса" not in everything

    # The head sees the team (Anna and Boris), not the other team's deals.
    await crm.sign_in(world["head"], language="ru")
    team = await crm.page("/sales/deals")
    assert "Сделка Анны" in team and "Сделка Бориса" in team and "Угода Олени" not in team
    assert "Сделка Анны" not in await crm.page(f"/sales/deals?owner_id={world['head']['id']}")

    # A manager of the other team cannot open Anna's deal, her client's deals tab or see her in the funnel.
    await crm.sign_in(world["olena"], language="ru")
    denied = await crm.page(f"/sales/deals/{deals['anna']['id']}", status=404)
    assert "Сделка Анны" not in denied
    tab = await crm.page(f"/sales/parties/{world['anna_party']['id']}/deals", status=404)
    assert "Сделка Анны" not in tab
    assert "Сделка Анны" not in await crm.page("/sales/deals")


async def test_a_deal_one_may_only_read_shows_no_forms(crm, world):
    """A client's manager reads a colleague's deal on the client but may not change it: the
    page shows the deal without the move / win / lose forms whose submit would be refused."""
    theirs = await open_deal(crm, world["admin"], world["anna_party"]["id"], title="Сделка админа")
    own = await open_deal(crm, world["anna"], world["anna_party"]["id"], title="Сделка Анны")
    await crm.sign_in(world["anna"], language="ru")
    page = await crm.page(f"/sales/deals/{theirs['id']}")
    assert "Сделка админа" in page
    assert f'action="/sales/deals/{theirs["id"]}/close"' not in page
    assert f'action="/sales/deals/{theirs["id"]}/move"' not in page
    r = await crm.client.post(
        f"/sales/deals/{theirs['id']}/close", data={"csrf_token": crm.csrf(page), "outcome": "won"}
    )
    assert r.status_code == 403  # and the refusal stands behind the missing form
    mine = await crm.page(f"/sales/deals/{own['id']}")
    assert f'action="/sales/deals/{own["id"]}/close"' in mine


async def test_signed_out_users_go_to_the_sign_in_page(crm, world):
    crm.client.cookies.clear()
    for url in ("/sales/deals", "/sales/funnel", "/sales/deals/1"):
        r = await crm.client.get(url)
        assert r.status_code in (302, 303) and r.headers["location"] == "/login"


async def test_deal_page_moves_wins_and_loses_with_the_form_token(crm, world, frozen_clock):
    anna = world["anna"]
    deal = (await _deals(crm, world))["anna"]
    await crm.sign_in(anna, language="ru")
    url = f"/sales/deals/{deal['id']}"
    page = await crm.page(url)
    assert "Сделка Анны" in page and "Квалификация" in page and "125 000,00 ₽" in page.replace("\xa0", " ")
    assert "На этап «Выявление потребностей»" in page

    forged = await crm.client.post(f"{url}/move", data={"to": "needs"})
    assert forged.status_code == 403
    token = crm.csrf(page)
    # Qualification needs a done call first: the deal page says so (with the refusal's status).
    r = await crm.client.post(f"{url}/move", data={"csrf_token": token, "to": "needs"})
    assert r.status_code == 409 and "text/html" in r.headers["content-type"]
    refused = html.unescape(r.text)
    # In words: the requirement's label and what to do, in the user's language.
    assert re.search(r'class="error">«Первый звонок»: сначала запишите состоявшийся контакт', refused), (
        refused[-3000:]
    )
    assert "first_call" not in refused
    assert "required.first_call" not in refused  # the reason, not the requirement's code
    await log_call(crm, anna, deal["party_id"])
    frozen_clock.advance(minutes=30)
    r = await crm.client.post(f"{url}/move", data={"csrf_token": token, "to": "needs"})
    assert r.status_code == 303 and "error" not in r.headers["location"]
    moved = await crm.page(url)
    assert "Выявление потребностей" in moved and "На этап «Коммерческое предложение»" in moved
    history = moved.split("История этапов")[1]
    assert history.index("Квалификация") < history.index("Выявление потребностей")
    api = (await crm.get(f"/api/sales/deals/{deal['id']}", anna)).json()
    assert api["stage"] == "needs"

    reasons = (await crm.get("/api/sales/loss-reasons", anna)).json()
    r = await crm.client.post(
        f"{url}/close",
        data={
            "csrf_token": token,
            "outcome": "lost",
            "loss_reason_id": str(reasons[1]["id"]),
            "comment": "ушли",
        },
    )
    assert r.status_code == 303
    closed = await crm.page(url)
    assert "Проиграна" in closed and "Сделка проиграна" not in closed  # no forms on a closed deal
    assert f"Причина: {reasons[1]['name']} — ушли" in closed  # the reason's name, not its id
    assert (await crm.get(f"/api/sales/deals/{deal['id']}", anna)).json()["status"] == "lost"


async def test_funnel_page_and_the_deals_tab_of_the_client_card(crm, world, frozen_clock):
    deals = await _deals(crm, world)
    await log_call(crm, world["anna"], world["anna_party"]["id"])
    r = await crm.post(f"/api/sales/deals/{deals['anna']['id']}/move", world["anna"], json={})
    assert r.status_code == 200, r.text
    await crm.sign_in(world["head"], language="ru")
    funnel = await crm.page("/sales/funnel?date_from=2026-03-01&date_to=2026-03-31")
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td>", funnel))
    # The head's team: Anna's and Boris's deals entered qualification, Anna's went on to needs.
    assert rows["Квалификация"] == "2" and rows["Выявление потребностей"] == "1"
    assert rows["Коммерческое предложение"] == "0"
    by_owner = await crm.page("/sales/funnel?date_from=2026-03-01&date_to=2026-03-31&group_by=owner")
    assert "Анна" in by_owner and "Борис" in by_owner and "Олена" not in by_owner

    await crm.sign_in(world["anna"], language="ru")
    card = await crm.page(f"/app/parties/{world['anna_party']['id']}")
    assert f'href="/sales/parties/{world["anna_party"]["id"]}/deals"' in card
    tab = await crm.page(f"/sales/parties/{world['anna_party']['id']}/deals")
    assert "Сделка Анны" in tab and "Выявление потребностей" in tab


async def test_losing_a_deal_from_the_page_refuses_what_the_api_refuses_beside_the_field(crm, world):
    anna = world["anna"]
    deal = (await _deals(crm, world))["anna"]
    await crm.sign_in(anna, language="ru")
    url = f"/sales/deals/{deal['id']}"
    token = crm.csrf(await crm.page(url))
    reasons = (await crm.get("/api/sales/loss-reasons", anna)).json()
    cases = [
        ({"loss_reason_id": ""}, "loss_reason_id"),
        ({"loss_reason_id": "abc"}, "loss_reason_id"),
        ({"loss_reason_id": str(reasons[0]["id"]), "comment": "я" * 5001}, "comment"),
    ]
    for change, field in cases:
        sent = {"csrf_token": token, "outcome": "lost", "comment": "ушли к конкуренту", **change}
        r = await crm.client.post(f"{url}/close", data=sent)
        assert r.status_code == 422, (change, r.status_code)
        text = html.unescape(r.text)
        beside = re.search(rf'id="error-{field}">([^<]+)<', text)
        assert beside, (field, text[-2500:])
        assert "Expected `" not in text
        if field == "comment":
            assert beside.group(1) == "должно быть не длиннее 5000 символов"  # in the user's language
            assert f'value="{reasons[0]["id"]}" selected' in text  # the choice is kept
        else:
            assert ">ушли к конкуренту</textarea>" in text  # what the user wrote is kept
        api = await crm.post(
            f"/api/sales/deals/{deal['id']}/close",
            anna,
            json={"outcome": "lost", **{k: v for k, v in change.items() if v}},
        )
        assert api.status_code == 422 and api.json()["errors"][0]["field"] == field
    assert (await crm.get(f"/api/sales/deals/{deal['id']}", anna)).json()["status"] == "open"


@pytest.mark.parametrize(
    ("locale", "words", "foreign"),
    [
        ("uk", ("Угоди", "Вирва", "Етап", "Сума"), ("Сделки", "Deals", "Stage")),
        ("en", ("Deals", "Funnel", "Stage", "Amount"), ("Сделки", "Угоди")),
        ("ru", ("Сделки", "Воронка", "Этап", "Сумма"), ("Угоди", "Deals")),
    ],
)
async def test_sales_pages_follow_the_users_language(crm, world, locale, words, foreign):
    anna = world["anna"]
    assert (await crm.patch("/api/auth/me", anna, json={"locale": locale})).status_code == 200
    deal = await open_deal(crm, anna, world["anna_party"]["id"], title="Сделка Анны", amount="125000")
    await crm.sign_in(anna, language="ru")
    party_id = world["anna_party"]["id"]
    for url in (
        "/sales/deals",
        f"/sales/deals/{deal['id']}",
        "/sales/funnel",
        f"/sales/parties/{party_id}/deals",
    ):
        text = re.sub(r"<[^>]*>", " ", await crm.page(url))
        assert all(w in text for w in words[:1]), (url, text[:500])
        assert not [w for w in foreign if re.search(rf"\b{w}\b", text)], (url, text[:800])
    page = re.sub(r"<[^>]*>", " ", await crm.page(f"/sales/deals/{deal['id']}"))
    stage = {"uk": "Кваліфікація", "en": "Qualification", "ru": "Квалификация"}[locale]
    assert words[3] in page and stage in page  # the stage's name in the reader's language, never its key
    card = re.sub(r"<[^>]*>", " ", await crm.page(f"/app/parties/{party_id}"))
    assert "sales.deal" not in card and "qualification" not in card
