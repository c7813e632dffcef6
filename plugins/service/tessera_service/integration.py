"""What the service plugin contributes to the kernel's shared views: client-card timeline
items (tickets, their conversation, satisfaction answers), search documents (tickets and the
replies in them) and "who works with this client"."""

from __future__ import annotations

from typing import Any

from tessera.i18n import gettext as _

from tessera_service.tables import Csat, Ticket, TicketMessage


async def timeline(party_id: int) -> list[dict[str, Any]]:
    tickets = await Ticket.select().where(Ticket.party_id == party_id)
    if not tickets:
        return []
    by_id = {t["id"]: t for t in tickets}
    items: list[dict[str, Any]] = []
    for t in tickets:
        items.append(
            {
                "kind": "service.ticket",
                "at": t["created_at"],
                "id": t["id"],
                "user_id": t["assignee_id"],
                "title": f"{t['number']}: {t['subject']}",
                "status": t["status"],
                "detail": t["description"][:300],
            }
        )
    for m in (
        await TicketMessage.select()
        .where(TicketMessage.ticket_id.is_in(list(by_id)))
        .order_by(TicketMessage.at)
    ):
        t = by_id[m["ticket_id"]]
        items.append(
            {
                "kind": f"service.message.{m['kind']}",
                "at": m["at"],
                "id": t["id"],
                "user_id": m["author_user_id"],
                "title": f"{t['number']}: {t['subject']}",
                "detail": m["body"][:500],
            }
        )
    for c in await Csat.select().where(Csat.party_id == party_id, Csat.answered_at.is_not_null()):
        t = by_id.get(c["ticket_id"])
        if t is None:
            continue
        items.append(
            {
                "kind": "service.csat",
                "at": c["answered_at"],
                "id": t["id"],
                "title": _("Satisfaction %(score)s/5 on %(number)s", score=c["score"], number=t["number"]),
                "detail": c["comment"][:500],
            }
        )
    return items


async def participants(party_id: int) -> list[int]:
    rows = (
        await Ticket.select(Ticket.assignee_id)
        .where(
            Ticket.party_id == party_id,
            Ticket.status.is_in(["new", "in_progress", "waiting"]),
            Ticket.assignee_id.is_not_null(),
        )
        .distinct()
    )
    return [r["assignee_id"] for r in rows]


async def search_documents(entity: str, record: dict[str, Any]) -> list[dict[str, Any]] | None:
    if entity != "service.ticket":
        return None
    base = {
        "owner_id": record.get("assignee_id"),
        "team_id": record.get("team_id"),
        "party_id": record.get("party_id"),
    }
    docs = [
        {
            "type": "ticket",
            "id": record["id"],
            "title": f"{record.get('number', '')} {record.get('subject', '')}".strip(),
            "body": f"{record.get('description', '')} {record.get('category', '')}",
            "date": record.get("created_at"),
            **base,
        }
    ]
    for m in await TicketMessage.select().where(
        TicketMessage.ticket_id == record["id"], TicketMessage.kind.is_in(["reply", "client"])
    ):
        docs.append(
            {
                "type": "ticket_reply",
                "id": m["id"],
                "title": f"{record.get('number', '')} {record.get('subject', '')}".strip(),
                "body": m["body"],
                "date": m["at"],
                **base,
            }
        )
    return docs
