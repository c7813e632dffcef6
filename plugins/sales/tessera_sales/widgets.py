"""The sales plugin's panels on the kernel's "My day" page (hook ``tessera_dashboard_widgets``)
and the web pages of its records (hook ``tessera_record_urls``).

* "Clients past their contact norm": my clients whose contact-cadence flag (``cadence.py``, set
  by the ``sales.cadence`` job) is overdue, oldest due first.
* KPI: my open deals and the deals I won this month (the month in my time zone).

"My" is the user and the absent colleagues they stand in for; every count goes through the
deal service's visibility (``service.count``)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tessera import clock, i18n
from tessera.entities import service
from tessera.i18n import gettext as _
from tessera.permissions import Principal

from tessera_sales.services import DEAL
from tessera_sales.tables import CadenceFlag, Deal

#: Clients listed in the cadence widget (the rest behind "all").
CADENCE_SHOWN = 10


def _mine(principal: Principal) -> list[int]:
    return [principal.user_id, *sorted(principal.acting_for)]


def _zone(zone_name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(zone_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local_day(moment: dt.datetime) -> str:
    """A moment's date in the user's zone and language."""
    return i18n.format_date(moment.astimezone(_zone(i18n.current_timezone())).date())


def month_bounds(now: dt.datetime, zone_name: str | None) -> tuple[dt.datetime, dt.datetime]:
    """The first moment of this month and of the next, in the user's zone, as UTC."""
    zone = _zone(zone_name)
    local = now.astimezone(zone)
    first = dt.date(local.year, local.month, 1)
    following = dt.date(local.year + (local.month == 12), local.month % 12 + 1, 1)
    return (
        dt.datetime.combine(first, dt.time(), tzinfo=zone).astimezone(dt.UTC),
        dt.datetime.combine(following, dt.time(), tzinfo=zone).astimezone(dt.UTC),
    )


async def cadence_widget(principal: Principal) -> dict[str, Any]:
    """My clients past their contact norm (one line per client, the most overdue rule)."""
    rows = (
        await CadenceFlag.select(
            CadenceFlag.party_id,
            CadenceFlag.party_id.name.as_alias("party_name"),
            CadenceFlag.last_contact_at,
            CadenceFlag.due_at,
        )
        .where(CadenceFlag.overdue == True, CadenceFlag.owner_id.is_in(_mine(principal)))  # noqa: E712
        .order_by(CadenceFlag.due_at)
    )
    seen: set[int] = set()
    items = []
    for row in rows:
        if row["party_id"] in seen:
            continue
        seen.add(row["party_id"])
        last = row["last_contact_at"]
        items.append(
            {
                "label": row["party_name"],
                "href": f"/app/parties/{row['party_id']}",
                "flag": _("overdue"),
                "note": _(
                    "contact was due %(due)s; last contact %(last)s",
                    due=_local_day(row["due_at"]),
                    last=_local_day(last) if last else _("never"),
                ),
            }
        )
    widget: dict[str, Any] = {
        "key": "sales.cadence",
        "title": _("Clients past their contact norm"),
        "items": items[:CADENCE_SHOWN],
        "empty": _("Every client of yours was contacted within the agreed norm."),
    }
    if len(items) > CADENCE_SHOWN:
        widget["more"] = {"label": _("All %(num)d clients", num=len(items)), "href": "/sales/cadence"}
    return widget


async def kpi_widget(principal: Principal) -> dict[str, Any]:
    """My open deals and the deals I won this month."""
    mine = Deal.owner_id.is_in(_mine(principal))
    start, end = month_bounds(clock.now(), i18n.current_timezone())
    open_deals = await service.count(DEAL, principal, [mine, Deal.status == "open"])
    won = await service.count(
        DEAL, principal, [mine, Deal.status == "won", Deal.closed_at >= start, Deal.closed_at < end]
    )
    return {
        "key": "sales.kpi",
        "title": _("My deals"),
        "kpis": [
            {"label": _("open deals"), "value": i18n.format_number(open_deals), "href": "/sales/deals"},
            {"label": _("won this month"), "value": i18n.format_number(won), "href": "/sales/deals"},
        ],
    }


async def dashboard_widgets(principal: Principal) -> list[dict[str, Any]]:
    if not principal.can("sales.deal.read"):
        return []
    return [await kpi_widget(principal), await cadence_widget(principal)]


async def record_urls(kind: str, ids: list[int]) -> dict[int, str] | None:
    """Pages of deals and proposals (a deal's process instance: the deal's page); cadence
    notifications: the widget on My day."""
    if kind in ("deal", "sales.deal"):
        return {i: f"/sales/deals/{i}" for i in ids}
    if kind in ("proposal", "sales.proposal"):
        return {i: f"/sales/proposals/{i}" for i in ids}
    if kind == "workflow_instance":  # a deviation of a deal's sales process: the deal
        rows = await Deal.select(Deal.id, Deal.instance_id).where(Deal.instance_id.is_in(list(ids)))
        return {r["instance_id"]: f"/sales/deals/{r['id']}" for r in rows}
    if kind == "sales_cadence_rule":
        return {i: "/app#sales-cadence" for i in ids}
    return None
