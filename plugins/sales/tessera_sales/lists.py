"""The deal list (``/sales/deals``) on the kernel's list machinery (``tessera.web.lists``:
the API's deal filters, sorting, keyset paging, saved views, bulk owner change, export) and the
"open deals" column the plugin adds to the kernel's party list (hook ``tessera_list_columns``).

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from collections import defaultdict
from decimal import Decimal
from typing import Any

from litestar import Request, Response, get
from tessera import clock, i18n
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.web import lists
from tessera.web.lists import BulkAction, Cell, ListColumn, ListSpec, QuickFilter

from tessera_sales import services
from tessera_sales.routes import deal_filters
from tessera_sales.tables import Deal

STATUS_CODES = ("open", "won", "lost")


async def _load(principal: Principal, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ctx: dict[str, Any] = await lists.names(
        user_ids={r["owner_id"] for r in rows}, party_ids={r["party_id"] for r in rows}
    )
    stage_names: dict[tuple[str, str], str] = {}
    for pipeline in {r["pipeline"] for r in rows}:
        try:
            definition = await services.pipeline(pipeline)
        except Exception:
            continue
        for stage in definition["stages"]:
            stage_names[(pipeline, stage["key"])] = stage["name"]
    ctx["stages"] = stage_names
    return ctx


def _stage(row: dict[str, Any], ctx: dict[str, Any]) -> Cell:
    name = ctx.get("stages", {}).get((row["pipeline"], row["stage"])) or i18n.label(
        "sales.deal.stage", row["stage"]
    )
    late = row["status"] == "open" and row.get("stage_due_at") and row["stage_due_at"] < clock.now()
    return Cell(text=i18n.translate_message(name), css="bad" if late else "")


def _owner_changes(row: dict[str, Any], value: str) -> dict[str, Any]:
    from tessera.errors import ValidationFailed

    try:
        return {"owner_id": int(value)}
    except (TypeError, ValueError):
        raise ValidationFailed.field("owner_id", N_("choose a user")) from None


DEALS = lists.register(
    ListSpec(
        name="sales.deals",
        title=N_("Deals"),
        url="/sales/deals",
        entity=services.DEAL,
        filters=deal_filters,
        default_order="-created_at",
        columns=[
            ListColumn(
                "title",
                N_("Deal"),
                lambda r, c: Cell(text=r["title"], href=f"/sales/deals/{r['id']}"),
                export=lists.raw("title"),
            ),
            ListColumn(
                "party",
                N_("Client"),
                lambda r, c: Cell(
                    text=c["parties"].get(r["party_id"], ""), href=f"/app/parties/{r['party_id']}"
                ),
            ),
            ListColumn("stage", N_("Stage"), _stage),
            ListColumn(
                "amount",
                N_("Amount"),
                lambda r, c: i18n.format_money(r["amount"], r["currency"]),
                export=lambda r, c: services.money(r["amount"]),
                sort="amount",
            ),
            ListColumn("currency", N_("Currency"), lists.raw("currency")),
            ListColumn("status", N_("Status"), lists.labelled("sales.deal.status", "status")),
            ListColumn("owner", N_("Manager"), lists.user_cell("owner_id")),
            ListColumn(
                "expected_close",
                N_("Expected close"),
                lambda r, c: i18n.format_date(r["expected_close"]) if r.get("expected_close") else "",
                export=lists.raw("expected_close"),
                sort="expected_close",
            ),
        ],
        quick=[
            QuickFilter("q", N_("Title contains")),
            QuickFilter("status", N_("Status"), "choice", STATUS_CODES, "sales.deal.status"),
            QuickFilter("owner_id", N_("Manager"), "user"),
            QuickFilter("team_id", N_("Team"), "team"),
            QuickFilter("overdue", N_("Overdue"), "flag"),
            QuickFilter("close_from", N_("Closing from"), "date"),
            QuickFilter("close_before", N_("Closing before"), "date"),
        ],
        row_href=lambda r: f"/sales/deals/{r['id']}",
        load=_load,
        bulk=[BulkAction("owner", N_("Assign owner"), "user", "owner_id", _owner_changes)],
        actions=[("/sales/deals/new", N_("New deal")), ("/sales/funnel", N_("Funnel"))],
        empty=N_("No deals."),
        plugin="sales",
        presets=[(N_("My open deals"), lambda p: {"owner_id": str(p.user_id), "status": "open"})],
    )
)


@get("/deals", include_in_schema=False)
async def deal_list(request: Request[Any, Any, Any]) -> Response[Any]:
    """Deals the user may see, with the list machinery's filters (``?owner_id=`` for mine)."""
    return await lists.list_response(request, DEALS)


# --------------------------------------------------------------------------- party list column


async def open_deals(principal: Principal, ids: list[int]) -> dict[int, str]:
    """Per party of the page: the open deals the principal may see, "2 · 125 000,00 ₽" (one
    query; amounts summed per currency)."""
    if not principal.can("sales.deal.read") or not ids:
        return {}
    conditions = [Deal.party_id.is_in(ids), Deal.status == "open"]
    visible = services.DEAL.visibility(principal)
    if visible is not None:
        conditions.append(visible)
    rows = await Deal.select(Deal.party_id, Deal.amount, Deal.currency).where(*conditions)
    counts: dict[int, int] = defaultdict(int)
    sums: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        counts[row["party_id"]] += 1
        sums[row["party_id"]][row["currency"]] += services.money(row["amount"])
    return {
        party_id: f"{n} · "
        + ", ".join(
            i18n.format_money(amount, currency) for currency, amount in sorted(sums[party_id].items())
        )
        for party_id, n in counts.items()
    }


def list_columns(list_name: str) -> list[dict[str, Any]]:
    if list_name != "parties":
        return []
    return [{"key": "sales.open_deals", "label": N_("Open deals"), "values": open_deals}]
