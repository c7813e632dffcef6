"""The lead inbox (``/marketing/leads``) on the kernel's list machinery (``tessera.web.lists``):
the API's lead filters, newest first, keyset paging, totals, saved views and CSV/XLSX export.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get
from tessera import i18n
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.web import lists
from tessera.web.list_pages import owner_changes
from tessera.web.lists import BulkAction, Cell, ListColumn, ListSpec, QuickFilter

from tessera_marketing import services
from tessera_marketing.routes import lead_filters
from tessera_marketing.tables import Campaign, WebForm

LEAD_STATUSES = {
    "new": N_("New"),
    "contacted": N_("Contacted"),
    "qualified": N_("Qualified"),
    "disqualified": N_("Disqualified"),
}
LEAD_SOURCES = {"form": N_("Web form"), "deal": N_("Deal"), "manual": N_("Logged by hand")}
i18n.register_labels("marketing.lead.status", LEAD_STATUSES)
i18n.register_labels("marketing.lead.source", LEAD_SOURCES)


async def _load(principal: Principal, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ctx: dict[str, Any] = await lists.names(
        user_ids={r["assignee_id"] for r in rows},
        party_ids={r["party_id"] for r in rows},
        team_ids={r["team_id"] for r in rows if not r["assignee_id"]},
    )
    campaign_ids = list({r["campaign_id"] for r in rows if r["campaign_id"]}) or [-1]
    ctx["campaigns"] = {
        c["id"]: c["name"]
        for c in await Campaign.select(Campaign.id, Campaign.name).where(Campaign.id.is_in(campaign_ids))
    }
    form_ids = list({r["form_id"] for r in rows if r["form_id"]}) or [-1]
    ctx["forms"] = {
        f["id"]: f["name"]
        for f in await WebForm.select(WebForm.id, WebForm.name).where(WebForm.id.is_in(form_ids))
    }
    return ctx


def _manager(row: dict[str, Any], ctx: dict[str, Any]) -> Cell:
    """The lead's manager, or the team whose lead list holds it (any member may take it)."""
    if row["assignee_id"]:
        return Cell(text=ctx["users"].get(row["assignee_id"], ""))
    if row["team_id"]:
        return Cell(text=i18n.gettext("Lead list: %(team)s", team=ctx["teams"].get(row["team_id"], "")))
    return Cell(text="—")


LEADS = lists.register(
    ListSpec(
        name="marketing.leads",
        title=N_("Leads"),
        url="/marketing/leads",
        entity=services.LEAD,
        filters=lead_filters,
        default_order="-received_at",
        row_href=lambda r: f"/marketing/leads/{r['id']}",
        bulk=[BulkAction("assign", N_("Assign to"), "user", "assignee_id", owner_changes("assignee_id"))],
        columns=[
            ListColumn(
                "received_at",
                N_("Received"),
                lists.when("received_at"),
                export=lists.raw("received_at"),
                sort="received_at",
            ),
            ListColumn(
                "party",
                N_("Client"),
                lambda r, c: Cell(
                    text=c["parties"].get(r["party_id"], ""), href=f"/app/parties/{r['party_id']}"
                ),
            ),
            ListColumn("source", N_("Source"), lists.labelled("marketing.lead.source", "source")),
            ListColumn(
                "form",
                N_("Web form"),
                lambda r, c: Cell(text=c["forms"].get(r["form_id"], "")),
            ),
            ListColumn(
                "campaign",
                N_("Campaign"),
                lambda r, c: Cell(text=c["campaigns"].get(r["campaign_id"], "")),
            ),
            ListColumn("status", N_("Status"), lists.labelled("marketing.lead.status", "status")),
            ListColumn("assignee", N_("Manager"), _manager),
            ListColumn("note", N_("Message"), lambda r, c: Cell(text=(r["note"] or "")[:120])),
        ],
        quick=[
            QuickFilter(
                "status",
                N_("Status"),
                "choice",
                ("new", "contacted", "qualified", "disqualified"),
                "marketing.lead.status",
            ),
            QuickFilter("assignee_id", N_("Manager"), "user"),
        ],
        load=_load,
        export_permission="marketing.lead.read",
        empty=N_("No leads."),
        plugin="marketing",
        presets=[
            (N_("My new leads"), lambda p: {"assignee_id": str(p.user_id), "status": "new"}),
        ],
    )
)


@get("/leads", include_in_schema=False)
async def lead_inbox(request: Request[Any, Any, Any]) -> Response[Any]:
    """The lead inbox: leads the user may see, newest first (``?status=new``, ``?assignee_id=``)."""
    return await lists.list_response(request, LEADS)
