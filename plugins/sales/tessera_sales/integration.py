"""What the sales plugin contributes to the kernel's shared views: client-card timeline items,
search documents, "who works with this client", and reactions to workflow events."""

from __future__ import annotations

from typing import Any

from tessera import i18n
from tessera.entities import service
from tessera.entities.tables import CrmUser
from tessera.errors import DomainError, PermissionDenied
from tessera.i18n import gettext as _
from tessera.permissions import Principal
from tessera.workflow.tables import WorkflowInstance

from tessera_sales import services  # labels: the words of the codes indexed below
from tessera_sales.pipelines import DEAL_SUBJECT, DEFAULT_PIPELINE
from tessera_sales.tables import Deal, Proposal, SalesDocument, StageVisit


async def _stage_names(pipelines: set[str]) -> dict[str, str]:
    """Stage key -> the stage's name (a person reads names, never keys)."""
    names: dict[str, str] = {}
    for key in pipelines:
        try:
            definition = await services.pipeline(key)
        except DomainError:
            continue
        names.update({s["key"]: s["name"] for s in definition["stages"]})
    return names


async def timeline(party_id: int, principal: Principal | None = None) -> list[dict[str, Any]]:
    """The client's deals, their stage changes, proposals and documents; with ``principal``
    (the card's reader) only those of deals that user may read (a colleague who reads the
    client through a handed task does not read its deals)."""
    if principal is None:
        deals = await Deal.select().where(Deal.party_id == party_id)
    else:
        try:
            deals = (
                await service.list_page(services.DEAL, principal, [Deal.party_id == party_id], limit=500)
            ).items
        except PermissionDenied:
            return []
    if not deals:
        return []
    by_id = {d["id"]: d for d in deals}
    items: list[dict[str, Any]] = []
    for d in deals:
        items.append(
            {
                "kind": "sales.deal.opened",
                "at": d["created_at"],
                "id": d["id"],
                "user_id": d["owner_id"],
                "title": f"{d['title']} ({i18n.format_money(d['amount'], d['currency'])})",
                "status": d["status"],
            }
        )
    visits = (
        await StageVisit.select().where(StageVisit.deal_id.is_in(list(by_id))).order_by(StageVisit.entered_at)
    )
    stages = await _stage_names({d["pipeline"] for d in deals})
    for v in visits:
        if v["seq"] <= 1:
            continue
        d = by_id[v["deal_id"]]
        items.append(
            {
                "kind": f"sales.deal.{v['stage'] if v['stage'] in ('won', 'lost') else 'stage'}",
                "at": v["entered_at"],
                "id": d["id"],
                "user_id": d["owner_id"],
                "title": _("%(deal)s: stage “%(stage)s”", deal=d["title"], stage=stages.get(v["stage"], "")),
                "detail": d["loss_comment"] if v["stage"] == "lost" else "",
            }
        )
    for p in await Proposal.select(
        Proposal.id,
        Proposal.deal_id,
        Proposal.number,
        Proposal.version,
        Proposal.total,
        Proposal.currency,
        Proposal.created_at,
        Proposal.created_by,
    ).where(Proposal.deal_id.is_in(list(by_id))):
        items.append(
            {
                "kind": "sales.proposal",
                "at": p["created_at"],
                "id": p["id"],
                "user_id": p["created_by"],
                "title": _(
                    "Proposal %(number)s v%(version)s: %(total)s",
                    number=p["number"],
                    version=p["version"],
                    total=i18n.format_money(p["total"], p["currency"]),
                ),
            }
        )
    for doc in await SalesDocument.select().where(
        SalesDocument.party_id == party_id, SalesDocument.deal_id.is_in(list(by_id))
    ):
        items.append(
            {
                "kind": f"sales.{doc['kind']}",
                "at": doc["created_at"],
                "id": doc["id"],
                "user_id": doc["created_by"],
                "title": f"{doc['number']}: {i18n.format_money(doc['amount'], doc['currency'])}",
            }
        )
    return items


async def participants(party_id: int) -> list[int]:
    rows = (
        await Deal.select(Deal.owner_id)
        .where(Deal.party_id == party_id, Deal.status == "open", Deal.owner_id.is_not_null())
        .distinct()
    )
    return [r["owner_id"] for r in rows]


async def search_documents(entity: str, record: dict[str, Any]) -> list[dict[str, Any]] | None:
    if entity == "sales.deal":
        owner = await CrmUser.select(CrmUser.name).where(CrmUser.id == record.get("owner_id")).first()
        # Words a person reads (in every language), never the stored codes ("won referral").
        stage = record.get("stage")
        stage_name = (await _stage_names({record.get("pipeline") or DEFAULT_PIPELINE})).get(stage or "")
        words = [
            i18n.label_words("sales.deal.stage", stage)
            if stage in i18n.labelled_codes("sales.deal.stage")
            else (stage_name or i18n.label("sales.deal.stage", stage)),
            i18n.label_words("sales.deal.status", record.get("status")),
            i18n.label_words("sales.source", record.get("source")),
            owner["name"] if owner else "",
        ]
        return [
            {
                "type": "deal",
                "id": record["id"],
                "title": record["title"],
                "body": " ".join(w for w in words if w),
                "owner_id": record.get("owner_id"),
                "team_id": record.get("team_id"),
                "date": record.get("created_at"),
            }
        ]
    if entity == "sales.proposal":
        deal = (
            await Deal.select(Deal.title, Deal.owner_id, Deal.team_id)
            .where(Deal.id == record["deal_id"])
            .first()
        )
        snapshot = record.get("snapshot") or {}
        lines = " ".join(line.get("name", "") for line in snapshot.get("lines", []))
        return [
            {
                "type": "proposal",
                "id": record["id"],
                "title": f"КП {record['number']} v{record['version']} — {deal['title'] if deal else ''}",
                "body": f"{(snapshot.get('party') or {}).get('name', '')} {lines}",
                "owner_id": deal["owner_id"] if deal else None,
                "team_id": deal["team_id"] if deal else None,
                "date": record.get("created_at"),
            }
        ]
    return None


async def on_workflow_event(event: Any) -> None:
    """A deal's instance moved through the workflow API (or its own delayed actions): refresh
    the deal's projection. Idempotent (a rebuild from the transitions)."""
    payload = event.payload or {}
    if payload.get("subject_entity") != DEAL_SUBJECT or payload.get("subject_id") is None:
        if event.name != "workflow.stopped":
            return
        instance = (
            await WorkflowInstance.select(WorkflowInstance.subject_entity, WorkflowInstance.subject_id)
            .where(WorkflowInstance.id == event.entity_id)
            .first()
        )
        if instance is None or instance["subject_entity"] != DEAL_SUBJECT:
            return
        payload = {"subject_id": instance["subject_id"]}
    from tessera import db

    async with db.transaction():
        await services.sync_deal(int(payload["subject_id"]))


async def on_workflow_migrated(event: Any) -> None:
    """Instances moved onto another template version: rebuild the projection of each deal
    among them, so its stage, probability and due time are the new version's."""
    ids = [int(i) for i in (event.payload or {}).get("instance_ids", [])]
    if not ids:
        return
    deals = await WorkflowInstance.select(WorkflowInstance.subject_id).where(
        WorkflowInstance.id.is_in(ids),
        WorkflowInstance.subject_entity == DEAL_SUBJECT,
        WorkflowInstance.subject_id.is_not_null(),
    )
    if not deals:
        return
    from tessera import db

    async with db.transaction():
        for row in deals:
            await services.sync_deal(int(row["subject_id"]))
