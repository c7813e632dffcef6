"""The sales plugin's panels on the kernel's My day page (hook ``tessera_dashboard_widgets``):
clients past their contact norm and my deal figures, and the links of its records on the
kernel's notifications page (hook ``tessera_record_urls``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sales_helpers import log_call, open_deal, to_proposal, win_from_proposal

pytestmark = pytest.mark.plugins("sales")


def _section(text: str, section_id: str) -> str:
    match = re.search(rf'<section[^>]*id="{section_id}".*?</section>', text, re.S)
    assert match, f"no section {section_id}"
    return match.group(0)


def _kpis(text: str) -> dict[str, str]:
    found = re.findall(r'<strong class="kpi-value">([^<]+)</strong> <span>([^<]+)</span>', text)
    return {label: value for value, label in found}


async def test_my_day_lists_my_clients_past_their_contact_norm_and_my_deal_figures(
    crm: Any, world: dict[str, Any], frozen_clock: Any
) -> None:
    from tessera_sales import cadence

    anna, boris = world["anna"], world["boris"]
    anna_party, boris_party = world["anna_party"], world["boris_party"]
    won = await open_deal(crm, anna, anna_party["id"], title="Won one")
    await open_deal(crm, anna, anna_party["id"], title="Still open")
    await open_deal(crm, boris, boris_party["id"], title="Boris's deal")
    await to_proposal(crm, anna, won)  # logs a call on Anna's client (2 March)
    await win_from_proposal(crm, anna, won["id"])
    r = await crm.post(
        "/api/sales/cadence-rules",
        world["admin"],
        json={"name": "A: every 14 days", "every_days": 14, "category": "A"},
    )
    assert r.status_code == 201, r.text
    for who in ("anna", "boris"):
        r = await crm.patch(
            f"/api/parties/{world[who + '_party']['id']}",
            world[who],
            json={"custom": {"sales_category": "A"}},
        )
        assert r.status_code == 200, r.text
    frozen_clock.advance(days=20)  # 22 March: Anna's client last heard of on 2 March
    await log_call(crm, boris, boris_party["id"], kind="meeting")  # Boris keeps his norm
    result = await cadence.evaluate()
    assert result["overdue"] == 1

    await crm.sign_in(anna)
    page = await crm.page("/app")
    widget = _section(page, "sales-cadence")
    assert "Clients past their contact norm" in widget
    assert f'<a href="/app/parties/{anna_party["id"]}">ООО Ромашка</a>' in widget
    assert '<span class="flag">overdue</span>' in widget  # said in words, not by colour alone
    assert "contact was due Mar 16, 2026; last contact Mar 2, 2026" in widget
    assert "АО Вектор" not in widget
    assert _kpis(page) == {"open deals": "1", "won this month": "1"}
    # The cadence notification links to the widget, under human words.
    inbox = await crm.page("/app/notifications")
    assert "Clients past their contact norm" in inbox and 'href="/app#sales-cadence"' in inbox

    frozen_clock.advance(days=11)  # 2 April: the win was last month
    await crm.sign_in(anna)
    assert _kpis(await crm.page("/app")) == {"open deals": "1", "won this month": "0"}

    await crm.sign_in(boris)
    page = await crm.page("/app")
    widget = _section(page, "sales-cadence")
    assert (
        "ООО Ромашка" not in widget
        and "Every client of yours was contacted within the agreed norm." in widget
    )
    assert _kpis(page) == {"open deals": "1", "won this month": "0"}


async def test_search_hits_and_notifications_of_sales_records_link_to_the_deal(
    crm: Any, world: dict[str, Any]
) -> None:
    """``tessera_record_urls``: a deal and its process instance open the deal's page."""
    from tessera.web.links import hit_urls, ref_urls

    deal = await open_deal(crm, world["anna"], world["anna_party"]["id"], title="Linked deal")
    page = f"/sales/deals/{deal['id']}"
    hits = [{"type": "deal", "id": deal["id"]}, {"type": "party", "id": 5}]
    assert await hit_urls(crm.pm, hits) == {("deal", deal["id"]): page, ("party", 5): "/app/parties/5"}
    instance = f"workflow_instance:{deal['instance_id']}"
    refs = [instance, "task:7", "nobody_knows:3"]
    assert await ref_urls(crm.pm, refs) == {instance: page, "task:7": "/app/tasks/7"}
