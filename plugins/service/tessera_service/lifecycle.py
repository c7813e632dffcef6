"""The ticket's life cycle as a workflow process shipped by the plugin (``service.ticket``):
new -> in progress -> waiting on the client -> resolved -> closed, and reopen.

The ticket's ``status`` stays the record people filter and report on; every move of it also
moves the ticket's process instance (``ticket.process_id``), so the engine gives each stage
its norm, its task for the responsible agent (the hand-off, with acceptance), its controller
(the head of the agent's team) and the deviation scan. A hand-off of the ticket reassigns the
stage. ``closed`` is final: reopening a closed ticket starts a fresh run of the process.

Names are English msgids of the plugin's catalogue (``i18n.shipped_text`` shows them in the
reader's language, as the sales pipelines do).
"""

from __future__ import annotations

from typing import Any

from tessera import i18n
from tessera.entities import service
from tessera.i18n import N_
from tessera.workflow import engine
from tessera.workflow.tables import WorkflowInstance

from tessera_service.tables import Ticket

TEMPLATE_KEY = "service.ticket"
SUBJECT = "service.ticket"
#: The stage's responsible person: the ticket's current assignee (``tessera_workflow_assignee``).
ASSIGNEE_RULE = "service.ticket_assignee"

_AGENT = {"rule": ASSIGNEE_RULE}
_HEAD = {"role": "head", "team": "owner"}


def _stage(key: str, name: str, norm: dict[str, Any], moves: tuple[str, ...]) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "norm": norm,
        "responsible": _AGENT,
        "controller": _HEAD,
        "transitions": [{"to": to} for to in moves],
    }


SHIPPED: list[dict[str, Any]] = [
    {
        "key": TEMPLATE_KEY,
        "name": N_("Ticket life cycle"),
        "description": N_("A customer request or claim from registration to closing"),
        "subject": SUBJECT,
        "stages": [
            _stage("new", N_("New"), {"hours": 4}, ("in_progress", "waiting", "resolved", "closed")),
            _stage("in_progress", N_("In progress"), {"hours": 16}, ("waiting", "resolved", "closed")),
            _stage(
                "waiting",
                N_("Waiting on the client"),
                {"days": 5, "calendar": "calendar"},
                ("in_progress", "resolved", "closed"),
            ),
            _stage(
                "resolved", N_("Resolved"), {"days": 3, "calendar": "calendar"}, ("closed", "in_progress")
            ),
            {"key": "closed", "name": N_("Closed"), "final": True},
        ],
    }
]


def _shipped_names() -> set[str]:
    names = {t["name"] for t in SHIPPED} | {t["description"] for t in SHIPPED}
    for template in SHIPPED:
        names.update(stage["name"] for stage in template["stages"])
    return names


i18n.register_shipped_texts(_shipped_names(), {})


async def assignee_of(instance: dict[str, Any]) -> int | None:
    """The responsible person of a ticket's stage: its assignee now."""
    if instance.get("subject_entity") != SUBJECT or instance.get("subject_id") is None:
        return None
    row = await Ticket.select(Ticket.assignee_id).where(Ticket.id == instance["subject_id"]).first()
    return row["assignee_id"] if row else None


def _person(ticket: dict[str, Any], actor_id: int | None) -> int | None:
    """Who the engine acts for (author of stage tasks): the person who moved the ticket, or
    its assignee when the system did (an e-mail, the demo loader: user id 0)."""
    return actor_id or ticket.get("assignee_id") or None


async def start(ticket: dict[str, Any], actor_id: int | None) -> int | None:
    """A run of the life cycle for ``ticket`` (at ``new``); its id is kept on the ticket. A
    ticket nobody holds yet (an e-mail to a queue without agents) gets its run when a person
    first moves it."""
    actor_id = _person(ticket, actor_id)
    if actor_id is None:
        return None
    instance = await engine.start(
        engine.engine_principal(actor_id),
        service.plugin_manager(),
        TEMPLATE_KEY,
        subject_entity=SUBJECT,
        subject_id=ticket["id"],
        party_id=ticket["party_id"],
        owner_id=ticket.get("assignee_id") or actor_id,
        title=f"{ticket['number']} {ticket['subject']}"[:300],
    )
    await Ticket.update({Ticket.process_id: instance["id"]}).where(Ticket.id == ticket["id"])
    ticket["process_id"] = instance["id"]
    return int(instance["id"])


async def _running(ticket: dict[str, Any]) -> dict[str, Any] | None:
    if not ticket.get("process_id"):
        return None
    return (
        await WorkflowInstance.select(
            WorkflowInstance.id, WorkflowInstance.current_stage, WorkflowInstance.responsible_id
        )
        .where(WorkflowInstance.id == ticket["process_id"], WorkflowInstance.status == "running")
        .first()
    )


async def follow(ticket: dict[str, Any], to: str, actor_id: int | None, comment: str = "") -> None:
    """Move the ticket's process to the stage of its new status ``to`` (in the caller's
    transaction). Reopening a closed ticket starts a new run; a ticket from before the process
    existed gets one on its first move."""
    instance = await _running(ticket)
    if instance is None:
        if to == "closed" or await start(ticket, actor_id) is None:
            return
        instance = {"id": ticket["process_id"], "current_stage": "new"}
    if instance["current_stage"] == to:
        return
    await engine.advance(
        engine.engine_principal(_person(ticket, actor_id) or 0),
        service.plugin_manager(),
        instance["id"],
        to=to,
        comment=comment,
    )


async def hand_off(ticket: dict[str, Any], user_id: int, actor_id: int | None, comment: str = "") -> None:
    """The ticket went to ``user_id``: so does its current stage (and the stage's task)."""
    instance = await _running(ticket)
    if instance is not None and instance["responsible_id"] != user_id:
        await engine.reassign(
            engine.engine_principal(_person(ticket, actor_id) or user_id), instance["id"], user_id, comment
        )
