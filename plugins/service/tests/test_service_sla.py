"""SLA in business hours, pauses, the escalation scan and assignment (clock-controlled, both
databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from service_helpers import OFFICE, post
from tessera.entities.tables import Notification
from tessera_service import jobs

pytestmark = pytest.mark.plugins("service")

FRIDAY_1730 = datetime(2026, 3, 6, 17, 30, tzinfo=UTC)


async def _ticket(crm: Any, desk: dict[str, Any], user: str = "seller", **extra: Any) -> dict[str, Any]:
    body = {"party_id": desk["party"]["id"], "subject": "Server down", "priority": "p1"}
    body.setdefault("queue_id", desk["queue"]["id"])
    body.update(extra)
    return await post(crm, "/api/service/tickets", desk[user], body)  # type: ignore[no-any-return]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_p1_friday_evening_is_due_monday_1230(crm: Any, frozen_clock: Any, desk: Any) -> None:
    frozen_clock.set(FRIDAY_1730)
    ticket = await _ticket(crm, desk)
    assert ticket["policy_id"] == desk["policy"]["id"]
    assert ticket["agreement_id"] is None
    assert _at(ticket["first_response_due"]) == datetime(2026, 3, 9, 12, 30, tzinfo=UTC)
    assert ticket["status"] == "new" and ticket["number"].startswith("T-")
    assert ticket["sla"]["target"] == "first_response" and not ticket["sla"]["paused"]


async def test_public_holiday_on_monday_moves_it_to_tuesday(crm: Any, frozen_clock: Any, desk: Any) -> None:
    r = await crm.patch(
        f"/api/service/queues/{desk['queue']['id']}",
        desk["admin"],
        json={"calendar": {**OFFICE, "holidays": ["2026-03-09"]}},
    )
    assert r.status_code == 200, r.text
    frozen_clock.set(FRIDAY_1730)
    ticket = await _ticket(crm, desk)
    assert _at(ticket["first_response_due"]) == datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


async def test_pause_monday_resume_tuesday_shifts_exactly(crm: Any, frozen_clock: Any, desk: Any) -> None:
    frozen_clock.set(FRIDAY_1730)
    ticket = await _ticket(crm, desk)
    url = f"/api/service/tickets/{ticket['id']}"
    frozen_clock.set(datetime(2026, 3, 9, 10, 0, tzinfo=UTC))
    paused = await post(crm, f"{url}/status", desk["admin"], {"status": "waiting"}, 200)
    assert paused["sla"]["paused"] and paused["sla"]["seconds_left"] is None
    frozen_clock.set(datetime(2026, 3, 10, 10, 0, tzinfo=UTC))
    resumed = await post(crm, f"{url}/status", desk["admin"], {"status": "in_progress"}, 200)
    # Paused Monday 10:00 -> Tuesday 10:00 is 9 working hours: due one working day later.
    assert _at(resumed["first_response_due"]) == datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    assert resumed["paused_total"] == 9 * 3600 and resumed["paused_since"] is None
    # 16 working hours from Friday 17:30 is Tuesday 15:30; shifted by 9 h: Wednesday 15:30.
    assert _at(resumed["resolution_due"]) == datetime(2026, 3, 11, 15, 30, tzinfo=UTC)


async def test_a_client_reply_resumes_the_clock(crm: Any, frozen_clock: Any, desk: Any) -> None:
    frozen_clock.set(FRIDAY_1730)
    ticket = await _ticket(crm, desk)
    url = f"/api/service/tickets/{ticket['id']}"
    frozen_clock.set(datetime(2026, 3, 9, 10, 0, tzinfo=UTC))
    await post(crm, f"{url}/status", desk["admin"], {"status": "waiting"}, 200)
    frozen_clock.set(datetime(2026, 3, 9, 11, 0, tzinfo=UTC))
    await post(crm, f"{url}/messages", desk["admin"], {"kind": "client", "body": "Here are the logs"})
    after = (await crm.get(url, desk["seller"])).json()
    assert after["status"] == "in_progress" and after["paused_since"] is None
    assert _at(after["first_response_due"]) == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)


async def test_first_reply_meets_first_response(crm: Any, frozen_clock: Any, desk: Any) -> None:
    ticket = await _ticket(crm, desk)
    url = f"/api/service/tickets/{ticket['id']}"
    frozen_clock.advance(hours=1)
    await post(crm, f"{url}/messages", desk["admin"], {"kind": "note", "body": "checking"})
    assert (await crm.get(url, desk["seller"])).json()["first_responded_at"] is None
    await post(crm, f"{url}/messages", desk["admin"], {"body": "We are on it"})
    after = (await crm.get(url, desk["seller"])).json()
    assert after["status"] == "in_progress"
    assert after["sla"]["first_response_met"] is True and after["sla"]["target"] == "resolution"
    conversation = (await crm.get(f"{url}/messages", desk["seller"])).json()
    assert [m["kind"] for m in conversation] == ["note", "reply"]


async def test_impossible_moves_are_409_with_a_reason(crm: Any, frozen_clock: Any, desk: Any) -> None:
    ticket = await _ticket(crm, desk)
    url = f"/api/service/tickets/{ticket['id']}"
    await post(crm, f"{url}/status", desk["admin"], {"status": "closed"}, 200)
    r = await crm.post(f"{url}/status", desk["admin"], json={"status": "waiting"})
    assert r.status_code == 409
    assert "open ticket" in r.json()["detail"]
    assert r.json()["errors"][0]["field"] == "status"
    r = await crm.post(f"{url}/messages", desk["admin"], json={"body": "hello?"})
    assert r.status_code == 409
    reopened = await post(crm, f"{url}/status", desk["admin"], {"status": "in_progress"}, 200)
    assert reopened["reopened"] == 1 and reopened["closed_at"] is None


async def _notifications(user: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return await Notification.select().where(Notification.user_id == user["id"], Notification.kind == kind)


async def test_warning_and_escalations_each_happen_once(crm: Any, frozen_clock: Any, desk: Any) -> None:
    await crm.patch(
        f"/api/service/queues/{desk['queue']['id']}", desk["admin"], json={"manager_id": desk["head"]["id"]}
    )
    ticket = await _ticket(crm, desk, assignee_id=desk["agent1"]["id"])  # Monday 09:00: due 13:00
    assignee = desk["agent1"]
    frozen_clock.advance(hours=3, minutes=11)  # 80 % of 4 h is 3 h 12 min
    assert (await jobs.scan())["warned"] == 0
    frozen_clock.advance(minutes=1)
    assert (await jobs.scan())["warned"] == 1
    assert (await jobs.scan())["warned"] == 0
    assert len(await _notifications(assignee, "service.sla_warning")) == 1
    frozen_clock.advance(minutes=48)  # 13:00: breached
    first = await jobs.scan()
    second = await jobs.scan()
    assert first["escalated"] == 1 and second == {"warned": 0, "escalated": 0, "escalated_manager": 0}
    assert len(await _notifications(desk["lead"], "service.sla_escalation")) == 1
    assert len(await _notifications(desk["seller"], "service.sla_escalation")) == 1  # the client's manager
    frozen_clock.advance(hours=4)  # another first-response target: up to the lead's manager
    assert (await jobs.scan())["escalated_manager"] == 1
    assert (await jobs.scan())["escalated_manager"] == 0
    assert len(await _notifications(desk["head"], "service.sla_escalation")) == 1
    after = (await crm.get(f"/api/service/tickets/{ticket['id']}", desk["seller"])).json()
    assert after["escalation_level"] == 2 and after["breached_at"] and after["warned_at"]
    assert after["sla"]["breached"]
    events = [
        m["body"]
        for m in (await crm.get(f"/api/service/tickets/{ticket['id']}/messages", desk["seller"])).json()
    ]
    assert sum("SLA" in b for b in events) == 3


async def test_an_inactive_policy_does_not_escalate(crm: Any, frozen_clock: Any, desk: Any) -> None:
    ticket = await _ticket(crm, desk)
    r = await crm.patch(
        f"/api/service/sla-policies/{desk['policy']['id']}", desk["admin"], json={"active": False}
    )
    assert r.status_code == 200, r.text
    frozen_clock.advance(days=3)
    assert await jobs.scan() == {"warned": 0, "escalated": 0, "escalated_manager": 0}
    after = (await crm.get(f"/api/service/tickets/{ticket['id']}", desk["seller"])).json()
    assert after["escalation_level"] == 0 and after["breached_at"] is None


async def test_a_paused_ticket_does_not_escalate(crm: Any, frozen_clock: Any, desk: Any) -> None:
    ticket = await _ticket(crm, desk)
    await post(crm, f"/api/service/tickets/{ticket['id']}/status", desk["admin"], {"status": "waiting"}, 200)
    frozen_clock.advance(days=3)
    assert await jobs.scan() == {"warned": 0, "escalated": 0, "escalated_manager": 0}


async def test_absent_assignee_goes_to_the_substitute(crm: Any, frozen_clock: Any, desk: Any) -> None:
    now = frozen_clock()
    r = await crm.post(
        "/api/substitutions",
        desk["admin"],
        json={
            "absent_user_id": desk["agent1"]["id"],
            "substitute_id": desk["agent2"]["id"],
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(days=5)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    ticket = await _ticket(crm, desk, assignee_id=desk["agent1"]["id"])
    assert ticket["assignee_id"] == desk["agent2"]["id"]
    # Round-robin skips the absent agent too.
    for _ in range(3):
        auto = await _ticket(crm, desk)
        assert auto["assignee_id"] in (desk["agent2"]["id"], desk["head"]["id"])
    handed = await post(
        crm,
        f"/api/service/tickets/{ticket['id']}/assign",
        desk["admin"],
        {"user_id": desk["head"]["id"], "comment": "needs a senior"},
        200,
    )
    assert handed["assignee_id"] == desk["head"]["id"]
    log = (await crm.get(f"/api/service/tickets/{ticket['id']}/messages", desk["admin"])).json()
    assert "needs a senior" in log[-1]["body"]


async def test_round_robin_and_least_loaded(crm: Any, frozen_clock: Any, desk: Any) -> None:
    agents = sorted([desk["head"]["id"], desk["agent1"]["id"], desk["agent2"]["id"]])
    got = [(await _ticket(crm, desk))["assignee_id"] for _ in range(4)]
    assert got == [*agents, agents[0]]
    await crm.patch(
        f"/api/service/queues/{desk['queue']['id']}", desk["admin"], json={"assignment": "least_loaded"}
    )
    # agents[0] has two open tickets, the others one: the next goes to agents[1].
    assert (await _ticket(crm, desk))["assignee_id"] == agents[1]


async def test_no_agreement_gets_the_default_policy_and_an_agreement_its_own(
    crm: Any, frozen_clock: Any, desk: Any
) -> None:
    gold = await post(
        crm,
        "/api/service/sla-policies",
        desk["admin"],
        {"name": "Gold", "first_response_hours": "1", "resolution_hours": "4"},
    )
    other = await _ticket(crm, desk, party_id=desk["other_party"]["id"], user="other_seller")
    assert other["policy_id"] == desk["policy"]["id"] and other["agreement_id"] is None
    agreement = await post(
        crm,
        "/api/service/agreements",
        desk["admin"],
        {
            "party_id": desk["party"]["id"],
            "policy_id": gold["id"],
            "valid_from": (frozen_clock() - timedelta(days=1)).isoformat(),
            "valid_until": (frozen_clock() + timedelta(days=10)).isoformat(),
        },
    )
    mine = await _ticket(crm, desk)
    assert mine["policy_id"] == gold["id"] and mine["agreement_id"] == agreement["id"]
    assert _at(mine["first_response_due"]) == frozen_clock() + timedelta(hours=1)
    expiring = (await crm.get("/api/service/agreements/expiring", desk["seller"])).json()
    assert [a["id"] for a in expiring] == [agreement["id"]]
    assert (await crm.get("/api/service/agreements/expiring", desk["other_seller"])).json() == []
    # Expired: back to the default policy.
    frozen_clock.advance(days=11)
    assert (await _ticket(crm, desk))["policy_id"] == desk["policy"]["id"]


async def test_own_scope_manager_does_not_see_another_clients_tickets(
    crm: Any, frozen_clock: Any, desk: Any
) -> None:
    ticket = await _ticket(crm, desk, queue_id=None)
    assert ticket["assignee_id"] == desk["seller"]["id"]
    assert (await crm.get(f"/api/service/tickets/{ticket['id']}", desk["other_seller"])).status_code == 404
    listed = (await crm.get("/api/service/tickets", desk["other_seller"])).json()
    assert listed["items"] == []
    assert (await crm.get("/api/service/tickets/count", desk["seller"])).json()["count"] == 1
    r = await crm.post(
        "/api/service/tickets",
        desk["other_seller"],
        json={"party_id": desk["party"]["id"], "subject": "sneaky"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "party_id"
    # The client's manager follows a ticket an agent of the queue holds, and only reads it.
    queued = await _ticket(crm, desk)
    assert queued["assignee_id"] != desk["seller"]["id"]
    assert (await crm.get(f"/api/service/tickets/{queued['id']}", desk["seller"])).status_code == 200
    r = await crm.post(f"/api/service/tickets/{queued['id']}/messages", desk["seller"], json={"body": "hi"})
    assert r.status_code == 403


async def test_create_is_idempotent_with_a_key(crm: Any, frozen_clock: Any, desk: Any) -> None:
    body = {"party_id": desk["party"]["id"], "subject": "Once", "queue_id": desk["queue"]["id"]}
    headers = {"Idempotency-Key": "ticket-1"}
    first = await crm.post("/api/service/tickets", desk["seller"], json=body, headers=headers)
    again = await crm.post("/api/service/tickets", desk["seller"], json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert (await crm.get("/api/service/tickets/count", desk["admin"])).json()["count"] == 1


async def test_sla_report_counts_what_the_caller_may_read(crm: Any, frozen_clock: Any, desk: Any) -> None:
    on_time = await _ticket(crm, desk)
    late = await _ticket(crm, desk, priority="p1")
    frozen_clock.advance(hours=1)
    await post(crm, f"/api/service/tickets/{on_time['id']}/messages", desk["admin"], {"body": "on it"})
    frozen_clock.advance(hours=5)
    await post(crm, f"/api/service/tickets/{late['id']}/messages", desk["admin"], {"body": "sorry"})
    closed = await post(
        crm, f"/api/service/tickets/{on_time['id']}/status", desk["admin"], {"status": "closed"}, 200
    )
    r = await crm.client.post(closed["survey_link"], data={"score": "5"})
    assert r.status_code == 200
    params = {"date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": "priority"}
    rows = (await crm.get("/api/service/reports/sla", desk["head"], params=params)).json()
    assert rows == [
        {
            "group": "p1",
            "tickets": 2,
            "first_response_met": 1,
            "first_response_breached": 1,
            "resolution_met": 1,
            "resolution_breached": 0,
            "attainment": 0.6667,
            "median_first_response_hours": 3.5,
            "median_resolution_hours": 6.0,
            "reopened": 0,
            "reopen_rate": 0.0,
            "csat_answers": 1,
            "csat_average": 5.0,
        }
    ]
    assert (await crm.get("/api/service/reports/sla", desk["other_seller"], params=params)).json() == []
    csv_text = (await crm.get("/api/service/reports/sla/export", desk["head"], params=params)).text
    assert csv_text.splitlines()[0].startswith("group,tickets,") and csv_text.splitlines()[1].startswith(
        "p1,2,"
    )


async def test_a_key_clients_ticket_gets_the_policy_of_its_abc_class(
    crm: Any, frozen_clock: Any, desk: Any
) -> None:
    """The marketing plugin keeps ``custom.abc_class`` on each party; service reads it without
    importing marketing. A class-A default policy beats the general one for class-A clients
    only, and an unknown class is refused when the policy is saved."""
    from tessera.entities.tables import Party

    frozen_clock.set(datetime(2026, 3, 10, 10, 0, tzinfo=UTC))
    key = await post(
        crm,
        "/api/service/sla-policies",
        desk["admin"],
        {
            "name": "Key clients",
            "client_class": "A",
            "is_default": True,
            "first_response_hours": "0.5",
            "resolution_hours": "2",
        },
    )
    assert key["client_class"] == "A"
    await Party.update({Party.custom: {"abc_class": "A"}}).where(Party.id == desk["party"]["id"])
    mine = await _ticket(crm, desk)
    assert mine["policy_id"] == key["id"]
    assert _at(mine["first_response_due"]) == frozen_clock() + timedelta(minutes=30)
    # A class-B client (and one without a class) keeps the general default policy.
    await Party.update({Party.custom: {"abc_class": "B"}}).where(Party.id == desk["other_party"]["id"])
    other = await _ticket(crm, desk, party_id=desk["other_party"]["id"], user="other_seller")
    assert other["policy_id"] == desk["policy"]["id"]
    r = await crm.post(
        "/api/service/sla-policies",
        desk["admin"],
        json={"name": "Bad", "client_class": "D", "first_response_hours": "1", "resolution_hours": "2"},
    )
    assert r.status_code in (400, 422) and "client_class" in r.text
