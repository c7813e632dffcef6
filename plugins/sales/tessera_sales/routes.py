"""HTTP routes of the sales plugin, mounted by the kernel under ``/api/sales/``.

Thin: each handler checks the body shape (msgspec), then calls a service function. No
``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, Router, delete, get, patch, post, put
from litestar.params import Parameter
from msgspec import Meta, Struct
from tessera import clock, db
from tessera.api.crud import entity_router
from tessera.entities import service
from tessera.entities.dto import Id, partial, set_fields
from tessera.errors import NotFound
from tessera.permissions import Principal

from tessera_sales import cadence, catalogue, documents, proposals, rates, reports, services, sources
from tessera_sales.tables import CadenceRule, LossReason, Product, ProposalTemplate

#: msgspec cannot bound a Decimal; the services refuse negative amounts (422 naming the field).
Money = Decimal
#: Examples let the plugin contract call the write routes with valid bodies.
Currency = Annotated[str, Meta(min_length=3, max_length=3, examples=["EUR"])]
IdQ = Annotated[int | None, Parameter(ge=1, le=2**31 - 1)]


# --------------------------------------------------------------------------- deals


class LineIn(Struct, kw_only=True, forbid_unknown_fields=True):
    product_id: Id | None = None
    name: Annotated[str, Meta(max_length=300)] = ""
    quantity: Decimal = Decimal(1)
    unit_price: Money | None = None
    discount_pct: Decimal | None = None


class LineOut(Struct, kw_only=True):
    product_id: int | None
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount_pct: Decimal
    amount: Decimal


class DealIn(Struct, kw_only=True, forbid_unknown_fields=True):
    title: Annotated[str, Meta(min_length=1, max_length=300)]
    party_id: Id
    contact_id: Id | None = None
    owner_id: Id | None = None
    amount: Money = Decimal(0)
    currency: Currency = "RUB"
    expected_close: dt.date | None = None
    source: str = ""
    campaign_id: Id | None = None
    pipeline: str = "sales.b2b"
    lines: list[LineIn] = msgspec.field(default_factory=list)
    custom: dict[str, Any] = msgspec.field(default_factory=dict)


DealPatch = partial(DealIn, "DealPatch")


class DealOut(Struct, kw_only=True):
    id: int
    title: str
    party_id: int
    contact_id: int | None
    owner_id: int | None
    team_id: int | None
    amount: Decimal
    currency: str
    expected_close: dt.date | None
    source: str
    campaign_id: int | None
    pipeline: str
    instance_id: int | None
    stage: str
    stage_entered_at: dt.datetime | None
    stage_due_at: dt.datetime | None
    probability: int
    status: str
    loss_reason_id: int | None
    loss_comment: str
    closed_at: dt.datetime | None
    lines: list[LineOut]
    custom: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


async def _decorate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = await services.deal_lines([r["id"] for r in rows])
    for r in rows:
        r["lines"] = lines[r["id"]]
        r["amount"] = services.money(r["amount"])
    return rows


def deal_filters(
    status: Literal["open", "won", "lost"] | None = None,
    stage: Annotated[str | None, Parameter(max_length=100)] = None,
    pipeline: Annotated[str | None, Parameter(max_length=100)] = None,
    owner_id: IdQ = None,
    team_id: IdQ = None,
    party_id: IdQ = None,
    campaign_id: IdQ = None,
    q: Annotated[str | None, Parameter(max_length=200, description="Part of the title")] = None,
    overdue: Annotated[bool | None, Parameter(description="Only open deals past their stage's norm")] = None,
    close_from: Annotated[dt.date | None, Parameter(description="Expected to close on or after")] = None,
    close_before: Annotated[dt.date | None, Parameter(description="Expected to close before")] = None,
) -> list[Any]:
    from tessera_sales.tables import Deal

    out: list[Any] = []
    if close_from is not None:
        out.append(Deal.expected_close >= close_from)
    if close_before is not None:
        out.append(Deal.expected_close < close_before)
    if overdue:
        out.append(Deal.status == "open")
        out.append(Deal.stage_due_at < clock.now())
    if status:
        out.append(Deal.status == status)
    if stage:
        out.append(Deal.stage == stage)
    if pipeline:
        out.append(Deal.pipeline == pipeline)
    if owner_id is not None:
        out.append(Deal.owner_id == owner_id)
    if team_id is not None:
        out.append(Deal.team_id == team_id)
    if party_id is not None:
        out.append(Deal.party_id == party_id)
    if campaign_id is not None:
        out.append(Deal.campaign_id == campaign_id)
    if q:
        pattern = f"%{q.replace('%', '').replace('_', '')}%"
        out.append(Deal.title.ilike(pattern) if db.is_postgres() else Deal.title.like(pattern))
    return out


class MoveIn(Struct, kw_only=True, forbid_unknown_fields=True):
    to: str | None = None
    results: dict[str, Any] = msgspec.field(default_factory=dict)
    comment: str = ""


class CloseIn(Struct, kw_only=True, forbid_unknown_fields=True):
    outcome: Literal["won", "lost"]
    loss_reason_id: Id | None = None
    comment: Annotated[str, Meta(max_length=5000)] = ""


class TickIn(Struct, kw_only=True, forbid_unknown_fields=True):
    item: str
    done: bool = True


@post("/{record_id:int}/move", operation_id="move_deal", status_code=200)
async def move_deal(principal: Principal, record_id: int, data: MoveIn) -> DealOut:
    """Complete the deal's stage and enter the next (or ``to``); 409 names missing actions."""
    row = await services.move_deal(
        principal, record_id, to=data.to, results=data.results, comment=data.comment
    )
    return msgspec.convert((await _decorate([row]))[0], DealOut, strict=False)


@post("/{record_id:int}/close", operation_id="close_deal", status_code=200)
async def close_deal(principal: Principal, record_id: int, data: CloseIn) -> DealOut:
    """Win the deal, or lose it with a reason from the managed list and a free comment."""
    row = await services.close_deal(
        principal, record_id, data.outcome, loss_reason_id=data.loss_reason_id, comment=data.comment
    )
    return msgspec.convert((await _decorate([row]))[0], DealOut, strict=False)


@post("/{record_id:int}/checklist", operation_id="tick_deal_checklist", status_code=200)
async def tick_checklist(principal: Principal, record_id: int, data: TickIn) -> DealOut:
    """Tick (or untick) a checklist requirement of the deal's current stage."""
    row = await services.tick(principal, record_id, data.item, data.done)
    return msgspec.convert((await _decorate([row]))[0], DealOut, strict=False)


@get("/{record_id:int}/history", operation_id="deal_stage_history")
async def deal_history(principal: Principal, record_id: int) -> list[dict[str, Any]]:
    """The deal's stage stays: entered, left, time spent against the stage norm."""
    return await services.stage_history(principal, record_id)


@post("/{record_id:int}/proposals", operation_id="create_proposal", status_code=201)
async def create_proposal(principal: Principal, record_id: int, template_id: IdQ = None) -> dict[str, Any]:
    """Generate the next version of the deal's commercial offer from its lines."""
    return await proposals.create_proposal(principal, record_id, template_id)


@get("/{record_id:int}/proposals", operation_id="list_deal_proposals")
async def list_proposals(principal: Principal, record_id: int) -> list[dict[str, Any]]:
    """The deal's proposals, oldest version first."""
    return await proposals.list_proposals(principal, record_id)


class DocumentIn(Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["order", "invoice", "shipment", "act"]
    amount: Money | None = None
    due_on: dt.date | None = None
    comment: str = ""


@post("/{record_id:int}/documents", operation_id="create_sales_document", status_code=201)
async def create_document(principal: Principal, record_id: int, data: DocumentIn) -> dict[str, Any]:
    """Issue an order, invoice, shipment or act for the deal (invoices become events)."""
    return await documents.create_document(
        principal, record_id, data.kind, amount=data.amount, due_on=data.due_on, comment=data.comment
    )


@get("/{record_id:int}/documents", operation_id="list_sales_documents")
async def list_documents(principal: Principal, record_id: int) -> list[dict[str, Any]]:
    """Orders, invoices, shipments and acts of the deal."""
    return await documents.list_documents(principal, record_id)


deals_router = entity_router(
    spec=services.DEAL,
    path="/deals",
    tag="sales",
    out=DealOut,
    create_body=DealIn,
    patch_body=DealPatch,
    filters=deal_filters,
    decorate=_decorate,
    extra_handlers=[
        move_deal,
        close_deal,
        tick_checklist,
        deal_history,
        create_proposal,
        list_proposals,
        create_document,
        list_documents,
    ],
    name="deal",
)


# --------------------------------------------------------------------------- proposals


@get("/proposals/{proposal_id:int}", operation_id="get_proposal")
async def get_proposal(principal: Principal, proposal_id: int) -> dict[str, Any]:
    """One proposal with its HTML and the snapshot it was made from."""
    return await proposals.get_proposal(principal, proposal_id)


@get("/proposals/{proposal_id:int}/html", operation_id="proposal_html", media_type="text/html")
async def proposal_html(principal: Principal, proposal_id: int) -> str:
    """The proposal as HTML."""
    return str((await proposals.get_proposal(principal, proposal_id))["html"])


@get("/proposals/{proposal_id:int}/pdf", operation_id="proposal_pdf", media_type="application/pdf")
async def proposal_pdf(principal: Principal, proposal_id: int) -> Response[bytes]:
    """The proposal as a PDF file."""
    filename, content = await proposals.proposal_pdf(principal, proposal_id)
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(filename)}"},
    )


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)


class ProposalTemplateIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    body: Annotated[str, Meta(min_length=1, max_length=200_000)]
    is_default: bool = True


@get("/proposal-templates", operation_id="list_proposal_templates")
async def list_templates(principal: Principal) -> dict[str, Any]:
    """The company's proposal templates and the built-in one they replace."""
    principal.require("sales.deal.read")
    rows = await ProposalTemplate.select().order_by(ProposalTemplate.id)
    return {"templates": rows, "builtin": proposals.default_template()}


@post("/proposal-templates", operation_id="create_proposal_template", status_code=201)
async def create_template(principal: Principal, data: ProposalTemplateIn) -> dict[str, Any]:
    """Add a Jinja2 HTML template (422 naming the line when it does not compile)."""
    principal.require("sales.settings.manage")
    return await proposals.save_template(data.name, data.body, data.is_default)


@put("/proposal-templates/{template_id:int}", operation_id="update_proposal_template")
async def update_template(principal: Principal, template_id: int, data: ProposalTemplateIn) -> dict[str, Any]:
    """Replace a template's text (proposals already made keep their HTML)."""
    principal.require("sales.settings.manage")
    return await proposals.save_template(data.name, data.body, data.is_default, template_id)


# --------------------------------------------------------------------------- catalogue


@get("/pipelines", operation_id="list_pipelines")
async def list_pipelines(principal: Principal) -> list[dict[str, Any]]:
    """Sales pipelines (workflow templates on deals) with their stages, norms and probabilities."""
    principal.require("sales.deal.read")
    return await services.list_pipelines()


class ReasonIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    active: bool = True
    position: int = 0


@get("/loss-reasons", operation_id="list_loss_reasons")
async def list_loss_reasons(principal: Principal) -> list[dict[str, Any]]:
    """The managed list of loss reasons."""
    principal.require("sales.deal.read")
    await services.ensure_loss_reasons()
    return await LossReason.select().order_by(LossReason.position).order_by(LossReason.id)


@post("/loss-reasons", operation_id="create_loss_reason", status_code=201)
async def create_loss_reason(principal: Principal, data: ReasonIn) -> dict[str, Any]:
    """Add a loss reason."""
    principal.require("sales.settings.manage")
    await services.ensure_loss_reasons()
    return await service.create(catalogue.LOSS_REASON, principal, set_fields(data))


@patch("/loss-reasons/{reason_id:int}", operation_id="update_loss_reason")
async def update_loss_reason(principal: Principal, reason_id: int, data: ReasonIn) -> dict[str, Any]:
    """Rename, reorder or retire a loss reason (retired ones stay on closed deals)."""
    principal.require("sales.settings.manage")
    return await service.update(catalogue.LOSS_REASON, principal, reason_id, set_fields(data))


class ProductIn(Struct, kw_only=True, forbid_unknown_fields=True):
    sku: Annotated[str, Meta(min_length=1, max_length=100)]
    name: Annotated[str, Meta(min_length=1, max_length=300)]
    unit: Annotated[str, Meta(max_length=30)] = "шт"
    description: str = ""
    active: bool = True


@get("/products", operation_id="list_products")
async def list_products(principal: Principal, active: bool | None = None) -> list[dict[str, Any]]:
    """The product catalogue."""
    principal.require("sales.deal.read")
    query = Product.select().order_by(Product.name)
    if active is not None:
        query = query.where(Product.active == active)
    return await query


@post("/products", operation_id="create_product", status_code=201)
async def create_product(principal: Principal, data: ProductIn) -> dict[str, Any]:
    """Add a product (SKU unique)."""
    principal.require("sales.product.manage")
    return await service.create(catalogue.PRODUCT, principal, set_fields(data))


class PriceIn(Struct, kw_only=True, forbid_unknown_fields=True):
    product_id: Id
    price: Money


class PriceListIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    currency: Currency
    valid_from: dt.date
    valid_to: dt.date | None = None
    client_group: Annotated[str, Meta(max_length=100)] = ""
    discount_pct: Decimal = Decimal(0)
    prices: list[PriceIn] = msgspec.field(default_factory=list)


@post("/price-lists", operation_id="create_price_list", status_code=201)
async def create_price_list(principal: Principal, data: PriceListIn) -> dict[str, Any]:
    """A price list per currency and client group, valid between two dates, with a discount."""
    principal.require("sales.product.manage")
    row = await service.create(catalogue.PRICE_LIST, principal, set_fields(data))
    return await services.price_list(row["id"])


@get("/price-lists/{list_id:int}", operation_id="get_price_list")
async def get_price_list(principal: Principal, list_id: int) -> dict[str, Any]:
    """One price list with its prices."""
    principal.require("sales.deal.read")
    return await services.price_list(list_id)


@get("/prices", operation_id="quote_price")
async def quote_price(
    principal: Principal,
    product_id: int,
    currency: str = "RUB",
    party_id: IdQ = None,
    on: dt.date | None = None,
) -> dict[str, Any]:
    """The price that applies to a product for a client (its group) in a currency on a date."""
    principal.require("sales.deal.read")
    group = await services.client_group(party_id)
    quote = await services.price_for(product_id, currency.upper(), group, on or clock.now().date())
    if quote is None:
        raise NotFound(f"no valid {currency} price for product {product_id}")
    return {**quote, "client_group": group}


# --------------------------------------------------------------------------- plans


class PlanIn(Struct, kw_only=True, forbid_unknown_fields=True):
    period_start: dt.date
    period_end: dt.date
    user_id: Id | None = None
    team_id: Id | None = None
    pipeline: str = ""
    currency: Currency = "RUB"
    amount: Money = Decimal(0)
    stage_targets: dict[str, Annotated[int, Meta(ge=0)]] = msgspec.field(default_factory=dict)


@post("/plans", operation_id="create_sales_plan", status_code=201)
async def create_plan(principal: Principal, data: PlanIn) -> dict[str, Any]:
    """A plan for a manager, a team or (neither) the company, for a period."""
    return await reports.create_plan(principal, set_fields(data))


@get("/plans", operation_id="list_sales_plans")
async def list_plans(principal: Principal) -> list[dict[str, Any]]:
    """Plans (those of managers you see, of teams and of the company)."""
    return await reports.visible_plans(principal)


@get("/plans/{plan_id:int}/actual", operation_id="sales_plan_vs_actual")
async def plan_actual(principal: Principal, plan_id: int) -> dict[str, Any]:
    """The plan beside what happened: won amount and deals entering each stage."""
    return await reports.plan_vs_actual(principal, plan_id)


# --------------------------------------------------------------------------- reports


@get("/reports/funnel", operation_id="sales_funnel")
async def funnel(
    principal: Principal,
    date_from: dt.date,
    date_to: dt.date,
    pipeline: str = "sales.b2b",
    group_by: Literal["", "owner", "team"] = "",
    owner_id: IdQ = None,
    team_id: IdQ = None,
) -> dict[str, Any]:
    """Conversion per stage, time in stage vs norm, over-norm and stuck counts, deal totals."""
    return await reports.funnel(
        principal,
        pipeline=pipeline,
        date_from=date_from,
        date_to=date_to,
        group_by=group_by,
        owner_id=owner_id,
        team_id=team_id,
    )


@get("/reports/funnel/deals", operation_id="sales_funnel_deals")
async def funnel_deals(
    principal: Principal,
    stage: str,
    date_from: dt.date,
    date_to: dt.date,
    pipeline: str = "sales.b2b",
    owner_id: IdQ = None,
    team_id: IdQ = None,
    only: Literal["", "stuck", "over_norm"] = "",
) -> list[dict[str, Any]]:
    """Drill-down to the deals behind a funnel cell."""
    return await reports.funnel_deals(
        principal,
        pipeline=pipeline,
        stage=stage,
        date_from=date_from,
        date_to=date_to,
        owner_id=owner_id,
        team_id=team_id,
        only=only,
    )


@get("/reports/stuck", operation_id="sales_stuck_deals")
async def stuck(
    principal: Principal,
    pipeline: str | None = None,
    stage: str | None = None,
    owner_id: IdQ = None,
    team_id: IdQ = None,
) -> dict[str, Any]:
    """Open deals past their stage norm, and the problem stages across the company."""
    return await reports.stuck_deals(
        principal, pipeline=pipeline, stage=stage, owner_id=owner_id, team_id=team_id
    )


@get("/reports/loss-reasons", operation_id="sales_loss_reasons_report")
async def loss_report(
    principal: Principal,
    date_from: dt.date,
    date_to: dt.date,
    group_by: Literal["", "owner", "team"] = "",
    pipeline: str | None = None,
) -> list[dict[str, Any]]:
    """Lost deals by reason (count and amount), optionally per manager or team."""
    return await reports.loss_reasons(
        principal, date_from=date_from, date_to=date_to, group_by=group_by, pipeline=pipeline
    )


@get("/reports/forecast", operation_id="sales_forecast")
async def forecast(
    principal: Principal,
    date_from: dt.date,
    date_to: dt.date,
    pipeline: str = "sales.b2b",
    owner_id: IdQ = None,
    team_id: IdQ = None,
) -> dict[str, Any]:
    """Expected revenue per month: probability-weighted and from historical conversion."""
    return await reports.forecast(
        principal, pipeline=pipeline, date_from=date_from, date_to=date_to, owner_id=owner_id, team_id=team_id
    )


@get("/reports/forecast/accuracy", operation_id="sales_forecast_accuracy")
async def forecast_accuracy(principal: Principal, pipeline: str = "sales.b2b") -> list[dict[str, Any]]:
    """Past months: the forecast made for them against what was won."""
    return await reports.forecast_accuracy(principal, pipeline)


@get("/reports/kpi", operation_id="sales_manager_kpis")
async def kpis(
    principal: Principal, date_from: dt.date, date_to: dt.date, team_id: IdQ = None
) -> list[dict[str, Any]]:
    """Per manager: open deals, new leads, activities, calls, meetings, won sum, lost deals."""
    return await reports.manager_kpis(principal, date_from=date_from, date_to=date_to, team_id=team_id)


# --------------------------------------------------------------------------- cadence


class CadenceRuleIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    every_days: Annotated[int, Meta(ge=1, le=3650)]
    activity_types: list[str] = msgspec.field(default_factory=lambda: ["call", "meeting"])
    party_status: Literal["potential", "current", "former"] = "current"
    category: Annotated[str, Meta(max_length=50)] = ""
    #: Only clients of this ABC class (custom field ``abc_class``, which the marketing plugin
    #: computes); "" = any client.
    client_class: Literal["", "A", "B", "C"] = ""
    active: bool = True


@get("/cadence-rules", operation_id="list_cadence_rules")
async def list_rules(principal: Principal) -> list[dict[str, Any]]:
    """Contact-cadence norms."""
    principal.require("sales.deal.read")
    return await CadenceRule.select().order_by(CadenceRule.id).output(load_json=True)


@post("/cadence-rules", operation_id="create_cadence_rule", status_code=201)
async def create_rule(principal: Principal, data: CadenceRuleIn) -> dict[str, Any]:
    """Add a norm: parties of a status (and category, and ABC class) get one of these contacts
    every N days."""
    principal.require("sales.settings.manage")
    return await service.create(catalogue.CADENCE_RULE, principal, set_fields(data))


@get("/reports/cadence", operation_id="sales_cadence_compliance")
async def cadence_report(principal: Principal, rule_id: IdQ = None) -> list[dict[str, Any]]:
    """Compliance with the contact norms per rule and manager (as of the last job run)."""
    return await cadence.compliance(principal, rule_id)


@get("/reports/cadence/overdue", operation_id="sales_cadence_overdue")
async def cadence_overdue(principal: Principal, rule_id: IdQ = None) -> list[dict[str, Any]]:
    """Clients overdue for a contact."""
    return await cadence.overdue_clients(principal, rule_id)


@get("/reports/contacts", operation_id="sales_contacts_by_type")
async def contacts_report(principal: Principal, date_from: dt.date, date_to: dt.date) -> list[dict[str, Any]]:
    """Done contacts with clients per manager and contact type."""
    return await cadence.contacts_by_type(principal, date_from, date_to)


# --------------------------------------------------------------------------- currencies


class SalesSettingsIn(Struct, kw_only=True, forbid_unknown_fields=True):
    base_currency: Currency


class SalesSettingsOut(Struct, kw_only=True):
    base_currency: str


class RateIn(Struct, kw_only=True, forbid_unknown_fields=True):
    currency: Currency
    valid_from: dt.date
    rate: Annotated[Decimal, Meta(examples=["1.25"])]


class RateOut(Struct, kw_only=True):
    id: int
    base: str
    currency: str
    valid_from: dt.date
    rate: Decimal
    created_by: int | None
    created_at: dt.datetime


@get("/settings", operation_id="get_sales_settings")
async def get_settings(principal: Principal) -> SalesSettingsOut:
    """Company settings of the sales plugin: the base currency reports are converted into."""
    principal.require("sales.deal.read")
    return SalesSettingsOut(**await rates.settings())


@put("/settings", operation_id="update_sales_settings")
async def update_settings(principal: Principal, data: SalesSettingsIn) -> SalesSettingsOut:
    """Change the base currency (rates are kept per base: add the new base's rates)."""
    return SalesSettingsOut(**await rates.update_settings(principal, set_fields(data)))


@get("/rates", operation_id="list_exchange_rates")
async def list_rates(principal: Principal, currency: str | None = None) -> list[RateOut]:
    """Dated exchange rates against the base currency (units of base per unit of currency)."""
    return [RateOut(**r) for r in await rates.list_rates(principal, currency)]


@post("/rates", operation_id="create_exchange_rate", status_code=201)
async def create_rate(principal: Principal, data: RateIn) -> RateOut:
    """Set a currency's rate from a date on (replaces a rate of the same day).
    Needs ``sales.rates.manage`` (or ``sales.settings.manage``)."""
    return RateOut(**await rates.add_rate(principal, set_fields(data)))


@delete("/rates/{rate_id:int}", operation_id="delete_exchange_rate", status_code=204)
async def delete_rate(principal: Principal, rate_id: int) -> None:
    """Remove a rate entered by mistake."""
    await rates.delete_rate(principal, rate_id)


@get("/sources", operation_id="list_deal_sources")
async def list_sources(principal: Principal) -> dict[str, Any]:
    """Deal sources: the built-in ones and the campaigns enabled plugins supply (hook
    ``tessera_sales_deal_sources``)."""
    principal.require("sales.deal.read")
    return {"sources": [s for s in services.SOURCES if s], "campaigns": await sources.campaigns()}


def routers() -> list[Any]:
    return [
        deals_router,
        Router(
            path="/",
            route_handlers=[
                get_proposal,
                proposal_html,
                proposal_pdf,
                list_templates,
                create_template,
                update_template,
                list_pipelines,
                list_loss_reasons,
                create_loss_reason,
                update_loss_reason,
                list_products,
                create_product,
                create_price_list,
                get_price_list,
                quote_price,
                create_plan,
                list_plans,
                plan_actual,
                funnel,
                funnel_deals,
                stuck,
                loss_report,
                forecast,
                forecast_accuracy,
                kpis,
                list_rules,
                create_rule,
                cadence_report,
                cadence_overdue,
                contacts_report,
                get_settings,
                update_settings,
                list_rates,
                create_rate,
                delete_rate,
                list_sources,
            ],
            tags=["sales"],
        ),
    ]
