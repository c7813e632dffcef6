"""Web pages of the sales plugin (mounted by the kernel under ``/sales/``): deals list (mine /
all I may see), a deal with its lines and stage history and forms to move, win or lose it, the
funnel, and the "Deals" tab of the client card. They call the same services as the API, so the
same permissions and record visibility apply; every form carries the session's CSRF token.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

import datetime as dt
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import clock, i18n
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.entities.tables import CrmUser, Party, Team
from tessera.errors import DomainError
from tessera.i18n import N_
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    record_widgets,
    render,
)

from tessera_sales import labels, reports, services, sources
from tessera_sales.lists import deal_list
from tessera_sales.routes import CloseIn, MoveIn
from tessera_sales.tables import Deal, LossReason

SCOPES = {"mine": N_("My deals"), "all": N_("All I may see")}
STATUSES = labels.STATUSES  # registered as "sales.deal.status" in labels.py
i18n.register_labels(
    "timeline.kind",
    {
        "sales.deal.opened": N_("Deal opened"),
        "sales.deal.stage": N_("Deal stage"),
        "sales.deal.won": N_("Deal won"),
        "sales.deal.lost": N_("Deal lost"),
        "sales.proposal": N_("Proposal"),
        "sales.order": N_("Order"),
        "sales.invoice": N_("Invoice"),
        "sales.shipment": N_("Shipment"),
        "sales.act": N_("Act"),
    },
)
#: Fields the deal page's forms show (an error about another field is shown above them).
FORM_FIELDS = frozenset({"to", "comment", "outcome", "loss_reason_id"})


async def _names(user_ids: set[int], party_ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    users = {
        u["id"]: u["name"]
        for u in await CrmUser.select(CrmUser.id, CrmUser.name).where(
            CrmUser.id.is_in(list(user_ids) or [-1])
        )
    }
    parties = {
        p["id"]: p["name"]
        for p in await Party.select(Party.id, Party.name).where(Party.id.is_in(list(party_ids) or [-1]))
    }
    return users, parties


async def _stage_names(pipeline: str) -> dict[str, str]:
    try:
        definition = await services.pipeline(pipeline)
    except DomainError:
        return {}
    return {s["key"]: s["name"] for s in definition["stages"]}


@get("/deals/{deal_id:int}", include_in_schema=False)
async def deal_page(request: Request[Any, Any, Any], deal_id: int) -> Response[Any]:
    """One deal: stage, amount, lines, stage history; move / win / lose forms."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _deal_view(request, principal, deal_id)


async def _deal_view(
    request: Request[Any, Any, Any],
    principal: Any,
    deal_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    """The deal page; after a refused form, with the reasons beside the fields (``errors``),
    the user's input (``form``) and the error's status."""
    errors = dict(errors or {})
    try:
        deal = await services.get_deal(principal, deal_id)
        history = await services.stage_history(principal, deal_id)
        definition = await services.pipeline(deal["pipeline"])
    except DomainError as exc:
        return error_page(request, principal, exc)
    lines = (await services.deal_lines([deal_id]))[deal_id]
    users, parties = await _names({deal["owner_id"]} - {None}, {deal["party_id"]})
    stage_names = {s["key"]: s["name"] for s in definition["stages"]}
    order = [s["key"] for s in definition["stages"] if not s.get("final")]
    following = order[order.index(deal["stage"]) + 1] if deal["stage"] in order[:-1] else None
    reasons = await LossReason.select().where(LossReason.active == True).order_by(LossReason.position)  # noqa: E712
    campaign = await sources.campaign(deal["campaign_id"]) if deal["campaign_id"] else None
    from tessera_sales.web_deals import deal_extras  # checklist, proposals, stages to go to

    extras = await deal_extras(principal, deal, definition)
    return render(
        request,
        "sales/deal.html",
        status=status,
        principal=principal,
        deal=deal,
        lines=lines,
        history=history,
        stage_names=stage_names,
        following=following,
        reasons=reasons,
        owner=users.get(deal["owner_id"], ""),
        party=parties.get(deal["party_id"], ""),
        campaign=campaign,
        statuses=STATUSES,
        can_write=await service.may_change(services.DEAL, principal, deal_id),
        money=services.money,
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
        now=clock.now(),
        widgets=await record_widgets(request, principal, "deal", deal_id),
        kind="deal",
        record_id=deal_id,
        **extras,
    )


def _back(deal_id: int) -> Redirect:
    return Redirect(f"/sales/deals/{deal_id}", status_code=303)


async def _refused(
    request: Request[Any, Any, Any], principal: Any, deal_id: int, data: dict[str, str], exc: DomainError
) -> Response[Any]:
    """A refused form: the deal page again with the reasons beside the fields."""
    if exc.status == 404:
        return error_page(request, principal, exc)
    if any(e.field.startswith("required.") for e in exc.errors):
        from tessera_sales.web_deals import stage_refusal  # the stage's missing items in words

        deal = await services.get_deal(principal, deal_id)
        exc = stage_refusal(exc, await services.pipeline(deal["pipeline"]), deal["stage"])
    errors = field_errors(exc, FORM_FIELDS)
    return await _deal_view(request, principal, deal_id, form=data, errors=errors, status=exc.status)


@post("/deals/{deal_id:int}/move", include_in_schema=False, status_code=303)
async def move_submit(request: Request[Any, Any, Any], deal_id: int, data: Form) -> Response[Any]:
    """Complete the current stage and go to the next one (the stage's requirements apply)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(MoveIn, data)  # the API's body for the same action
        await services.move_deal(principal, deal_id, to=body.to, results=body.results, comment=body.comment)
    except DomainError as exc:
        return await _refused(request, principal, deal_id, data, exc)
    return _back(deal_id)


@post("/deals/{deal_id:int}/close", include_in_schema=False, status_code=303)
async def close_submit(request: Request[Any, Any, Any], deal_id: int, data: Form) -> Response[Any]:
    """Win or lose the deal (losing needs a reason from the managed list)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(CloseIn, data)  # the API's body for the same action
        await services.close_deal(
            principal, deal_id, body.outcome, loss_reason_id=body.loss_reason_id, comment=body.comment
        )
    except DomainError as exc:
        return await _refused(request, principal, deal_id, data, exc)
    return _back(deal_id)


@get("/funnel", include_in_schema=False)
async def funnel_page(
    request: Request[Any, Any, Any],
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    group_by: str = "",
) -> Response[Any]:
    """The funnel of deals opened in a period (default: the last 90 days), per stage."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    today = clock.now().date()
    date_to = date_to or today
    date_from = date_from or date_to - dt.timedelta(days=90)
    try:
        report = await reports.funnel(
            principal,
            date_from=date_from,
            date_to=date_to,
            group_by=group_by if group_by in ("owner", "team") else "",
        )
    except DomainError as exc:
        return error_page(request, principal, exc)
    users, _ = await _names({g["group"] for g in report["groups"] if g["group"]}, set())
    teams = {t["id"]: t["name"] for t in await Team.select(Team.id, Team.name)}
    from tessera_sales.web_reports import REPORT_PAGES, funnel_charts  # one SVG funnel per group

    charts = funnel_charts(report, users, teams)
    return render(
        request,
        "sales/funnel.html",
        principal=principal,
        report=report,
        users=users,
        teams=teams,
        date_from=date_from,
        date_to=date_to,
        group_by=group_by,
        charts=charts,
        report_pages=REPORT_PAGES,
    )


@get("/parties/{party_id:int}/deals", include_in_schema=False)
async def party_deals(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """The "Deals" tab of the client card: the client's deals the user may see."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        party = await service.get(PARTY, principal, party_id)
        page = await service.list_page(
            services.DEAL, principal, [Deal.party_id == party_id], order="-id", limit=200
        )
    except DomainError as exc:
        return error_page(request, principal, exc)
    users, _ = await _names({d["owner_id"] for d in page.items if d["owner_id"]}, set())
    return render(
        request,
        "sales/party_deals.html",
        principal=principal,
        party=party,
        deals=page.items,
        users=users,
        statuses=STATUSES,
        stage_names=await _stage_names(services.DEFAULT_PIPELINE),
        money=services.money,
    )


HANDLERS = [deal_list, deal_page, move_submit, close_submit, funnel_page, party_deals]
