"""HTTP routes of the receivables plugin, mounted by the kernel under ``/api/receivables/``.

Thin: each handler checks the body shape (msgspec), then calls a service function. No
``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, Router, get, post
from litestar.params import Parameter
from msgspec import Meta, Struct
from tessera import clock
from tessera.api.crud import entity_router
from tessera.entities.dto import Id, partial
from tessera.permissions import Principal

from tessera_receivables import ageing, dunning, imports, services
from tessera_receivables.tables import CollectionCase, Invoice, Payment, Promise

IdQ = Annotated[int | None, Parameter(ge=1, le=2**31 - 1)]
Money = Annotated[Decimal, Meta(examples=["1200.50"])]
Currency = Annotated[str, Meta(min_length=3, max_length=3, examples=["RUB"])]
ExternalId = Annotated[str, Meta(max_length=200)]


# --------------------------------------------------------------------------- invoices


class InvoiceIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    number: Annotated[str, Meta(max_length=60, examples=["СЧ-2026-00017"])] = ""
    issue_date: dt.date
    due_date: dt.date
    currency: Currency = "RUB"
    amount: Money
    external_id: ExternalId = ""
    deal_id: Id | None = None
    notes: Annotated[str, Meta(max_length=5000)] = ""


class InvoicePatchIn(Struct, kw_only=True, forbid_unknown_fields=True):
    number: Annotated[str, Meta(max_length=60)] = ""
    issue_date: dt.date
    due_date: dt.date
    amount: Money
    notes: Annotated[str, Meta(max_length=5000)] = ""


InvoicePatch = partial(InvoicePatchIn, "InvoicePatch")


class InvoiceOut(Struct, kw_only=True):
    id: int
    party_id: int
    number: str
    issue_date: dt.date
    due_date: dt.date
    currency: str
    amount: Decimal
    balance: Decimal
    status: str
    overdue_at: dt.datetime | None
    external_id: str
    source: str
    deal_id: int | None
    notes: str
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def invoice_filters(
    party_id: IdQ = None,
    status: Literal["open", "paid", "cancelled"] | None = None,
    overdue: Annotated[bool | None, Parameter(description="Open and past the due date today")] = None,
    currency: Annotated[str | None, Parameter(min_length=3, max_length=3)] = None,
    external_id: Annotated[str | None, Parameter(max_length=200)] = None,
    source: Literal["api", "import", "sales"] | None = None,
) -> list[Any]:
    out: list[Any] = []
    if party_id is not None:
        out.append(Invoice.party_id == party_id)
    if status:
        out.append(Invoice.status == status)
    if overdue is not None:
        today = clock.now().date()
        if overdue:
            out.extend([Invoice.balance > 0, Invoice.due_date < today])
        else:
            out.append((Invoice.balance <= 0) | (Invoice.due_date >= today))
    if currency:
        out.append(Invoice.currency == currency.upper())
    if external_id:
        out.append(Invoice.external_id == external_id)
    if source:
        out.append(Invoice.source == source)
    return out


class AllocationOut(Struct, kw_only=True):
    id: int
    payment_id: int
    invoice_id: int
    amount: Decimal
    paid_on: dt.date


@get("/{record_id:int}/allocations", operation_id="list_invoice_allocations")
async def invoice_allocations(principal: Principal, record_id: int) -> list[AllocationOut]:
    """The payments and credit notes applied to the invoice."""
    rows = await services.allocations(principal, invoice_id=record_id)
    return [msgspec.convert(r, AllocationOut, strict=False) for r in rows]


async def _invoice_cents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return services.cents(rows, "amount", "balance")


async def _payment_cents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return services.cents(rows, "amount", "unallocated")


invoices_router = entity_router(
    spec=services.INVOICE,
    path="/invoices",
    tag="receivables",
    out=InvoiceOut,
    create_body=InvoiceIn,
    patch_body=InvoicePatch,
    filters=invoice_filters,
    decorate=_invoice_cents,
    extra_handlers=[invoice_allocations],
    name="receivable_invoice",
)


# --------------------------------------------------------------------------- payments


class AllocationIn(Struct, kw_only=True, forbid_unknown_fields=True):
    invoice_id: Id
    amount: Money


class PaymentIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    kind: Literal["payment", "credit_note"] = "payment"
    reference: Annotated[str, Meta(max_length=100)] = ""
    paid_on: dt.date
    currency: Currency = "RUB"
    amount: Money
    external_id: ExternalId = ""
    notes: Annotated[str, Meta(max_length=5000)] = ""
    #: ``auto``: apply to the client's open invoices oldest due first; ``none``: keep it as a
    #: prepayment. Ignored when ``allocations`` names the invoices.
    allocate: Literal["auto", "none"] = "auto"
    allocations: list[AllocationIn] = msgspec.field(default_factory=list)


class PaymentPatchIn(Struct, kw_only=True, forbid_unknown_fields=True):
    reference: Annotated[str, Meta(max_length=100)] = ""
    paid_on: dt.date
    amount: Money
    notes: Annotated[str, Meta(max_length=5000)] = ""


PaymentPatch = partial(PaymentPatchIn, "PaymentPatch")


class PaymentOut(Struct, kw_only=True):
    id: int
    party_id: int
    kind: str
    reference: str
    paid_on: dt.date
    currency: str
    amount: Decimal
    unallocated: Decimal
    external_id: str
    source: str
    notes: str
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def payment_filters(
    party_id: IdQ = None,
    kind: Literal["payment", "credit_note"] | None = None,
    unallocated: Annotated[bool | None, Parameter(description="With an amount not applied yet")] = None,
    currency: Annotated[str | None, Parameter(min_length=3, max_length=3)] = None,
) -> list[Any]:
    out: list[Any] = []
    if party_id is not None:
        out.append(Payment.party_id == party_id)
    if kind:
        out.append(Payment.kind == kind)
    if unallocated is not None:
        out.append(Payment.unallocated > 0 if unallocated else Payment.unallocated <= 0)
    if currency:
        out.append(Payment.currency == currency.upper())
    return out


class AllocateIn(Struct, kw_only=True, forbid_unknown_fields=True):
    #: Empty: the client's open invoices in the payment's currency, oldest due first.
    allocations: list[AllocationIn] = msgspec.field(default_factory=list)


class AllocateOut(Struct, kw_only=True):
    payment: PaymentOut
    allocations: list[AllocationOut]


@post("/{record_id:int}/allocate", operation_id="allocate_payment", status_code=200)
async def allocate_payment(principal: Principal, record_id: int, data: AllocateIn) -> AllocateOut:
    """Apply what is left of the payment (or credit note) to invoices: those named, or the
    client's open invoices oldest due first. 422 names the allocation that does not fit."""
    explicit = [{"invoice_id": a.invoice_id, "amount": a.amount} for a in data.allocations] or None
    result = await services.allocate(principal, record_id, explicit)
    return msgspec.convert(result, AllocateOut, strict=False)


@get("/{record_id:int}/allocations", operation_id="list_payment_allocations")
async def payment_allocations(principal: Principal, record_id: int) -> list[AllocationOut]:
    """The invoices the payment was applied to."""
    rows = await services.allocations(principal, payment_id=record_id)
    return [msgspec.convert(r, AllocationOut, strict=False) for r in rows]


payments_router = entity_router(
    spec=services.PAYMENT,
    path="/payments",
    tag="receivables",
    out=PaymentOut,
    create_body=PaymentIn,
    patch_body=PaymentPatch,
    filters=payment_filters,
    decorate=_payment_cents,
    extra_handlers=[allocate_payment, payment_allocations],
    name="receivable_payment",
)


# --------------------------------------------------------------------------- import


class ImportIn(Struct, kw_only=True, forbid_unknown_fields=True):
    #: The documented JSON format's records (``{"records": [...]}`` posted as is).
    records: list[dict[str, Any]] | None = None
    #: Or a CSV file's text (header row first; ``;``, ``,`` or tab).
    csv: Annotated[str, Meta(max_length=20_000_000)] | None = None


class RejectedField(Struct, kw_only=True):
    field: str
    message: str


class RejectedRow(Struct, kw_only=True):
    line: int
    external_id: str
    errors: list[RejectedField]


class ImportOut(Struct, kw_only=True):
    created: int
    updated: int
    unchanged: int
    rejected: list[RejectedRow]


@post("/import", operation_id="import_receivables", status_code=200)
async def import_receivables(principal: Principal, data: ImportIn) -> ImportOut:
    """Import invoices, payments and credit notes from accounting, idempotent by
    ``external_id``: known records with the same values change nothing, a changed amount is an
    audited update; bad rows are reported (line and reasons) and the rest imported."""
    from tessera.errors import ValidationFailed

    if (data.records is None) == (data.csv is None):
        raise ValidationFailed.field("records", "give either records (JSON) or csv")
    parsed = (
        imports.parse_csv(data.csv.encode())
        if data.csv is not None
        else [(i, r) for i, r in enumerate(data.records or [], start=1)]
    )
    return msgspec.convert(await imports.import_records(principal, parsed), ImportOut, strict=False)


# --------------------------------------------------------------------------- ageing


GroupBy = Literal["client", "manager", "team", "company"]
Buckets = Annotated[str | None, Parameter(max_length=60, description="Bucket limits in days: 30,60,90")]


class AgeingRow(Struct, kw_only=True):
    group: int | None
    label: str
    currency: str
    buckets: dict[str, Decimal]
    total: Decimal
    invoices: int


class AgeingOut(Struct, kw_only=True):
    as_of: dt.date
    group_by: str
    buckets: list[str]
    rows: list[AgeingRow]


@get("/ageing", operation_id="receivables_ageing")
async def ageing_report(
    principal: Principal,
    as_of: dt.date | None = None,
    group_by: GroupBy = "client",
    buckets: Buckets = None,
    owner_id: IdQ = None,
    team_id: IdQ = None,
    currency: Annotated[str | None, Parameter(min_length=3, max_length=3)] = None,
) -> AgeingOut:
    """Open receivables you may read, per client, manager, team or the company and currency,
    in ageing buckets (current, 1-30, 31-60, 61-90, 90+ by default) as of a day (today)."""
    day = as_of or clock.now().date()
    limits = ageing.limits_of(buckets)
    rows = await ageing.ageing(
        principal, day, group_by, limits, owner_id, team_id, currency and currency.upper()
    )
    return AgeingOut(
        as_of=day,
        group_by=group_by,
        buckets=ageing.bucket_names(limits),
        rows=[msgspec.convert(r, AgeingRow, strict=False) for r in rows],
    )


class AgeingInvoice(Struct, kw_only=True):
    id: int
    party_id: int
    number: str
    currency: str
    issue_date: dt.date
    due_date: dt.date
    amount: Decimal
    open_amount: Decimal
    days_overdue: int
    bucket: str


@get("/ageing/invoices", operation_id="receivables_ageing_invoices")
async def ageing_invoices(
    principal: Principal,
    as_of: dt.date | None = None,
    group_by: GroupBy = "client",
    group: IdQ = None,
    bucket: Annotated[str | None, Parameter(max_length=20)] = None,
    buckets: Buckets = None,
    currency: Annotated[str | None, Parameter(min_length=3, max_length=3)] = None,
) -> list[AgeingInvoice]:
    """The invoices behind a cell of the ageing table (group, bucket, currency), oldest due first."""
    day = as_of or clock.now().date()
    rows = await ageing.cell_invoices(
        principal, day, group_by, group, bucket, ageing.limits_of(buckets), currency and currency.upper()
    )
    return [msgspec.convert(r, AgeingInvoice, strict=False) for r in rows]


class OverdueClient(Struct, kw_only=True):
    party_id: int
    name: str
    owner_id: int | None
    currency: str
    overdue: Decimal
    weight: Decimal
    max_days_overdue: int
    invoices: int


@get("/overdue-clients", operation_id="receivables_overdue_clients")
async def overdue_clients(
    principal: Principal,
    as_of: dt.date | None = None,
    mine: Annotated[bool, Parameter(description="Only clients you own (else all you see)")] = True,
) -> list[OverdueClient]:
    """Clients with overdue invoices, most urgent first (open amount × days overdue)."""
    rows = await ageing.overdue_clients(principal, as_of or clock.now().date(), mine)
    return [msgspec.convert(r, OverdueClient, strict=False) for r in rows]


# --------------------------------------------------------------------------- collection


class CaseOut(Struct, kw_only=True):
    id: int
    party_id: int
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    overdue_since: dt.date | None
    steps_done: list[str]
    pause_reason: str
    paused_days: int
    template: str
    #: The case's run of its dunning process (``/api/workflow/instances/{id}``).
    process_id: int | None = None
    version: int


@get("/cases", operation_id="list_collection_cases")
async def list_cases(
    principal: Principal,
    party_id: IdQ = None,
    status: Literal["active", "paused", "closed"] | None = None,
) -> list[CaseOut]:
    """Collection cases of clients you see (open ones first)."""
    principal.require("receivables.read")
    query = CollectionCase.select()
    visible = principal.owner_where(CollectionCase.party_id.owner_id, CollectionCase.party_id.team_id)
    if visible is not None:
        query = query.where(visible)
    if party_id is not None:
        query = query.where(CollectionCase.party_id == party_id)
    if status:
        query = query.where(CollectionCase.status == status)
    rows = await query.order_by(CollectionCase.id, ascending=False).limit(500).output(load_json=True)
    return [msgspec.convert(r, CaseOut, strict=False) for r in rows]


class PromiseIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    amount: Money
    currency: Currency = "RUB"
    promised_on: dt.date
    notes: Annotated[str, Meta(max_length=2000)] = ""


class PromiseOut(Struct, kw_only=True):
    id: int
    party_id: int
    case_id: int | None
    amount: Decimal
    currency: str
    promised_on: dt.date
    status: str
    balance_then: Decimal
    notes: str
    created_by: int | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None


@post("/promises", operation_id="create_promise", status_code=201)
async def create_promise(principal: Principal, data: PromiseIn) -> PromiseOut:
    """Record a client's promise to pay (from a call): pauses its collection case until the
    day; kept closes the case, broken escalates and lowers the client's reliability."""
    row = await dunning.record_promise(
        principal, data.party_id, data.amount, data.currency, data.promised_on, data.notes
    )
    return msgspec.convert(services.cents([row], "amount", "balance_then")[0], PromiseOut, strict=False)


@get("/promises", operation_id="list_promises")
async def list_promises(
    principal: Principal,
    party_id: IdQ = None,
    status: Literal["open", "kept", "broken"] | None = None,
    due_by: Annotated[dt.date | None, Parameter(description="Promised on or before this day")] = None,
) -> list[PromiseOut]:
    """Promises to pay of clients you see, earliest day first."""
    principal.require("receivables.read")
    query = Promise.select()
    visible = principal.owner_where(Promise.party_id.owner_id, Promise.party_id.team_id)
    if visible is not None:
        query = query.where(visible)
    if party_id is not None:
        query = query.where(Promise.party_id == party_id)
    if status:
        query = query.where(Promise.status == status)
    if due_by:
        query = query.where(Promise.promised_on <= due_by)
    rows = services.cents(await query.order_by(Promise.promised_on).limit(500), "amount", "balance_then")
    return [msgspec.convert(r, PromiseOut, strict=False) for r in rows]


class BounceIn(Struct, kw_only=True, forbid_unknown_fields=True):
    channel: Literal["email", "phone", "letter"]
    detail: Annotated[str, Meta(max_length=2000)] = ""


class BounceOut(Struct, kw_only=True):
    party_id: int
    bounced: list[str]
    next_channel: str


@post("/parties/{party_id:int}/bounce", operation_id="receivables_channel_bounced", status_code=200)
async def channel_bounced(principal: Principal, party_id: int, data: BounceIn) -> BounceOut:
    """A channel did not reach the client: the next reminders go by the next preferred channel
    and the collector is told."""
    return msgspec.convert(await dunning.bounce(principal, party_id, data.channel, data.detail), BounceOut)


class StatementTotal(Struct, kw_only=True):
    currency: str
    open: Decimal
    overdue: Decimal
    credit: Decimal


class StatementOut(Struct, kw_only=True):
    party_id: int
    invoices: list[InvoiceOut]
    credits: list[PaymentOut]
    totals: list[StatementTotal]


@get("/parties/{party_id:int}/statement", operation_id="receivables_statement")
async def statement(principal: Principal, party_id: int) -> StatementOut:
    """The client's account statement: open invoices, unallocated payments, totals."""
    return msgspec.convert(await services.statement(principal, party_id), StatementOut, strict=False)


class ScanOut(Struct, kw_only=True):
    overdue: int
    cases_opened: int
    steps: int
    closed: int
    promises_kept: int
    promises_broken: int


@post("/overdue-scan", operation_id="run_overdue_scan", status_code=200)
async def run_scan(principal: Principal) -> ScanOut:
    """Run the overdue scan and the due dunning steps now (the hourly job does the same)."""
    from tessera_receivables import jobs

    principal.require("receivables.manage")
    counts = await jobs.overdue_scan()
    counts.update(await dunning.run())
    from tessera import audit

    await audit.record("run", "receivables.case", None, dict(counts), detail="overdue scan")
    return msgspec.convert(counts, ScanOut)


# --------------------------------------------------------------------------- reports


class CollectionRow(Struct, kw_only=True):
    month: str
    manager_id: int | None
    currency: str
    opening: Decimal
    sales: Decimal
    closing: Decimal
    closing_current: Decimal
    overdue: Decimal
    collected: Decimal
    dso: Decimal | None
    overdue_ratio: Decimal | None
    cei: Decimal | None
    promises_kept: int
    promises_broken: int
    promises_kept_ratio: Decimal | None


@get("/reports/collection", operation_id="receivables_collection_report")
async def collection_report(
    principal: Principal, date_from: dt.date, date_to: dt.date
) -> list[CollectionRow]:
    """Per month, manager (the client's owner) and currency, over the receivables you may read:
    opening and closing receivables, credit sales, collected, DSO, overdue ratio, collection
    effectiveness index (CEI) and promises kept ratio."""
    from tessera_receivables import reports

    rows = await reports.collection_report(principal, date_from, date_to)
    return [msgspec.convert(r, CollectionRow, strict=False) for r in rows]


@get("/reports/collection/export", operation_id="receivables_collection_export", media_type="text/csv")
async def collection_export(
    principal: Principal, date_from: dt.date, date_to: dt.date, format: Literal["csv", "xlsx"] = "csv"
) -> Response[Any]:
    """The collection report as CSV or XLSX (the export is audited)."""
    from tessera import audit

    from tessera_receivables import reports

    rows = await reports.collection_report(principal, date_from, date_to)
    await audit.record(
        "export", "receivables.invoice", None, detail=f"collection report {date_from}..{date_to}"
    )
    name = f"collection-{date_from}-{date_to}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        return Response(
            reports.as_xlsx(rows),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers=headers,
        )
    return Response(reports.as_csv(rows), media_type="text/csv", headers=headers)


def routers() -> list[Any]:
    return [
        invoices_router,
        payments_router,
        Router(
            path="/",
            route_handlers=[
                import_receivables,
                ageing_report,
                ageing_invoices,
                overdue_clients,
                list_cases,
                create_promise,
                list_promises,
                channel_bounced,
                statement,
                run_scan,
                collection_report,
                collection_export,
            ],
            tags=["receivables"],
        ),
    ]
