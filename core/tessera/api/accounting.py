"""Routes of the accounting exchange (``tessera.accounting``, permission
``accounting.exchange``): counterparties in (JSON or CSV, idempotent by external id, errors per
row) and out (changed since a checkpoint, JSON or CSV), and the documents plugins export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Request, Response, get, post
from litestar.params import Parameter
from msgspec import Meta, Struct

from tessera import accounting, audit
from tessera.api.openapi import download
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

System = Annotated[str, Meta(min_length=1, max_length=50, pattern=r"^[a-z0-9_.-]+$")]
SystemParam = Annotated[str, Parameter(min_length=1, max_length=50, pattern=r"^[a-z0-9_.-]+$")]


class CounterpartiesIn(Struct, kw_only=True, forbid_unknown_fields=True):
    #: The accounting system (``1c``): external ids are unique within it.
    system: System = "accounting"
    #: Counterparties as JSON objects (see docs/integrations.md) ...
    counterparties: list[dict[str, Any]] | None = None
    #: ... or the same as CSV text (header row first).
    csv: Annotated[str, Meta(max_length=50_000_000)] | None = None


class RowError(Struct, kw_only=True):
    field: str
    message: str


class RowReport(Struct, kw_only=True):
    #: The row's number in the request (1 = the first counterparty or CSV data row).
    row: int
    external_id: str
    errors: list[RowError]


class ExchangeOut(Struct, kw_only=True):
    created: int
    updated: int
    unchanged: int
    failed: int
    errors: list[RowReport]
    party_ids: list[int]


class CounterpartyOut(Struct, kw_only=True):
    external_id: str
    party_id: int
    name: str
    kind: str
    tax_id: str
    phones: list[str]
    emails: list[str]
    address: str
    website: str
    updated_at: str


class CounterpartiesOut(Struct, kw_only=True):
    counterparties: list[CounterpartyOut]
    #: Pass as ``since`` next time; more may be waiting when ``len(counterparties)`` hit the limit.
    next_since: datetime | None


class DocumentsOut(Struct, kw_only=True):
    documents: list[dict[str, Any]]


@post(
    "/api/accounting/counterparties",
    operation_id="import_counterparties",
    tags=["accounting"],
    status_code=200,
)
async def import_counterparties(principal: Principal, data: CounterpartiesIn) -> ExchangeOut:
    """Counterparties from the accounting system: each is found by ``external_id`` (within
    ``system``) and updated, or created and linked; a row already as stored changes nothing, so
    sending the same file twice changes nothing. A bad row is reported with its errors, the
    others are imported. Needs ``accounting.exchange`` and ``party.write``."""
    principal.require("accounting.exchange")
    if (data.counterparties is None) == (data.csv is None):
        raise ValidationFailed.field("counterparties", "send either counterparties or csv")
    items = data.counterparties if data.counterparties is not None else accounting.parse_csv(data.csv or "")
    report = await accounting.import_counterparties(principal, data.system, items)
    if report.created or report.updated:
        await audit.record(
            "accounting_import",
            "party",
            None,
            {
                "system": [None, data.system],
                "created": [None, report.created],
                "updated": [None, report.updated],
            },
            detail=f"{report.created} created, {report.updated} updated, {len(report.errors)} failed",
        )
    else:
        audit.unchanged()
    return ExchangeOut(**report.as_dict())


@get(
    "/api/accounting/counterparties",
    operation_id="export_counterparties",
    tags=["accounting"],
    opt=download("text/csv", besides_json=True),
)
async def export_counterparties(
    request: Request[Any, Any, Any],
    principal: Principal,
    system: SystemParam = "accounting",
    since: datetime | None = None,
    format: Literal["json", "csv"] = "json",
    limit: Annotated[int, Parameter(ge=1, le=accounting.EXPORT_LIMIT)] = accounting.EXPORT_LIMIT,
) -> CounterpartiesOut:
    """Parties created or changed after ``since`` (every one without it) that you may read,
    oldest change first, with their ``external_id`` in ``system`` when linked, and
    ``next_since`` to ask from next time. ``format=csv`` answers the same as CSV (the
    checkpoint in the ``X-Next-Since`` header)."""
    principal.require("accounting.exchange")
    if since is not None and since.tzinfo is None:
        raise ValidationFailed.field("since", "must carry a time zone (2026-03-02T09:00:00Z)")
    rows, checkpoint = await accounting.export_counterparties(principal, system, since, limit)
    if format == "csv":
        headers = {"X-Next-Since": checkpoint.isoformat() if checkpoint else ""}
        csv_body = Response(accounting.to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
        return csv_body  # type: ignore[return-value]  # the same data as CSV
    return CounterpartiesOut(counterparties=[CounterpartyOut(**r) for r in rows], next_since=checkpoint)


@get("/api/accounting/documents", operation_id="export_accounting_documents", tags=["accounting"])
async def export_documents(principal: Principal, since: datetime | None = None) -> DocumentsOut:
    """Documents the enabled plugins export to accounting (sales: won deals) changed after
    ``since``, oldest first: each with ``type``, ``external_key`` (deduplicate on it),
    ``date``, ``party_id``, ``amount``, ``currency`` and ``source`` (the plugin)."""
    principal.require("accounting.exchange")
    if since is not None and since.tzinfo is None:
        raise ValidationFailed.field("since", "must carry a time zone (2026-03-02T09:00:00Z)")
    return DocumentsOut(documents=await accounting.documents(principal, since))


HANDLERS = [import_counterparties, export_counterparties, export_documents]
