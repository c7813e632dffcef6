"""Campaign pages: a new campaign, its card (figures of its return, the plan-and-actual chart,
cost lines with a form to add one) and the edit form.

Forms are decoded through the API's ``CampaignIn`` / ``CostIn`` and saved by the same services
as ``/api/marketing/campaigns`` and ``/api/marketing/campaign-costs``, so a value the API refuses
is refused here for the same reason (shown beside the field, the input kept). The figures are
``reports.campaign_figures`` (first touch, over the parties the user reads), like
``GET /api/marketing/campaigns/{id}/return``.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from decimal import Decimal
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import clock, events
from tessera.entities import service
from tessera.entities.dto import set_fields
from tessera.errors import DomainError, NotFound
from tessera.i18n import gettext as _
from tessera.permissions import Principal
from tessera.web import charts
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    render,
)

from tessera_marketing import reports, services
from tessera_marketing.routes import CampaignIn, CampaignPatch, CostIn
from tessera_marketing.tables import CampaignCost

CAMPAIGN_FIELDS = frozenset(
    {
        "name",
        "channel",
        "status",
        "starts_on",
        "ends_on",
        "budget",
        "segment_id",
        "expected_responses",
        "expected_leads",
        "expected_revenue",
        "description",
    }
)
COST_FIELDS = frozenset({"spent_on", "amount", "description"})


def percent(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.0f} %"


def money(value: Any) -> str:
    return "—" if value is None else f"{Decimal(str(value)):,.2f}".replace(",", "\u00a0")


def plan_chart(figures: dict[str, Any]) -> Any:
    """Planned and actual cost and revenue side by side (the kernel's column chart)."""
    return charts.column_chart(
        _("Plan and actual"),
        [_("Cost"), _("Revenue")],
        [
            charts.Series(_("Planned"), [figures["budget"], figures["expected_revenue"]], key="planned"),
            charts.Series(_("Actual"), [figures["cost"], figures["revenue"]], key="actual"),
        ],
        desc=_("Budget and expected revenue next to the actual cost and the attributed revenue"),
        keys=["cost", "revenue"],
        ident="campaign-plan",
    )


def roi_chart(figures: dict[str, Any]) -> Any:
    """The campaign's ROI and cost per lead (the kernel's bar chart; a loss is a bar of 0)."""
    roi = None if figures["roi"] is None else round(float(figures["roi"]) * 100, 1)
    return charts.bar_chart(
        _("Return on investment"),
        [charts.Datum(figures["name"], roi, key=str(figures["campaign_id"]))],
        desc=_("(Revenue − cost) / cost, in per cent, first-touch attribution"),
        formatter=lambda v: f"{v:.0f} %",
        label_header=_("Campaign"),
        value_header=_("ROI"),
        ident="campaign-roi",
    )


async def _segments(principal: Principal) -> list[dict[str, Any]]:
    if not principal.can("marketing.segment.read"):
        return []
    page = await service.list_page(services.SEGMENT, principal, [], order="name", limit=500)
    return [{"id": s["id"], "name": s["name"]} for s in page.items]


async def _form_view(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    campaign: dict[str, Any] | None,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    return render(
        request,
        "marketing/campaign_edit.html",
        status=status,
        principal=principal,
        campaign=campaign,
        form=form,
        channels=services.CHANNELS,
        statuses=services.CAMPAIGN_STATUSES,
        segments=await _segments(principal),
        error=errors.pop("", None),
        errors=errors,
    )


@get("/campaigns/new")
async def new_campaign_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """A new campaign: channel, period, budget, target segment and what it is expected to bring."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        services.CAMPAIGN.require(principal, "write")
    except DomainError as exc:
        return error_page(request, principal, exc)
    form = {
        "channel": "email",
        "status": "planned",
        "starts_on": clock.now().date().isoformat(),
        "budget": "0",
    }
    return await _form_view(request, principal, campaign=None, form=form)


@post("/campaigns/new", status_code=303)
async def new_campaign_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Create the campaign (``CampaignIn``, the API's create) and open its card."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(CampaignIn, data)
        async with events.unit_of_work():
            row = await service.create(services.CAMPAIGN, principal, set_fields(body))
    except DomainError as exc:
        if exc.status != 422:
            return error_page(request, principal, exc)
        return await _form_view(
            request,
            principal,
            campaign=None,
            form=dict(data),
            errors=field_errors(exc, CAMPAIGN_FIELDS),
            status=422,
        )
    return Redirect(f"/marketing/campaigns/{row['id']}", status_code=303)


def _form_of(campaign: dict[str, Any]) -> dict[str, str]:
    return {k: "" if campaign.get(k) is None else str(campaign[k]) for k in CAMPAIGN_FIELDS}


@get("/campaigns/{campaign_id:int}/edit")
async def edit_campaign_page(request: Request[Any, Any, Any], campaign_id: int) -> Response[Any]:
    """Change a campaign (its status, period, budget, expectations)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        campaign = await services.require_campaign(principal, campaign_id)
        services.CAMPAIGN.require(principal, "write")
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _form_view(request, principal, campaign=campaign, form=_form_of(campaign))


@post("/campaigns/{campaign_id:int}/edit", status_code=303)
async def edit_campaign_submit(
    request: Request[Any, Any, Any], campaign_id: int, data: Form
) -> Response[Any]:
    """Save the campaign's changes (``CampaignPatch``, the API's update)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    campaign = None
    try:
        campaign = await services.require_campaign(principal, campaign_id)
        body = decode_form(CampaignPatch, {k: v for k, v in data.items() if k in CAMPAIGN_FIELDS})
        changes = set_fields(body)
        for key in ("ends_on", "segment_id"):  # an emptied optional field clears it
            if key in data and data[key] == "":
                changes[key] = None
        async with events.unit_of_work():
            await service.update(services.CAMPAIGN, principal, campaign_id, changes)
    except DomainError as exc:
        if exc.status != 422 or campaign is None:
            return error_page(request, principal, exc)
        return await _form_view(
            request,
            principal,
            campaign=campaign,
            form=dict(data),
            errors=field_errors(exc, CAMPAIGN_FIELDS),
            status=422,
        )
    return Redirect(f"/marketing/campaigns/{campaign_id}", status_code=303)


async def _card(
    request: Request[Any, Any, Any],
    principal: Principal,
    campaign_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    try:
        campaign = await services.require_campaign(principal, campaign_id)
        figures = (await reports.campaign_figures(principal, [campaign_id]))[0]
        costs = await service.list_page(
            services.COST,
            principal,
            [CampaignCost.campaign_id == campaign_id],
            order="spent_on",
            limit=500,
        )
    except DomainError as exc:
        return error_page(request, principal, exc)
    segment = None
    if campaign["segment_id"] and principal.can("marketing.segment.read"):
        try:
            segment = await service.get(services.SEGMENT, principal, campaign["segment_id"])
        except DomainError:
            segment = None
    errors = dict(errors or {})
    return render(
        request,
        "marketing/campaign.html",
        status=status,
        principal=principal,
        campaign=campaign,
        figures=figures,
        costs=costs.items,
        segment=segment,
        plan=plan_chart(figures),
        roi=roi_chart(figures),
        percent=percent,
        money=money,
        form=form or {"spent_on": clock.now().date().isoformat()},
        error=errors.pop("", None),
        errors=errors,
        may_manage=principal.can("marketing.campaign.manage"),
        # A deal opened with this campaign (the sales plugin's form, when it is enabled).
        deal_url=f"/sales/deals/new?campaign_id={campaign_id}"
        if service.plugin_manager().get_plugin("sales") is not None and principal.can("sales.deal.write")
        else None,
    )


@get("/campaigns/{campaign_id:int}")
async def campaign_page(request: Request[Any, Any, Any], campaign_id: int) -> Response[Any]:
    """The campaign card: its return (responses, leads, conversion, revenue, cost, cost per
    lead, ROI), the plan-and-actual and ROI charts, and its cost lines."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _card(request, principal, campaign_id)


@post("/campaigns/{campaign_id:int}/costs", status_code=303)
async def add_cost_submit(request: Request[Any, Any, Any], campaign_id: int, data: Form) -> Response[Any]:
    """Add a cost line (``CostIn``, the API's create of a campaign cost)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(CostIn, data, campaign_id=campaign_id)
        async with events.unit_of_work():
            await service.create(services.COST, principal, set_fields(body))
    except DomainError as exc:
        if exc.status != 422:
            return error_page(request, principal, exc)
        return await _card(
            request,
            principal,
            campaign_id,
            form=dict(data),
            errors=field_errors(exc, COST_FIELDS),
            status=422,
        )
    return Redirect(f"/marketing/campaigns/{campaign_id}", status_code=303)


@post("/campaigns/{campaign_id:int}/costs/{cost_id:int}/delete", status_code=303)
async def delete_cost_submit(
    request: Request[Any, Any, Any], campaign_id: int, cost_id: int, data: Form
) -> Response[Any]:
    """Delete a cost line (the API's delete)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        cost = await service.get(services.COST, principal, cost_id)
        if cost["campaign_id"] != campaign_id:
            raise NotFound(f"No cost line {cost_id} in campaign {campaign_id}")
        async with events.unit_of_work():
            await service.delete(services.COST, principal, cost_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Redirect(f"/marketing/campaigns/{campaign_id}", status_code=303)


HANDLERS = [
    new_campaign_page,
    new_campaign_submit,
    edit_campaign_page,
    edit_campaign_submit,
    campaign_page,
    add_cost_submit,
    delete_cost_submit,
]
