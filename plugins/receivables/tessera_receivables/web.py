"""Web pages of the receivables plugin (mounted by the kernel under ``/receivables/``): the
ageing table and chart with drill-down to a cell's invoices, the collector's worklist (my
overdue clients, today's collection steps, promises due, "record a promise"), and the client's
account statement with payment entry and allocation (linked from the card's widget).

They call the same services as the API, decode forms through the API's structs, and every
signed-in form carries the session's CSRF token.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import clock, i18n
from tessera.entities import service
from tessera.entities.dto import set_fields
from tessera.entities.parties import PARTY
from tessera.entities.tables import Party, Task
from tessera.errors import DomainError, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    render,
)

from tessera_receivables import ageing, dunning, services
from tessera_receivables.routes import AllocateIn, PaymentIn, PromiseIn
from tessera_receivables.tables import CollectionContact, Promise

GROUPS = {"client": N_("Client"), "manager": N_("Manager"), "team": N_("Team"), "company": N_("Company")}
BUCKETS = {"current": N_("Not due yet"), "90+": N_("Over 90 days")}
i18n.register_labels(
    "timeline.kind",
    {
        "receivables.invoice": N_("Invoice"),
        "receivables.reminder": N_("Payment reminder"),
        "receivables.call": N_("Collection call"),
        "receivables.letter": N_("Formal letter on overdue debt"),
        "receivables.escalation": N_("Overdue debt escalated"),
        "receivables.promise": N_("Promise to pay"),
        "receivables.promise_kept": N_("Promise to pay kept"),
        "receivables.promise_broken": N_("Promise to pay broken"),
        "receivables.bounce": N_("Channel unreachable"),
        "receivables.paused": N_("Dunning paused"),
        "receivables.resumed": N_("Dunning resumed"),
        "receivables.closed": N_("Collection closed"),
    },
)
i18n.register_labels(
    "receivables.channel", {"email": N_("E-mail"), "phone": N_("Phone"), "letter": N_("Letter")}
)
i18n.register_labels(
    "receivables.promise.status", {"open": N_("Open"), "kept": N_("Kept"), "broken": N_("Broken")}
)
i18n.register_labels(
    "receivables.invoice.status", {"open": N_("Open"), "paid": N_("Paid"), "cancelled": N_("Cancelled")}
)
PROMISE_FIELDS = frozenset({"party_id", "amount", "currency", "promised_on", "notes"})
PAYMENT_FIELDS = frozenset({"amount", "currency", "paid_on", "reference", "kind", "invoice_id"})


def bucket_label(name: str) -> str:
    if name in BUCKETS:
        return _(BUCKETS[name])
    return _("%(range)s days", range=name)


def _date(text: str | None) -> dt.date:
    if not text:
        return clock.now().date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationFailed.field("as_of", "not a date (YYYY-MM-DD)") from exc


@get("/ageing", include_in_schema=False)
async def ageing_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The ageing table (per client, manager, team or the company) and its chart; every cell
    opens the invoices behind it."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    from tessera.web.charts import Datum, bar_chart

    params = request.query_params
    group_by = params.get("group_by") or "client"
    try:
        if group_by not in GROUPS:
            raise ValidationFailed.field("group_by", "unknown grouping")
        as_of = _date(params.get("as_of"))
        limits = ageing.limits_of(params.get("buckets"))
        rows = await ageing.ageing(principal, as_of, group_by, limits)
    except DomainError as exc:
        return error_page(request, principal, exc)
    names = ageing.bucket_names(limits)
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = totals.setdefault(r["currency"], {n: 0 for n in names})
        for n in names:
            t[n] += r["buckets"][n]
    charts = []
    for currency, t in sorted(totals.items()):
        data = [
            Datum(
                bucket_label(n),
                t[n],
                href="/receivables/ageing/invoices?"
                + urlencode(
                    {"as_of": as_of.isoformat(), "group_by": "company", "bucket": n, "currency": currency}
                ),
                key=n,
            )
            for n in names
        ]
        charts.append(
            bar_chart(
                _("Open receivables by age, %(currency)s", currency=currency),
                data,
                formatter=lambda v, c=currency: i18n.format_money(v, c),
                table=False,
            )
        )
    return render(
        request,
        "receivables/ageing.html",
        principal=principal,
        rows=rows,
        names=names,
        bucket_label=bucket_label,
        group_by=group_by,
        groups=GROUPS,
        as_of=as_of,
        buckets=params.get("buckets") or "",
        charts=charts,
        money=i18n.format_money,
    )


@get("/ageing/invoices", include_in_schema=False)
async def cell_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The invoices behind one cell of the ageing table."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    params = request.query_params
    try:
        as_of = _date(params.get("as_of"))
        group = params.get("group")
        rows = await ageing.cell_invoices(
            principal,
            as_of,
            params.get("group_by") or "client",
            int(group) if group and group.isdigit() else None,
            params.get("bucket") or None,
            ageing.limits_of(params.get("buckets")),
            params.get("currency") or None,
        )
    except DomainError as exc:
        return error_page(request, principal, exc)
    parties = {
        p["id"]: p["name"]
        for p in await Party.select(Party.id, Party.name).where(
            Party.id.is_in(list({r["party_id"] for r in rows}) or [-1])
        )
    }
    return render(
        request,
        "receivables/cell.html",
        principal=principal,
        rows=rows,
        parties=parties,
        as_of=as_of,
        bucket=bucket_label(params["bucket"]) if params.get("bucket") else "",
        money=i18n.format_money,
    )


async def _worklist(
    request: Request[Any, Any, Any],
    principal: Any,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    today = clock.now().date()
    try:
        overdue = await ageing.overdue_clients(principal, today, mine=True)
    except DomainError as exc:
        return error_page(request, principal, exc)
    party_ids = list({o["party_id"] for o in overdue}) or [-1]
    start = dt.datetime.combine(today, dt.time(0), dt.UTC)
    steps = (
        await CollectionContact.select()
        .where(CollectionContact.party_id.is_in(party_ids), CollectionContact.at >= start)
        .order_by(CollectionContact.at)
    )
    # My collection calls: the plugin's reminder calls and the dunning processes' stage tasks.
    from tessera.workflow.tables import WorkflowInstance as WI

    dunning_tasks = WI.select(WI.current_task_id).where(
        WI.template_key.is_in([t["key"] for t in dunning.TEMPLATES]), WI.current_task_id.is_not_null()
    )
    tasks = (
        await Task.select(Task.id, Task.title, Task.deadline, Task.party_id)
        .where(
            Task.assignee_id == principal.user_id,
            (Task.source == "receivables") | Task.id.is_in(dunning_tasks),
            Task.status == "open",
        )
        .order_by(Task.deadline)
    )
    visible = principal.owner_where(Promise.party_id.owner_id, Promise.party_id.team_id)
    query = Promise.select().where(
        Promise.status == "open", Promise.promised_on <= today + dt.timedelta(days=7)
    )
    if visible is not None:
        query = query.where(visible)
    promises = await query.order_by(Promise.promised_on)
    names = {
        p["id"]: p["name"]
        for p in await Party.select(Party.id, Party.name).where(
            Party.id.is_in(list({*party_ids, *(p["party_id"] for p in promises)}) or [-1])
        )
    }
    return render(
        request,
        "receivables/worklist.html",
        status=status,
        principal=principal,
        overdue=overdue,
        steps=steps,
        tasks=tasks,
        promises=promises,
        names=names,
        today=today,
        money=i18n.format_money,
        step_labels={k: _(v) for k, v in dunning.STEP_LABELS.items()},
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
    )


@get("/worklist", include_in_schema=False)
async def worklist(request: Request[Any, Any, Any]) -> Response[Any]:
    """The collector's worklist: my overdue clients (most urgent first), today's collection
    steps, my collection calls, promises due, and a form to record a promise from a call."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _worklist(request, principal)


@post("/promises", include_in_schema=False, status_code=303)
async def promise_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Record a promise to pay (same struct and service as ``POST /api/receivables/promises``)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    back = data.get("back") or ""
    try:
        body = decode_form(PromiseIn, {k: v for k, v in data.items() if k != "back"})
        await dunning.record_promise(
            principal, body.party_id, body.amount, body.currency, body.promised_on, body.notes
        )
    except DomainError as exc:
        return await _worklist(
            request, principal, form=data, errors=field_errors(exc, PROMISE_FIELDS), status=exc.status
        )
    if back.startswith("/receivables/parties/") or back.startswith("/app/parties/"):
        return Redirect(back, status_code=303)
    return Redirect("/receivables/worklist", status_code=303)


async def _statement(
    request: Request[Any, Any, Any],
    principal: Any,
    party_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    try:
        party = await service.get(PARTY, principal, party_id)
        statement = await services.statement(principal, party_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    promises = (
        await Promise.select().where(Promise.party_id == party_id).order_by(Promise.id, ascending=False)
    )
    contacts = (
        await CollectionContact.select()
        .where(CollectionContact.party_id == party_id)
        .order_by(CollectionContact.at, ascending=False)
        .limit(50)
    )
    return render(
        request,
        "receivables/statement.html",
        status=status,
        principal=principal,
        party=party,
        statement=statement,
        promises=promises,
        contacts=contacts,
        can_write=principal.can("receivables.write"),
        can_collect=principal.can("receivables.collect"),
        money=i18n.format_money,
        today=clock.now().date(),
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
    )


@get("/parties/{party_id:int}", include_in_schema=False)
async def statement_page(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """The client's account statement: open invoices, unallocated payments, promises and
    collection contacts; payment entry and allocation."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _statement(request, principal, party_id)


@post("/parties/{party_id:int}/payments", include_in_schema=False, status_code=303)
async def payment_submit(request: Request[Any, Any, Any], party_id: int, data: Form) -> Response[Any]:
    """Enter a payment (or credit note): applied to the invoice chosen, else oldest first."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        fields = {k: v for k, v in data.items() if k in PAYMENT_FIELDS and k != "invoice_id" and v != ""}
        body = decode_form(PaymentIn, {**fields, "party_id": str(party_id)})
        values = set_fields(body)
        invoice_id = data.get("invoice_id") or ""
        if invoice_id.isdigit():
            values["allocations"] = [{"invoice_id": int(invoice_id), "amount": body.amount}]
        await service.create(services.PAYMENT, principal, values)
    except DomainError as exc:
        errors = field_errors(exc, PAYMENT_FIELDS | {"allocations"})
        if "allocations" in errors:
            errors["invoice_id"] = errors.pop("allocations")
        return await _statement(request, principal, party_id, form=data, errors=errors, status=exc.status)
    return Redirect(f"/receivables/parties/{party_id}", status_code=303)


@post("/payments/{payment_id:int}/allocate", include_in_schema=False, status_code=303)
async def allocate_submit(request: Request[Any, Any, Any], payment_id: int, data: Form) -> Response[Any]:
    """Apply what is left of a payment to the client's open invoices, oldest first."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        decode_form(AllocateIn, {})
        result = await services.allocate(principal, payment_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Redirect(f"/receivables/parties/{result['payment']['party_id']}", status_code=303)


HANDLERS = [
    ageing_page,
    cell_page,
    worklist,
    promise_submit,
    statement_page,
    payment_submit,
    allocate_submit,
]
