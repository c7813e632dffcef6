"""Notifications in the web UI: ``/app/notifications`` (newest first, unread marked in words),
mark one or all read (forms with the session's CSRF token), each message linked to the record
it is about. The header of every page shows the unread count (``pages.unread_count``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import clock, i18n
from tessera.entities.tables import Notification
from tessera.errors import NotFound
from tessera.i18n import N_
from tessera.web.links import ref_urls
from tessera.web.pages import Form, check_csrf, current_principal, error_page, render

PAGE_SIZE = 50

i18n.register_labels(
    "notification.kind",
    {
        "task.assigned": N_("New task for you"),
        "task.handed_off": N_("Task handed to you"),
        "task.accepted": N_("Task accepted"),
        "task.overdue": N_("Overdue task"),
        "workflow.deviation": N_("Process deviation"),
        "workflow.escalation": N_("Process deviation under your control"),
        "export": N_("Client list exported"),
        "password_reset": N_("Password reset requested"),
    },
)
#: Kinds whose stored title is "<what happened>: <the record's name>": the page shows the
#: kind's words in the reader's language and the name.
NAMED_AFTER_COLON = frozenset(
    {
        "task.assigned",
        "task.handed_off",
        "task.accepted",
        "task.overdue",
        "workflow.deviation",
        "workflow.escalation",
    }
)


def describe(n: dict[str, Any]) -> dict[str, str]:
    """A notification in words: ``heading`` (what happened, translated when the kind has
    registered words) and ``detail`` (the record, or the stored text)."""
    kind, title, body = n["kind"], n["title"] or "", n["body"] or ""
    if kind not in i18n.labelled_codes("notification.kind"):
        return {"heading": title, "detail": body}
    heading = i18n.label("notification.kind", kind)
    if kind in NAMED_AFTER_COLON and ": " in title:
        return {"heading": heading, "detail": title.partition(": ")[2], "note": body}
    return {"heading": heading, "detail": body or title}


async def notification_links(
    request: Request[Any, Any, Any], rows: Sequence[dict[str, Any]]
) -> dict[str, str]:
    return await ref_urls(request.app.state.pm, [r["ref"] for r in rows if r["ref"]])


def _back(form: dict[str, str], default: str = "/app/notifications") -> str:
    back = form.get("next", "")
    return back if back.startswith("/") and not back.startswith("//") else default


@get("/app/notifications", include_in_schema=False)
async def notifications_page(
    request: Request[Any, Any, Any],
    before: int | None = None,
    unread: bool = False,
) -> Response[Any]:
    """The user's notifications, newest first, ``PAGE_SIZE`` a page (``?before=<id>`` pages on,
    ``?unread=true`` only unread ones)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    conditions: list[Any] = [Notification.user_id == principal.user_id]
    if unread:
        conditions.append(Notification.read_at.is_null())
    if before is not None:
        conditions.append(Notification.id < before)
    rows = (
        await Notification.select()
        .where(*conditions)
        .order_by(Notification.id, ascending=False)
        .limit(PAGE_SIZE + 1)
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    links = await notification_links(request, rows)
    return render(
        request,
        "notifications.html",
        principal=principal,
        items=[{**n, **describe(n), "href": links.get(n["ref"])} for n in rows],
        next_href=(f"/app/notifications?before={rows[-1]['id']}" + ("&unread=true" if unread else ""))
        if more
        else None,
        only_unread=unread,
    )


@post("/app/notifications/{notification_id:int}/read", include_in_schema=False, status_code=303)
async def notification_read(
    request: Request[Any, Any, Any], notification_id: int, data: Form
) -> Response[Any]:
    """Mark one of my notifications read (the same rule as ``POST /api/notifications/{id}/read``:
    another user's notification is not found)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    found = await Notification.select(Notification.id, Notification.read_at).where(
        Notification.id == notification_id, Notification.user_id == principal.user_id
    )
    if not found:
        return error_page(request, principal, NotFound(f"notification {notification_id} not found"))
    if found[0]["read_at"] is None:
        await Notification.update({Notification.read_at: clock.now()}).where(
            Notification.id == notification_id, Notification.user_id == principal.user_id
        )
    return Redirect(_back(data), status_code=303)


@post("/app/notifications/read-all", include_in_schema=False, status_code=303)
async def notifications_read_all(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Mark every unread notification of mine read."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    await Notification.update({Notification.read_at: clock.now()}).where(
        Notification.user_id == principal.user_id, Notification.read_at.is_null()
    )
    return Redirect(_back(data), status_code=303)


HANDLERS = [notifications_page, notification_read, notifications_read_all]
