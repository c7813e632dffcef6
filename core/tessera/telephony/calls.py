"""Calls: what a PBX reports, whichever way it arrives (the AMI link in ``tessera worker``, or
``POST /api/telephony/events`` from a cloud PBX), becomes the same records here:

* ``ringing`` — the call is stored once (``telephony_call``, unique ``call_id``), the caller is
  found by number in any formatting (``8 (495) 123-45-67`` finds ``+74951234567``: both sides
  are E.164, see ``tessera.entities.channels``) and the user whose extension rings gets a
  pop-up on their pages (``telephony_popup``, read by ``GET /api/telephony/stream``);
* ``answered`` — marks it answered;
* ``ended`` — a ``call`` activity on the party's card (direction, duration, answered or
  missed, recording link) and, for a missed incoming call, a call-back task.

Every step is idempotent: an event seen twice (a reconnection, a retried webhook) changes
nothing the second time. See docs/integrations.md, "Telephony".
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from tessera import clock, db, events, i18n
from tessera.config import Settings, Telephony
from tessera.entities.channels import normalise_phone
from tessera.entities.tables import (
    Activity,
    CrmUser,
    Party,
    Task,
    TelephonyCall,
    TelephonyExtension,
    TelephonyPopup,
)
from tessera.i18n import N_
from tessera.permissions import Principal, build_principal

log = logging.getLogger("tessera.telephony")

EventKind = Literal["ringing", "answered", "ended"]
KINDS: tuple[str, ...] = ("ringing", "answered", "ended")
#: Open tasks listed in a pop-up at most.
POPUP_TASKS = 5


@dataclass
class CallEvent:
    """One step of a call, as the AMI translator or the webhook hands it over."""

    kind: EventKind
    #: The PBX's id of the whole call (Asterisk: Linkedid).
    call_id: str
    #: ``in`` (a customer calls) or ``out`` (a user calls a customer).
    direction: str = "in"
    #: The customer's number, in any formatting.
    number: str = ""
    #: The user's extension that rings (in) or dials (out); may come with a later event.
    extension: str = ""
    at: datetime | None = None
    recording_url: str = ""
    source: str = "ami"
    #: Set on ``ended`` when the PBX knows better than our clock (seconds of talk).
    talk_seconds: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _system(user_id: int | None) -> Principal:
    """The kernel recording a call on a user's behalf (the activity and task are theirs)."""
    return Principal(
        user_id=user_id,  # type: ignore[arg-type]  # None: records without owner
        name="telephony",
        email="",
        permissions=frozenset({"*"}),
        scope="all",
        user_ids=None,
    )


def e164(number: str, region: str = "RU") -> str:
    """The number in E.164, or "" when it is not a phone number (an anonymous caller)."""
    try:
        return normalise_phone(number, region)
    except ValueError:
        return ""


async def find_caller(number_e164: str) -> tuple[int | None, int | None]:
    """(party id, contact id) of the party or contact with this phone number; a party's own
    number wins over a contact's, the most recently changed party over older ones. Uses the
    ``contact_index`` words (E.164 digits): a GIN index on PostgreSQL, a scan on SQLite."""
    if not number_e164:
        return None, None
    digits = number_e164.lstrip("+")
    if db.is_postgres():
        cond = "string_to_array(contact_index, ' ') @> ARRAY[{}]::text[]"
        arg: Any = digits
    else:
        cond = "(' ' || contact_index || ' ') LIKE {}"
        arg = f"% {digits} %"
    for row in await db.raw(
        f"SELECT id, phones FROM party WHERE {cond} ORDER BY updated_at DESC, id DESC LIMIT 20", arg
    ):
        if _has_number(row["phones"], number_e164):
            return int(row["id"]), None
    for row in await db.raw(
        f"SELECT id, party_id, phones FROM contact WHERE {cond} ORDER BY updated_at DESC, id DESC LIMIT 20",
        arg,
    ):
        if row["party_id"] and _has_number(row["phones"], number_e164):
            return int(row["party_id"]), int(row["id"])
    return None, None


def _has_number(phones: Any, number_e164: str) -> bool:
    values = json.loads(phones) if isinstance(phones, str) else phones or []
    return any(str(p.get("number", "")) == number_e164 for p in values if isinstance(p, dict))


async def user_of_extension(extension: str) -> int | None:
    if not extension:
        return None
    row = (
        await TelephonyExtension.select(TelephonyExtension.user_id)
        .where(TelephonyExtension.extension == extension)
        .first()
    )
    return int(row["user_id"]) if row else None


async def extension_of(user_id: int) -> str:
    row = (
        await TelephonyExtension.select(TelephonyExtension.extension)
        .where(TelephonyExtension.user_id == user_id)
        .first()
    )
    return str(row["extension"]) if row else ""


async def set_extension(user_id: int, extension: str) -> None:
    """Give ``user_id`` this extension (empty: none). Another user's extension is refused by
    the unique constraint; the caller checks first for a readable error."""
    async with db.transaction():
        await TelephonyExtension.delete().where(TelephonyExtension.user_id == user_id)
        if extension:
            await TelephonyExtension.insert(
                TelephonyExtension(user_id=user_id, extension=extension, updated_at=clock.now())
            )


# --------------------------------------------------------------------------- the pop-up


async def popup_payload(call: dict[str, Any], user_id: int) -> dict[str, Any]:
    """What the user's page shows for a ringing call, in the user's language and limited to
    what they may see: the party (or the bare number), its open tasks, and what plugins add
    through ``tessera_caller_facts`` (open deals, tickets, overdue balance ...)."""
    from tessera.entities import service
    from tessera.entities.parties import PARTY
    from tessera.entities.tasks import OPEN_STATUSES, task_visibility
    from tessera.plugins import call_each_async

    user = await CrmUser.select(CrmUser.locale).where(CrmUser.id == user_id).first()
    locale = (user or {}).get("locale") or i18n.default_locale()
    previous = i18n.activate(locale)
    try:
        principal = await build_principal(user_id)
        number = call["number"] or call["number_e164"]
        out: dict[str, Any] = {
            "call_id": call["call_id"],
            "number": number,
            "party": None,
            "tasks": [],
            "facts": [],
            "title": i18n.gettext("Call from %(who)s", who=number or i18n.gettext("unknown number")),
        }
        party_id = call["party_id"]
        if party_id and await service.visible_ids(PARTY, principal, [party_id]):
            party = await Party.select(Party.id, Party.name).where(Party.id == party_id).first()
            if party:
                out["party"] = {
                    "id": party["id"],
                    "name": party["name"],
                    "url": f"/app/parties/{party['id']}",
                }
                out["title"] = i18n.gettext("Call from %(who)s", who=party["name"])
                out["open_card"] = i18n.gettext("open card")
                tasks = (
                    await Task.select(Task.id, Task.title, Task.deadline)
                    .where(
                        Task.party_id == party_id,
                        Task.status.is_in(list(OPEN_STATUSES)),
                        *[c for c in [task_visibility(principal)] if c is not None],
                    )
                    .order_by(Task.deadline)
                    .limit(POPUP_TASKS)
                )
                out["tasks"] = [
                    {
                        "id": t["id"],
                        "title": t["title"],
                        "deadline": t["deadline"].isoformat() if t["deadline"] else None,
                    }
                    for t in tasks
                ]
                out["tasks_label"] = i18n.gettext("Open tasks")
                pm = service.plugin_manager()
                for plugin, result in await call_each_async(
                    pm, "tessera_caller_facts", party_id=party_id, principal=principal
                ):
                    for fact in result or []:
                        if not isinstance(fact, dict) or "label" not in fact:
                            log.warning("plugin %s: a caller fact is a dict with a 'label'", plugin)
                            continue
                        href = str(fact.get("href") or "")
                        out["facts"].append(
                            {
                                "label": str(fact["label"]),
                                "value": "" if fact.get("value") is None else str(fact["value"]),
                                # A path of this site only: never another site, never javascript:.
                                "href": href if href.startswith("/") and not href.startswith("//") else "",
                            }
                        )
        return out
    finally:
        i18n.activate(previous)


async def _pop_up(call: dict[str, Any], user_id: int) -> None:
    """Queue the pop-up of ``call`` for ``user_id`` once (a second ring of the same call for
    the same user adds nothing)."""
    seen = await TelephonyPopup.exists().where(
        TelephonyPopup.call_id == call["call_id"], TelephonyPopup.user_id == user_id
    )
    if seen:
        return
    payload = await popup_payload(call, user_id)
    await TelephonyPopup.insert(
        TelephonyPopup(user_id=user_id, call_id=call["call_id"], payload=payload, created_at=clock.now())
    )


async def popups_after(user_id: int, last_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The user's pop-ups after ``last_id`` (the event stream's ``Last-Event-ID``), oldest first,
    of the last ten minutes (a page opened later does not pop up calls long over)."""
    since = clock.now() - timedelta(minutes=10)
    rows = (
        await TelephonyPopup.select(TelephonyPopup.id, TelephonyPopup.payload)
        .where(
            TelephonyPopup.user_id == user_id,
            TelephonyPopup.id > last_id,
            TelephonyPopup.created_at >= since,
        )
        .order_by(TelephonyPopup.id)
        .limit(limit)
        .output(load_json=True)
    )
    return list(rows)


async def last_popup_id(user_id: int) -> int:
    row = (
        await TelephonyPopup.select(TelephonyPopup.id)
        .where(TelephonyPopup.user_id == user_id)
        .order_by(TelephonyPopup.id, ascending=False)
        .first()
    )
    return int(row["id"]) if row else 0


# --------------------------------------------------------------------------- processing


async def _call(call_id: str) -> dict[str, Any] | None:
    return await TelephonyCall.select().where(TelephonyCall.call_id == call_id).first()  # type: ignore[no-any-return]


async def _ensure(event: CallEvent, conf: Telephony) -> dict[str, Any]:
    """The call's row, created from ``event`` when it is the first we hear of it."""
    now = event.at or clock.now()
    number_e164 = e164(event.number, conf.region) if event.number else ""
    party_id, contact_id = await find_caller(number_e164)
    user_id = await user_of_extension(event.extension)
    await TelephonyCall.insert(
        TelephonyCall(
            call_id=event.call_id,
            direction=event.direction if event.direction in ("in", "out") else "in",
            number=event.number[:100],
            number_e164=number_e164,
            extension=event.extension[:50],
            user_id=user_id,
            party_id=party_id,
            contact_id=contact_id,
            status="ringing",
            started_at=now,
            source=event.source,
        )
    ).on_conflict(target=TelephonyCall.call_id, action="DO NOTHING")
    row = await _call(event.call_id)
    assert row is not None
    return row


async def handle(event: CallEvent, settings: Settings | None) -> dict[str, Any]:
    """Apply one call event; returns the call's row afterwards. Idempotent."""
    if event.kind not in KINDS:
        raise ValueError(f"unknown call event {event.kind!r}")
    conf = settings.telephony if settings is not None else Telephony()
    async with events.unit_of_work():
        call = await _ensure(event, conf)
        if event.extension and event.extension != call["extension"] and call["ended_at"] is None:
            user_id = await user_of_extension(event.extension)
            await TelephonyCall.update(
                {TelephonyCall.extension: event.extension[:50], TelephonyCall.user_id: user_id}
            ).where(TelephonyCall.id == call["id"])
            call = {**call, "extension": event.extension, "user_id": user_id}
        if event.recording_url and not call["recording_url"]:
            await TelephonyCall.update({TelephonyCall.recording_url: event.recording_url[:2000]}).where(
                TelephonyCall.id == call["id"]
            )
            call["recording_url"] = event.recording_url
        if event.kind == "ringing":
            if call["direction"] == "in" and call["user_id"] and call["status"] == "ringing":
                await _pop_up(call, call["user_id"])
        elif event.kind == "answered":
            await TelephonyCall.update(
                {TelephonyCall.status: "answered", TelephonyCall.answered_at: event.at or clock.now()}
            ).where(TelephonyCall.id == call["id"], TelephonyCall.answered_at.is_null())
        else:
            await _end(call["id"], event, conf)
        row = await TelephonyCall.select().where(TelephonyCall.id == call["id"]).first()
    assert row is not None
    return row  # type: ignore[no-any-return]


async def _end(row_id: int, event: CallEvent, conf: Telephony) -> None:
    """Close the call once: its activity and, when an incoming call was missed, the task."""
    from tessera.entities import service
    from tessera.entities.activities import ACTIVITY
    from tessera.entities.tasks import TASK

    ended_at = event.at or clock.now()
    closed = (
        await TelephonyCall.update({TelephonyCall.ended_at: ended_at})
        .where(TelephonyCall.id == row_id, TelephonyCall.ended_at.is_null())
        .returning(*TelephonyCall.all_columns())
    )
    if not closed:
        return  # ended before: nothing more to do
    call = closed[0]
    answered = call["answered_at"] is not None
    status = "completed" if answered else "missed"
    if event.talk_seconds is not None:
        seconds = max(0, int(event.talk_seconds))
    elif answered:
        seconds = max(0, int((ended_at - call["answered_at"]).total_seconds()))
    else:
        seconds = 0
    owner = call["user_id"]
    if owner is None and call["party_id"]:
        party = await Party.select(Party.owner_id).where(Party.id == call["party_id"]).first()
        owner = party["owner_id"] if party else None
    who = call["number"] or call["number_e164"] or N_("unknown number")
    if call["direction"] == "out":
        subject = N_("Outgoing call to %(number)s")
    elif answered:
        subject = N_("Incoming call from %(number)s")
    else:
        subject = N_("Missed call from %(number)s")
    # Stored in the deployment's language: the activity is a record, read by everyone.
    subject_text = i18n.gettext_for(i18n.default_locale(), subject, number=who)
    principal = _system(owner)
    activity = await service.create(
        ACTIVITY,
        principal,
        {
            "type": "call",
            "status": "done",
            "direction": call["direction"],
            "subject": subject_text[:500],
            "party_id": call["party_id"],
            "contact_id": call["contact_id"],
            "owner_id": owner,
            "starts_at": call["started_at"],
            "duration_minutes": math.ceil(seconds / 60) if answered else 0,
            "outcome": "answered" if answered else "missed",
        },
    )
    custom = activity.get("custom") or {}
    if isinstance(custom, str):
        custom = json.loads(custom)
    await Activity.update(
        {
            Activity.custom: {
                **custom,
                "call_id": call["call_id"],
                "call_answered": answered,
                "call_seconds": seconds,
                "call_number": call["number_e164"] or call["number"],
                "call_extension": call["extension"],
                "recording_url": call["recording_url"],
            }
        }
    ).where(Activity.id == activity["id"])
    task_id = None
    if not answered and call["direction"] == "in" and owner is not None:
        name = None
        if call["party_id"]:
            party = await Party.select(Party.name).where(Party.id == call["party_id"]).first()
            name = party["name"] if party else None
        title = i18n.gettext_for(
            i18n.default_locale(), N_("Call back %(who)s"), who=f"{name} ({who})" if name else who
        )
        task = await service.create(
            TASK,
            principal,
            {
                "title": title[:500],
                "description": i18n.gettext_for(
                    i18n.default_locale(), N_("Missed call from %(number)s"), number=who
                ),
                "party_id": call["party_id"],
                "assignee_id": owner,
                "deadline": ended_at + timedelta(hours=conf.callback_hours),
                "priority": "high",
            },
        )
        task_id = task["id"]
        await Task.update({Task.source: f"telephony:{call['call_id']}"[:100]}).where(Task.id == task_id)
    await TelephonyCall.update(
        {
            TelephonyCall.status: status,
            TelephonyCall.activity_id: activity["id"],
            TelephonyCall.task_id: task_id,
        }
    ).where(TelephonyCall.id == row_id)


async def open_calls() -> list[dict[str, Any]]:
    """Calls not ended yet (what a reconnection must reconcile)."""
    return await TelephonyCall.select().where(TelephonyCall.ended_at.is_null())  # type: ignore[no-any-return]
