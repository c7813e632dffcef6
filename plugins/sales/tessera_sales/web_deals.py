"""Deal pages of the sales plugin beyond the list and the card's move / win / lose forms
(``web.py``): a new deal (from the menu or the client card, prefilled client), the card's stage
checklist, proposals (issue, preview, PDF) and the pipeline kanban with drag and drop and a
button fallback that works without JavaScript.

Every form is decoded through the API's structs (``DealIn``, ``TickIn``, ``MoveIn``) and handed
to the same services as the API, so the same inputs are refused for the same reasons (shown
beside the field, the user's input kept); every read goes through the record visibility of
``tessera.entities.service``.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from pathlib import Path
from typing import Annotated, Any

import msgspec
import nh3
from litestar import Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect
from markupsafe import Markup
from tessera import clock, events, i18n
from tessera.entities import service
from tessera.entities.dto import Id, set_fields
from tessera.entities.parties import PARTY
from tessera.errors import DomainError, FieldError, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.web.forms import human
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    render,
)
from tessera.workflow import engine, templates

from tessera_sales import proposals, services, sources, web
from tessera_sales.pipelines import PROPOSAL_ISSUED
from tessera_sales.routes import DealIn, MoveIn, TickIn
from tessera_sales.stats import aware
from tessera_sales.tables import Deal, LossReason, Product, ProposalTemplate

#: How many product lines the new-deal form offers (each one optional).
LINE_ROWS = 3
LINE_FIELDS = ("product_id", "name", "quantity", "unit_price", "discount_pct")
NEW_DEAL_FIELDS = frozenset(
    {"title", "party_id", "pipeline", "amount", "currency", "expected_close", "source", "campaign_id"}
    | {f"lines-{i}-{f}" for i in range(LINE_ROWS) for f in LINE_FIELDS}
)
# The words of deal sources ("sales.source") are registered in labels.py.
#: Service refusals a person may read on these pages (translated by ``translate_message``).
MESSAGES = (
    N_("the deal has no product lines to offer"),
    N_("a line needs a product or a name"),
    N_("required for a line without a product"),
    N_("must be more than zero"),
    N_("must be zero or more"),
    N_("must be between 0 and 100"),
    N_("a deal needs the client (party) it is made with"),
)


class ProposalForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The "issue a proposal" form: the API's ``template_id`` query parameter."""

    template_id: Id | None = None


# --------------------------------------------------------------------------- refusals in words


def requirement_text(requirement: dict[str, Any]) -> str:
    """What a stage still needs, in words (never the requirement's key)."""
    name = requirement.get("label") or i18n.label("sales.requirement", requirement["key"])
    if requirement.get("kind") == "checklist":
        return _("“%(item)s” is not ticked yet", item=name)
    kind = i18n.label("activity.type", requirement.get("activity_type", "")).lower()
    return _("“%(item)s”: log a done %(kind)s with the client first", item=name, kind=kind)


def refusal(exc: DomainError, stage: dict[str, Any] | None = None) -> str:
    """A refused move in words: the stage's missing requirements by their labels, other reasons
    translated (``tessera.web.forms.human``)."""
    required = {r["key"]: r for r in (stage or {}).get("required", [])}
    parts = []
    for error in exc.errors:
        key = error.field.removeprefix("required.")
        if error.field.startswith("required.") and key in required:
            parts.append(requirement_text(required[key]))
        else:
            parts.append(human(error.message))
    return "; ".join(parts) or i18n.translate_message(exc.detail)


def stage_refusal(exc: DomainError, definition: dict[str, Any], stage_key: str) -> DomainError:
    """``exc`` with its missing requirements in words (for ``web._refused``)."""
    if not any(e.field.startswith("required.") for e in exc.errors):
        return exc
    stage = templates.stage_map(definition).get(stage_key, {})
    readable = type(exc)(refusal(exc, stage), [FieldError("", refusal(exc, stage))])
    return readable


# --------------------------------------------------------------------------- new deal


async def _new_deal_view(
    request: Request[Any, Any, Any],
    principal: Any,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    page = await service.list_page(PARTY, principal, [], order="name", limit=500)
    parties = [{"id": p["id"], "name": p["name"]} for p in page.items]
    chosen = form.get("party_id", "")
    if chosen.isdigit() and all(str(p["id"]) != chosen for p in parties):
        try:
            party = await service.get(PARTY, principal, int(chosen))
            parties.insert(0, {"id": party["id"], "name": party["name"]})
        except DomainError:
            pass
    products = (
        await Product.select(Product.id, Product.name, Product.sku)
        .where(
            Product.active == True  # noqa: E712
        )
        .order_by(Product.name)
    )
    return render(
        request,
        "sales/deal_new.html",
        status=status,
        principal=principal,
        parties=parties,
        pipelines=await services.list_pipelines(),
        currencies=sorted(services.CURRENCIES),
        sources=[s for s in services.SOURCES if s],
        # Campaigns other plugins supply (tessera_sales_deal_sources); none: no field shown.
        campaigns=[c for c in await sources.campaigns() if c.get("active", True)],
        products=products,
        line_rows=range(LINE_ROWS),
        error=errors.pop("", None),
        errors=errors,
        form=form,
    )


@get("/deals/new", include_in_schema=False)
async def new_deal_page(
    request: Request[Any, Any, Any], party_id: int | None = None, campaign_id: int | None = None
) -> Response[Any]:
    """The new-deal form; from the client card's Deals tab the client is already chosen (and
    from a campaign's card, the campaign)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    if not principal.can("sales.deal.write"):
        return error_page(request, principal, _forbidden())
    form = {"pipeline": services.DEFAULT_PIPELINE, "currency": "RUB", "amount": "0"}
    if party_id is not None:
        form["party_id"] = str(party_id)
    if campaign_id is not None:
        form["campaign_id"] = str(campaign_id)
    return await _new_deal_view(request, principal, form=form)


def _forbidden() -> DomainError:
    from tessera.errors import PermissionDenied

    return PermissionDenied(_("You may not open deals."))


def _lines(data: dict[str, str]) -> list[dict[str, str]]:
    """The form's product lines (a row with neither a product nor a name is left out)."""
    out = []
    for i in range(LINE_ROWS):
        row = {f: data.get(f"lines-{i}-{f}", "").strip() for f in LINE_FIELDS}
        if not row["product_id"] and not row["name"]:
            continue
        out.append({k: v for k, v in row.items() if v != ""})
    return out


def _form_errors(exc: DomainError, lines_sent: list[int]) -> dict[str, str]:
    """The refusal beside the form's fields: ``lines[1].unit_price`` is the second line sent,
    i.e. the form row ``lines_sent[1]``."""
    renamed = []
    for error in exc.errors:
        name = error.field
        if name.startswith("lines["):
            index, _sep, rest = name[6:].partition("]")
            if index.isdigit() and int(index) < len(lines_sent):
                name = f"lines-{lines_sent[int(index)]}-{rest.lstrip('.') or 'product_id'}"
        renamed.append(FieldError(name, error.message))
    return field_errors(type(exc)(exc.detail, renamed), NEW_DEAL_FIELDS)


@post("/deals/new", include_in_schema=False, status_code=303)
async def new_deal_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Open a deal: the form decoded through the API's ``DealIn`` and created by the same
    service (owner: the user; the pipeline starts at its first stage)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    flat = {k: v for k, v in data.items() if not k.startswith("lines-")}
    lines_sent = [
        i
        for i in range(LINE_ROWS)
        if data.get(f"lines-{i}-product_id", "").strip() or data.get(f"lines-{i}-name", "").strip()
    ]
    try:
        body = decode_form(DealIn, flat, lines=_lines(data))
        async with events.unit_of_work():
            row = await service.create(services.DEAL, principal, set_fields(body))
    except DomainError as exc:
        if exc.status not in (409, 422):
            return error_page(request, principal, exc)
        return await _new_deal_view(
            request, principal, form=dict(data), errors=_form_errors(exc, lines_sent), status=exc.status
        )
    return Redirect(f"/sales/deals/{row['id']}", status_code=303)


# --------------------------------------------------------------------------- deal card extras


async def deal_extras(principal: Any, deal: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    """What the deal card shows besides the deal: the current stage's requirements as a
    checklist (done or not), the stages it may go to, proposals and proposal templates."""
    stage = templates.stage_map(definition).get(deal["stage"], {})
    checklist = []
    if deal["status"] == "open" and deal["instance_id"] is not None:
        instance = await engine.load_instance(None, deal["instance_id"])
        if instance["status"] in ("running", "suspended"):
            missing = {r["key"] for r in await engine.missing_actions(instance, stage)}
            for r in stage.get("required", []):
                checklist.append(
                    {
                        "key": r["key"],
                        "label": r.get("label") or i18n.label("sales.requirement", r["key"]),
                        "kind": r["kind"],
                        "activity_type": r.get("activity_type"),
                        "done": r["key"] not in missing,
                        "auto": r["key"] == PROPOSAL_ISSUED,  # ticked by issuing a proposal
                    }
                )
    names = {s["key"]: s["name"] for s in definition["stages"]}
    targets = [t["to"] for t in stage.get("transitions", []) if t["to"] not in ("lost", "won")]
    reason = None
    if deal["loss_reason_id"] is not None:
        row = await LossReason.select(LossReason.name).where(LossReason.id == deal["loss_reason_id"]).first()
        reason = row["name"] if row else None
    return {
        "loss_reason": reason,
        "checklist": checklist,
        "targets": [(key, names.get(key, key)) for key in targets],
        "proposals": await proposals.list_proposals(principal, deal["id"]),
        "proposal_templates": await ProposalTemplate.select(
            ProposalTemplate.id, ProposalTemplate.name
        ).order_by(ProposalTemplate.id),
    }


@post("/deals/{deal_id:int}/checklist", include_in_schema=False, status_code=303)
async def checklist_submit(request: Request[Any, Any, Any], deal_id: int, data: Form) -> Response[Any]:
    """Tick (or untick) a checklist item of the deal's stage (the API's ``TickIn``)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(TickIn, data)
        await services.tick(principal, deal_id, body.item, body.done)
    except DomainError as exc:
        return await web._refused(request, principal, deal_id, data, exc)
    return Redirect(f"/sales/deals/{deal_id}#checklist", status_code=303)


@post("/deals/{deal_id:int}/proposals", include_in_schema=False, status_code=303)
async def proposal_submit(request: Request[Any, Any, Any], deal_id: int, data: Form) -> Response[Any]:
    """Issue the deal's next proposal (the API's service; ticks "proposal issued")."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(ProposalForm, data)
        await proposals.create_proposal(principal, deal_id, body.template_id)
    except DomainError as exc:
        return await web._refused(request, principal, deal_id, data, exc)
    return Redirect(f"/sales/deals/{deal_id}#proposals", status_code=303)


@get("/proposals/{proposal_id:int}", include_in_schema=False)
async def proposal_page(request: Request[Any, Any, Any], proposal_id: int) -> Response[Any]:
    """A proposal's preview (its HTML as the client gets it) with the PDF link."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        proposal = await proposals.get_proposal(principal, proposal_id)
        deal = await services.get_deal(principal, proposal["deal_id"])
    except DomainError as exc:
        return error_page(request, principal, exc)
    # Shown inside the app's page: only harmless markup (nh3's allow-list) of the stored HTML.
    safe = Markup(nh3.clean(proposal.get("html") or ""))
    return render(
        request, "sales/proposal_view.html", principal=principal, proposal=proposal, deal=deal, html=safe
    )


@get("/proposals/{proposal_id:int}/pdf", include_in_schema=False)
async def proposal_pdf(request: Request[Any, Any, Any], proposal_id: int) -> Response[Any]:
    """The proposal as a PDF download (the API's renderer)."""
    from urllib.parse import quote

    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        filename, content = await proposals.proposal_pdf(principal, proposal_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


# --------------------------------------------------------------------------- kanban


async def _kanban_view(
    request: Request[Any, Any, Any],
    principal: Any,
    pipeline: str,
    scope: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response[Any]:
    try:
        definition = await services.pipeline(pipeline)
    except DomainError as exc:
        return error_page(request, principal, exc)
    conditions: list[Any] = [Deal.pipeline == pipeline, Deal.status == "open"]
    if scope == "mine":
        conditions.append(Deal.owner_id == principal.user_id)
    try:
        page = await service.list_page(services.DEAL, principal, conditions, order="-id", limit=500)
    except DomainError as exc:
        return error_page(request, principal, exc)
    now = clock.now()
    users, parties = await web._names(
        {d["owner_id"] for d in page.items if d["owner_id"]}, {d["party_id"] for d in page.items}
    )
    stages = [s for s in definition["stages"] if not s.get("final")]
    names = {s["key"]: s["name"] for s in definition["stages"]}
    columns: list[dict[str, Any]] = []
    for s in stages:
        norm = services.norm_seconds(s)
        cards = []
        for d in page.items:
            if d["stage"] != s["key"]:
                continue
            entered = aware(d["stage_entered_at"]) if d["stage_entered_at"] else None
            due = aware(d["stage_due_at"]) if d["stage_due_at"] else None
            targets = [t["to"] for t in s.get("transitions", []) if t["to"] != "lost"]
            cards.append(
                {
                    **d,
                    "party": parties.get(d["party_id"], ""),
                    "owner": users.get(d["owner_id"], ""),
                    "days": (now - entered).total_seconds() / 86400 if entered else None,
                    "stuck": due is not None and due < now,
                    "targets": [(t, names.get(t, t) if t != "won" else _("Won")) for t in targets],
                }
            )
        columns.append(
            {
                "key": s["key"],
                "name": s["name"],
                "probability": s.get("probability", 0),
                "norm_days": norm / 86400 if norm else None,
                "cards": cards,
                "totals": _totals(cards),
            }
        )
    return render(
        request,
        "sales/kanban.html",
        status=status,
        principal=principal,
        pipelines=await services.list_pipelines(),
        pipeline=pipeline,
        columns=columns,
        scope=scope,
        scopes=web.SCOPES,
        error=error,
        can_write=principal.can("sales.deal.write"),
    )


def _totals(cards: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    sums: dict[str, Any] = {}
    for c in cards:
        sums[c["currency"]] = sums.get(c["currency"], 0) + services.money(c["amount"])
    return sorted(sums.items())


@get("/kanban", include_in_schema=False)
async def kanban_page(
    request: Request[Any, Any, Any],
    pipeline: str = services.DEFAULT_PIPELINE,
    who: Annotated[str, QueryParameter(name="scope")] = "all",
) -> Response[Any]:
    """Open deals of a pipeline as cards in stage columns: amount, days in the stage against
    its norm, stuck deals marked in words; move by drag and drop or the card's own form."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _kanban_view(request, principal, pipeline, who if who in web.SCOPES else "all")


@post("/kanban/move", include_in_schema=False, status_code=303)
async def kanban_move(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """A card's move (the drop and the fallback button post the same form): the API's
    ``MoveIn`` and ``services.move_deal``; a refusal shows the board again with the reason."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    pipeline = data.get("pipeline") or services.DEFAULT_PIPELINE
    scope = data.get("scope") if data.get("scope") in web.SCOPES else "all"
    deal_id = data.get("deal_id", "")
    if not deal_id.isdigit():
        return await _kanban_view(
            request, principal, pipeline, scope, error=_("Choose a deal to move."), status=422
        )
    title = ""
    try:
        deal = await services.get_deal(principal, int(deal_id))
        title = deal["title"]
        definition = await services.pipeline(deal["pipeline"])
        body = decode_form(MoveIn, {"to": data.get("to", "")})
        await _check_target(deal, definition, body.to)
        try:
            await services.move_deal(principal, deal["id"], to=body.to, comment=body.comment)
        except DomainError as exc:
            raise stage_refusal(exc, definition, deal["stage"]) from exc
    except DomainError as exc:
        if exc.status == 404:
            return error_page(request, principal, exc)
        reason = refusal(exc) if exc.errors else i18n.translate_message(exc.detail)
        message = _("“%(deal)s” was not moved: %(reason)s", deal=title, reason=reason) if title else reason
        return await _kanban_view(request, principal, pipeline, scope, error=message, status=exc.status)
    return Redirect(f"/sales/kanban?pipeline={pipeline}&scope={scope}", status_code=303)


async def _check_target(deal: dict[str, Any], definition: dict[str, Any], to: str | None) -> None:
    """Refuse in words a move the pipeline does not allow from the deal's stage."""
    names = {s["key"]: s["name"] for s in definition["stages"]}
    stage = templates.stage_map(definition).get(deal["stage"], {})
    allowed = [t["to"] for t in stage.get("transitions", []) if t["to"] != "lost"]
    if to == "lost":
        message = _("A lost deal needs a reason: close it on the deal's page.")
        raise ValidationFailed(message, [FieldError("to", message)])
    if to is not None and to not in allowed:
        message = _(
            "from the stage “%(stage)s” a deal goes only to: %(stages)s",
            stage=names.get(deal["stage"], deal["stage"]),
            stages=", ".join(f"“{names.get(t, t)}”" for t in allowed),
        )
        raise ValidationFailed(message, [FieldError("to", message)])


KANBAN_JS = Path(__file__).parent / "static" / "kanban.js"


@get("/static/kanban.js", include_in_schema=False)
async def kanban_script() -> Response[bytes]:
    """The kanban's drag and drop (a static file: the pages allow no inline script)."""
    return Response(
        KANBAN_JS.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


HANDLERS = [
    new_deal_page,
    new_deal_submit,
    checklist_submit,
    proposal_submit,
    proposal_page,
    proposal_pdf,
    kanban_page,
    kanban_move,
    kanban_script,
]
