"""Lead handling as a workflow process shipped by the plugin (``marketing.lead``): new ->
contacted -> qualified / disqualified.

A lead from a web form that has an assignee starts a run in the same transaction that records
it, so the engine gives the ``new`` stage its norm (4 business hours), a task for the assignee,
a controller (the head of the assignee's team) and the deviation scan: a lead nobody touches
within its norm is a ``stage_overdue`` deviation, the assignee is notified and the controller
gets the escalation (``workflow.escalation``). Changing the lead's status moves the run (a final
status completes it), handing the lead to another person reassigns the stage. Admins change the
norms as they change any process template (a new version).
"""

from __future__ import annotations

from typing import Any

from tessera import i18n
from tessera.entities import service
from tessera.i18n import N_
from tessera.workflow import engine
from tessera.workflow.tables import WorkflowInstance

from tessera_marketing.tables import Lead

TEMPLATE_KEY = "marketing.lead"
SUBJECT = "marketing.lead"
ASSIGNEE_RULE = "marketing.lead_assignee"
_ASSIGNEE = {"rule": ASSIGNEE_RULE}
_HEAD = {"role": "head", "team": "owner"}

SHIPPED: list[dict[str, Any]] = [
    {
        "key": TEMPLATE_KEY,
        "name": N_("Lead handling"),
        "description": N_("A lead from a web form: first contact within the norm, then qualification"),
        "subject": SUBJECT,
        "stages": [
            {
                "key": "new",
                "name": N_("New lead"),
                "norm": {"hours": 4},
                "responsible": _ASSIGNEE,
                "controller": _HEAD,
                "transitions": [{"to": "contacted"}, {"to": "qualified"}, {"to": "disqualified"}],
            },
            {
                "key": "contacted",
                "name": N_("Contacted"),
                "norm": {"days": 3},
                "responsible": _ASSIGNEE,
                "controller": _HEAD,
                "transitions": [{"to": "qualified"}, {"to": "disqualified"}],
            },
            {"key": "qualified", "name": N_("Qualified"), "final": True},
            {"key": "disqualified", "name": N_("Disqualified"), "final": True},
        ],
    }
]

i18n.register_shipped_texts(
    {t["name"] for t in SHIPPED}
    | {t["description"] for t in SHIPPED}
    | {s["name"] for t in SHIPPED for s in t["stages"]},
    {},
)


async def assignee_of(instance: dict[str, Any]) -> int | None:
    """The responsible person of a lead's stage: its assignee now."""
    if instance.get("subject_entity") != SUBJECT or instance.get("subject_id") is None:
        return None
    row = await Lead.select(Lead.assignee_id).where(Lead.id == instance["subject_id"]).first()
    return row["assignee_id"] if row else None


async def _running(lead_id: int) -> dict[str, Any] | None:
    return (
        await WorkflowInstance.select(
            WorkflowInstance.id, WorkflowInstance.current_stage, WorkflowInstance.responsible_id
        )
        .where(
            WorkflowInstance.subject_entity == SUBJECT,
            WorkflowInstance.subject_id == lead_id,
            WorkflowInstance.status == "running",
        )
        .first()
    )


async def start(lead: dict[str, Any]) -> int | None:
    """A run for a new form lead with an assignee (in the caller's transaction)."""
    if lead.get("source") != "form" or not lead.get("assignee_id") or lead.get("status") != "new":
        return None
    instance = await engine.start(
        engine.engine_principal(lead["assignee_id"]),
        service.plugin_manager(),
        TEMPLATE_KEY,
        subject_entity=SUBJECT,
        subject_id=lead["id"],
        party_id=lead["party_id"],
        owner_id=lead["assignee_id"],
        title=f"Lead #{lead['id']}",
    )
    return int(instance["id"])


async def follow(lead: dict[str, Any], existing: dict[str, Any], actor_id: int | None) -> None:
    """The lead changed: its run moves to the new status, or goes to the new assignee."""
    instance = await _running(lead["id"])
    if instance is None:
        if existing.get("assignee_id") is None and lead.get("assignee_id") and lead.get("status") == "new":
            await start(lead)  # a team-list lead someone took
        return
    who = actor_id or lead.get("assignee_id") or 0
    if lead.get("assignee_id") and lead["assignee_id"] != instance["responsible_id"]:
        await engine.reassign(engine.engine_principal(who), instance["id"], lead["assignee_id"])
    if lead["status"] != instance["current_stage"] and lead["status"] in (
        "contacted",
        "qualified",
        "disqualified",
    ):
        await engine.advance(
            engine.engine_principal(who), service.plugin_manager(), instance["id"], to=lead["status"]
        )


async def after_write(
    principal: Any, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    """``LEAD.after_write``: start the run of a new form lead, follow a changed one."""
    if existing is None:
        await start(row)
    elif row.get("status") != existing.get("status") or row.get("assignee_id") != existing.get("assignee_id"):
        await follow(row, existing, principal.user_id or None)
