"""A lead's page (``/marketing/leads/{id}``, opened from the lead inbox and a form's page): what
the visitor sent, the client, form, source, campaign, status and manager; the manager takes it
(a team's lead list), hands it to a colleague or moves its status. Changes go through the same
service as ``PATCH /api/marketing/leads/{id}`` (its visibility, audit and workflow run).

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import events
from tessera.entities import service
from tessera.entities.tables import CrmUser
from tessera.errors import DomainError
from tessera.permissions import Principal
from tessera.web import lists
from tessera.web.plugin_pages import Form, check_csrf, current_principal, error_page, field_errors, render

from tessera_marketing import services
from tessera_marketing.lists import LEAD_STATUSES
from tessera_marketing.tables import Campaign, WebForm

FIELDS = frozenset({"assignee_id", "status"})


async def _view(
    request: Request[Any, Any, Any],
    principal: Principal,
    lead_id: int,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    try:
        lead = await service.get(services.LEAD, principal, lead_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    names = await lists.names(
        user_ids={lead["assignee_id"]}, party_ids={lead["party_id"]}, team_ids={lead["team_id"]}
    )
    form = (
        await WebForm.select(WebForm.id, WebForm.name, WebForm.labels, WebForm.fields)
        .where(WebForm.id == lead["form_id"])
        .first()
        .output(load_json=True)
        if lead["form_id"]
        else None
    )
    campaign = (
        await Campaign.select(Campaign.id, Campaign.name).where(Campaign.id == lead["campaign_id"]).first()
        if lead["campaign_id"]
        else None
    )
    payload = lead.get("payload") or {}
    errors = dict(errors or {})
    return render(
        request,
        "marketing/lead.html",
        status=status,
        principal=principal,
        lead=lead,
        names=names,
        form=form,
        campaign=campaign,
        sent=[(k, payload[k]) for k in ("name", "company", "position", "email", "phone") if payload.get(k)],
        extra=list((payload.get("extra") or {}).items()) + list((payload.get("custom") or {}).items()),
        users=await CrmUser.select(CrmUser.id, CrmUser.name)
        .where(CrmUser.is_active == True)  # noqa: E712
        .order_by(CrmUser.name),
        statuses=list(LEAD_STATUSES),
        may_write=principal.can("marketing.lead.write"),
        error=errors.pop("", None),
        errors=errors,
    )


@get("/leads/{lead_id:int}")
async def lead_page(request: Request[Any, Any, Any], lead_id: int) -> Response[Any]:
    """A lead: what was sent, its client, form, campaign, status and manager."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _view(request, principal, lead_id)


@post("/leads/{lead_id:int}", status_code=303)
async def lead_submit(request: Request[Any, Any, Any], lead_id: int, data: Form) -> Response[Any]:
    """Take the lead (``action=take``), hand it to someone (``assign``) or change its status."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    action = data.get("action")
    try:
        await service.get(services.LEAD, principal, lead_id)
        if action == "take":
            changes: dict[str, Any] = {"assignee_id": principal.user_id}
        elif action == "assign":
            from tessera.web.list_pages import owner_changes

            changes = owner_changes("assignee_id")({}, data.get("assignee_id") or "")
        else:
            changes = {"status": data.get("status") or ""}
        async with events.unit_of_work():
            await service.update(services.LEAD, principal, lead_id, changes)
    except DomainError as exc:
        if exc.status != 422:
            return error_page(request, principal, exc)
        return await _view(request, principal, lead_id, field_errors(exc, FIELDS), status=422)
    return Redirect(f"/marketing/leads/{lead_id}", status_code=303)


HANDLERS = [lead_page, lead_submit]
