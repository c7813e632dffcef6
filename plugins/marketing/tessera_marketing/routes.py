"""HTTP routes of the marketing plugin, mounted by the kernel under ``/api/marketing/``.

Thin: each handler checks the body shape (msgspec), then calls a service function. No
``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get, post, put, route
from litestar.enums import HttpMethod
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from msgspec import Meta, Struct
from tessera import audit
from tessera.api.crud import entity_router
from tessera.entities.dto import Id, partial
from tessera.entities.parties import PartyOut
from tessera.errors import NotFound, ValidationFailed
from tessera.permissions import Principal

from tessera_marketing import classes, forms, mailings, reports, services
from tessera_marketing.tables import Campaign, CampaignCost, Lead, Mailing, Segment, WebForm

IdQ = Annotated[int | None, Parameter(ge=1, le=2**31 - 1)]
Money = Annotated[Decimal, Meta(examples=["1500.00"])]
Channel = Literal[
    "email", "web", "exhibition", "event", "ads", "social", "phone", "print", "referral", "other"
]
Rules = Annotated[
    dict[str, Any],
    Meta(examples=[{"all": [{"field": "status", "op": "eq", "value": "current"}]}]),
]


# --------------------------------------------------------------------------- segments


class SegmentIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Silent key clients"])]
    description: Annotated[str, Meta(max_length=5000)] = ""
    kind: Literal["dynamic", "static"] = "dynamic"
    rules: Rules = msgspec.field(default_factory=lambda: {"all": []})


SegmentPatch = partial(SegmentIn, "SegmentPatch")


class SegmentOut(Struct, kw_only=True):
    id: int
    name: str
    description: str
    kind: str
    rules: dict[str, Any]
    frozen_at: dt.datetime | None
    owner_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class RulesIn(Struct, kw_only=True, forbid_unknown_fields=True):
    rules: Rules


class CountOut(Struct, kw_only=True):
    count: int


class MembersPage(Struct, kw_only=True):
    items: list[PartyOut]
    next_cursor: str | None


def segment_filters(
    kind: Literal["dynamic", "static"] | None = None,
    q: Annotated[str | None, Parameter(max_length=200, description="Part of the name")] = None,
) -> list[Any]:
    out: list[Any] = []
    if kind:
        out.append(Segment.kind == kind)
    if q:
        out.append(Segment.name.ilike(f"%{q.replace('%', '').replace('_', '')}%"))
    return out


@post("/preview", operation_id="preview_segment_count", status_code=200)
async def preview_count(principal: Principal, data: RulesIn) -> CountOut:
    """The live count of the segment editor: how many parties you may read match ``rules``
    (nothing is saved). A rule on an unknown field is a 422 naming it."""
    audit.unchanged()  # a POST only because rules are a JSON document: it writes nothing
    return CountOut(count=await services.count_rules(principal, data.rules))


@get("/{record_id:int}/members/count", operation_id="count_segment_members")
async def members_count(principal: Principal, record_id: int) -> CountOut:
    """How many of the segment's parties you may read (a dynamic segment is evaluated now)."""
    return CountOut(count=await services.count_segment(principal, record_id))


@get("/{record_id:int}/members", operation_id="list_segment_members")
async def list_members(
    principal: Principal,
    record_id: int,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Parameter(max_length=500)] = None,
) -> MembersPage:
    """The segment's parties you may read, by id, with keyset paging."""
    page = await services.members(principal, record_id, cursor, limit)
    return MembersPage(
        items=[msgspec.convert(r, PartyOut, strict=False) for r in page.items], next_cursor=page.next_cursor
    )


@post("/{record_id:int}/freeze", operation_id="freeze_segment", status_code=200)
async def freeze(principal: Principal, record_id: int) -> SegmentOut:
    """Store a static segment's members again from its rules (the parties you read now)."""
    row = await services.refreeze(principal, record_id)
    return msgspec.convert(row, SegmentOut, strict=False)


segments_router = entity_router(
    spec=services.SEGMENT,
    path="/segments",
    tag="marketing",
    out=SegmentOut,
    create_body=SegmentIn,
    patch_body=SegmentPatch,
    filters=segment_filters,
    extra_handlers=[preview_count, members_count, list_members, freeze],
    name="segment",
)


# --------------------------------------------------------------------------- campaigns


class CampaignIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Spring expo 2026"])]
    channel: Channel = "other"
    status: Literal["planned", "active", "closed"] = "planned"
    starts_on: dt.date
    ends_on: dt.date | None = None
    budget: Money = Decimal(0)
    segment_id: Id | None = None
    expected_responses: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0
    expected_leads: Annotated[int, Meta(ge=0, le=2**31 - 1)] = 0
    expected_revenue: Money = Decimal(0)
    description: Annotated[str, Meta(max_length=20000)] = ""


CampaignPatch = partial(CampaignIn, "CampaignPatch")


class CampaignOut(Struct, kw_only=True):
    id: int
    name: str
    channel: str
    status: str
    starts_on: dt.date
    ends_on: dt.date | None
    budget: Decimal
    segment_id: int | None
    expected_responses: int
    expected_leads: int
    expected_revenue: Decimal
    description: str
    owner_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def campaign_filters(
    channel: Channel | None = None,
    status: Literal["planned", "active", "closed"] | None = None,
) -> list[Any]:
    out: list[Any] = []
    if channel:
        out.append(Campaign.channel == channel)
    if status:
        out.append(Campaign.status == status)
    return out


class CampaignFigures(Struct, kw_only=True):
    campaign_id: int
    name: str
    channel: str
    status: str
    budget: Decimal
    expected_leads: int
    expected_revenue: Decimal
    responses: int
    leads: int
    customers: int
    conversion: float | None
    revenue: Decimal
    cost: Decimal
    cost_per_lead: Decimal | None
    roi: float | None


class ChannelFigures(Struct, kw_only=True):
    channel: str
    campaigns: int
    responses: int
    leads: int
    customers: int
    conversion: float | None
    revenue: Decimal
    cost: Decimal
    cost_per_lead: Decimal | None
    roi: float | None


@get("/{record_id:int}/return", operation_id="campaign_return")
async def campaign_return(principal: Principal, record_id: int) -> CampaignFigures:
    """The campaign's return (first-touch attribution, docs/marketing.md): responses, leads,
    conversion, revenue, cost, cost per lead, ROI; over the parties you may read."""
    await services.require_campaign(principal, record_id)
    rows = await reports.campaign_figures(principal, [record_id])
    return msgspec.convert(rows[0], CampaignFigures, strict=False)


campaigns_router = entity_router(
    spec=services.CAMPAIGN,
    path="/campaigns",
    tag="marketing",
    out=CampaignOut,
    create_body=CampaignIn,
    patch_body=CampaignPatch,
    filters=campaign_filters,
    extra_handlers=[campaign_return],
    name="campaign",
)


class CostIn(Struct, kw_only=True, forbid_unknown_fields=True):
    campaign_id: Id
    spent_on: dt.date
    amount: Money
    description: Annotated[str, Meta(max_length=300)] = ""


CostPatch = partial(CostIn, "CostPatch")


class CostOut(Struct, kw_only=True):
    id: int
    campaign_id: int
    spent_on: dt.date
    amount: Decimal
    description: str
    created_by: int | None
    created_at: dt.datetime


def cost_filters(campaign_id: IdQ = None) -> list[Any]:
    return [] if campaign_id is None else [CampaignCost.campaign_id == campaign_id]


costs_router = entity_router(
    spec=services.COST,
    path="/campaign-costs",
    tag="marketing",
    out=CostOut,
    create_body=CostIn,
    patch_body=CostPatch,
    filters=cost_filters,
    name="campaign_cost",
)


# --------------------------------------------------------------------------- leads


LeadStatus = Literal["new", "contacted", "qualified", "disqualified"]


class LeadIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    campaign_id: Id | None = None
    assignee_id: Id | None = None
    status: LeadStatus = "new"
    note: Annotated[str, Meta(max_length=5000)] = ""
    received_at: dt.datetime | None = None


class LeadPatchIn(Struct, kw_only=True, forbid_unknown_fields=True):
    campaign_id: Id | None = None
    assignee_id: Id | None = None
    status: LeadStatus = "new"
    note: Annotated[str, Meta(max_length=5000)] = ""


LeadPatch = partial(LeadPatchIn, "LeadPatch")


class LeadOut(Struct, kw_only=True):
    id: int
    party_id: int
    campaign_id: int | None
    source: str
    form_id: int | None
    status: str
    deal_id: int | None
    assignee_id: int | None
    team_id: int | None
    payload: dict[str, Any]
    note: str
    received_at: dt.datetime
    created_by: int | None


def lead_filters(
    campaign_id: IdQ = None,
    party_id: IdQ = None,
    assignee_id: IdQ = None,
    form_id: IdQ = None,
    team_id: IdQ = None,
    status: LeadStatus | None = None,
) -> list[Any]:
    out: list[Any] = []
    if form_id is not None:
        out.append(Lead.form_id == form_id)
    if team_id is not None:
        out.append(Lead.team_id == team_id)
    if status:
        out.append(Lead.status == status)
    if campaign_id is not None:
        out.append(Lead.campaign_id == campaign_id)
    if party_id is not None:
        out.append(Lead.party_id == party_id)
    if assignee_id is not None:
        out.append(Lead.assignee_id == assignee_id)
    return out


leads_router = entity_router(
    spec=services.LEAD,
    path="/leads",
    tag="marketing",
    out=LeadOut,
    create_body=LeadIn,
    patch_body=LeadPatch,
    filters=lead_filters,
    name="lead",
)


# --------------------------------------------------------------------------- web forms


Mode = Literal["user", "round_robin", "least_loaded", "territory", "team_list"]


class Distribution(Struct, kw_only=True, forbid_unknown_fields=True):
    mode: Mode = "round_robin"
    user_ids: list[Id] = msgspec.field(default_factory=list)
    team_id: Id | None = None
    field: Annotated[str, Meta(max_length=64)] = ""
    territories: dict[str, Id] = msgspec.field(default_factory=dict)


class WebFormIn(Struct, kw_only=True, forbid_unknown_fields=True):
    key: Annotated[str, Meta(min_length=2, max_length=64, examples=["contact-us"])]
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Contact us"])]
    campaign_id: Id | None = None
    source: Annotated[str, Meta(max_length=50)] = "web"
    fields: Annotated[
        dict[str, str],
        Meta(examples=[{"name": "name", "email": "email", "phone": "phone", "message": "note"}]),
    ] = msgspec.field(default_factory=dict)
    #: Form fields a submission must fill (a missing one is a 422 naming it).
    required: Annotated[
        list[Annotated[str, Meta(max_length=64)]], Meta(max_length=50, examples=[["email"]])
    ] = msgspec.field(default_factory=list)
    #: The label a visitor reads beside each field in the embed snippet (default: its name).
    labels: Annotated[
        dict[str, Annotated[str, Meta(max_length=200)]],
        Meta(examples=[{"name": "Your name", "email": "E-mail"}]),
    ] = msgspec.field(default_factory=dict)
    allowed_origins: list[Annotated[str, Meta(max_length=300)]] = msgspec.field(default_factory=list)
    honeypot: Annotated[str, Meta(min_length=1, max_length=64)] = "website_url"
    per_ip_per_hour: Annotated[int, Meta(ge=1, le=100000)] = 5
    per_form_per_hour: Annotated[int, Meta(ge=1, le=1000000)] = 500
    distribution: Distribution = msgspec.field(default_factory=Distribution)
    active: bool = True


WebFormPatch = partial(WebFormIn, "WebFormPatch")


class WebFormOut(Struct, kw_only=True):
    id: int
    key: str
    name: str
    campaign_id: int | None
    source: str
    fields: dict[str, str]
    required: list[str]
    labels: dict[str, str]
    allowed_origins: list[str]
    honeypot: str
    per_ip_per_hour: int
    per_form_per_hour: int
    distribution: dict[str, Any]
    active: bool
    owner_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def form_filters(active: bool | None = None) -> list[Any]:
    return [] if active is None else [WebForm.active == active]


forms_router = entity_router(
    spec=forms.FORM,
    path="/web-forms",
    tag="marketing",
    out=WebFormOut,
    create_body=WebFormIn,
    patch_body=WebFormPatch,
    filters=form_filters,
    name="web_form",
)


class Accepted(Struct, kw_only=True):
    accepted: bool


def _error(
    status: int, detail: str, headers: dict[str, str], errors: list[Any] | None = None
) -> Response[Any]:
    return Response(
        {"status": status, "detail": detail, "errors": errors or []}, status_code=status, headers=headers
    )


@post(
    "/forms/{form_key:str}",
    operation_id="submit_web_form",
    status_code=202,
    request_max_body_size=forms.MAX_BODY,
    security=[{}],
    # Posted from the company's own site: the kernel's cross-site refusal lets it through
    # (tessera.web.protection.public_cross_site); CORS is answered for allowed origins only.
    opt={"cross_site": True},
    responses={
        429: ResponseSpec(
            data_container=dict, description="Too many submissions from this address or to this form"
        ),
        413: ResponseSpec(data_container=dict, description="The submission is too large"),
    },
)
async def submit_form(
    request: Request[Any, Any, Any], form_key: Annotated[str, Parameter(max_length=64)]
) -> Response[Any]:
    """A lead form posted from the company's site (no sign-in; JSON or an HTML form). Creates or
    matches the party by e-mail or phone, records the lead and hands it to a manager by the
    form's rule. A filled honeypot field is answered 202 and stores nothing."""
    form = None
    try:
        form = await forms.active_form(form_key)
    except NotFound:
        pass
    headers = forms.cors_headers(form, request.headers.get("origin"))
    if form is None:
        audit.unchanged()
        return _error(404, "No such form", headers)
    raw = await request.body()
    if len(raw) > forms.MAX_BODY:
        audit.unchanged()
        return _error(413, "The submission is too large", headers)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            data = msgspec.json.decode(raw) if raw else {}
        else:
            from urllib.parse import parse_qsl

            data = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except (msgspec.DecodeError, UnicodeDecodeError):
        audit.unchanged()
        return _error(400, "The body is neither JSON nor a form", headers)
    if not isinstance(data, dict):
        audit.unchanged()
        return _error(422, "The body must be an object", headers, [{"field": "body", "message": "an object"}])
    client = request.client.host if request.client else ""
    try:
        lead = await forms.submit(form_key, data, client)
    except forms.RateLimited:
        audit.unchanged()
        return _error(429, "Too many submissions; try again later", {**headers, "Retry-After": "3600"})
    except ValidationFailed as exc:
        audit.unchanged()
        return _error(422, exc.detail, headers, [e.as_dict() for e in exc.errors])
    if lead is None:
        audit.unchanged()
    return Response({"accepted": True}, status_code=202, headers=headers)


@route("/forms/{form_key:str}", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
async def form_preflight(request: Request[Any, Any, Any], form_key: str) -> Response[None]:
    """CORS preflight: allowed for the form's configured site origins only."""
    form = None
    try:
        form = await forms.active_form(form_key)
    except NotFound:
        pass
    return Response(None, status_code=204, headers=forms.cors_headers(form, request.headers.get("origin")))


# --------------------------------------------------------------------------- mailings


class MailingIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Spring prices"])]
    subject: Annotated[str, Meta(min_length=1, max_length=300, examples=["{{ party.name }}: spring prices"])]
    html: Annotated[str, Meta(max_length=200000)] = ""
    text: Annotated[str, Meta(max_length=200000)] = ""
    segment_id: Id | None = None
    campaign_id: Id | None = None
    promotional: bool = True
    per_minute: Annotated[int, Meta(ge=1, le=1000000)] = 600
    send_before: dt.datetime | None = None


MailingPatch = partial(MailingIn, "MailingPatch")


class MailingOut(Struct, kw_only=True):
    id: int
    name: str
    subject: str
    html: str
    text: str
    segment_id: int | None
    campaign_id: int | None
    promotional: bool
    status: str
    per_minute: int
    send_before: dt.datetime | None
    created_by: int | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    version: int


class MailingProgress(Struct, kw_only=True):
    mailing_id: int
    status: str
    queued: int
    sending: int
    sent: int
    failed: int
    late: int
    skipped: int
    #: hard bounces and complaints reported after sending (bounce processing)
    bounced: int = 0


class MailingPreview(Struct, kw_only=True):
    subject: str
    html: str
    text: str


def mailing_filters(
    status: Literal["draft", "sending", "sent", "expired", "cancelled"] | None = None,
) -> list[Any]:
    return [] if status is None else [Mailing.status == status]


@post("/{record_id:int}/send", operation_id="send_mailing", status_code=200)
async def send_mailing(principal: Principal, record_id: int) -> MailingProgress:
    """Send the draft to its segment (the parties you read that have an e-mail, less the
    unsubscribed and, for a promotional mailing, the suppressed): background job, progress below."""
    await mailings.start(principal, record_id)
    return msgspec.convert(await mailings.progress(principal, record_id), MailingProgress, strict=False)


@get("/{record_id:int}/progress", operation_id="mailing_progress")
async def mailing_progress(principal: Principal, record_id: int) -> MailingProgress:
    """Recipients per state: queued, sending, sent, failed, late (after the send window), skipped."""
    return msgspec.convert(await mailings.progress(principal, record_id), MailingProgress, strict=False)


@get("/{record_id:int}/preview", operation_id="preview_mailing")
async def preview_mailing(
    principal: Principal, record_id: int, party_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)]
) -> MailingPreview:
    """The message as one party (that you read) would receive it: subject, sanitised HTML, text."""
    return msgspec.convert(
        await mailings.preview(principal, record_id, party_id), MailingPreview, strict=False
    )


mailings_router = entity_router(
    spec=mailings.MAILING,
    path="/mailings",
    tag="marketing",
    out=MailingOut,
    create_body=MailingIn,
    patch_body=MailingPatch,
    filters=mailing_filters,
    extra_handlers=[send_mailing, mailing_progress, preview_mailing],
    name="mailing",
)


@post(
    "/unsubscribe",
    operation_id="unsubscribe",
    status_code=200,
    security=[{}],
    opt={"cross_site": True},
)
async def unsubscribe_route(
    r: Annotated[int, Parameter(ge=1, le=2**31 - 1)], t: Annotated[str, Parameter(max_length=100)]
) -> dict[str, bool]:
    """One-click unsubscribe (RFC 8058; the signed link of a mailing): that address receives no
    later mailing. No sign-in: the signature is the credential."""
    if not await mailings.unsubscribe(r, t):
        raise NotFound("No such link")
    return {"unsubscribed": True}


# --------------------------------------------------------------------------- ABC/XYZ, reports


class ClassSettings(Struct, kw_only=True):
    a: float
    b: float
    x: float
    y: float
    sources: list[str]


class ClassSettingsIn(Struct, kw_only=True, forbid_unknown_fields=True):
    a: Annotated[float, Meta(gt=0, lt=100, examples=[80])] = 80
    b: Annotated[float, Meta(gt=0, lt=100, examples=[15])] = 15
    x: Annotated[float, Meta(gt=0, lt=100, examples=[10])] = 10
    y: Annotated[float, Meta(gt=0, lt=100, examples=[25])] = 25
    sources: list[Annotated[str, Meta(max_length=100)]] = msgspec.field(default_factory=list)


class MatrixCell(Struct, kw_only=True):
    abc_class: str
    xyz_class: str
    clients: int
    revenue: Decimal


class RecomputeOut(Struct, kw_only=True):
    classified: int
    changed: int


@get("/classes/settings", operation_id="get_class_settings")
async def get_class_settings(principal: Principal) -> ClassSettings:
    """The ABC thresholds (a, b: cumulative revenue share in %, C takes the rest), the XYZ
    thresholds (x, y: coefficient of variation in %) and the revenue sources used (empty: all)."""
    principal.require("marketing.segment.read")
    return msgspec.convert(await classes.settings(), ClassSettings, strict=False)


@put("/classes/settings", operation_id="put_class_settings")
async def put_class_settings(principal: Principal, data: ClassSettingsIn) -> ClassSettings:
    """Change the ABC/XYZ thresholds (marketing.settings.manage); the next recomputation uses them."""
    values = await classes.update_settings(principal, msgspec.structs.asdict(data))
    return msgspec.convert(values, ClassSettings, strict=False)


@post("/classes/recompute", operation_id="recompute_classes", status_code=200)
async def recompute(principal: Principal) -> RecomputeOut:
    """Classify every client now (the scheduled job does it nightly)."""
    principal.require("marketing.settings.manage")
    return msgspec.convert(await classes.recompute(), RecomputeOut, strict=False)


@get("/classes/matrix", operation_id="class_matrix")
async def class_matrix(principal: Principal) -> list[MatrixCell]:
    """Clients and revenue per ABC x XYZ cell, over the clients you may read."""
    return [msgspec.convert(r, MatrixCell, strict=False) for r in await classes.matrix(principal)]


@get("/reports/return", operation_id="marketing_return_report")
async def return_report(principal: Principal) -> list[CampaignFigures]:
    """The return of every campaign (first-touch attribution), over the parties you may read."""
    return [
        msgspec.convert(r, CampaignFigures, strict=False) for r in await reports.campaign_figures(principal)
    ]


@get("/reports/return/channels", operation_id="marketing_channel_report")
async def channel_report(principal: Principal) -> list[ChannelFigures]:
    """The return per channel (campaigns of one channel summed)."""
    return [
        msgspec.convert(r, ChannelFigures, strict=False) for r in await reports.channel_figures(principal)
    ]


def routers() -> list[Any]:
    return [
        segments_router,
        campaigns_router,
        costs_router,
        leads_router,
        forms_router,
        mailings_router,
        Router(path="/", route_handlers=[submit_form, form_preflight, unsubscribe_route], tags=["marketing"]),
        Router(
            path="/",
            route_handlers=[
                get_class_settings,
                put_class_settings,
                recompute,
                class_matrix,
                return_report,
                channel_report,
            ],
            tags=["marketing"],
        ),
    ]
