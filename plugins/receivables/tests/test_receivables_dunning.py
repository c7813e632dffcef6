"""Clock-controlled collection: the overdue scan marks once and opens one case per client;
dunning walks reminder (day 1) -> call (7) -> letter (21) -> escalation (45) through the
client's preferred channel, a reliable payer's first step comes later, partly paid invoices
are reminded for their balance; an open claim pauses and its close resumes; promises kept
and broken."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from receivables_helpers import post

pytestmark = pytest.mark.plugins("receivables")

API = "/api/receivables"


def day(clock: Any, d: str) -> None:
    clock.set(dt.datetime.fromisoformat(f"{d}T09:00:00+00:00"))


async def contacts(party_id: int) -> list[tuple[str, str, str]]:
    from tessera_receivables.tables import CollectionContact

    rows = (
        await CollectionContact.select()
        .where(CollectionContact.party_id == party_id)
        .order_by(CollectionContact.id)
    )
    return [(r["kind"], r["channel"], r["at"].date().isoformat()) for r in rows]


async def steps(party_id: int) -> list[tuple[str, str, str]]:
    return [c for c in await contacts(party_id) if c[0] in ("reminder", "call", "letter", "escalation")]


async def run_day(clock: Any, d: str) -> dict[str, int]:
    from tessera_receivables import dunning, jobs

    day(clock, d)
    counts = await jobs.overdue_scan()
    counts.update(await dunning.run())
    return counts


async def process(party_id: int) -> dict[str, Any]:
    """The collection case's run of its dunning process (the workflow engine's instance)."""
    from tessera.workflow.tables import WorkflowInstance
    from tessera_receivables.tables import CollectionCase

    case = await CollectionCase.select().where(CollectionCase.party_id == party_id).first()
    assert case["process_id"], "the case runs on the workflow engine"
    return await WorkflowInstance.select().where(WorkflowInstance.id == case["process_id"]).first()


async def invoice(crm: Any, ledger: Any, party: Any, amount: str, due: str) -> Any:
    body = {"party_id": party["id"], "issue_date": "2026-02-01", "due_date": due, "amount": amount}
    return await post(crm, f"{API}/invoices", ledger["admin"], body)


async def test_dunning_walks_the_steps_by_channel_and_reliability(
    crm: Any, frozen_clock: Any, ledger: Any
) -> None:
    from tessera.entities.tables import BackgroundJob, Notification, Task
    from tessera_receivables import dunning, jobs

    admin, ap, bp = ledger["admin"], ledger["anna_party"], ledger["boris_party"]
    # Boris's client prefers the phone and always paid on time.
    r = await crm.patch(f"/api/parties/{bp['id']}", admin, json={"custom": {"preferred_channel": "phone"}})
    assert r.status_code == 200, r.text
    await dunning.save_profile(bp["id"], reliability=90)
    inv = await invoice(crm, ledger, ap, "1000", "2026-03-02")
    await invoice(crm, ledger, bp, "70", "2026-03-02")

    assert await run_day(frozen_clock, "2026-03-02") == {
        "overdue": 0,
        "cases_opened": 0,
        "steps": 0,
        "closed": 0,
        "promises_kept": 0,
        "promises_broken": 0,
    }
    # Day 1 overdue: both marked once, one case each; the standard client is reminded by e-mail.
    counts = await run_day(frozen_clock, "2026-03-03")
    assert (counts["overdue"], counts["cases_opened"], counts["steps"]) == (2, 2, 1)
    assert await jobs.overdue_scan() == {"overdue": 0, "cases_opened": 0}
    assert (await dunning.run())["steps"] == 0
    assert await steps(ap["id"]) == [("reminder", "email", "2026-03-03")]
    mail = await BackgroundJob.select().where(BackgroundJob.kind == "email.send").output(load_json=True)
    assert [m["payload"]["to"] for m in mail] == [["anna-client@example.com"]]
    assert "1000.00 RUB" in mail[0]["payload"]["subject"]
    assert await steps(bp["id"]) == []
    # Each case is a run of the template chosen for its client; the stage is the step taken.
    run = await process(ap["id"])
    assert (run["template_key"], run["current_stage"], run["status"]) == (
        "receivables.dunning.standard",
        "reminder",
        "running",
    )
    assert run["responsible_id"] == ledger["anna"]["id"] and run["current_task_id"] is None
    run = await process(bp["id"])
    assert (run["template_key"], run["current_stage"]) == ("receivables.dunning.gentle", "overdue")
    invoice_row = (await crm.get(f"{API}/invoices/{inv['id']}", admin)).json()
    assert invoice_row["overdue_at"].startswith("2026-03-03")

    # A partial payment: later steps remind the balance.
    await post(
        crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": "2026-03-04", "amount": "400"}
    )
    await run_day(frozen_clock, "2026-03-06")
    assert await steps(bp["id"]) == []
    # The reliable payer's first step: day 5, through its preferred channel (a call task).
    await run_day(frozen_clock, "2026-03-07")
    assert await steps(bp["id"]) == [("reminder", "phone", "2026-03-07")]
    tasks = await Task.select(Task.title, Task.assignee_id).where(Task.party_id == bp["id"])
    assert [t["assignee_id"] for t in tasks] == [ledger["boris"]["id"]]

    await run_day(frozen_clock, "2026-03-08")
    assert [s[0] for s in await steps(ap["id"])] == ["reminder"]
    await run_day(frozen_clock, "2026-03-09")  # day 7
    assert (await steps(ap["id"]))[-1] == ("call", "phone", "2026-03-09")
    call = await Task.select().where(Task.party_id == ap["id"]).first()
    assert call["assignee_id"] == ledger["anna"]["id"] and "600.00 RUB" in call["title"]
    # The call is the process's stage task, due (its norm) before the formal letter.
    run = await process(ap["id"])
    assert (run["current_stage"], run["current_task_id"]) == ("call", call["id"])
    assert call["source"] == f"workflow:{run['id']}"
    assert call["deadline"].date().isoformat() == "2026-03-23"

    await run_day(frozen_clock, "2026-03-22")
    assert len(await steps(ap["id"])) == 2
    await run_day(frozen_clock, "2026-03-23")  # day 21: the formal letter, PDF by e-mail
    assert (await steps(ap["id"]))[-1] == ("letter", "letter", "2026-03-23")
    letter = (
        await BackgroundJob.select()
        .where(BackgroundJob.kind == "email.send")
        .order_by(BackgroundJob.id, ascending=False)
        .first()
        .output(load_json=True)
    )
    assert letter["payload"]["attachments"][0]["mime_type"] == "application/pdf"

    await run_day(frozen_clock, "2026-04-15")
    assert len(await steps(ap["id"])) == 3
    await run_day(frozen_clock, "2026-04-16")  # day 45: the head of sales hears of it
    assert (await steps(ap["id"]))[-1][0] == "escalation"
    heads = await Notification.select(Notification.user_id).where(
        Notification.kind == "receivables.escalation"
    )
    assert {n["user_id"] for n in heads} >= {ledger["head"]["id"]}
    # Through the engine: the escalation stage's task is the head's; the call task was done.
    run = await process(ap["id"])
    assert (run["current_stage"], run["responsible_id"]) == ("escalation", ledger["head"]["id"])
    decide = await Task.select().where(Task.id == run["current_task_id"]).first()
    assert decide["assignee_id"] == ledger["head"]["id"]
    assert (await Task.select(Task.status).where(Task.id == call["id"]).first())["status"] == "done"

    # Paid in full: the next run closes the case (nothing is reminded any more).
    await post(
        crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": "2026-04-17", "amount": "600"}
    )
    assert (await run_day(frozen_clock, "2026-04-17"))["closed"] == 1
    cases = (await crm.get(f"{API}/cases", admin, params={"party_id": ap["id"]})).json()
    assert [c["status"] for c in cases] == ["closed"]
    run = await process(ap["id"])
    assert (run["current_stage"], run["status"]) == ("closed", "completed")
    # The card's timeline shows the collection contacts.
    card = (await crm.get(f"/api/parties/{ap['id']}/card", ledger["anna"])).json()
    kinds = {i["kind"] for i in card["timeline"]}
    assert {
        "receivables.reminder",
        "receivables.call",
        "receivables.letter",
        "receivables.escalation",
    } <= kinds


async def test_claims_pause_dunning_and_promises(crm: Any, frozen_clock: Any, ledger: Any) -> None:
    from tessera.entities.tables import Notification
    from tessera_receivables import dunning

    admin, anna, boris = ledger["admin"], ledger["anna"], ledger["boris"]
    ap, bp = ledger["anna_party"], ledger["boris_party"]
    await invoice(crm, ledger, ap, "1000", "2026-03-02")
    await invoice(crm, ledger, bp, "500", "2026-03-02")
    await run_day(frozen_clock, "2026-03-03")
    # Day 3: the client opens a claim (service plugin's event): dunning pauses.
    day(frozen_clock, "2026-03-05")
    await dunning.ticket_event("service.ticket.created", {"id": 7, "party_id": ap["id"]})
    assert (await crm.get(f"{API}/cases", admin, params={"party_id": ap["id"]})).json()[0][
        "pause_reason"
    ] == "ticket"
    assert (await process(ap["id"]))["status"] == "suspended"
    await run_day(frozen_clock, "2026-03-09")
    assert [s[0] for s in await steps(ap["id"])] == ["reminder"]
    # Closed a week later: resumed, the call moves on by the 7 paused days.
    day(frozen_clock, "2026-03-12")
    await dunning.ticket_event(
        "service.ticket.status_changed", {"id": 7, "party_id": ap["id"], "to": "resolved"}
    )
    case = (await crm.get(f"{API}/cases", admin, params={"party_id": ap["id"]})).json()[0]
    assert (case["status"], case["paused_days"]) == ("active", 7)
    run = await process(ap["id"])
    assert (run["status"], run["current_stage"]) == ("running", "reminder")
    # The engine moved the stage's norm on by the pause: the call is due on day 7 + 7.
    assert run["stage_due_at"].date().isoformat() == "2026-03-16"
    await run_day(frozen_clock, "2026-03-15")
    assert [s[0] for s in await steps(ap["id"])] == ["reminder"]
    await run_day(frozen_clock, "2026-03-16")
    assert [s[0] for s in await steps(ap["id"])] == ["reminder", "call"]

    # From the call: a promise to pay 1000 by 2026-03-20 pauses the case ...
    promise = await post(
        crm, f"{API}/promises", anna, {"party_id": ap["id"], "amount": "1000", "promised_on": "2026-03-20"}
    )
    assert promise["status"] == "open"
    assert (await crm.get(f"{API}/cases", anna, params={"party_id": ap["id"]})).json()[0][
        "status"
    ] == "paused"
    assert (await process(ap["id"]))["status"] == "suspended"
    # ... it is kept: paid on the 19th; the case closes, reliability rises.
    await post(
        crm, f"{API}/payments", admin, {"party_id": ap["id"], "paid_on": "2026-03-19", "amount": "1000"}
    )
    counts = await run_day(frozen_clock, "2026-03-21")
    assert counts["promises_kept"] == 1
    assert (await crm.get(f"{API}/promises", anna)).json()[0]["status"] == "kept"
    assert (await crm.get(f"{API}/cases", admin, params={"party_id": ap["id"]})).json()[0][
        "status"
    ] == "closed"
    assert (await dunning.profile(ap["id"]))["reliability"] == 75

    # Boris's client breaks its promise: escalation at once, reliability drops.
    r = await crm.post(
        f"{API}/promises", anna, json={"party_id": bp["id"], "amount": "500", "promised_on": "2026-03-25"}
    )
    assert r.status_code == 422  # not anna's client
    await post(
        crm, f"{API}/promises", boris, {"party_id": bp["id"], "amount": "500", "promised_on": "2026-03-25"}
    )
    counts = await run_day(frozen_clock, "2026-03-26")
    assert counts["promises_broken"] == 1
    assert (await dunning.profile(bp["id"]))["reliability"] == 50
    assert [s[0] for s in await steps(bp["id"])][-1] == "escalation"
    run = await process(bp["id"])
    assert (run["status"], run["current_stage"]) == ("running", "escalation")
    assert (
        await Notification.count().where(
            Notification.kind == "receivables.escalation", Notification.user_id == ledger["head"]["id"]
        )
        == 1
    )

    # A bounced e-mail: the next channel, and the collector is told.
    r = await crm.post(f"{API}/parties/{bp['id']}/bounce", boris, json={"channel": "email"})
    assert r.status_code == 200 and r.json()["next_channel"] == "phone"
    assert (
        await Notification.count().where(
            Notification.kind == "receivables.bounce", Notification.user_id == boris["id"]
        )
        == 1
    )


@pytest.mark.plugins("service", "receivables")
async def test_a_service_ticket_pauses_the_case_until_it_is_closed(
    crm: Any, frozen_clock: Any, ledger: Any
) -> None:
    ap, admin = ledger["anna_party"], ledger["admin"]
    await invoice(crm, ledger, ap, "300", "2026-03-02")
    await run_day(frozen_clock, "2026-03-03")
    ticket = await post(
        crm, "/api/service/tickets", admin, {"party_id": ap["id"], "subject": "Wrong invoice"}
    )
    case = (await crm.get(f"{API}/cases", admin, params={"party_id": ap["id"]})).json()[0]
    assert (case["status"], case["pause_reason"]) == ("paused", "ticket")
    r = await crm.post(f"/api/service/tickets/{ticket['id']}/status", admin, json={"status": "resolved"})
    assert r.status_code == 200, r.text
    case = (await crm.get(f"{API}/cases", admin, params={"party_id": ap["id"]})).json()[0]
    assert case["status"] == "active"


async def test_the_scan_marks_in_chunks_once_across_concurrent_workers(
    crm: Any, frozen_clock: Any, ledger: Any
) -> None:
    """Seven overdue invoices of two clients and one not due, scanned by two workers at once in
    chunks of two: each overdue invoice is marked once, with one audit entry and one event
    carrying its balance and days overdue; each client gets one case; a later run finds
    nothing."""
    import asyncio

    from tessera.entities.tables import AuditLog, DomainEvent
    from tessera_receivables import jobs

    ap, bp = ledger["anna_party"], ledger["boris_party"]
    day(frozen_clock, "2026-03-01")
    overdue = []
    dues = [(ap, "2026-02-01"), (bp, "2026-02-10"), (ap, "2026-02-20"), (bp, "2026-02-03")]
    dues += [(ap, "2026-02-27"), (bp, "2026-02-27"), (ap, "2026-02-28")]
    for i, (party, due) in enumerate(dues):
        overdue.append((await invoice(crm, ledger, party, f"{100 + i}.50", due), due))
    later = await invoice(crm, ledger, ap, "9", "2026-03-10")
    day(frozen_clock, "2026-03-05")

    first, second = await asyncio.gather(jobs.overdue_scan(batch=2), jobs.overdue_scan(batch=2))
    assert first["overdue"] + second["overdue"] == 7
    assert first["cases_opened"] + second["cases_opened"] == 2
    assert await jobs.overdue_scan(batch=2) == {"overdue": 0, "cases_opened": 0}

    ids = sorted(inv["id"] for inv, _ in overdue)
    marks = await AuditLog.select(AuditLog.entity_id).where(
        AuditLog.entity == "receivables.invoice", AuditLog.action == "overdue"
    )
    assert sorted(r["entity_id"] for r in marks) == ids
    sent = (
        await DomainEvent.select(DomainEvent.entity_id, DomainEvent.payload)
        .where(DomainEvent.name == "receivables.invoice.overdue")
        .output(load_json=True)
    )
    assert sorted(r["entity_id"] for r in sent) == ids
    by_id = {r["entity_id"]: r["payload"] for r in sent}
    for inv, due in overdue:
        days = (dt.date(2026, 3, 5) - dt.date.fromisoformat(due)).days
        assert (by_id[inv["id"]]["balance"], by_id[inv["id"]]["days_overdue"]) == (inv["amount"], days)
    assert later["id"] not in by_id
    opened = (
        await DomainEvent.select(DomainEvent.payload)
        .where(DomainEvent.name == "receivables.case.opened")
        .output(load_json=True)
    )
    # Each case counts from the day after its client's oldest overdue invoice was due.
    assert sorted((r["payload"]["party_id"], r["payload"]["overdue_since"]) for r in opened) == sorted(
        [(ap["id"], "2026-02-02"), (bp["id"], "2026-02-04")]
    )
