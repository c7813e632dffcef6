"""Web pages of the marketing plugin (mounted by the kernel under ``/marketing/``): campaigns
with their return and an ROI chart (the kernel's chart component), segments with their live
counts, and the ABC/XYZ matrix. They call the same services as the API, within the signed-in
user's visibility.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import i18n
from tessera.entities import service
from tessera.errors import DomainError, NotFound
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.web import charts
from tessera.web.plugin_pages import current_principal, error_page, render

from tessera_marketing import classes, reports, services

CHANNELS = services.CHANNEL_LABELS
CAMPAIGN_STATUSES = {"planned": N_("Planned"), "active": N_("Active"), "closed": N_("Closed")}
SEGMENT_KINDS = {"dynamic": N_("Dynamic"), "static": N_("Static (frozen)")}
i18n.register_labels("marketing.channel", CHANNELS)
i18n.register_labels("marketing.campaign.status", CAMPAIGN_STATUSES)
i18n.register_labels("marketing.segment.kind", SEGMENT_KINDS)


def _percent(value: Any) -> str:
    return "" if value is None else f"{float(value) * 100:.0f} %"


@get("/campaigns")
async def campaigns_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Campaigns with their return (first-touch attribution) and an ROI chart."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        rows = await reports.campaign_figures(principal)
    except DomainError as exc:
        return error_page(request, principal, exc)
    chart = charts.bar_chart(
        _("Return on investment"),
        [
            charts.Datum(
                r["name"],
                round(float(r["roi"]) * 100, 1),
                key=str(r["campaign_id"]),
                href=f"/marketing/campaigns/{r['campaign_id']}",
            )
            for r in rows
            if r["roi"] is not None
        ],
        desc=_("(Revenue − cost) / cost, in per cent, first-touch attribution"),
        formatter=lambda v: f"{v:.0f} %",
        label_header=_("Campaign"),
        value_header=_("ROI"),
        ident="campaign-roi",
    )
    return render(
        request,
        "marketing/campaigns.html",
        principal=principal,
        rows=rows,
        chart=chart,
        percent=_percent,
        may_manage=principal.can("marketing.campaign.manage"),
    )


@get("/segments")
async def segments_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Saved segments, each with the number of its parties the user may read now."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        page = await service.list_page(services.SEGMENT, principal, [], limit=200)
        counts = {s["id"]: await services.count_segment(principal, s["id"]) for s in page.items}
    except DomainError as exc:
        return error_page(request, principal, exc)
    return render(
        request,
        "marketing/segments.html",
        principal=principal,
        segments=page.items,
        counts=counts,
        may_manage=principal.can("marketing.segment.manage"),
    )


@get("/classes")
async def classes_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The ABC/XYZ matrix: clients and revenue per cell (clients the user may read)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        cells = await classes.matrix(principal)
        conf = await classes.settings()
    except DomainError as exc:
        return error_page(request, principal, exc)
    grid = {(c["abc_class"], c["xyz_class"]): c for c in cells}
    return render(
        request, "marketing/classes.html", principal=principal, grid=grid, conf=conf, chart=matrix_chart(grid)
    )


def matrix_chart(grid: dict[tuple[str, str], dict[str, Any]]) -> Any:
    """Clients per ABC class, one column per XYZ class (the kernel's column chart)."""
    return charts.column_chart(
        _("Clients per ABC and XYZ class"),
        ["A", "B", "C"],
        [
            charts.Series(xyz, [int(grid.get((abc, xyz), {}).get("clients", 0)) for abc in "ABC"], key=xyz)
            for xyz in "XYZ"
        ],
        desc=_("For each ABC class (share of revenue) the clients of each XYZ class (steadiness)"),
        category_header=_("ABC class"),
        keys=["A", "B", "C"],
        ident="abc-xyz",
    )


@get("/unsubscribe")
async def unsubscribe_page(request: Request[Any, Any, Any], r: int = 0, t: str = "") -> Response[Any]:
    """The unsubscribe link of a mailing (no sign-in): a button, so that a mail scanner opening
    links unsubscribes nobody."""
    return render(
        request, "marketing/unsubscribe.html", principal=None, r=r, t=t[:100], done=False, bad=False
    )


@post("/unsubscribe", status_code=200)
async def unsubscribe_submit(request: Request[Any, Any, Any], r: int = 0, t: str = "") -> Response[Any]:
    """Unsubscribe. No CSRF token: the request is bound to the signed link, which a cross-site
    page cannot know."""
    from tessera_marketing import mailings

    ok = r > 0 and await mailings.unsubscribe(r, t[:100])
    return render(
        request,
        "marketing/unsubscribe.html",
        principal=None,
        r=r,
        t=t,
        done=ok,
        bad=not ok,
        status=200 if ok else 404,
    )


STATIC = Path(__file__).parent / "static"
SCRIPTS = frozenset({"segments.js", "mailing.js", "copy.js"})


@get("/static/{name:str}")
async def static_script(name: str) -> Response[Any]:
    """The pages' scripts (static files: the pages allow no inline script)."""
    if name not in SCRIPTS:
        raise NotFound("No such file")
    return Response(
        (STATIC / name).read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _handlers() -> list[Any]:
    from tessera_marketing import web_campaigns, web_mailings, web_segments
    from tessera_marketing.lists import lead_inbox
    from tessera_marketing.web_forms import HANDLERS as FORM_PAGES
    from tessera_marketing.web_leads import HANDLERS as LEAD_PAGES

    return [
        campaigns_page,
        segments_page,
        classes_page,
        lead_inbox,
        *FORM_PAGES,
        *LEAD_PAGES,
        unsubscribe_page,
        unsubscribe_submit,
        static_script,
        *web_segments.HANDLERS,
        *web_campaigns.HANDLERS,
        *web_mailings.HANDLERS,
    ]


HANDLERS = _handlers()
