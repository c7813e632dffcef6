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


async def on_inbound_email(message: Any) -> dict[str, Any] | None:
    """``tessera_inbound_email``: a message to a ``support`` mailbox from a known client
    becomes a ticket, or a client message on the ticket it answers (deduplicated by
    Message-ID, so the at-least-once delivery makes nothing twice). Unknown senders stay in
    the kernel's triage."""
    if message.mailbox_role != "support" or not message.party_ids:
        return None
    from tessera_service.services import tickets_from_email

    return await tickets_from_email(
        {
            "message_id": message.message_id,
            "in_reply_to": message.in_reply_to,
            "references": list(message.references),
            "from": message.from_address,
            "subject": message.subject,
            "body": message.text,
            "party_id": message.party_ids[0],
            "contact_ids": list(message.contact_ids),
        }
    )


async def dashboard_widget(principal: Any) -> list[dict[str, Any]]:
    """ "My tickets" on My day: the caller's open tickets (and those of absent colleagues they
    stand in for), the most urgent first, with the SLA time left."""
    if not principal.can("service.ticket.read"):
        return []
    from tessera import clock
    from tessera.entities import service

    from tessera_service import services
    from tessera_service.web import countdown

    mine = [principal.user_id, *sorted(principal.acting_for)]
    conditions = [Ticket.assignee_id.is_in(mine), Ticket.status.is_in(list(services.OPEN))]
    page = await service.list_page(services.TICKET, principal, conditions, order="resolution_due", limit=8)
    total = await service.count(services.TICKET, principal, conditions)
    now = clock.now()
    items = []
    for t in page.items:
        view = services.sla_view(t, now)
        flag = ""
        if view["paused"]:
            flag = _("paused")
        elif view["seconds_left"] is not None and view["seconds_left"] < 0:
            flag = _("late")
        items.append(
            {
                "label": f"{t['number']} {t['subject']}",
                "href": f"/service/tickets/{t['id']}",
                "note": countdown(view["seconds_left"]) if not view["paused"] else "",
                "flag": flag,
            }
        )
    return [
        {
            "key": "service.my_tickets",
            "title": _("My tickets"),
            "items": items,
            "kpis": [{"label": _("Open"), "value": total, "href": "/service/tickets"}],
            "more": {"label": _("All my tickets"), "href": "/service/tickets"},
            "empty": _("No open tickets."),
        }
    ]


async def record_urls(kind: str, ids: list[int]) -> dict[int, str] | None:
    if kind in ("ticket", "service.ticket", "service_ticket"):
        return {i: f"/service/tickets/{i}" for i in ids}
    if kind == "ticket_reply":
        rows = await TicketMessage.select(TicketMessage.id, TicketMessage.ticket_id).where(
            TicketMessage.id.is_in(list(ids) or [-1])
        )
        return {r["id"]: f"/service/tickets/{r['ticket_id']}" for r in rows}
    return None


async def card_widget(party_id: int, principal: Any) -> list[dict[str, Any]]:
    """The client card's "Service" block: open tickets the user may see (breached ones), the
    client's satisfaction, the valid agreement and a "new ticket" link."""
    if not principal.can("service.ticket.read"):
        return []
    from tessera import clock, i18n
    from tessera.entities import service

    from tessera_service import services
    from tessera_service.tables import Agreement

    open_q = [Ticket.party_id == party_id, Ticket.status.is_in(list(services.OPEN))]
    open_n = await service.count(services.TICKET, principal, open_q)
    late_n = await service.count(services.TICKET, principal, [*open_q, Ticket.breached_at.is_not_null()])
    scores = [
        c["score"]
        for c in await Csat.select(Csat.score)
        .where(Csat.party_id == party_id, Csat.answered_at.is_not_null())
        .order_by(Csat.answered_at, ascending=False)
    ]
    now = clock.now()
    agreement = (
        await Agreement.select(Agreement.name, Agreement.valid_until)
        .where(
            Agreement.party_id == party_id,
            Agreement.valid_from <= now,
            (Agreement.valid_until.is_null()) | (Agreement.valid_until > now),
        )
        .first()
    )
    rows = [
        {"label": _("Open tickets"), "value": str(open_n), "href": f"/service/parties/{party_id}/tickets"},
        {"label": _("SLA breached"), "value": str(late_n)},
    ]
    if scores:
        rows.append(
            {
                "label": _("Satisfaction"),
                "value": f"{i18n.format_number(sum(scores) / len(scores), 1)}/5 ({len(scores)})",
            }
        )
    risks = risk_reasons(scores, late_n)
    if risks:
        rows.append({"label": _("Risk of losing the client"), "value": "; ".join(risks)})
    if agreement:
        until = i18n.format_date(agreement["valid_until"].date()) if agreement["valid_until"] else "—"
        rows.append({"label": _("Service agreement"), "value": f"{agreement['name']} · {until}"})
    rows.append({"label": _("New ticket"), "value": "+", "href": f"/service/tickets/new?party_id={party_id}"})
    return [{"title": _("Service"), "rows": rows}]


#: Answers (newest first) that make up "recent" satisfaction for the risk indicator.
RECENT_ANSWERS = 3


def risk_reasons(scores_newest_first: list[int], breached_open: int) -> list[str]:
    """Why the client may be about to leave, in words for the card: recent satisfaction at
    3/5 or below (the last three answers), the last answer 1 or 2, open tickets past their SLA."""
    from tessera import i18n

    out: list[str] = []
    recent = scores_newest_first[:RECENT_ANSWERS]
    if recent:
        average = sum(recent) / len(recent)
        if average <= 3 or recent[0] <= 2:
            out.append(_("low satisfaction: %(score)s/5 recently", score=i18n.format_number(average, 1)))
    if breached_open:
        out.append(_("open tickets past their SLA: %(count)s", count=breached_open))
    return out
