"""My day (``/app``) and the calendar (``/app/calendar``): the signed-in user's tasks (overdue
first), tasks colleagues handed to them, planned calls and meetings, plugin widgets (hook
``tessera_dashboard_widgets``) and unread notifications. Everything is read through
``tessera.entities.service`` with the user's principal, so visibility is the API's; times are
shown in the user's time zone. No JavaScript is needed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import dates as babel_dates
from litestar import Request, Response, get
from litestar.response import Redirect

from tessera import clock, i18n
from tessera.entities import activities, parties, service, tasks
from tessera.entities.tables import (
    Activity,
    ActivityParticipant,
    CrmUser,
    Notification,
    Party,
    Task,
    TaskHandoff,
)
from tessera.errors import DomainError, NotFound, PermissionDenied
from tessera.permissions import Principal
from tessera.plugins import call_each_tolerant, log
from tessera.web.inbox import describe, notification_links
from tessera.web.pages import current_principal, error_page, render

#: Activity types a calendar shows (planned and done; cancelled ones are left out).
CALENDAR_STATUSES = ["planned", "done"]
VIEWS = ("day", "week")


def user_zone() -> ZoneInfo:
    """The signed-in user's time zone (``crm_user.timezone``), UTC when unknown."""
    try:
        return ZoneInfo(i18n.current_timezone() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight of ``day`` in ``zone``, as UTC (for queries)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def week_monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def me_and_absent(principal: Principal) -> list[int]:
    """ "My" work: the user's and that of the absent colleagues they stand in for."""
    return [principal.user_id, *sorted(principal.acting_for)]


async def party_names(principal: Principal, ids: Sequence[int | None]) -> dict[int, str]:
    """Names of the parties among ``ids`` the principal may read (others stay unnamed)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted or not principal.can("party.read"):
        return {}
    page = await service.list_page(parties.PARTY, principal, [Party.id.is_in(wanted)], limit=500)
    return {p["id"]: p["name"] for p in page.items}


# --------------------------------------------------------------------------- tasks


async def my_tasks(principal: Principal) -> list[dict[str, Any]]:
    """Open tasks assigned to me (or to whom I stand in for): overdue first (oldest deadline
    first), then by deadline, tasks without a deadline last."""
    if not principal.can("task.read"):
        return []
    page = await service.list_page(
        tasks.TASK,
        principal,
        [Task.assignee_id.is_in(me_and_absent(principal)), Task.status.is_in(list(tasks.OPEN_STATUSES))],
        order="deadline",
        limit=200,
    )
    rows = [tasks.decorate(dict(t)) for t in page.items]
    far = datetime.max.replace(tzinfo=UTC)
    rows.sort(key=lambda t: (not t["overdue"], t["deadline"] is None, t["deadline"] or far, t["id"]))
    return rows


async def handed_to_me(principal: Principal, open_tasks: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Open tasks of mine that a colleague (or a workflow stage) handed to me and that wait
    for my acceptance (``task.accepted_at`` is empty), with who handed them and their comment."""
    awaiting = {i: t for i, t in open_tasks.items() if t.get("accepted_at") is None}
    if not awaiting:
        return []
    mine = me_and_absent(principal)
    rows = (
        await TaskHandoff.select(
            TaskHandoff.task_id,
            TaskHandoff.from_user_id,
            TaskHandoff.from_user_id.name.as_alias("from_name"),
            TaskHandoff.to_user_id,
            TaskHandoff.at,
            TaskHandoff.comment,
        )
        .where(TaskHandoff.task_id.is_in(sorted(awaiting)))
        .order_by(TaskHandoff.at, ascending=False)
        .order_by(TaskHandoff.id, ascending=False)
    )
    seen: set[int] = set()
    out = []
    for row in rows:
        if row["task_id"] in seen:
            continue
        seen.add(row["task_id"])  # only the latest link of each task counts
        if row["to_user_id"] not in mine:
            continue
        out.append({**row, "task": open_tasks[row["task_id"]]})
    return out


# --------------------------------------------------------------------------- activities


def _taking_part(user_ids: list[int]) -> Any:
    """Activities the users own or take part in."""
    linked = ActivityParticipant.select(ActivityParticipant.activity_id).where(
        ActivityParticipant.user_id.is_in(user_ids)
    )
    return Activity.owner_id.is_in(user_ids) | Activity.id.is_in(linked)


async def activities_between(
    principal: Principal, user_ids: list[int], start: datetime, end: datetime, statuses: list[str]
) -> list[dict[str, Any]]:
    """The users' activities in ``[start, end)`` that the principal may read, by time, each
    with its local day and time in the user's zone and its client's name."""
    if not principal.can("activity.read"):
        return []
    page = await service.list_page(
        activities.ACTIVITY,
        principal,
        [
            _taking_part(user_ids),
            Activity.starts_at >= start,
            Activity.starts_at < end,
            Activity.status.is_in(statuses),
        ],
        order="starts_at",
        limit=500,
    )
    zone = user_zone()
    locale = i18n.current_locale()
    names = await party_names(principal, [a["party_id"] for a in page.items])
    out = []
    for item in page.items:
        a = dict(item)
        local = a["starts_at"].astimezone(zone)
        a["local_day"] = local.date()
        a["time"] = babel_dates.format_time(local, "short", locale=locale)
        a["end_time"] = (
            babel_dates.format_time(local + timedelta(minutes=a["duration_minutes"]), "short", locale=locale)
            if a.get("duration_minutes")
            else ""
        )
        a["party_name"] = names.get(a["party_id"], "") if a["party_id"] else ""
        out.append(a)
    return out


# --------------------------------------------------------------------------- widgets


async def dashboard_widgets(request: Request[Any, Any, Any], principal: Principal) -> list[dict[str, Any]]:
    """The plugins' panels for this user (hook ``tessera_dashboard_widgets``)."""
    out = []
    results, failed = await call_each_tolerant(
        request.app.state.pm, "tessera_dashboard_widgets", principal=principal
    )
    for name, widgets in results:
        if widgets is None:
            continue
        if not isinstance(widgets, list | tuple):
            # One broken panel must not cost the user their day page: logged, shown as failed.
            log.error("Plugin %r: tessera_dashboard_widgets must return a list of dicts", name)
            failed.append(name)
            continue
        for widget in widgets:
            if isinstance(widget, dict) and widget.get("title"):
                out.append({"plugin": name, "key": widget.get("key") or name, **widget})
    out.extend({"plugin": name, "key": name, "title": name, "failed": True} for name in failed)
    return out


# --------------------------------------------------------------------------- pages


@get("/app", include_in_schema=False)
async def my_day(request: Request[Any, Any, Any]) -> Response[Any]:
    """My day: tasks, hand-offs, today's and this week's calls and meetings, plugin widgets and
    unread notifications."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    now = clock.now()
    zone = user_zone()
    today = now.astimezone(zone).date()
    tomorrow = today + timedelta(days=1)
    week_end = week_monday(today) + timedelta(days=7)
    try:
        task_rows = await my_tasks(principal)
        task_names = await party_names(principal, [t["party_id"] for t in task_rows])
        for t in task_rows:
            t["party_name"] = task_names.get(t["party_id"], "") if t["party_id"] else ""
        handed = await handed_to_me(principal, {t["id"]: t for t in task_rows})
        planned = await activities_between(
            principal,
            me_and_absent(principal),
            day_start(today, zone),
            day_start(week_end, zone),
            ["planned"],
        )
        # Calls and meetings of the last two weeks still "planned": held but not logged.
        unlogged = await activities_between(
            principal, me_and_absent(principal), day_start(today - timedelta(days=14), zone), now, ["planned"]
        )
        widgets = await dashboard_widgets(request, principal)
    except DomainError as exc:
        return error_page(request, principal, exc)
    inbox = (
        await Notification.select()
        .where(Notification.user_id == principal.user_id, Notification.read_at.is_null())
        .order_by(Notification.id, ascending=False)
        .limit(10)
    )
    links = await notification_links(request, inbox)
    week: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for a in planned:
        if a["local_day"] >= tomorrow:
            week[a["local_day"]].append(a)
    return render(
        request,
        "day.html",
        principal=principal,
        tasks=task_rows,
        overdue_count=sum(1 for t in task_rows if t["overdue"]),
        handed=handed,
        today=today,
        today_items=[a for a in planned if a["local_day"] == today and a["starts_at"] >= now],
        unlogged=unlogged,
        week_days=sorted(week.items()),
        kpis=[k for w in widgets for k in w.get("kpis") or []],
        widgets=[w for w in widgets if w.get("items") is not None or w.get("failed")],
        inbox=[{**n, **describe(n), "href": links.get(n["ref"])} for n in inbox],
    )


async def visible_users(principal: Principal) -> list[dict[str, Any]]:
    """Active users whose records the principal sees (themselves, their team as a head, the
    colleagues they stand in for; everyone for an all-scope user): the calendar's choice."""
    query = CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.is_active == True)  # noqa: E712
    if principal.user_ids is not None:
        query = query.where(CrmUser.id.is_in(sorted(principal.user_ids | {principal.user_id})))
    return list(await query.order_by(CrmUser.name).order_by(CrmUser.id).limit(500))


def _parse_day(raw: str | None, today: date) -> tuple[date, bool]:
    if not raw:
        return today, True
    try:
        return date.fromisoformat(raw), True
    except ValueError:
        return today, False


@get("/app/calendar", include_in_schema=False)
async def calendar_page(
    request: Request[Any, Any, Any],
    view: str = "week",
    date: str | None = None,
    user: str | None = None,
) -> Response[Any]:
    """A day or a week of someone's calls and meetings (``?view=day|week&date=YYYY-MM-DD
    &user=ID``): mine by default, a colleague's when I may see their records."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    zone = user_zone()
    today = clock.now().astimezone(zone).date()
    problems = []
    if view not in VIEWS:
        problems.append(i18n.gettext("Unknown calendar view; showing the week."))
        view = "week"
    shown, ok = _parse_day(date, today)
    if not ok:
        problems.append(i18n.gettext("The date must look like 2026-12-31; showing today."))
    target = principal.user_id
    if user not in (None, ""):
        if not str(user).isdigit():
            return error_page(request, principal, NotFound("user not found"))
        target = int(str(user))
    if target != principal.user_id and principal.user_ids is not None and target not in principal.user_ids:
        return error_page(
            request, principal, PermissionDenied(i18n.gettext("You may not see this colleague's calendar."))
        )
    person = await CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.id == target).first()
    if person is None:
        return error_page(request, principal, NotFound("user not found"))
    whose = me_and_absent(principal) if target == principal.user_id else [target]
    if view == "day":
        first, days, step = shown, [shown], timedelta(days=1)
    else:
        first = week_monday(shown)
        days = [first + timedelta(days=i) for i in range(7)]
        step = timedelta(days=7)
    try:
        items = await activities_between(
            principal,
            whose,
            day_start(days[0], zone),
            day_start(days[-1] + timedelta(days=1), zone),
            CALENDAR_STATUSES,
        )
    except DomainError as exc:
        return error_page(request, principal, exc)
    by_day: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for a in items:
        by_day[a["local_day"]].append(a)
    suffix = f"&user={target}" if target != principal.user_id else ""
    other = "week" if view == "day" else "day"
    return render(
        request,
        "calendar.html",
        principal=principal,
        view=view,
        shown=shown,
        today=today,
        days=[(d, by_day.get(d, [])) for d in days],
        person=person,
        is_me=target == principal.user_id,
        users=await visible_users(principal),
        zone=str(zone),
        problems=problems,
        prev_href=f"/app/calendar?view={view}&date={(first - step).isoformat()}{suffix}",
        next_href=f"/app/calendar?view={view}&date={(first + step).isoformat()}{suffix}",
        today_href=f"/app/calendar?view={view}&date={today.isoformat()}{suffix}",
        other_view_href=f"/app/calendar?view={other}&date={shown.isoformat()}{suffix}",
        total=len(items),
    )


HANDLERS = [my_day, calendar_page]
