"""SLA arithmetic: which policy a ticket gets, its due times in business hours of the right
calendar, and how a pause (waiting on the client) shifts them.

The calendar is the kernel's business calendar (``tessera.workflow.business_time``): working
hours, weekdays, time zone and public holidays. A ticket uses its agreement's calendar when
the agreement has one (the client's own holidays), else its queue's, else 9:00-18:00 Mon-Fri UTC.

Pauses are kept in business seconds: on resume the paused working time is added to every
pending due time with the same calendar, so a ticket paused Monday 10:00 and resumed Tuesday
10:00 is due exactly one working day later, and a ticket shown as paused has a clock that does
not run (the scan skips paused tickets).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import customfields
from tessera.entities import service
from tessera.entities.tables import Party
from tessera.workflow.business_time import BusinessCalendar

from tessera_service.tables import Agreement, Queue, SlaPolicy

PRIORITIES = ("p1", "p2", "p3", "p4")
#: ABC classes a policy may be limited to (``custom.abc_class`` of the client).
CLIENT_CLASSES = ("A", "B", "C")


def hours(value: Any) -> dt.timedelta:
    return dt.timedelta(seconds=float(Decimal(str(value or 0))) * 3600)


async def calendar_for(queue_id: int | None, agreement_id: int | None) -> BusinessCalendar:
    if agreement_id is not None:
        row = await Agreement.select(Agreement.calendar).where(Agreement.id == agreement_id).first()
        if row and row["calendar"]:
            return BusinessCalendar.from_json(_json(row["calendar"]))
    if queue_id is not None:
        row = await Queue.select(Queue.calendar).where(Queue.id == queue_id).first()
        if row and row["calendar"]:
            return BusinessCalendar.from_json(_json(row["calendar"]))
    return BusinessCalendar()


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        import json

        return json.loads(value) or {}  # type: ignore[no-any-return]
    return value or {}


def _matches(policy: dict[str, Any], priority: str, category: str, client_class: str = "") -> bool:
    return (
        policy["priority"] in ("", priority)
        and policy["category"] in ("", category)
        and policy["client_class"] in ("", client_class)
    )


def _specificity(policy: dict[str, Any]) -> tuple[int, int, int, int]:
    """A class-specific policy beats a general one, then priority, then category; the
    oldest policy wins a tie."""
    return (
        int(bool(policy["client_class"])),
        int(bool(policy["priority"])),
        int(bool(policy["category"])),
        -policy["id"],
    )


async def choose_policy(
    party_id: int, priority: str, category: str, now: dt.datetime
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(policy, agreement): the policy of the client's valid agreement that fits the ticket's
    priority, category and the client's ABC class (the most specific one), else the most
    specific active default policy that fits, else none. Inactive policies are never chosen."""
    agreements = await Agreement.select().where(
        Agreement.party_id == party_id,
        Agreement.valid_from <= now,
        (Agreement.valid_until.is_null()) | (Agreement.valid_until > now),
    )
    policies = {
        p["id"]: p
        for p in await SlaPolicy.select().where(SlaPolicy.active == True)  # noqa: E712
    }
    client_class = await party_class(party_id) if any(p["client_class"] for p in policies.values()) else ""
    fitting = [
        (policies[a["policy_id"]], a)
        for a in agreements
        if a["policy_id"] in policies and _matches(policies[a["policy_id"]], priority, category, client_class)
    ]
    if fitting:
        policy, agreement = max(fitting, key=lambda pa: _specificity(pa[0]))
        return policy, agreement
    defaults = [
        p for p in policies.values() if p["is_default"] and _matches(p, priority, category, client_class)
    ]
    if defaults:
        return max(defaults, key=_specificity), None
    return None, None


async def party_class(party_id: int) -> str:
    """The client's ABC class from its custom field ``abc_class`` (the marketing plugin keeps
    it, as a read-only field the kernel fills in; no import of marketing), "" when it has none."""
    query = Party.select(Party.id, Party.custom).where(Party.id == party_id)
    row = await query.first().output(load_json=True)
    if row is None:
        return ""
    await customfields.with_plugin_values(service.plugin_manager(), "party", [row])
    value = (row.get("custom") or {}).get("abc_class")
    return value if value in CLIENT_CLASSES else ""


def initial_state(
    policy: dict[str, Any] | None, calendar: BusinessCalendar, start: dt.datetime
) -> dict[str, Any]:
    """Due times of a ticket opened at ``start``."""
    if policy is None:
        return {"first_response_due": None, "resolution_due": None, "warn_due": None}
    share = Decimal(str(policy["warn_share"] or "0.8"))
    return {
        "first_response_due": calendar.add(start, hours(policy["first_response_hours"])),
        "resolution_due": calendar.add(start, hours(policy["resolution_hours"])),
        "warn_due": calendar.add(start, hours(policy["first_response_hours"]) * float(share)),
    }


def resolution_warn_due(
    policy: dict[str, Any], calendar: BusinessCalendar, created_at: dt.datetime, paused: int
) -> dt.datetime:
    """The warning point of the resolution target (once the first response is in), pauses
    counted."""
    share = Decimal(str(policy["warn_share"] or "0.8"))
    moment = calendar.add(created_at, hours(policy["resolution_hours"]) * float(share))
    return calendar.add(moment, dt.timedelta(seconds=paused)) if paused else moment


def shifted(ticket: dict[str, Any], calendar: BusinessCalendar, now: dt.datetime) -> dict[str, Any]:
    """The changes that end a pause at ``now``: the paused working time is added to every due
    time still pending."""
    since = ticket["paused_since"]
    if since is None:
        return {}
    paused = calendar.between(since, now)
    changes: dict[str, Any] = {
        "paused_since": None,
        "paused_total": int(ticket["paused_total"] or 0) + int(paused.total_seconds()),
    }
    for key in ("first_response_due", "resolution_due", "warn_due", "next_escalation_at"):
        if key == "first_response_due" and ticket["first_responded_at"] is not None:
            continue
        if ticket.get(key) is not None and paused:
            changes[key] = calendar.add(ticket[key], paused)
    return changes
