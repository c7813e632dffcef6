"""Invoices, payments, credit notes and their allocation: the receivables plugin's domain logic
(no HTTP).

Invoices and payments go through ``tessera.entities.service`` with an ``EntitySpec`` (audit,
events, optimistic locking, visibility by the client's owner and team), like sales' deals and
service's tickets. An invoice's ``balance`` and ``status`` and a payment's ``unallocated`` are
never written from a request body: allocation (``allocate``) and the amount rules in
``_prepare_*`` own them, and every allocation writes its audit entries and event in the same
transaction as the balances it moves.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from tessera import audit, clock, db, events
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.permissions import Principal

from tessera_receivables.tables import Allocation, Invoice, Payment

CENT = Decimal("0.01")
CURRENCY = re.compile(r"^[A-Z]{3}$")
KINDS = ("payment", "credit_note")
SOURCES = ("api", "import", "sales")
#: Invoice columns a request may not set: allocation and the overdue scan own them.
INVOICE_SYSTEM = ("balance", "status", "overdue_at", "created_by", "source")
PAYMENT_SYSTEM = ("unallocated", "created_by", "source")


def money(value: Any, field: str = "amount") -> Decimal:
    """``value`` as an exact amount in cents; 422 on ``field`` when it is not a number."""
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError) as exc:
        raise ValidationFailed.field(field, f"not an amount: {value!r}") from exc
    if not amount.is_finite() or abs(amount) >= Decimal("1e16"):
        raise ValidationFailed.field(field, f"not an amount: {value!r}")
    return amount


def cents(rows: list[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """Amounts as stored, two decimals (SQLite gives ``Decimal("1000.1")`` back)."""
    for row in rows:
        for name in fields:
            if row.get(name) is not None:
                row[name] = Decimal(str(row[name])).quantize(CENT)
    return rows


def check_currency(value: Any, field: str = "currency") -> str:
    code = str(value or "").strip().upper()
    if not CURRENCY.match(code):
        raise ValidationFailed.field(field, "must be a three-letter ISO 4217 code (RUB, UAH, EUR ...)")
    return code


# --------------------------------------------------------------------------- visibility


def invoice_visibility(principal: Principal) -> Any:
    """Invoices of clients owned by someone the principal sees (or in a team they see)."""
    return principal.owner_where(Invoice.party_id.owner_id, Invoice.party_id.team_id)


def payment_visibility(principal: Principal) -> Any:
    return principal.owner_where(Payment.party_id.owner_id, Payment.party_id.team_id)


def visibility_sql(principal: Principal, alias: str = "p") -> tuple[str, list[Any]]:
    """The same rule as raw SQL on the ``party`` table aliased ``alias`` (reports, ageing)."""
    if principal.user_ids is None:
        return "1 = 1", []
    parts, args = [], []
    if principal.user_ids:
        ids = sorted(principal.user_ids)
        parts.append(f"{alias}.owner_id IN ({', '.join('{}' for _ in ids)})")
        args.extend(ids)
    if principal.team_ids:
        ids = sorted(principal.team_ids)
        parts.append(f"{alias}.team_id IN ({', '.join('{}' for _ in ids)})")
        args.extend(ids)
    return ("(" + " OR ".join(parts) + ")" if parts else "1 = 0"), args


PERMISSIONS = {"read": "receivables.read", "write": "receivables.write", "delete": "receivables.manage"}


# --------------------------------------------------------------------------- invoices


async def _prepare_invoice(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    system = values.pop("_system", False)
    if not system:
        for key in INVOICE_SYSTEM:
            values.pop(key, None)
    if existing is not None:
        for key in ("party_id", "currency", "external_id"):
            if key in values and values[key] != existing[key]:
                raise ValidationFailed.field(key, "cannot change on an existing invoice")
    elif values.get("party_id") is None:
        raise ValidationFailed.field("party_id", "an invoice needs the client (party) it is for")
    else:
        await service.require_visible(PARTY, principal, values["party_id"], "party_id")
    if "currency" in values:
        values["currency"] = check_currency(values["currency"])
    issue = values.get("issue_date", existing["issue_date"] if existing else None)
    due = values.get("due_date", existing["due_date"] if existing else None)
    if issue is not None and due is not None and due < issue:
        raise ValidationFailed.field("due_date", "must not be before issue_date")
    if "amount" in values:
        amount = money(values["amount"])
        if amount <= 0:
            raise ValidationFailed.field("amount", "must be more than zero")
        values["amount"] = amount
        if existing is None:
            values["balance"] = amount
            values["status"] = "open"
        else:
            paid = Decimal(existing["amount"]) - Decimal(existing["balance"])
            if amount < paid:
                raise ValidationFailed.field(
                    "amount", f"is less than what is already allocated to the invoice ({paid})"
                )
            values["balance"] = amount - paid
            values["status"] = "paid" if values["balance"] == 0 else "open"
    if existing is None:
        values.setdefault("source", "api")
        values["created_by"] = principal.user_id or None
        if values.get("external_id"):
            if await Invoice.exists().where(Invoice.external_id == values["external_id"]):
                raise Conflict(f"an invoice with external_id {values['external_id']!r} exists already")
    return values


INVOICE = service.EntitySpec(
    name="receivables.invoice",
    table=Invoice,
    permission="receivables",
    visibility=invoice_visibility,
    custom_fields=False,
    order_fields=("id", "due_date", "issue_date", "balance", "created_at"),
    prepare=_prepare_invoice,
    party_in_events=True,
    permission_overrides=PERMISSIONS,
)


# --------------------------------------------------------------------------- payments


async def _prepare_payment(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    system = values.pop("_system", False)
    if not system:
        for key in PAYMENT_SYSTEM:
            values.pop(key, None)
    if existing is not None:
        for key in ("party_id", "currency", "kind", "external_id"):
            if key in values and values[key] != existing[key]:
                raise ValidationFailed.field(key, "cannot change on an existing payment")
    elif values.get("party_id") is None:
        raise ValidationFailed.field("party_id", "a payment needs the client (party) it came from")
    else:
        await service.require_visible(PARTY, principal, values["party_id"], "party_id")
    if "kind" in values and values["kind"] not in KINDS:
        raise ValidationFailed.field("kind", "must be payment or credit_note")
    if "currency" in values:
        values["currency"] = check_currency(values["currency"])
    if "amount" in values:
        amount = money(values["amount"])
        if amount <= 0:
            raise ValidationFailed.field("amount", "must be more than zero")
        values["amount"] = amount
        if existing is None:
            values["unallocated"] = amount
        else:
            allocated = Decimal(existing["amount"]) - Decimal(existing["unallocated"])
            if amount < allocated:
                raise ValidationFailed.field(
                    "amount", f"is less than what is already allocated to invoices ({allocated})"
                )
            values["unallocated"] = amount - allocated
    if existing is None:
        values.setdefault("source", "api")
        values["created_by"] = principal.user_id or None
        if values.get("external_id") and await Payment.exists().where(
            Payment.external_id == values["external_id"]
        ):
            raise Conflict(f"a payment with external_id {values['external_id']!r} exists already")
    return values


async def _after_payment_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    """A new payment is applied at once: to the invoices it names, else oldest first (unless
    ``allocate`` is ``none``: a prepayment kept for later)."""
    if existing is not None:
        return
    explicit = extras.get("allocations")
    mode = extras.get("allocate", "auto")
    if explicit:
        await _allocate(principal, row, [dict(a) for a in explicit])
    elif mode == "auto":
        await _allocate(principal, row, None)
    else:
        return
    # The answer to the create shows the payment as allocated.
    fresh = await Payment.select(Payment.unallocated, Payment.version).where(Payment.id == row["id"]).first()
    row.update(fresh)


PAYMENT = service.EntitySpec(
    name="receivables.payment",
    table=Payment,
    permission="receivables",
    visibility=payment_visibility,
    custom_fields=False,
    order_fields=("id", "paid_on", "created_at"),
    prepare=_prepare_payment,
    after_write=_after_payment_write,
    party_in_events=True,
    permission_overrides=PERMISSIONS,
)


async def allocate(
    principal: Principal, payment_id: int, explicit: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Apply the payment's unallocated amount to invoices: those given (``[{invoice_id,
    amount}]``), or the client's open invoices in its currency, oldest due first. Returns
    the payment and what was allocated."""
    async with events.unit_of_work():
        payment = await service.get_for_write(PAYMENT, principal, payment_id)
        if db.is_postgres():
            await Payment.select(Payment.id).where(Payment.id == payment_id).lock_rows()
            payment = await Payment.select().where(Payment.id == payment_id).first()
        made = await _allocate(principal, payment, explicit)
        if not made:
            audit.unchanged()  # nothing left to apply, or no open invoice: nothing written
        payment = await Payment.select().where(Payment.id == payment_id).first()
    return {"payment": cents([payment], "amount", "unallocated")[0], "allocations": cents(made, "amount")}


async def _allocate(
    principal: Principal, payment: dict[str, Any], explicit: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    left = Decimal(payment["unallocated"])
    if left <= 0:
        if explicit:
            raise ValidationFailed.field("allocations", "the payment has nothing left to allocate")
        return []
    plan: list[tuple[dict[str, Any], Decimal]] = []
    if explicit:
        total = Decimal(0)
        for i, item in enumerate(explicit):
            field = f"allocations[{i}]"
            invoice = await Invoice.select().where(Invoice.id == item["invoice_id"]).first()
            visible = await service.visible_ids(INVOICE, principal, [item["invoice_id"]])
            if invoice is None or not visible:
                raise ValidationFailed.field(f"{field}.invoice_id", f"no invoice {item['invoice_id']}")
            if invoice["party_id"] != payment["party_id"]:
                raise ValidationFailed.field(f"{field}.invoice_id", "the invoice is another client's")
            if invoice["currency"] != payment["currency"]:
                raise ValidationFailed.field(
                    f"{field}.invoice_id",
                    f"the invoice is in {invoice['currency']}, the payment in {payment['currency']}",
                )
            amount = money(item["amount"], f"{field}.amount")
            if amount <= 0:
                raise ValidationFailed.field(f"{field}.amount", "must be more than zero")
            if amount > Decimal(invoice["balance"]):
                raise ValidationFailed.field(
                    f"{field}.amount", f"is more than the invoice's open balance ({invoice['balance']})"
                )
            total += amount
            plan.append((invoice, amount))
        if total > left:
            raise ValidationFailed.field("allocations", f"add up to {total}, the payment has {left} left")
    else:
        invoices = (
            await Invoice.select()
            .where(
                Invoice.party_id == payment["party_id"],
                Invoice.currency == payment["currency"],
                Invoice.balance > 0,
                Invoice.status == "open",
            )
            .order_by(Invoice.due_date)
            .order_by(Invoice.id)
        )
        for invoice in invoices:
            if left <= 0:
                break
            amount = min(left, Decimal(invoice["balance"]))
            plan.append((invoice, amount))
            left -= amount
    made: list[dict[str, Any]] = []
    now = clock.now()
    for invoice, amount in plan:
        made.append(await _apply(principal, payment, invoice, amount, now))
    return made


async def _apply(
    principal: Principal, payment: dict[str, Any], invoice: dict[str, Any], amount: Decimal, now: dt.datetime
) -> dict[str, Any]:
    """Move ``amount`` of the payment onto the invoice: both rows by compare-and-set (a
    concurrent allocation that got there first makes this a 409, nothing half-done)."""
    fresh = await _locked(Invoice, invoice["id"])
    old = Decimal(str(fresh["balance"] if fresh else 0)).quantize(CENT)
    if fresh is None or old < amount:
        raise Conflict(f"invoice {invoice['id']} was paid meanwhile; reload and allocate again")
    balance = old - amount
    rows = (
        await Invoice.update(
            {
                Invoice.balance: balance,
                Invoice.status: "paid" if balance == 0 else "open",
                Invoice.version: fresh["version"] + 1,
                Invoice.updated_at: now,
            }
        )
        .where(Invoice.id == invoice["id"], Invoice.version == fresh["version"])
        .returning(Invoice.id)
    )
    if not rows:
        raise Conflict(f"invoice {invoice['id']} was changed meanwhile; reload and allocate again")
    pay = await _locked(Payment, payment["id"])
    left = Decimal(str(pay["unallocated"])).quantize(CENT)
    if left < amount:
        raise Conflict(f"payment {payment['id']} was allocated meanwhile; reload and allocate again")
    paid = (
        await Payment.update(
            {
                Payment.unallocated: left - amount,
                Payment.version: pay["version"] + 1,
                Payment.updated_at: now,
            }
        )
        .where(Payment.id == payment["id"], Payment.version == pay["version"])
        .returning(Payment.id)
    )
    if not paid:
        raise Conflict(f"payment {payment['id']} was allocated meanwhile; reload and allocate again")
    inserted = await Allocation.insert(
        Allocation(
            payment_id=payment["id"],
            invoice_id=invoice["id"],
            amount=amount,
            paid_on=payment["paid_on"],
            created_by=principal.user_id or None,
            created_at=now,
        )
    ).returning(Allocation.id)
    await events.emit(
        "receivables.payment.allocated",
        "receivables.invoice",
        invoice["id"],
        {
            "invoice_id": invoice["id"],
            "payment_id": payment["id"],
            "party_id": invoice["party_id"],
            "amount": str(amount),
            "currency": invoice["currency"],
            "balance": str(balance),
        },
        also=[
            audit.entry(
                "allocate",
                "receivables.invoice",
                invoice["id"],
                {"balance": [str(old), str(balance)]},
                detail=f"payment {payment['id']}: {amount} {invoice['currency']}",
            )
        ],
    )
    return {
        "id": inserted[0]["id"],
        "payment_id": payment["id"],
        "invoice_id": invoice["id"],
        "amount": amount,
        "paid_on": payment["paid_on"],
    }


async def _locked(table: Any, record_id: int) -> dict[str, Any]:
    """The row, its write lock taken first on PostgreSQL (SQLite's BEGIN IMMEDIATE already
    serialises writers)."""
    query = table.select().where(table.id == record_id)
    if db.is_postgres():
        query = query.lock_rows()
    return await query.first()


async def allocations(
    principal: Principal, invoice_id: int | None = None, payment_id: int | None = None
) -> list[dict[str, Any]]:
    """Allocations of an invoice or a payment the principal may read."""
    if invoice_id is not None:
        await service.get(INVOICE, principal, invoice_id)
        where = Allocation.invoice_id == invoice_id
    elif payment_id is not None:
        await service.get(PAYMENT, principal, payment_id)
        where = Allocation.payment_id == payment_id
    else:
        raise NotFound("no allocations")
    return cents(await Allocation.select().where(where).order_by(Allocation.id), "amount")


# --------------------------------------------------------------------------- statement


async def statement(principal: Principal, party_id: int) -> dict[str, Any]:
    """The client's account statement: open invoices, unallocated payments, totals per
    currency (what the card shows)."""
    principal.require("receivables.read")
    await service.get(PARTY, principal, party_id)
    visible = invoice_visibility(principal)
    query = Invoice.select().where(Invoice.party_id == party_id, Invoice.balance > 0)
    if visible is not None:
        query = query.where(visible)
    invoices = await query.order_by(Invoice.due_date)
    pquery = Payment.select().where(Payment.party_id == party_id, Payment.unallocated > 0)
    pvisible = payment_visibility(principal)
    if pvisible is not None:
        pquery = pquery.where(pvisible)
    credits = await pquery.order_by(Payment.paid_on)
    today = clock.now().date()
    totals: dict[str, dict[str, Decimal]] = {}
    for inv in invoices:
        t = totals.setdefault(
            inv["currency"], {"open": Decimal(0), "overdue": Decimal(0), "credit": Decimal(0)}
        )
        t["open"] += Decimal(inv["balance"])
        if inv["due_date"] < today:
            t["overdue"] += Decimal(inv["balance"])
    for p in credits:
        t = totals.setdefault(
            p["currency"], {"open": Decimal(0), "overdue": Decimal(0), "credit": Decimal(0)}
        )
        t["credit"] += Decimal(p["unallocated"])
    return {
        "party_id": party_id,
        "invoices": cents(invoices, "amount", "balance"),
        "credits": cents(credits, "amount", "unallocated"),
        "totals": [
            {"currency": c, **{k: a.quantize(CENT) for k, a in v.items()}} for c, v in sorted(totals.items())
        ],
    }
