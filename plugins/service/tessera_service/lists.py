"""The ticket queue (``/service/tickets``) on the kernel's list machinery (``tessera.web.lists``):
the API's ticket filters, sorting (most urgent first: the earliest resolution due), keyset
paging, totals, saved views and CSV/XLSX export, with the SLA countdown in a column.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get
from tessera import clock, i18n
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.web import lists
from tessera.web.lists import Cell, ListColumn, ListSpec, QuickFilter

from tessera_service import services
from tessera_service.routes import ticket_filters
from tessera_service.tables import Queue


async def _load(principal: Principal, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ctx: dict[str, Any] = await lists.names(
        user_ids={r["assignee_id"] for r in rows}, party_ids={r["party_id"] for r in rows}
    )
    ids = list({r["queue_id"] for r in rows if r["queue_id"]}) or [-1]
    ctx["queues"] = {
        q["id"]: q["name"] for q in await Queue.select(Queue.id, Queue.name).where(Queue.id.is_in(ids))
    }
    ctx["now"] = clock.now()
    return ctx


def _sla(row: dict[str, Any], ctx: dict[str, Any]) -> Cell:
    from tessera_service.web import countdown

    if row["status"] in ("resolved", "closed"):
        return Cell(text="")
    view = services.sla_view(row, ctx.get("now") or clock.now())
    if view["paused"]:
        return Cell(text=i18n.gettext("paused"), css="muted")
    left = view["seconds_left"]
    if left is None:
        return Cell(text="")
    return Cell(text=countdown(left), css="bad" if left < 0 else "")


TICKETS = lists.register(
    ListSpec(
        name="service.tickets",
        title=N_("Tickets"),
        url="/service/tickets",
        entity=services.TICKET,
        filters=ticket_filters,
        default_order="resolution_due",
        columns=[
            ListColumn(
                "subject",
                N_("Ticket"),
                lambda r, c: Cell(text=f"{r['number']} {r['subject']}", href=f"/service/tickets/{r['id']}"),
                export=lambda r, c: f"{r['number']} {r['subject']}",
            ),
            ListColumn(
                "party",
                N_("Client"),
                lambda r, c: Cell(
                    text=c["parties"].get(r["party_id"], ""), href=f"/app/parties/{r['party_id']}"
                ),
            ),
            ListColumn("priority", N_("Priority"), lists.labelled("service.priority", "priority")),
            ListColumn("status", N_("Status"), lists.labelled("service.ticket.status", "status")),
            ListColumn("queue", N_("Queue"), lambda r, c: c["queues"].get(r["queue_id"], "")),
            ListColumn("assignee", N_("Assignee"), lists.user_cell("assignee_id")),
            ListColumn(
                "sla",
                N_("SLA: time left"),
                _sla,
                export=lambda r, c: r["resolution_due"],
                sort="resolution_due",
            ),
            ListColumn(
                "created_at",
                N_("Opened"),
                lists.when("created_at"),
                export=lists.raw("created_at"),
                sort="created_at",
            ),
        ],
        quick=[
            QuickFilter("q", N_("Subject contains")),
            QuickFilter(
                "status",
                N_("Status"),
                "choice",
                ("new", "in_progress", "waiting", "resolved", "closed"),
                "service.ticket.status",
            ),
            QuickFilter("open_only", N_("Open only"), "flag"),
            QuickFilter("priority", N_("Priority"), "choice", ("p1", "p2", "p3", "p4"), "service.priority"),
            QuickFilter("assignee_id", N_("Assignee"), "user"),
            QuickFilter("breached", N_("SLA breached"), "flag"),
        ],
        row_href=lambda r: f"/service/tickets/{r['id']}",
        load=_load,
        export_permission="service.ticket.read",
        actions=[("/service/tickets/new", N_("New ticket"))],
        empty=N_("No tickets."),
        plugin="service",
        presets=[
            (N_("My open tickets"), lambda p: {"assignee_id": str(p.user_id), "open_only": "true"}),
            (N_("Breached"), lambda p: {"open_only": "true", "breached": "true"}),
        ],
    )
)


@get("/tickets", include_in_schema=False)
async def ticket_list(request: Request[Any, Any, Any]) -> Response[Any]:
    """The ticket queue: what the user may see, most urgent first, with the list machinery's
    filters (``?assignee_id=`` for mine, ``?open_only=true``, ``?breached=true``)."""
    return await lists.list_response(request, TICKETS)
