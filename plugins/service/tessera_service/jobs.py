"""The SLA scan (``service.sla_scan``): warn the assignee at ``warn_share`` of the pending
target, escalate a breach to the queue lead, and if the ticket is still open after one more
first-response target, to the lead's manager (the queue's ``manager_id``, else the heads of the
lead's team).

Each step happens once: it is claimed by a conditional ``UPDATE`` (``warned_at IS NULL``,
``escalation_level = 0`` / ``= 1``) in the same transaction as its notification and its note
on the ticket, so running the job twice, or on two workers at once, does nothing twice. Paused
tickets (waiting on the client) and tickets of an inactive policy are skipped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera import audit, clock, events
from tessera.i18n import gettext as _
from tessera.scheduler import JobSpec

from tessera_service import services, sla
from tessera_service.tables import Queue, SlaPolicy, Ticket, TicketMessage

_ACTIVE_OPEN = ("new", "in_progress")
#: Tickets warned per transaction.
BATCH = 500


def _watched(now: dt.datetime) -> list[Any]:
    return [
        Ticket.status.is_in(list(_ACTIVE_OPEN)),
        Ticket.paused_since.is_null(),
        Ticket.policy_id.is_in(SlaPolicy.select(SlaPolicy.id).where(SlaPolicy.active == True)),  # noqa: E712
    ]


async def scan(now: dt.datetime | None = None) -> dict[str, int]:
    """One pass; returns how many tickets were warned, escalated to the lead and to the
    lead's manager."""
    now = now or clock.now()
    counts = {"warned": 0, "escalated": 0, "escalated_manager": 0}
    warn = await Ticket.select().where(*_watched(now), Ticket.warned_at.is_null(), Ticket.warn_due <= now)
    for start in range(0, len(warn), BATCH):
        counts["warned"] += await _warn_batch(warn[start : start + BATCH], now)
    breached = await Ticket.select().where(
        *_watched(now),
        Ticket.escalation_level == 0,
        (Ticket.resolution_due <= now)
        | (Ticket.first_responded_at.is_null() & (Ticket.first_response_due <= now)),
    )
    for ticket in breached:
        if await _escalate(ticket, now, 1):
            counts["escalated"] += 1
    higher = await Ticket.select().where(
        *_watched(now), Ticket.escalation_level == 1, Ticket.next_escalation_at <= now
    )
    for ticket in higher:
        if await _escalate(ticket, now, 2):
            counts["escalated_manager"] += 1
    return counts


async def _note(ticket_id: int, body: str, now: dt.datetime) -> None:
    await TicketMessage.insert(TicketMessage(ticket_id=ticket_id, kind="event", body=body, at=now))


async def _warn_batch(tickets: list[dict[str, Any]], now: dt.datetime) -> int:
    """Warn the assignees of ``tickets`` in one transaction: the tickets are claimed by one
    conditional ``UPDATE`` (a ticket another worker warned meanwhile is left out), then the
    notes, notifications, audit entries and events of the claimed ones are written in bulk."""
    from tessera.entities.tables import Notification

    async with events.unit_of_work():
        claimed = {
            r["id"]
            for r in await Ticket.update({Ticket.warned_at: now})
            .where(
                Ticket.id.is_in([t["id"] for t in tickets]),
                Ticket.warned_at.is_null(),
                Ticket.paused_since.is_null(),
            )
            .returning(Ticket.id)
        }
        rows = [t for t in tickets if t["id"] in claimed]
        if not rows:
            return 0
        texts = {
            t["id"]: _("SLA warning: ticket %(number)s is close to its target", number=t["number"])
            for t in rows
        }
        await TicketMessage.insert(
            *[TicketMessage(ticket_id=t["id"], kind="event", body=texts[t["id"]], at=now) for t in rows]
        )
        notices = [
            Notification(
                user_id=t["assignee_id"],
                kind="service.sla_warning",
                title=texts[t["id"]][:500],
                ref=f"service_ticket:{t['id']}",
                created_at=now,
            )
            for t in rows
            if t["assignee_id"]
        ]
        if notices:
            await Notification.insert(*notices)
        await events.emit_all(
            [
                (
                    "service.ticket.sla_warning",
                    "service.ticket",
                    t["id"],
                    {"id": t["id"], "party_id": t["party_id"], "assignee_id": t["assignee_id"]},
                )
                for t in rows
            ],
            also=[
                audit.entry("sla_warning", "service.ticket", t["id"], {"warned_at": [None, now.isoformat()]})
                for t in rows
            ],
        )
    return len(rows)


async def _escalate(ticket: dict[str, Any], now: dt.datetime, level: int) -> bool:
    queue = await Queue.select().where(Queue.id == ticket["queue_id"]).first() if ticket["queue_id"] else None
    changes: dict[Any, Any] = {Ticket.escalation_level: level}
    if level == 1:
        policy = await SlaPolicy.select().where(SlaPolicy.id == ticket["policy_id"]).first()
        calendar = await sla.calendar_for(ticket["queue_id"], ticket["agreement_id"])
        changes[Ticket.breached_at] = now
        changes[Ticket.next_escalation_at] = calendar.add(
            now, sla.hours(policy["first_response_hours"] if policy else 4)
        )
    async with events.unit_of_work():
        claimed = (
            await Ticket.update(changes)
            .where(
                Ticket.id == ticket["id"],
                Ticket.escalation_level == level - 1,
                Ticket.paused_since.is_null(),
            )
            .returning(Ticket.id)
        )
        if not claimed:
            return False
        recipients: list[int] = []
        lead = queue["lead_id"] if queue else None
        if level == 1:
            recipients = [lead] if lead else []
            text = _("SLA breached: ticket %(number)s escalated to the queue lead", number=ticket["number"])
        else:
            if queue and queue["manager_id"]:
                recipients = [queue["manager_id"]]
            elif lead:
                from tessera.entities.tables import CrmUser

                row = await CrmUser.select(CrmUser.team_id).where(CrmUser.id == lead).first()
                recipients = await services.heads_of_team(row["team_id"] if row else None, lead)
            text = _(
                "SLA breached: ticket %(number)s escalated to the lead's manager", number=ticket["number"]
            )
        await _note(ticket["id"], text, now)
        for user_id in recipients:
            await services._notify(user_id, "service.sla_escalation", text, ticket["id"], ticket["subject"])
        if level == 1 and ticket["assignee_id"] and ticket["assignee_id"] not in recipients:
            await services._notify(ticket["assignee_id"], "service.sla_escalation", text, ticket["id"])
            recipients.append(ticket["assignee_id"])
        if level == 1:
            # The client's account manager hears of a breach on their client's request.
            from tessera.entities.tables import Party

            party = await Party.select(Party.owner_id).where(Party.id == ticket["party_id"]).first()
            if party and party["owner_id"] and party["owner_id"] not in recipients:
                await services._notify(party["owner_id"], "service.sla_escalation", text, ticket["id"])
        await audit.record(
            "sla_escalation",
            "service.ticket",
            ticket["id"],
            {"escalation_level": [level - 1, level]},
        )
        await events.emit(
            "service.ticket.escalated",
            "service.ticket",
            ticket["id"],
            {"id": ticket["id"], "party_id": ticket["party_id"], "level": level, "to": recipients},
        )
    return True


async def sla_scan_job(ctx: Any) -> dict[str, int]:
    return await scan(ctx.now)


JOBS = [
    JobSpec(
        "service.sla_scan",
        sla_scan_job,
        cron="*/5 * * * *",
        description="Warn before and escalate after SLA targets of open tickets",
    ),
]
