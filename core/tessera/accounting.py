"""Accounting exchange: counterparties (parties) in and out in documented JSON and CSV formats,
and the documents plugins export (won deals, orders ...) through ``tessera_accounting_documents``.

In: each counterparty carries the accounting system's ``external_id``; the party linked to it
(``external_ref``) is updated, else a new party is created and linked. A row that is already
as stored changes nothing (no update, no audit entry, no event), so a file imported twice
changes nothing. Every row is its own transaction: a bad row is reported with its errors and
the rest are imported.

Out: parties created or changed after a checkpoint (``since``), oldest change first, with
their external id when they have one, and the next checkpoint to ask from. Only the parties
the caller may read are exported. docs/integrations.md, "Accounting exchange".
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from tessera import clock, events, exports
from tessera.entities import service
from tessera.entities.parties import PARTY, PartyIn
from tessera.entities.tables import ExternalRef, Party
from tessera.errors import DomainError, ValidationFailed
from tessera.permissions import Principal
from tessera.plugins import call_each_async

#: Columns of the counterparty CSV, in order (phones and e-mails separated by ``;``).
CSV_COLUMNS = (
    "external_id",
    "name",
    "kind",
    "tax_id",
    "phones",
    "emails",
    "address",
    "website",
    "party_id",
    "updated_at",
)
#: Counterparties per export page at most.
EXPORT_LIMIT = 5000


class Counterparty(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One counterparty as the accounting system sends it."""

    external_id: str
    name: str
    kind: str = "organisation"
    tax_id: str = ""
    phones: list[str] = msgspec.field(default_factory=list)
    emails: list[str] = msgspec.field(default_factory=list)
    address: str = ""
    website: str = ""


@dataclass
class ExchangeReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    party_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": len(self.errors),
            "errors": self.errors,
            "party_ids": self.party_ids,
        }


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.replace(",", ";").split(";") if p.strip()]


def parse_csv(text: str) -> list[dict[str, Any]]:
    """Counterparty rows of a CSV in the exchange format (header row first; ``;`` or ``,``)."""
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = []
    for record in csv.DictReader(io.StringIO(text), delimiter=delimiter):
        # An export's cells neutralised against formula injection ('+7 ...) read back as typed.
        row: dict[str, Any] = {
            k.strip(): exports.restore_cell((v or "").strip())
            for k, v in record.items()
            if k and k.strip() in CSV_COLUMNS
        }
        row.pop("party_id", None)
        row.pop("updated_at", None)
        row["phones"] = _split(row.get("phones", ""))
        row["emails"] = _split(row.get("emails", ""))
        rows.append(row)
    return rows


def _values(item: Counterparty) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": " ".join(item.name.split()),
        "kind": item.kind,
        "tax_id": item.tax_id.strip(),
        "website": item.website.strip(),
        "phones": [{"number": p, "type": "work"} for p in item.phones],
        "emails": [{"address": e, "type": "work"} for e in item.emails],
    }
    if item.address.strip():
        values["addresses"] = [{"text": item.address.strip(), "type": "legal"}]
    msgspec.convert(values, PartyIn)  # the API's own shape rules (lengths, kinds)
    return values


def _same(existing: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``values`` that differ from the stored party (after normalising)."""
    from tessera.entities.channels import normalise_channels

    probe = json.loads(json.dumps(values))
    try:
        normalise_channels(probe)
    except ValidationFailed:
        return values  # let the update report it
    changes = {}
    for key, value in probe.items():
        stored = existing.get(key)
        if isinstance(stored, str) and key in ("phones", "emails", "addresses"):
            stored = json.loads(stored)
        if key in ("phones", "emails"):
            if [x[("number" if key == "phones" else "address")] for x in stored or []] == [
                x[("number" if key == "phones" else "address")] for x in value
            ]:
                continue
        elif key == "addresses":
            if [a.get("text") for a in stored or []] == [a["text"] for a in value]:
                continue
        elif stored == value:
            continue
        changes[key] = values[key]
    return changes


async def import_counterparties(
    principal: Principal, system: str, items: list[dict[str, Any]]
) -> ExchangeReport:
    """Create or update a party per counterparty, idempotent by ``(system, external_id)``."""
    PARTY.require(principal, "write")
    report = ExchangeReport()
    seen: set[str] = set()
    for row_no, raw in enumerate(items, start=1):
        external_id = str(raw.get("external_id") or "").strip() if isinstance(raw, dict) else ""
        try:
            item = msgspec.convert(raw, Counterparty)
            if not item.external_id.strip():
                raise ValidationFailed.field("external_id", "is required")
            if item.external_id in seen:
                raise ValidationFailed.field("external_id", "appears twice in this file")
            seen.add(item.external_id)
            values = _values(item)
            async with events.unit_of_work():
                ref = (
                    await ExternalRef.select(ExternalRef.entity_id)
                    .where(
                        ExternalRef.system == system,
                        ExternalRef.entity == "party",
                        ExternalRef.external_id == item.external_id,
                    )
                    .first()
                )
                if ref is None:
                    row = await service.create(PARTY, principal, {**values, "owner_id": principal.user_id})
                    await ExternalRef.insert(
                        ExternalRef(
                            system=system,
                            entity="party",
                            external_id=item.external_id,
                            entity_id=row["id"],
                            created_at=clock.now(),
                        )
                    )
                    report.created += 1
                else:
                    existing = await service.get_for_write(PARTY, principal, ref["entity_id"])
                    changes = _same(existing, values)
                    if changes:
                        row = await service.update(PARTY, principal, ref["entity_id"], changes)
                        report.updated += 1
                    else:
                        row = existing
                        report.unchanged += 1
            report.party_ids.append(row["id"])
        except msgspec.ValidationError as exc:
            message = str(exc)
            name = ""
            if "`$." in message:
                name = message.split("`$.", 1)[1].split("`", 1)[0].split(".")[0].split("[")[0]
            elif "required field `" in message:
                name = message.split("required field `", 1)[1].split("`", 1)[0]
            report.errors.append(
                {"row": row_no, "external_id": external_id, "errors": [{"field": name, "message": message}]}
            )
        except DomainError as exc:
            errors = [e.as_dict() for e in getattr(exc, "errors", []) or []] or [
                {"field": "", "message": str(exc.detail)}
            ]
            report.errors.append({"row": row_no, "external_id": external_id, "errors": errors})
    return report


async def export_counterparties(
    principal: Principal, system: str, since: datetime | None, limit: int = EXPORT_LIMIT
) -> tuple[list[dict[str, Any]], datetime | None]:
    """Parties the caller may read changed after ``since`` (all without it), oldest change
    first, and the checkpoint to pass next time (the last one's ``updated_at``; ``since`` when
    nothing changed)."""
    PARTY.require(principal, "read")
    query = Party.select(
        Party.id, Party.name, Party.kind, Party.tax_id, Party.phones, Party.emails, Party.addresses,
        Party.website, Party.updated_at,
    )  # fmt: skip
    condition = PARTY.visibility(principal)
    if condition is not None:
        query = query.where(condition)
    if since is not None:
        query = query.where(Party.updated_at > since)
    rows = await query.order_by(Party.updated_at).order_by(Party.id).limit(limit).output(load_json=True)
    refs = {
        r["entity_id"]: r["external_id"]
        for r in await ExternalRef.select(ExternalRef.entity_id, ExternalRef.external_id).where(
            ExternalRef.system == system,
            ExternalRef.entity == "party",
            ExternalRef.entity_id.is_in([r["id"] for r in rows] or [0]),
        )
    }
    out = [
        {
            "external_id": refs.get(r["id"], ""),
            "party_id": r["id"],
            "name": r["name"],
            "kind": r["kind"],
            "tax_id": r["tax_id"],
            "phones": [p["number"] for p in r["phones"] or []],
            "emails": [e["address"] for e in r["emails"] or []],
            "address": (r["addresses"] or [{}])[0].get("text", ""),
            "website": r["website"],
            "updated_at": r["updated_at"].isoformat(),
        }
        for r in rows
    ]
    checkpoint = rows[-1]["updated_at"] if rows else since
    return out, checkpoint


def to_csv(counterparties: list[dict[str, Any]]) -> str:
    """The export as CSV (UTF-8 with BOM for Excel; cells that look like formulas neutralised)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = exports.csv_writer(out)
    writer.writerow(CSV_COLUMNS)
    for c in counterparties:
        row = {**c, "phones": "; ".join(c["phones"]), "emails": "; ".join(c["emails"])}
        writer.writerow([row.get(k, "") for k in CSV_COLUMNS])
    return out.getvalue()


async def documents(principal: Principal, since: datetime | None) -> list[dict[str, Any]]:
    """What plugins export to accounting (``tessera_accounting_documents``), oldest first."""
    pm = service.plugin_manager()
    found: list[dict[str, Any]] = []
    for plugin, result in await call_each_async(
        pm, "tessera_accounting_documents", since=since, principal=principal
    ):
        for doc in result or []:
            if isinstance(doc, dict) and "type" in doc and "external_key" in doc:
                found.append({**doc, "source": plugin})
    found.sort(key=lambda d: (str(d.get("date") or ""), str(d["external_key"])))
    return found
