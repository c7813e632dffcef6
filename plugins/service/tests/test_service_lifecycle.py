"""The ticket's life cycle runs as the workflow process ``service.ticket`` shipped by the plugin
(issue 17.1): every status move moves the process, each stage gives the agent a task with the
stage's norm, a hand-off reassigns the stage, a stage over its norm is a deviation of the
engine, and reopening a closed ticket starts a new run. Clock-controlled, both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from service_helpers import post
from tessera.entities.tables import Task
from tessera.workflow.tables import WorkflowInstance

pytestmark = pytest.mark.plugins("service")

TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


async def _process(ticket_id: int) -> dict[str, Any]:
    from tessera_service.tables import Ticket

    row = await Ticket.select(Ticket.process_id).where(Ticket.id == ticket_id).first()
    assert row and row["process_id"], "the ticket has no process"
    instance = await WorkflowInstance.select().where(WorkflowInstance.id == row["process_id"]).first()
    assert instance
    return instance


async def _open_tasks(process_id: int) -> list[dict[str, Any]]:
    return await Task.select(Task.id, Task.assignee_id, Task.status).where(
        Task.source == f"workflow:{process_id}", Task.status.is_in(["open", "in_progress"])
    )


async def test_status_moves_drive_the_process_its_tasks_and_deviations(
    crm: Any, frozen_clock: Any, desk: Any
) -> None:
    frozen_clock.set(TUESDAY_10)
    ticket = await post(
        crm,
        "/api/service/tickets",
        desk["seller"],
        {"party_id": desk["party"]["id"], "subject": "Lost order", "queue_id": desk["queue"]["id"]},
    )
    agent = ticket["assignee_id"]
    first = await _process(ticket["id"])
    assert first["template_key"] == "service.ticket" and first["current_stage"] == "new"
    assert first["responsible_id"] == agent and first["subject_entity"] == "service.ticket"
    assert [t["assignee_id"] for t in await _open_tasks(first["id"])] == [agent]

    url = f"/api/service/tickets/{ticket['id']}"
    await post(crm, f"{url}/status", desk["admin"], {"status": "in_progress"}, 200)
    moved = await _process(ticket["id"])
    assert moved["current_stage"] == "in_progress" and len(await _open_tasks(first["id"])) == 1

    # Handing the ticket on hands its stage (and the stage's task) on.
    other = desk["agent2"]["id"] if agent != desk["agent2"]["id"] else desk["agent1"]["id"]
    await post(crm, f"{url}/assign", desk["admin"], {"user_id": other, "comment": "Your area"}, 200)
    handed = await _process(ticket["id"])
    assert handed["responsible_id"] == other
    assert [t["assignee_id"] for t in await _open_tasks(first["id"])] == [other]

    # Over the stage's norm (16 business hours in progress): the engine lists the deviation.
    frozen_clock.set(datetime(2026, 3, 12, 12, 0, tzinfo=UTC))
    deviations = (
        await crm.get("/api/workflow/deviations", desk["admin"], params={"template": "service.ticket"})
    ).json()
    assert [d["instance_id"] for d in deviations["items"]] == [first["id"]], deviations

    for status in ("waiting", "resolved", "closed"):
        await post(crm, f"{url}/status", desk["admin"], {"status": status}, 200)
        current = await _process(ticket["id"])
        assert current["current_stage"] == status
    assert current["status"] == "completed" and await _open_tasks(first["id"]) == []

    # Reopening a closed ticket starts a new run at "in progress".
    await post(crm, f"{url}/status", desk["admin"], {"status": "in_progress"}, 200)
    again = await _process(ticket["id"])
    assert again["id"] != first["id"] and again["current_stage"] == "in_progress"
    assert again["status"] == "running" and again["responsible_id"] == other
