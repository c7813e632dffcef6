"""The deal list on the kernel's list machinery, and the "open deals" column the plugin adds to
the kernel's party list (hook ``tessera_list_columns``)."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import openpyxl
import pytest
from sales_helpers import open_deal

pytestmark = pytest.mark.plugins("sales")


async def test_deal_list_filters_sorts_links_and_exports(crm: Any, world: dict[str, Any]) -> None:
    head = world["head"]
    small = await open_deal(crm, world["anna"], world["anna_party"]["id"], title="Small deal", amount="10")
    big = await open_deal(crm, world["boris"], world["boris_party"]["id"], title="Big deal", amount="900")
    await open_deal(crm, world["olena"], world["olena_party"]["id"], title="Other team deal", amount="500")
    await crm.sign_in(head)
    page = html.unescape((await crm.client.get("/sales/deals", params={"order": "-amount"})).text)
    assert page.index("Big deal") < page.index("Small deal") and "Other team deal" not in page
    assert f'href="/sales/deals/{big["id"]}"' in page and 'href="/sales/deals/new"' in page
    page = html.unescape(
        (await crm.client.get("/sales/deals", params={"owner_id": world["anna"]["id"]})).text
    )
    assert "Small deal" in page and "Big deal" not in page
    await open_deal(
        crm, world["anna"], world["anna_party"]["id"], title="Summer deal", expected_close="2026-07-15"
    )
    page = html.unescape(
        (
            await crm.client.get(
                "/sales/deals", params={"close_from": "2026-07-01", "close_before": "2026-08-01"}
            )
        ).text
    )
    assert "Summer deal" in page and "Small deal" not in page
    api = await crm.get("/api/sales/deals", head, params={"close_from": "2026-07-01"})
    assert [d["title"] for d in api.json()["items"]] == ["Summer deal"]
    bad = await crm.client.get("/sales/deals", params={"close_from": "July"})
    assert bad.status_code == 422 and "close_from" in bad.text
    bad = await crm.client.get("/sales/deals", params={"scope": "all"})
    assert bad.status_code == 400 and "scope" in bad.text
    r = await crm.client.get("/app/lists/sales.deals/export", params={"format": "xlsx", "order": "amount"})
    assert r.status_code == 200, r.text
    rows = list(openpyxl.load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
    assert [row[0] for row in rows[1:]] == ["Small deal", "Big deal", "Summer deal"]
    amount = rows[0].index("Amount")
    assert [float(row[amount]) for row in rows[1:]] == [10.0, 900.0, 100000.0]
    # The manager sees only her own deal in the CSV... but a manager may not export at all.
    await crm.sign_in(world["anna"])
    assert (await crm.client.get("/app/lists/sales.deals/export")).status_code == 403
    assert small["id"]


async def test_party_list_shows_open_deals_the_user_may_see(crm: Any, world: dict[str, Any]) -> None:
    party = world["anna_party"]
    await open_deal(crm, world["anna"], party["id"], title="One", amount="1000")
    await open_deal(crm, world["anna"], party["id"], title="Two", amount="500")
    await crm.sign_in(world["anna"])
    page = html.unescape((await crm.client.get("/app/parties")).text).replace("\xa0", " ")
    assert "Open deals" in page
    row = re.search(rf'<tr data-id="{party["id"]}">(.*?)</tr>', page, re.S)
    assert row and "2 · " in row.group(1) and "1,500.00" in row.group(1), row
    # Exported with the kernel's columns.
    r = await crm.client.get("/app/lists/parties/export", params={"format": "csv"})
    assert r.status_code == 403  # a manager has no party.export
    await crm.sign_in(world["head"])
    r = await crm.client.get("/app/lists/parties/export", params={"format": "csv"})
    assert r.status_code == 200
    table = list(csv.reader(io.StringIO(r.text)))
    column = table[0].index("Open deals")
    exported = {line[0]: line[column] for line in table[1:]}
    assert exported["ООО Ромашка"].startswith("2 · ") and "ТОВ Промінь" not in exported
