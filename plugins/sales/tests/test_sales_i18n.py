"""The sales plugin's texts on every page in the reader's language (issue 15.1): its
permission and job descriptions on the admin pages, the shipped pipelines' stage names and
requirement labels on the deal card, kanban and funnel, and in a refused move."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sales_helpers import log_call, move, open_deal
from tessera import i18n, scheduler

pytestmark = pytest.mark.plugins("sales")


async def _as(crm: Any, user: dict[str, Any], locale: str) -> None:
    assert (await crm.patch("/api/auth/me", user, json={"locale": locale})).status_code == 200
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "ru"  # the profile setting wins over the browser
    r = await crm.client.post("/login", data={"email": user["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303, r.text


async def _text(crm: Any, url: str, status: int = 200) -> str:
    r = await crm.client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:800])
    page = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", html.unescape(r.text), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", page))


async def test_admin_pages_show_the_sales_permissions_jobs_and_audit_in_ukrainian(crm, world):
    admin, anna = world["admin"], world["anna"]
    deal = await open_deal(crm, anna, world["anna_party"]["id"], title="Угода")
    await log_call(crm, anna, world["anna_party"]["id"])
    await move(crm, anna, deal["id"], to="needs")
    await scheduler.sync_jobs(crm.pm)
    await _as(crm, admin, "uk")

    roles = await _text(crm, "/app/admin/roles")
    # The manager role grants sales.deal.read and sales.deal.write: described in Ukrainian.
    assert "Читати угоди, товари, КП і звіти продажів" in roles, roles[:3000]
    assert "Відкривати угоди, вести їх етапами" in roles
    assert "Read deals, products" not in roles and "Open deals, move them" not in roles

    jobs = await _text(crm, "/app/admin/jobs")
    assert "Повідомляти власників угод, що перевищили норму етапу" in jobs, jobs[:3000]
    assert "Зберегти прогноз місяця" in jobs
    assert "Notify owners of deals" not in jobs and "Contact-cadence compliance" not in jobs
    # The kernel's own jobs too.
    assert "Notify controllers of tasks past their deadline" not in jobs

    # The shipped pipeline on the process-template page: names and expected results.
    workflow = await _text(crm, "/app/admin/workflows/sales.b2b")
    assert "Нова угода B2B" in workflow and "Кваліфікація" in workflow, workflow[:3000]
    assert "Відомі потреба, бюджет" in workflow  # (the JSON editor keeps the stored English)

    audit = await _text(crm, "/app/admin/audit?entity=sales.deal")
    assert "Переведено на етап" in audit, audit[:3000]
    assert "Кваліфікація" in audit and "Виявлення потреб" in audit
    assert "Qualification" not in audit and "Квалификация" not in audit


STAGES = {
    "en": ("Qualification", "Needs analysis", "First call", "Won"),
    "uk": ("Кваліфікація", "Виявлення потреб", "Перший дзвінок", "Виграна"),
}
FOREIGN = {
    "en": ("Квалификация", "Кваліфікація", "Выявление", "Первый звонок", "КП выпущено"),
    "uk": ("Квалификация", "Qualification", "Выявление", "Первый звонок", "КП выпущено", "Needs analysis"),
}


@pytest.mark.parametrize("locale", ["en", "uk"])
async def test_deal_card_kanban_and_funnel_show_shipped_stage_names_in_the_readers_language(
    crm, world, locale
):
    anna = world["anna"]
    deal = await open_deal(crm, anna, world["anna_party"]["id"], title="Угода")
    qualification, needs, first_call, _won = STAGES[locale]
    await _as(crm, anna, locale)
    for url in (f"/sales/deals/{deal['id']}", "/sales/kanban", "/sales/funnel"):
        text = await _text(crm, url)
        assert qualification in text and needs in text, (url, text[:3000])
        assert not [w for w in FOREIGN[locale] if w in text], (url, text[:3000])
    card = await _text(crm, f"/sales/deals/{deal['id']}")
    assert first_call in card  # the checklist's label

    # A refused move names the missing requirement by its translated label.
    page = (await crm.client.get(f"/sales/deals/{deal['id']}")).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = await crm.client.post(f"/sales/deals/{deal['id']}/move", data={"csrf_token": token, "to": "needs"})
    assert r.status_code == 409
    refused = html.unescape(r.text)
    assert re.search(f"[«“]{first_call}[»”]", refused), refused[-3000:]
    assert "Первый звонок" not in refused and "first_call" not in refused

    # The kanban's refusal (a move the pipeline does not allow) names the stage in words.
    board = (await crm.client.get("/sales/kanban")).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', board).group(1)  # type: ignore[union-attr]
    r = await crm.client.post(
        "/sales/kanban/move", data={"csrf_token": token, "deal_id": str(deal["id"]), "to": "negotiation"}
    )
    refused = html.unescape(r.text)
    assert r.status_code in (409, 422) and re.search(f"[«“]{qualification}[»”]", refused), refused[-3000:]


async def test_names_typed_by_an_admin_show_as_typed_and_old_russian_names_are_translated(crm):
    # Texts stored by earlier releases (the Russian names) read as the shipped msgids.
    i18n.activate("uk")
    assert i18n.shipped_text("Квалификация") == "Кваліфікація"
    assert i18n.shipped_text("КП выпущено") == "КП випущено"
    i18n.activate("en")
    assert i18n.shipped_text("Квалификация") == "Qualification"
    assert i18n.shipped_text("Proposal issued") == "Proposal issued"
    # A name an admin typed for their own pipeline is not a shipped text: shown as typed.
    assert i18n.shipped_text("Звонок директору") == "Звонок директору"
    i18n.activate("ru")
    assert i18n.shipped_text("Qualification") == "Квалификация"
    assert i18n.shipped_text("Мой этап") == "Мой этап"


@pytest.mark.parametrize(
    ("locale", "words", "foreign"),
    [
        ("uk", ["Категорія клієнта", "Група цін"], ["Категория клиента", "Client category"]),
        ("en", ["Client category", "Price group"], ["Категория клиента", "Категорія клієнта"]),
    ],
)
async def test_the_sales_custom_fields_of_a_client_are_titled_in_the_readers_language(
    crm, locale, words, foreign
):
    manager = await crm.user("manager")
    await _as(crm, manager, locale)
    text = await _text(crm, "/app/parties/new")
    assert all(w in text for w in words), text[:3000]
    assert not [w for w in foreign if w in text]
