"""Import of invoices, payments and credit notes from accounting (CSV or JSON), idempotent by
external id (docs/receivables.md, "Import").

Each row is validated and written on its own (through the same entity service as the API, so
each write is audited and announced): a file with bad rows imports the good ones and reports
exactly the bad ones with their line and reasons. A row whose external id is known changes
nothing when its values are the same; a changed amount (or due date, number) is an audited
update of that invoice or payment.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from tessera import audit
from tessera.entities import service
from tessera.entities.tables import Party
from tessera.errors import DomainError, FieldError, ValidationFailed
from tessera.importer import _decode, _delimiter
from tessera.permissions import Principal

from tessera_receivables import services
from tessera_receivables.tables import Invoice, Payment

TYPES = ("invoice", "payment", "credit_note")
FIELDS = (
    "type",
    "external_id",
    "party_id",
    "party_tax_id",
    "number",
    "date",
    "due_date",
    "currency",
    "amount",
    "invoice_external_id",
)
#: Russian and Ukrainian headers accounting exports use, mapped to the fields.
HEADERS = {
    "тип": "type",
    "вид": "type",
    "внешний id": "external_id",
    "зовнішній id": "external_id",
    "клиент id": "party_id",
    "клієнт id": "party_id",
    "инн": "party_tax_id",
    "єдрпоу": "party_tax_id",
    "номер": "number",
    "дата": "date",
    "срок оплаты": "due_date",
    "термін оплати": "due_date",
    "валюта": "currency",
    "сумма": "amount",
    "сума": "amount",
    "счет": "invoice_external_id",
    "рахунок": "invoice_external_id",
}


def parse_csv(raw: bytes, encoding: str | None = None) -> list[tuple[int, dict[str, str]]]:
    """(line, {field: text}) per data row of a CSV file (UTF-8 or cp1251, ``;`` ``,`` or tab)."""
    text, _ = _decode(raw, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    rows = list(reader)
    if not rows:
        return []
    header = [HEADERS.get(h.strip().lower(), h.strip().lower()) for h in rows[0]]
    unknown = [h for h in header if h and h not in FIELDS]
    if unknown:
        raise ValidationFailed.field("file", f"unknown columns: {', '.join(unknown)}")
    out = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        out.append((number, {h: c.strip() for h, c in zip(header, cells, strict=False) if h}))
    return out


def parse_json(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(position, record) per record of ``{"records": [...]}`` (or a bare list); position is
    1-based."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ValidationFailed.field("file", f"not JSON: {exc}") from exc
    records = doc.get("records") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise ValidationFailed.field("file", 'must be {"records": [...]} or a list of records')
    return [(i, r if isinstance(r, dict) else {"_bad": r}) for i, r in enumerate(records, start=1)]


def _date(value: Any, field: str, errors: list[FieldError]) -> dt.date | None:
    if value in (None, ""):
        errors.append(FieldError(field, "is required"))
        return None
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    errors.append(FieldError(field, f"not a date (YYYY-MM-DD or DD.MM.YYYY): {text!r}"))
    return None


async def _party(row: dict[str, Any], principal: Principal, errors: list[FieldError]) -> int | None:
    raw = row.get("party_id")
    if raw not in (None, ""):
        try:
            party_id = int(raw)
        except (TypeError, ValueError):
            errors.append(FieldError("party_id", f"not a number: {raw!r}"))
            return None
        if not await service.visible_ids(PARTY_SPEC(), principal, [party_id]):
            errors.append(FieldError("party_id", f"no client {party_id} (or not visible to you)"))
            return None
        return party_id
    tax_id = str(row.get("party_tax_id") or "").strip()
    if not tax_id:
        errors.append(FieldError("party_id", "give party_id or party_tax_id"))
        return None
    found = await Party.select(Party.id).where(Party.tax_id == tax_id).limit(2)
    if len(found) != 1:
        errors.append(
            FieldError(
                "party_tax_id", f"no client with tax id {tax_id}" if not found else "several clients share it"
            )
        )
        return None
    if not await service.visible_ids(PARTY_SPEC(), principal, [found[0]["id"]]):
        errors.append(FieldError("party_tax_id", f"no client with tax id {tax_id} visible to you"))
        return None
    return int(found[0]["id"])


def PARTY_SPEC() -> Any:
    from tessera.entities.parties import PARTY

    return PARTY


async def _parse(row: dict[str, Any], principal: Principal) -> tuple[str, dict[str, Any], list[FieldError]]:
    errors: list[FieldError] = []
    if "_bad" in row:
        return "", {}, [FieldError("record", "must be an object")]
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        errors.append(FieldError(unknown[0], "unknown field"))
    kind = str(row.get("type") or "invoice").strip().lower()
    if kind not in TYPES:
        errors.append(FieldError("type", "must be invoice, payment or credit_note"))
    external_id = str(row.get("external_id") or "").strip()
    if not external_id:
        errors.append(FieldError("external_id", "is required (imports are matched on it)"))
    elif len(external_id) > 200:
        errors.append(FieldError("external_id", "is longer than 200 characters"))
    values: dict[str, Any] = {"external_id": external_id}
    try:
        values["amount"] = services.money(row.get("amount"), "amount")
        if values["amount"] <= 0:
            errors.append(FieldError("amount", "must be more than zero"))
    except ValidationFailed:
        errors.append(FieldError("amount", f"not an amount: {row.get('amount')!r}"))
    try:
        values["currency"] = services.check_currency(row.get("currency") or "RUB")
    except ValidationFailed:
        errors.append(FieldError("currency", f"not a currency code: {row.get('currency')!r}"))
    day = _date(row.get("date"), "date", errors)
    values["party_id"] = await _party(row, principal, errors)
    values["number"] = str(row.get("number") or "")[:60] if kind == "invoice" else None
    if kind == "invoice":
        values["issue_date"] = day
        values["due_date"] = _date(row.get("due_date"), "due_date", errors)
        if day and values["due_date"] and values["due_date"] < day:
            errors.append(FieldError("due_date", "is before the invoice date"))
        values["number"] = str(row.get("number") or "")[:60]
    else:
        values.pop("number")
        values["paid_on"] = day
        values["kind"] = kind
        values["reference"] = str(row.get("number") or "")[:100]
        values["invoice_external_id"] = str(row.get("invoice_external_id") or "").strip()
    return kind, values, errors


async def import_records(principal: Principal, records: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Import parsed records; returns counts and the rejected rows (line, external id, errors)."""
    principal.require("receivables.write")
    report: dict[str, Any] = {"created": 0, "updated": 0, "unchanged": 0, "rejected": []}
    for line, row in records:
        kind, values, errors = await _parse(row, principal)
        if not errors:
            try:
                outcome = await (
                    _invoice(principal, values) if kind == "invoice" else _payment(principal, values)
                )
                report[outcome] += 1
                continue
            except DomainError as exc:
                errors = list(exc.errors) or [FieldError("record", str(exc))]
        report["rejected"].append(
            {
                "line": line,
                "external_id": str(row.get("external_id") or ""),
                "errors": [{"field": e.field, "message": e.message} for e in errors],
            }
        )
    # The import itself (who loaded what, with which outcome) is one audit entry; every record
    # it created or changed has its own.
    await audit.record(
        "import",
        "receivables.invoice",
        None,
        {k: report[k] for k in ("created", "updated", "unchanged")} | {"rejected": len(report["rejected"])},
        detail=f"{len(records)} records",
    )
    return report


async def _invoice(principal: Principal, values: dict[str, Any]) -> str:
    existing = await Invoice.select().where(Invoice.external_id == values["external_id"]).first()
    if existing is None:
        await service.create(services.INVOICE, principal, {**values, "source": "import", "_system": True})
        return "created"
    if existing["party_id"] != values["party_id"] or existing["currency"] != values["currency"]:
        raise ValidationFailed.field(
            "external_id", "a known invoice with another client or currency: correct it in the CRM"
        )
    changes = {
        k: values[k] for k in ("amount", "issue_date", "due_date", "number") if values[k] != existing[k]
    }
    if not changes:
        return "unchanged"
    await service.update(services.INVOICE, principal, existing["id"], changes)
    return "updated"


async def _payment(principal: Principal, values: dict[str, Any]) -> str:
    target = values.pop("invoice_external_id", "")
    existing = await Payment.select().where(Payment.external_id == values["external_id"]).first()
    if existing is not None:
        if existing["party_id"] != values["party_id"] or existing["currency"] != values["currency"]:
            raise ValidationFailed.field(
                "external_id", "a known payment with another client or currency: correct it in the CRM"
            )
        changes = {k: values[k] for k in ("amount", "paid_on") if values[k] != existing[k]}
        if not changes:
            return "unchanged"
        await service.update(services.PAYMENT, principal, existing["id"], changes)
        return "updated"
    body: dict[str, Any] = {**values, "source": "import", "_system": True}
    if target:
        invoice = await Invoice.select().where(Invoice.external_id == target).first()
        if invoice is None:
            raise ValidationFailed.field("invoice_external_id", f"no invoice {target!r}")
        if invoice["balance"] > 0:
            body["allocations"] = [
                {"invoice_id": invoice["id"], "amount": min(values["amount"], invoice["balance"])}
            ]
    await service.create(services.PAYMENT, principal, body)
    return "created"
