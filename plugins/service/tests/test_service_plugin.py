"""The service plugin with the kernel's shared views and next to sales: demo data in every
state, search over tickets and replies, the client card, e-mail turned into tickets and
replies, and the plugin contract when both plugins are enabled."""

from __future__ import annotations

import random
from typing import Any

import pytest
from service_helpers import post
from tessera import db

pytestmark = pytest.mark.plugins("service")


async def test_demo_tickets_in_every_state(crm: Any, frozen_clock: Any, desk: Any) -> None:
    from tessera.demo import DemoContext, system_principal
    from tessera_service import demo, jobs
    from tessera_service.tables import Csat, Queue, Ticket

    await Queue.delete(force=True)  # the fixture's queue: the demo loads into an empty plugin
    ctx = DemoContext(random=random.Random(5), admin=system_principal())
    ctx.managers = [desk["agent1"], desk["agent2"]]
    ctx.parties = [desk["party"], desk["other_party"]]
    ctx.teams = {"Support": desk["support"]}
    ctx.users = {"head": desk["head"]}
    await demo.load(ctx, tickets=24)
    rows = await Ticket.select(Ticket.status)
    assert len(rows) == 24
    assert {r["status"] for r in rows} == {"new", "in_progress", "waiting", "resolved", "closed"}
    assert await Csat.count().where(Csat.answered_at.is_not_null()) == 4
    # Loading again adds nothing; the scan has nothing left to do twice.
    await demo.load(ctx, tickets=24)
    assert await Ticket.count() == 24
    assert await jobs.scan() == {"warned": 0, "escalated": 0, "escalated_manager": 0}


async def test_search_finds_tickets_and_replies_within_visibility(
    crm: Any, frozen_clock: Any, desk: Any
) -> None:
    ticket = await post(
        crm,
        "/api/service/tickets",
        desk["seller"],
        {"party_id": desk["party"]["id"], "subject": "Zebracrossing printer jam"},
    )
    await post(
        crm,
        f"/api/service/tickets/{ticket['id']}/messages",
        desk["seller"],
        {"body": "Replace the quokkaroller"},
    )
    for word, kind in (("Zebracrossing", "ticket"), ("quokkaroller", "ticket_reply")):
        found = (await crm.get("/api/search", desk["seller"], params={"q": word})).json()
        assert kind in [h["type"] for h in found["hits"]], (word, found)
        assert {h["party_id"] for h in found["hits"]} == {desk["party"]["id"]}
        hidden = (await crm.get("/api/search", desk["other_seller"], params={"q": word})).json()
        assert hidden["hits"] == [] and hidden["total"] == 0, hidden


async def test_card_timeline_and_participants(crm: Any, frozen_clock: Any, desk: Any) -> None:
    party = desk["party"]
    ticket = await post(
        crm,
        "/api/service/tickets",
        desk["seller"],
        {"party_id": party["id"], "subject": "Card check", "queue_id": desk["queue"]["id"]},
    )
    await post(crm, f"/api/service/tickets/{ticket['id']}/messages", desk["admin"], {"body": "On it"})
    card = (await crm.get(f"/api/parties/{party['id']}/card", desk["seller"])).json()
    kinds = {item["kind"] for item in card["timeline"]}
    assert {"service.ticket", "service.message.reply"} <= kinds
    participants = (await crm.get(f"/api/parties/{party['id']}/participants", desk["seller"])).json()
    mine = next(p for p in participants if p["user_id"] == ticket["assignee_id"])
    # The assignee holds the ticket and its life-cycle stage's task.
    assert mine["reasons"] == ["open task", "service"]


async def test_email_becomes_a_ticket_then_a_reply(crm: Any, frozen_clock: Any, desk: Any) -> None:
    from tessera.errors import ValidationFailed
    from tessera_service.services import tickets_from_email
    from tessera_service.tables import Ticket, TicketMessage

    contact = await post(
        crm,
        "/api/contacts",
        desk["seller"],
        {"party_id": desk["party"]["id"], "name": "Ivan", "emails": [{"address": "ivan@client.example"}]},
    )
    message = {
        "message_id": "<m1@client.example>",
        "from": "Ivan <Ivan@Client.example>",
        "subject": "Nothing works",
        "body": "Since this morning",
        "queue_id": desk["queue"]["id"],
    }
    made = await tickets_from_email(message)
    assert made["created"] is True
    ticket = await Ticket.select().where(Ticket.id == made["ticket_id"]).first()
    assert ticket["party_id"] == desk["party"]["id"] and ticket["contact_id"] == contact["id"]
    assert ticket["channel"] == "email" and ticket["message_id"] == "m1@client.example"
    # The same message again (a re-fetched mailbox) makes nothing new.
    assert (await tickets_from_email(message))["ticket_id"] == made["ticket_id"]
    assert await Ticket.count() == 1
    # The agent waits on the client; the client's answer (In-Reply-To) resumes the ticket.
    url = f"/api/service/tickets/{made['ticket_id']}"
    await post(crm, f"{url}/status", desk["admin"], {"status": "waiting"}, 200)
    answer = {
        "message_id": "<m2@client.example>",
        "in_reply_to": "<m1@client.example>",
        "from": "ivan@client.example",
        "subject": "Re: Nothing works",
        "body": "Here is the screenshot",
    }
    replied = await tickets_from_email(answer)
    assert replied["ticket_id"] == made["ticket_id"] and replied["created"] is False
    assert (await tickets_from_email(answer))["message_id"] == replied["message_id"]
    assert await TicketMessage.count().where(TicketMessage.kind == "client") == 1
    after = (await crm.get(url, desk["admin"])).json()
    assert after["status"] == "in_progress" and after["paused_since"] is None
    # By the number in the subject, without headers.
    by_number = await tickets_from_email(
        {
            "message_id": "<m3@x>",
            "from": "ivan@client.example",
            "subject": f"[{ticket['number']}] more",
            "body": "x",
        }
    )
    assert by_number["ticket_id"] == made["ticket_id"]
    with pytest.raises(ValidationFailed) as refused:
        await tickets_from_email(
            {"message_id": "<m4@x>", "from": "stranger@nowhere.example", "subject": "hi"}
        )
    assert refused.value.errors[0].field == "from"


@pytest.mark.plugins("service", "sales")
async def test_service_and_sales_together(crm: Any, frozen_clock: Any, desk: Any) -> None:
    """Both plugins enabled: their routes, tables and demo data live side by side; a ticket
    names a deal it is about (by type and id), and the jobs of both stay idempotent."""
    from tessera import scheduler
    from tessera.entities.tables import AuditLog

    schema = (await crm.get("/schema/openapi.json")).json()
    assert "/api/service/tickets" in schema["paths"] and "/api/sales/deals" in schema["paths"]
    deal = await post(
        crm, "/api/sales/deals", desk["seller"], {"party_id": desk["party"]["id"], "title": "Licences"}
    )
    ticket = await post(
        crm,
        "/api/service/tickets",
        desk["seller"],
        {
            "party_id": desk["party"]["id"],
            "subject": "Invoice for the licences",
            "category": "claim",
            "related_entity": "sales.deal",
            "related_id": deal["id"],
        },
    )
    assert ticket["related_entity"] == "sales.deal" and ticket["related_id"] == deal["id"]
    card = (await crm.get(f"/api/parties/{desk['party']['id']}/card", desk["seller"])).json()
    kinds = {item["kind"] for item in card["timeline"]}
    assert "service.ticket" in kinds and "sales.deal.opened" in kinds
    await scheduler.sync_jobs(crm.pm)
    frozen_clock.advance(days=5)
    first = await scheduler.tick(crm.pm, crm.settings, node="a")
    assert "service.sla_scan" in first
    audit_rows = await AuditLog.count()
    await scheduler.tick(crm.pm, crm.settings, node="b")
    assert await AuditLog.count() == audit_rows
    rows = await db.raw("SELECT count(*) AS n, max(escalation_level) AS level FROM service_ticket")
    assert rows[0]["n"] == 1 and rows[0]["level"] == 0  # no policy applies: nothing to escalate


async def test_support_mailbox_hook_turns_mail_into_tickets(crm: Any, frozen_clock: Any, desk: Any) -> None:
    """The kernel's ``tessera_inbound_email`` (IMAP, issue 16) hands over stored messages with
    the parties already matched; support mail becomes tickets and replies, once."""
    from tessera.mail_in import InboundEmail
    from tessera.plugins import call_each_async
    from tessera_service.tables import Ticket, TicketMessage

    def mail(message_id: str, role: str = "support", party_ids: tuple[int, ...] = (), **extra: Any) -> Any:
        values: dict[str, Any] = {
            "id": 1,
            "mailbox": "help",
            "mailbox_role": role,
            "message_id": message_id,
            "thread_id": message_id,
            "in_reply_to": "",
            "references": (),
            "from_address": "boss@client.example",
            "from_name": "Boss",
            "to": ("help@us.example",),
            "cc": (),
            "subject": "Please call me back",
            "text": "About the contract",
            "html": "",
            "sent_at": None,
            "received_at": frozen_clock(),
            "party_ids": party_ids,
            "contact_ids": (),
            "activity_ids": (),
        }
        values.update(extra)
        return InboundEmail(**values)

    party = (desk["party"]["id"],)
    await call_each_async(
        crm.pm, "tessera_inbound_email", message=mail("a1@x", role="sales", party_ids=party)
    )
    await call_each_async(crm.pm, "tessera_inbound_email", message=mail("a2@x"))  # unknown sender: triage
    assert await Ticket.count() == 0
    for _ in range(2):  # delivered at least once
        await call_each_async(crm.pm, "tessera_inbound_email", message=mail("a3@x", party_ids=party))
    tickets = await Ticket.select()
    assert len(tickets) == 1 and tickets[0]["party_id"] == party[0] and tickets[0]["channel"] == "email"
    reply = mail(
        "a4@x", party_ids=party, in_reply_to="a3@x", subject="Re: Please call me back", text="Still waiting"
    )
    await call_each_async(crm.pm, "tessera_inbound_email", message=reply)
    await call_each_async(crm.pm, "tessera_inbound_email", message=reply)
    bodies = [m["body"] for m in await TicketMessage.select().where(TicketMessage.kind == "client")]
    assert bodies == ["Still waiting"]


async def test_my_day_shows_my_tickets_by_time_left(crm: Any, frozen_clock: Any, desk: Any) -> None:
    for subject, priority in (("Later one", "p4"), ("Urgent one", "p1")):
        await post(
            crm,
            "/api/service/tickets",
            desk["seller"],
            {"party_id": desk["party"]["id"], "subject": subject, "priority": priority},
        )
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "en"
    r = await crm.client.post(
        "/login", data={"email": desk["seller"]["email"], "password": "correct-horse-battery"}
    )
    assert r.status_code == 303
    page = (await crm.client.get("/app")).text
    assert "My tickets" in page and "Urgent one" in page
    widget = page[page.index("My tickets") :]
    # Only the P1 has a policy (the fixture's default P1): it comes first, with its time left.
    assert widget.index("Urgent one") < widget.index("Later one")
    assert "4:00" in page
