"""Dunning: the steps a collection case walks (reminder, call, formal letter, escalation),
adapted to the client, and promises to pay.

The steps and their days are the stages of the workflow templates this plugin ships
(``receivables.dunning.standard`` and ``receivables.dunning.gentle``, ``TEMPLATES``): a stage's
``norm.days`` is how many days after the previous step (after the first overdue day, for the
first one) it is due. An administrator who publishes a new version of a template changes the
days for every case (the current version is read at each run).

Which template a case follows: ``gentle`` (later, softer first step) for a reliable payer
(``PartyProfile.reliability`` >= ``RELIABLE``) or a client of ABC class A (``custom.abc_class``,
when the marketing plugin provides it), ``standard`` otherwise. The channel: the party's
``custom.preferred_channel`` (a custom field this plugin contributes), then e-mail, phone,
letter, skipping channels that bounced (and those the client has no address for).

A step is taken in one transaction that first claims it (compare-and-set on the case's
``version``) and re-reads the client's open invoices: nothing overdue any more closes the case
instead of reminding; a partly paid invoice is reminded for its balance. A case pauses while
the client has an open service ticket (service events) or an open promise to pay; paused days
push the next step on by as many days.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import audit, clock, events, i18n
from tessera.entities.tables import CrmUser, Notification, Party, Task, UserRole
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.permissions import Principal

from tessera_receivables.tables import (
    CollectionCase,
    CollectionContact,
    Invoice,
    PartyProfile,
    Payment,
    Promise,
)

STEPS = ("reminder", "call", "letter", "escalation")
CHANNELS = ("email", "phone", "letter")
RELIABLE = 80
DEFAULT_RELIABILITY = 70

STEP_LABELS = {
    "reminder": N_("Reminder"),
    "call": N_("Call"),
    "letter": N_("Formal letter"),
    "escalation": N_("Escalation"),
}


#: The stages of a dunning process: ``overdue`` (the case is open, nothing sent yet), then one
#: stage per step taken, then ``closed``. A stage's ``norm`` is the wait until the next step,
#: so the day of a step is the sum of the norms before it (``step_days``).
STAGE_NAMES = {
    "overdue": N_("Overdue"),
    "reminder": N_("Reminder sent"),
    "call": N_("Call the client"),
    "letter": N_("Formal letter sent"),
    "escalation": N_("Escalated to the head of sales"),
    "closed": N_("Closed"),
}
_OWNER = {"owner": True}
_HEAD = {"role": "head", "team": "owner"}


def _template(key: str, name: str, waits: tuple[int, int, int, int], description: str) -> dict[str, Any]:
    """``waits``: days overdue of the reminder, then days from each step to the next."""
    order = ("overdue", *STEPS)
    stages: list[dict[str, Any]] = []
    for i, (stage_key, wait) in enumerate(zip(order, (*waits, 7), strict=True)):
        stage: dict[str, Any] = {
            "key": stage_key,
            "name": STAGE_NAMES[stage_key],
            "responsible": _HEAD if stage_key == "escalation" else _OWNER,
            "controller": _HEAD,
            "norm": {"days": wait, "calendar": "calendar"},
            # Onwards to any later step (a case behind its schedule, a broken promise) or closed.
            "transitions": [{"to": later} for later in (*order[i + 1 :], "closed")],
        }
        if stage_key == "call":
            # The account manager's call: the stage task, due before the formal letter.
            stage["task"] = {"title": N_("Call the client about the overdue debt"), "priority": "high"}
        elif stage_key == "escalation":
            # The head of sales decides (stage task; a deviation after the norm).
            stage["task"] = {"title": N_("Decide on the overdue debt"), "priority": "urgent"}
        else:
            # Sent by the plugin's job: nobody's task.
            stage["task"] = {"create": False}
        stages.append(stage)
    stages.append({"key": "closed", "name": STAGE_NAMES["closed"], "final": True})
    return {
        "key": key,
        "name": name,
        "description": description,
        "subject": "receivables.case",
        "stages": stages,
    }


#: Standard = day 1, 7, 21, 45; gentle = day 5, 14, 28, 52.
TEMPLATES = [
    _template(
        "receivables.dunning.standard",
        N_("Dunning"),
        (1, 6, 14, 24),
        N_("Reminder on day 1 overdue, call on day 7, formal letter on day 21, escalation on day 45"),
    ),
    _template(
        "receivables.dunning.gentle",
        N_("Dunning (reliable payer)"),
        (5, 9, 14, 24),
        N_(
            "A reliable payer or an A-class client: reminder on day 5, call on day 14, letter on "
            "day 28, escalation on day 52"
        ),
    ),
]
i18n.register_shipped_texts(
    {*STAGE_NAMES.values(), *(t["name"] for t in TEMPLATES), *(t["description"] for t in TEMPLATES)}
    | {N_("Call the client about the overdue debt"), N_("Decide on the overdue debt")},
    {},
)


def days_of(definition: dict[str, Any]) -> dict[str, int]:
    """Day of each step (days overdue, the first overdue day = 1) in a template definition:
    the norms of the stages before it, summed."""
    out, day = {}, 0
    for stage in definition["stages"]:
        if stage["key"] in STEPS:
            out[stage["key"]] = day
        day += int((stage.get("norm") or {}).get("days", 0))
    return out


async def step_days(key: str) -> dict[str, int]:
    """Day of each step in the current version of template ``key`` (the shipped one when it is
    not stored yet)."""
    definition: dict[str, Any] | None = None
    try:
        from tessera.entities import service
        from tessera.workflow import templates

        await templates.sync_plugin_templates(service.plugin_manager())
        definition = (await templates.get_version(key))["definition"]
    except (NotFound, RuntimeError):
        definition = None
    return days_of(definition or next(t for t in TEMPLATES if t["key"] == key))


async def profile(party_id: int) -> dict[str, Any]:
    row = await PartyProfile.select().where(PartyProfile.party_id == party_id).first().output(load_json=True)
    return row or {
        "party_id": party_id,
        "reliability": DEFAULT_RELIABILITY,
        "bounced": [],
        "open_tickets": [],
    }


async def save_profile(party_id: int, **changes: Any) -> None:
    now = clock.now()
    current = await profile(party_id)
    if "id" in current:
        await PartyProfile.update(
            {**{getattr(PartyProfile, k): v for k, v in changes.items()}, PartyProfile.updated_at: now}
        ).where(PartyProfile.party_id == party_id)
    else:
        values = {**{k: current[k] for k in ("reliability", "bounced", "open_tickets")}, **changes}
        await PartyProfile.insert(PartyProfile(party_id=party_id, updated_at=now, **values)).on_conflict(
            action="DO NOTHING"
        )
        if changes:
            await PartyProfile.update({getattr(PartyProfile, k): v for k, v in changes.items()}).where(
                PartyProfile.party_id == party_id
            )


def template_for(party: dict[str, Any], prof: dict[str, Any]) -> str:
    abc = str((party.get("custom") or {}).get("abc_class") or "").upper()
    if int(prof.get("reliability", DEFAULT_RELIABILITY)) >= RELIABLE or abc == "A":
        return "receivables.dunning.gentle"
    return "receivables.dunning.standard"


def channels_for(party: dict[str, Any], prof: dict[str, Any]) -> list[str]:
    """The channels to try, in order: the preferred one, then e-mail, phone, letter; without
    those that bounced and those the client has no address for."""
    preferred = str((party.get("custom") or {}).get("preferred_channel") or "")
    order = ([preferred] if preferred in CHANNELS else []) + [c for c in CHANNELS if c != preferred]
    bounced = set(prof.get("bounced") or [])
    usable = []
    for channel in order:
        if channel in bounced:
            continue
        if channel == "email" and not _email(party):
            continue
        if channel == "phone" and not (party.get("phones") or []):
            continue
        usable.append(channel)
    return usable or ["letter"]


def _email(party: dict[str, Any]) -> str:
    for item in party.get("emails") or []:
        value = item.get("address") if isinstance(item, dict) else item
        if value:
            return str(value)
    return ""


async def overdue_invoices(party_id: int, today: dt.date) -> list[dict[str, Any]]:
    return (
        await Invoice.select()
        .where(
            Invoice.party_id == party_id,
            Invoice.balance > 0,
            Invoice.status == "open",
            Invoice.due_date < today,
        )
        .order_by(Invoice.due_date)
    )


def _totals(invoices: list[dict[str, Any]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for inv in invoices:
        out[inv["currency"]] = out.get(inv["currency"], Decimal(0)) + Decimal(inv["balance"])
    return out


def _money_text(totals: dict[str, Decimal]) -> str:
    return ", ".join(
        f"{amount.quantize(Decimal('0.01'))} {currency}" for currency, amount in sorted(totals.items())
    )


# --------------------------------------------------------------------------- the run


async def run(now: dt.datetime | None = None) -> dict[str, int]:
    """Take every due dunning step, pause/resume cases, judge promises whose day passed."""
    now = now or clock.now()
    counts = {"steps": 0, "closed": 0, "promises_kept": 0, "promises_broken": 0}
    for promise in await Promise.select().where(Promise.status == "open", Promise.promised_on < now.date()):
        outcome = await _judge_promise(promise, now)
        if outcome:
            counts[f"promises_{outcome}"] += 1
    cases = await CollectionCase.select().where(CollectionCase.status != "closed").output(load_json=True)
    for case in cases:
        result = await _advance(case, now)
        if result == "closed":
            counts["closed"] += 1
        elif result == "step":
            counts["steps"] += 1
    return counts


async def load_party(party_id: int) -> dict[str, Any] | None:
    """The case's client with its read-only custom fields filled in (the marketing plugin's ABC
    class, which ``template_for`` reads)."""
    from tessera import customfields
    from tessera.entities import service

    party = await Party.select().where(Party.id == party_id).first().output(load_json=True)
    if party is not None:
        await customfields.with_plugin_values(service.plugin_manager(), "party", [party])
    return party


async def _advance(case: dict[str, Any], now: dt.datetime) -> str:
    today = now.date()
    party = await load_party(case["party_id"])
    if party is None:
        return ""
    prof = await profile(case["party_id"])
    open_promise = await Promise.exists().where(
        Promise.party_id == case["party_id"], Promise.status == "open"
    )
    reason = "ticket" if prof.get("open_tickets") else ("promise" if open_promise else "")
    async with events.unit_of_work():
        # Claim the case at the version read: another worker that got here first wins.
        current = (
            await CollectionCase.select()
            .where(CollectionCase.id == case["id"], CollectionCase.version == case["version"])
            .first()
            .output(load_json=True)
        )
        if current is None or current["status"] == "closed":
            return ""
        instance = await process_of(current)
        invoices = await overdue_invoices(case["party_id"], today)
        if not invoices:
            await _close(current, now, _("Nothing is overdue any more"), instance)
            return "closed"
        if instance is None and not current.get("process_id"):
            # A new case: its run of the dunning process starts here, in the transaction that
            # takes its first look (the overdue scan opens cases set-based, many per statement).
            instance = await start_process(current, party, prof)
        if reason and current["status"] != "paused":
            await _set(current, now, status="paused", pause_reason=reason, paused_at=now)
            await _suspend(instance, reason)
            await _contact(
                current,
                "paused",
                detail=_("Dunning paused: open claim")
                if reason == "ticket"
                else _("Dunning paused: promise to pay"),
                at=now,
            )
            return "paused"
        if reason:
            return ""
        if current["status"] == "paused":
            paused = (today - current["paused_at"].date()).days if current["paused_at"] else 0
            current = await _set(
                current,
                now,
                status="active",
                pause_reason="",
                paused_at=None,
                paused_days=int(current["paused_days"]) + paused,
            )
            await _resume(instance)
            await _contact(current, "resumed", detail=_("Dunning resumed"), at=now)
        if instance is not None:
            # The days of the template version the run was started on.
            from tessera.workflow import templates

            key = instance["template_key"]
            days = days_of(await templates.definition_by_id(instance["template_id"]))
        else:
            key = template_for(party, prof)
            days = await step_days(key)
        done = list(current["steps_done"] or [])
        pending = [s for s in STEPS if s not in done]
        if not pending:
            return ""
        since = current["overdue_since"] or today
        day = (today - since).days + 1 - int(current["paused_days"] or 0)
        due = [s for s in pending if day >= days.get(s, 0)]
        if not due:
            if current["template"] != key:
                await _set(current, now, template=key)
            return ""
        # Behind the schedule (a debt older than the plugin, a worker down for days): take the
        # step the client is at now, not every missed one in a burst.
        step = due[-1]
        current = await _set(current, now, steps_done=[*done, *due], template=key)
        await _take(step, current, party, prof, invoices, now, instance)
    return "step"


# --------------------------------------------------------------------------- the process

#: The subject of a dunning process: the collection case.
SUBJECT = "receivables.case"
_PROCESS_COLUMNS = (
    "id",
    "status",
    "current_stage",
    "current_task_id",
    "template_id",
    "template_key",
    "owner_id",
)


async def start_process(
    case: dict[str, Any], party: dict[str, Any], prof: dict[str, Any]
) -> dict[str, Any] | None:
    """Start the case's run of its dunning template (in the caller's transaction), for the
    client's account manager. A client without an active one: ``None`` (the plugin walks the
    case alone)."""
    from tessera.entities import service
    from tessera.workflow import engine

    owner = party.get("owner_id")
    if not owner:
        return None
    key = template_for(party, prof)
    try:
        instance = await engine.start(
            engine.engine_principal(owner),
            service.plugin_manager(),
            key,
            subject_entity=SUBJECT,
            subject_id=case["id"],
            party_id=party["id"],
            owner_id=owner,
            title=str(party["name"])[:300],
        )
    except ValidationFailed:  # the account manager left
        return None
    await CollectionCase.update(
        {CollectionCase.process_id: instance["id"], CollectionCase.template: key}
    ).where(CollectionCase.id == case["id"])
    case.update(process_id=instance["id"], template=key)
    return {c: instance[c] for c in _PROCESS_COLUMNS}


async def process_of(case: dict[str, Any]) -> dict[str, Any] | None:
    """The case's running (or suspended) process, if it has one."""
    if not case.get("process_id"):
        return None
    from tessera.workflow.tables import WorkflowInstance as WI

    return await (
        WI.select(*[WI._meta.get_column_by_name(c) for c in _PROCESS_COLUMNS])
        .where(WI.id == case["process_id"], WI.status.is_in(["running", "suspended"]))
        .first()
    )


def _actor(instance: dict[str, Any]) -> Principal:
    from tessera.workflow import engine

    return engine.engine_principal(instance.get("owner_id") or 0)


async def _suspend(instance: dict[str, Any] | None, reason: str) -> None:
    if instance is None or instance["status"] != "running":
        return
    from tessera.workflow import engine

    await engine.suspend(_actor(instance), instance["id"], f"receivables: {reason}")
    instance["status"] = "suspended"


async def _resume(instance: dict[str, Any] | None) -> None:
    """Resume the process: the engine moves its norm and task deadline on by the pause."""
    if instance is None or instance["status"] != "suspended":
        return
    from tessera.workflow import engine

    await engine.resume(_actor(instance), instance["id"], "receivables: resumed")
    instance["status"] = "running"


async def _move(instance: dict[str, Any] | None, to: str, comment: str = "") -> None:
    """Move the process to the stage of the step taken (or ``closed``), in the caller's
    transaction."""
    if instance is None:
        return
    await _resume(instance)
    if instance["current_stage"] == to:
        return
    from tessera.entities import service
    from tessera.workflow import engine

    moved = await engine.advance(
        _actor(instance), service.plugin_manager(), instance["id"], to=to, comment=comment[:500]
    )
    instance.update({c: moved[c] for c in _PROCESS_COLUMNS})


async def _set(case: dict[str, Any], now: dt.datetime, **changes: Any) -> dict[str, Any]:
    cols = {getattr(CollectionCase, k): v for k, v in changes.items()}
    rows = (
        await CollectionCase.update(
            {**cols, CollectionCase.version: case["version"] + 1, CollectionCase.updated_at: now}
        )
        .where(CollectionCase.id == case["id"], CollectionCase.version == case["version"])
        .returning(*CollectionCase._meta.columns)
    )
    if not rows:
        raise Conflict(f"collection case {case['id']} was changed meanwhile")
    row = rows[0]
    if isinstance(row.get("steps_done"), str):
        import json

        row["steps_done"] = json.loads(row["steps_done"])
    await audit.record(
        "update",
        "receivables.case",
        case["id"],
        {k: [_plain(case.get(k)), _plain(v)] for k, v in changes.items()},
    )
    return row


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


async def _close(
    case: dict[str, Any], now: dt.datetime, why: str, instance: dict[str, Any] | None = None
) -> None:
    await _set(case, now, status="closed", closed_at=now)
    await _move(instance if instance is not None else await process_of(case), "closed", why)
    await _contact(case, "closed", detail=why, at=now)
    await events.emit(
        "receivables.case.closed",
        "receivables.case",
        case["id"],
        {"id": case["id"], "party_id": case["party_id"]},
    )


async def _contact(
    case: dict[str, Any] | None,
    kind: str,
    *,
    party_id: int | None = None,
    channel: str = "",
    amount: Decimal | None = None,
    currency: str = "",
    detail: str = "",
    user_id: int | None = None,
    at: dt.datetime | None = None,
) -> None:
    await CollectionContact.insert(
        CollectionContact(
            party_id=party_id or (case or {})["party_id"],
            case_id=case["id"] if case else None,
            kind=kind,
            channel=channel,
            amount=amount,
            currency=currency,
            detail=detail[:2000],
            user_id=user_id,
            at=at or clock.now(),
        )
    )


async def _notify(user_ids: list[int], kind: str, title: str, party_id: int, body: str = "") -> None:
    for user_id in {u for u in user_ids if u}:
        await Notification.insert(
            Notification(
                user_id=user_id,
                kind=kind,
                title=title[:500],
                body=body,
                ref=f"party:{party_id}",
                created_at=clock.now(),
            )
        )


async def heads_of(owner_id: int | None) -> list[int]:
    """The heads (role ``head``) of the owner's team."""
    if owner_id is None:
        return []
    owner = await CrmUser.select(CrmUser.team_id).where(CrmUser.id == owner_id).first()
    if not owner or owner["team_id"] is None:
        return []
    from tessera.entities.tables import Role

    rows = await UserRole.select(UserRole.user_id).where(
        UserRole.role_id.is_in(Role.select(Role.id).where(Role.name == "head")),
        UserRole.user_id.is_in(
            CrmUser.select(CrmUser.id).where(
                CrmUser.team_id == owner["team_id"],
                CrmUser.is_active == True,  # noqa: E712
            )
        ),
    )
    return [r["user_id"] for r in rows]


async def _take(
    step: str,
    case: dict[str, Any],
    party: dict[str, Any],
    prof: dict[str, Any],
    invoices: list[dict[str, Any]],
    now: dt.datetime,
    instance: dict[str, Any] | None = None,
) -> None:
    """Take ``step``: its stage in the case's process, then what the step does."""
    totals = _totals(invoices)
    text = _money_text(totals)
    lines = "\n".join(
        f"{inv['number'] or inv['id']}: "
        f"{Decimal(inv['balance']).quantize(Decimal('0.01'))} {inv['currency']} "
        f"({_('due')} {inv['due_date'].isoformat()})"
        for inv in invoices
    )
    owner = party.get("owner_id")
    channel = ""
    detail = ""
    await _move(instance, step, str(STEP_LABELS[step]))
    if step == "reminder":
        channel = channels_for(party, prof)[0]
        if channel == "email":
            from tessera.email import send_email

            await send_email(
                _email(party),
                _("Overdue payment reminder: %(amount)s", amount=text),
                _("Dear client, our records show these invoices unpaid after their due date:")
                + f"\n\n{lines}\n\n"
                + _("If you have already paid, please ignore this message."),
                party_id=party["id"],
                dedup_key=f"receivables.reminder:{case['id']}",
            )
            detail = _("Reminder e-mail sent to %(address)s", address=_email(party))
        elif channel == "phone":
            await _task(
                owner,
                party,
                _("Remind %(name)s of the overdue %(amount)s", name=party["name"], amount=text),
                now,
                lines,
            )
            detail = _("Reminder call planned for the account manager")
        else:
            detail = await _letter(case, party, invoices, text, now)
    elif step == "call":
        channel = "phone"
        title = _("Call %(name)s about the overdue %(amount)s", name=party["name"], amount=text)
        if instance is not None and instance.get("current_task_id"):
            # The call stage's task (the engine's, with its norm) says what is owed now.
            await Task.update({Task.title: title[:500], Task.description: lines}).where(
                Task.id == instance["current_task_id"]
            )
        else:
            await _task(owner, party, title, now, lines)
        detail = _("Call task for the account manager")
    elif step == "letter":
        channel = "letter"
        detail = await _letter(case, party, invoices, text, now)
    else:
        heads = await heads_of(owner)
        await _notify(
            [*heads, owner] if heads else [owner],
            "receivables.escalation",
            _("Escalation: %(name)s owes %(amount)s overdue", name=party["name"], amount=text),
            party["id"],
            lines,
        )
        detail = _("Escalated to the head of sales")
    for currency, amount in sorted(totals.items()):
        await _contact(case, step, channel=channel, amount=amount, currency=currency, detail=detail, at=now)
    await events.emit(
        "receivables.dunning.step",
        "receivables.case",
        case["id"],
        {
            "id": case["id"],
            "party_id": party["id"],
            "step": step,
            "channel": channel,
            "amounts": {c: str(a.quantize(Decimal("0.01"))) for c, a in totals.items()},
        },
    )


async def _task(owner: int | None, party: dict[str, Any], title: str, now: dt.datetime, body: str) -> None:
    rows = await Task.insert(
        Task(
            title=title[:500],
            description=body,
            party_id=party["id"],
            assignee_id=owner,
            author_id=None,
            deadline=now + dt.timedelta(days=1),
            priority="high",
            status="open",
            source="receivables",
            created_at=now,
            updated_at=now,
        )
    ).returning(Task.id)
    await audit.record(
        "create", "task", rows[0]["id"], {"title": [None, title[:500]], "assignee_id": [None, owner]}
    )


async def _letter(
    case: dict[str, Any], party: dict[str, Any], invoices: list[dict[str, Any]], text: str, now: dt.datetime
) -> str:
    """Render the formal letter (PDF) and keep it with the case; e-mailed when the client has
    an address, else printed and posted by the collector."""
    pdf = render_letter(party, invoices, now.date())
    letters.setdefault(case["id"], []).append(pdf)
    if _email(party):
        from tessera.email import send_email

        await send_email(
            _email(party),
            _("Formal notice of overdue debt: %(amount)s", amount=text),
            _("Please find attached our formal notice of overdue debt."),
            party_id=party["id"],
            attachments=[("notice.pdf", pdf, "application/pdf")],
            dedup_key=f"receivables.letter:{case['id']}",
        )
        return _("Formal letter e-mailed (PDF)")
    return _("Formal letter rendered (PDF) for posting")


#: Letters rendered in this process, by case (the PDF is also at GET .../cases/{id}/letter).
letters: dict[int, list[bytes]] = {}


def render_letter(party: dict[str, Any], invoices: list[dict[str, Any]], day: dt.date) -> bytes:
    """The formal letter as a PDF (fpdf2 and Roboto, as sales proposals)."""
    from pathlib import Path

    import font_roboto
    from fpdf import FPDF

    fonts = Path(font_roboto.__file__).parent / "files"
    pdf = FPDF(format="A4")
    pdf.add_font("Roboto", "", str(fonts / "Roboto-Regular.ttf"))
    pdf.add_font("Roboto", "B", str(fonts / "Roboto-Bold.ttf"))
    pdf.add_page()
    pdf.set_font("Roboto", "B", 14)
    pdf.cell(0, 10, _("Notice of overdue debt"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Roboto", size=10)
    pdf.cell(0, 8, f"{party['name']} — {day.isoformat()}", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 6, _("The following invoices remain unpaid after their due date:"))
    for inv in invoices:
        pdf.cell(
            0,
            6,
            f"{inv['number'] or inv['id']}  {_('due')} {inv['due_date'].isoformat()}  "
            f"{Decimal(inv['balance']).quantize(Decimal('0.01'))} {inv['currency']}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.multi_cell(0, 6, _("Please pay the amount within 10 days or contact us to agree a schedule."))
    return bytes(pdf.output())


# --------------------------------------------------------------------------- promises, bounces


async def open_case(party_id: int) -> dict[str, Any] | None:
    return (
        await CollectionCase.select()
        .where(CollectionCase.party_id == party_id, CollectionCase.status != "closed")
        .first()
        .output(load_json=True)
    )


async def record_promise(
    principal: Principal, party_id: int, amount: Decimal, currency: str, promised_on: dt.date, notes: str = ""
) -> dict[str, Any]:
    """A promise to pay from a call: pauses the client's case until the day."""
    principal.require("receivables.collect")
    from tessera.entities import service
    from tessera.entities.parties import PARTY

    from tessera_receivables import services

    await service.require_visible(PARTY, principal, party_id, "party_id")
    amount = services.money(amount)
    currency = services.check_currency(currency)
    if amount <= 0:
        raise ValidationFailed.field("amount", "must be more than zero")
    now = clock.now()
    if promised_on < now.date():
        raise ValidationFailed.field("promised_on", "is in the past")
    async with events.unit_of_work():
        case = await open_case(party_id)
        balance = sum(
            (
                Decimal(r["balance"])
                for r in await Invoice.select(Invoice.balance).where(
                    Invoice.party_id == party_id, Invoice.currency == currency, Invoice.balance > 0
                )
            ),
            Decimal(0),
        )
        rows = await Promise.insert(
            Promise(
                party_id=party_id,
                case_id=case["id"] if case else None,
                amount=amount,
                currency=currency,
                promised_on=promised_on,
                status="open",
                balance_then=balance,
                notes=notes,
                created_by=principal.user_id or None,
                created_at=now,
            )
        ).returning(*Promise._meta.columns)
        promise = rows[0]
        if case is not None and case["status"] != "paused":
            await _set(case, now, status="paused", pause_reason="promise", paused_at=now)
            await _suspend(await process_of(case), "promise")
        await _contact(
            case,
            "promise",
            party_id=party_id,
            channel="phone",
            amount=amount,
            currency=currency,
            detail=_(
                "Promise to pay %(amount)s %(currency)s by %(day)s",
                amount=amount,
                currency=currency,
                day=promised_on.isoformat(),
            )
            + (f": {notes}" if notes else ""),
            user_id=principal.user_id or None,
            at=now,
        )
        await events.emit(
            "receivables.promise.created",
            "receivables.promise",
            promise["id"],
            {
                "id": promise["id"],
                "party_id": party_id,
                "amount": str(amount),
                "currency": currency,
                "promised_on": promised_on.isoformat(),
            },
            also=[
                audit.entry(
                    "create",
                    "receivables.promise",
                    promise["id"],
                    {"amount": [None, str(amount)], "promised_on": [None, promised_on.isoformat()]},
                )
            ],
        )
    return promise


async def _judge_promise(promise: dict[str, Any], now: dt.datetime) -> str:
    """Kept when payments of at least the amount arrived from the promise's day to the date
    promised; broken otherwise (the case escalates, the client's reliability drops)."""
    paid = sum(
        (
            Decimal(r["amount"])
            for r in await Payment.select(Payment.amount).where(
                Payment.party_id == promise["party_id"],
                Payment.currency == promise["currency"],
                Payment.kind == "payment",
                Payment.paid_on >= promise["created_at"].date(),
                Payment.paid_on <= promise["promised_on"],
            )
        ),
        Decimal(0),
    )
    kept = paid >= Decimal(promise["amount"])
    outcome = "kept" if kept else "broken"
    async with events.unit_of_work():
        claimed = (
            await Promise.update(
                {Promise.status: outcome, Promise.resolved_at: now, Promise.version: Promise.version + 1}
            )
            .where(Promise.id == promise["id"], Promise.status == "open")
            .returning(Promise.id)
        )
        if not claimed:
            return ""
        prof = await profile(promise["party_id"])
        reliability = int(prof.get("reliability", DEFAULT_RELIABILITY))
        reliability = min(100, reliability + 5) if kept else max(0, reliability - 20)
        await save_profile(promise["party_id"], reliability=reliability)
        case = await open_case(promise["party_id"])
        await _contact(
            case,
            f"promise_{outcome}",
            party_id=promise["party_id"],
            amount=Decimal(promise["amount"]),
            currency=promise["currency"],
            detail=_("Promise kept") if kept else _("Promise broken"),
            at=now,
        )
        if case is not None:
            if kept:
                if not await overdue_invoices(promise["party_id"], now.date()):
                    await _close(case, now, _("Promise kept"))
            else:
                # A broken promise escalates at once: the case resumes at its last step.
                done = list(case["steps_done"] or [])
                case = await _set(
                    case, now, status="active", pause_reason="", paused_at=None, steps_done=list(STEPS)
                )
                instance = await process_of(case)
                await _resume(instance)
                party = await load_party(case["party_id"])
                invoices = await overdue_invoices(case["party_id"], now.date())
                if "escalation" not in done and invoices and party:
                    await _take("escalation", case, party, prof, invoices, now, instance)
        await events.emit(
            f"receivables.promise.{outcome}",
            "receivables.promise",
            promise["id"],
            {"id": promise["id"], "party_id": promise["party_id"]},
            also=[
                audit.entry(
                    "update",
                    "receivables.promise",
                    promise["id"],
                    {"status": ["open", outcome], "reliability": [prof.get("reliability"), reliability]},
                )
            ],
        )
    return outcome


async def bounce(principal: Principal, party_id: int, channel: str, detail: str = "") -> dict[str, Any]:
    """A channel did not reach the client (a bounced e-mail, a wrong number): the next
    reminders use the next preferred channel, and the collector is told."""
    principal.require("receivables.collect")
    from tessera.entities import service
    from tessera.entities.parties import PARTY

    if channel not in CHANNELS:
        raise ValidationFailed.field("channel", f"must be one of {', '.join(CHANNELS)}")
    party = await service.get(PARTY, principal, party_id)
    async with events.unit_of_work():
        prof = await profile(party_id)
        bounced = sorted({*(prof.get("bounced") or []), channel})
        await save_profile(party_id, bounced=bounced)
        prof["bounced"] = bounced
        nxt = channels_for(party, prof)[0]
        case = await open_case(party_id)
        await _contact(
            case,
            "bounce",
            party_id=party_id,
            channel=channel,
            detail=detail or _("Channel unreachable"),
            user_id=principal.user_id or None,
        )
        await _notify(
            [party.get("owner_id")],
            "receivables.bounce",
            _(
                "%(name)s: %(channel)s unreachable, next reminders go by %(next)s",
                name=party["name"],
                channel=channel,
                next=nxt,
            ),
            party_id,
        )
        await audit.record(
            "update", "receivables.party", party_id, {"bounced": [prof.get("bounced"), bounced]}
        )
    return {"party_id": party_id, "bounced": bounced, "next_channel": nxt}


# --------------------------------------------------------------------------- service tickets


async def ticket_event(name: str, payload: dict[str, Any]) -> None:
    """Track the client's open service tickets (dunning pauses while there is one)."""
    party_id = payload.get("party_id")
    ticket_id = payload.get("id")
    if not party_id or not ticket_id:
        return
    if name.endswith(".created"):
        opened = True
    elif name.endswith(".status_changed"):
        opened = payload.get("to") in ("new", "in_progress", "waiting")
    else:
        return
    async with events.unit_of_work():
        prof = await profile(int(party_id))
        tickets = set(prof.get("open_tickets") or [])
        before = set(tickets)
        if opened:
            tickets.add(int(ticket_id))
        else:
            tickets.discard(int(ticket_id))
        if tickets == before:
            return
        await save_profile(int(party_id), open_tickets=sorted(tickets))
        await audit.record(
            "update", "receivables.party", int(party_id), {"open_tickets": [sorted(before), sorted(tickets)]}
        )
    # Pause or resume now rather than at the next hourly run.
    case = await open_case(int(party_id))
    if case is not None:
        await _advance(case, clock.now())
