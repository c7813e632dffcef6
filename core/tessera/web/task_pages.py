"""Task pages: a new task (``/app/tasks/new``, optionally on a client) and the task page
(``/app/tasks/{id}``): status, the chain of hand-offs with their comments, and the actions
complete (with a result), hand off to a colleague with a comment, and change (reassign,
deadline, controller, priority).

Same structs and services as ``/api/tasks``: ``TaskIn`` / ``TaskPatch`` through
``service.create`` / ``service.update``, ``HandoffIn`` through ``tasks.handoff``, ``CompleteIn``
through ``tasks.complete``. Who received a hand-off reads the task (its assignee) and its client
(implicit sharing, docs/security.md), so the task page links to the client card.
"""

from __future__ import annotations

from typing import Any, get_args

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import events, i18n
from tessera.entities import parties, service, tasks
from tessera.entities.dto import set_fields
from tessera.entities.tables import Party
from tessera.errors import DomainError, PermissionDenied
from tessera.permissions import Principal
from tessera.web import fields
from tessera.web.card import active_users, may, user_names
from tessera.web.forms import decode_form
from tessera.web.pages import _require, check_csrf, current_principal, render
from tessera.web.records import _local, form_errors, refused

TASK_FIELDS = frozenset(
    {"title", "description", "party_id", "assignee_id", "controller_id", "deadline", "priority"}
)
HANDOFF_FIELDS = frozenset({"to_user_id", "comment"})
COMPLETE_FIELDS = frozenset({"result"})


def _labelled(group: str, codes: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(c, i18n.label(group, c)) for c in codes]


async def _writable_parties(principal: Principal, chosen: Any) -> list[tuple[int, str]]:
    """Clients a task may be put on (a task shares its client: only those one may change),
    the first 500 by name, and the one chosen already."""
    condition = service.writers(parties.PARTY, principal)
    query = Party.select(Party.id, Party.name)
    if condition is not None:
        query = query.where(condition)
    rows = await query.order_by(Party.name).limit(500)
    out = [(r["id"], r["name"]) for r in rows]
    if chosen and str(chosen).isdigit() and int(chosen) not in {i for i, _ in out}:
        try:
            party = await service.get(parties.PARTY, principal, int(chosen))
            out.insert(0, (party["id"], party["name"]))
        except DomainError:
            pass
    return out


async def _new_view(
    request: Request[Any, Any, Any],
    principal: Principal,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    errors = dict(errors or {})
    return render(
        request,
        "task_new.html",
        status=status,
        principal=principal,
        form=form,
        error=errors.pop("", None),
        errors=errors,
        parties=await _writable_parties(principal, form.get("party_id")),
        users=[(u["id"], u["name"]) for u in await active_users()],
        priorities=_labelled("task.priority", get_args(tasks.Priority)),
    )


@get("/app/tasks/new", include_in_schema=False)
async def task_new(request: Request[Any, Any, Any], party_id: int | None = None) -> Response[Any]:
    """The form of a new task (from the client card: on that client)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    if not may(principal, tasks.TASK, "write"):
        return refused(request, principal, PermissionDenied("task.write", missing_permission="task.write"))
    form = {
        "assignee_id": str(principal.user_id),
        "priority": "normal",
        "party_id": str(party_id) if party_id else "",
    }
    return await _new_view(request, principal, form)


@post("/app/tasks/new", include_in_schema=False, status_code=303)
async def task_create(request: Request[Any, Any, Any]) -> Response[Any]:
    """Create the task through ``TaskIn`` and the tasks service (as ``POST /api/tasks``)."""
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    body = {k: form[k] for k in TASK_FIELDS if k in form}
    try:
        data = decode_form(tasks.TaskIn, body)
        async with events.unit_of_work():
            row = await service.create(tasks.TASK, principal, set_fields(data))
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        return await _new_view(request, principal, form, form_errors(exc, TASK_FIELDS), exc.status)
    return Redirect(f"/app/tasks/{row['id']}", status_code=303)


async def _task_view(
    request: Request[Any, Any, Any],
    principal: Principal,
    task_id: int,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    try:
        task = tasks.decorate(await service.get(tasks.TASK, principal, task_id))
        chain = await tasks.handoff_chain(principal, task_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    party = None
    if task["party_id"] is not None:
        try:
            party = await service.get(parties.PARTY, principal, task["party_id"])
        except DomainError:
            party = None  # a client the user may not read: named nowhere
    people = {task["author_id"], task["assignee_id"], task["controller_id"]}
    people |= {h["from_user_id"] for h in chain} | {h["to_user_id"] for h in chain}
    names = await user_names(people)
    may_change = await service.may_change(tasks.TASK, principal, task_id)
    edit = {
        "title": task["title"],
        "description": task["description"],
        "assignee_id": str(task["assignee_id"] or ""),
        "controller_id": str(task["controller_id"] or ""),
        "deadline": _local(task["deadline"]),
        "priority": task["priority"],
        "version": str(task["version"]),
    }
    errors = dict(errors or {})
    return render(
        request,
        "task_page.html",
        status=status,
        principal=principal,
        task=task,
        chain=chain,
        party=party,
        names=names,
        may_change=may_change and task["status"] in tasks.OPEN_STATUSES,
        may_accept=may_change
        and task["status"] in tasks.OPEN_STATUSES
        and task["accepted_at"] is None
        and task["assignee_id"] in {principal.user_id, *principal.acting_for},
        form={**edit, **(form or {})},
        error=errors.pop("", None),
        errors=errors,
        users=[(u["id"], u["name"]) for u in await active_users()],
        priorities=_labelled("task.priority", get_args(tasks.Priority)),
    )


@get("/app/tasks/{task_id:int}", include_in_schema=False)
async def task_page(request: Request[Any, Any, Any], task_id: int) -> Response[Any]:
    """The task: status, deadline, who has it, the hand-off chain with comments, actions."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _task_view(request, principal, task_id)


async def _task_action(
    request: Request[Any, Any, Any], task_id: int, names: frozenset[str], action: Any
) -> Response[Any]:
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        await action(principal, form)
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        return await _task_view(
            request, principal, task_id, form=form, errors=form_errors(exc, names), status=exc.status
        )
    try:
        await service.get(tasks.TASK, principal, task_id)
    except DomainError:
        # Handed on: the task left the user's hands and sight; back to the client or my day.
        return Redirect("/app", status_code=303)
    return Redirect(f"/app/tasks/{task_id}", status_code=303)


@post("/app/tasks/{task_id:int}/complete", include_in_schema=False, status_code=303)
async def task_complete(request: Request[Any, Any, Any], task_id: int) -> Response[Any]:
    """Complete the task with its result (``CompleteIn``, ``tasks.complete``)."""

    async def action(principal: Principal, form: dict[str, Any]) -> None:
        body = decode_form(tasks.CompleteIn, {k: form[k] for k in ("result", "version") if k in form})
        await tasks.complete(principal, task_id, body.result, body.version)

    return await _task_action(request, task_id, COMPLETE_FIELDS, action)


@post("/app/tasks/{task_id:int}/accept", include_in_schema=False, status_code=303)
async def task_accept(request: Request[Any, Any, Any], task_id: int) -> Response[Any]:
    """Accept a task handed to me (``AcceptIn``, ``tasks.accept``); from My day it goes back there."""

    async def action(principal: Principal, form: dict[str, Any]) -> None:
        body = decode_form(tasks.AcceptIn, {k: form[k] for k in ("version",) if k in form})
        await tasks.accept(principal, task_id, body.version)

    response = await _task_action(request, task_id, frozenset({"version"}), action)
    back = str((await request.form()).get("next") or "")
    if response.status_code == 303 and back == "/app":
        return Redirect("/app", status_code=303)
    return response


@post("/app/tasks/{task_id:int}/handoff", include_in_schema=False, status_code=303)
async def task_handoff(request: Request[Any, Any, Any], task_id: int) -> Response[Any]:
    """Hand the task to a colleague with a comment (``HandoffIn``, ``tasks.handoff``)."""

    async def action(principal: Principal, form: dict[str, Any]) -> None:
        body = decode_form(tasks.HandoffIn, {k: form[k] for k in HANDOFF_FIELDS if k in form})
        await tasks.handoff(principal, task_id, body.to_user_id, body.comment)

    return await _task_action(request, task_id, HANDOFF_FIELDS, action)


@post("/app/tasks/{task_id:int}/edit", include_in_schema=False, status_code=303)
async def task_update(request: Request[Any, Any, Any], task_id: int) -> Response[Any]:
    """Change the task: reassign, new deadline, controller, priority (``TaskPatch``,
    ``service.update`` with the version the page was read at)."""

    async def action(principal: Principal, form: dict[str, Any]) -> None:
        body = {k: form[k] for k in TASK_FIELDS - {"party_id"} if k in form}
        if form.get("version"):
            body["version"] = form["version"]
        values = set_fields(decode_form(tasks.TaskPatch, body))
        if "deadline" in form and not form["deadline"]:
            values["deadline"] = None  # emptied: no deadline
        if "controller_id" in form and not form["controller_id"]:
            values["controller_id"] = None
        expected = values.pop("version", None)
        await service.update(tasks.TASK, principal, task_id, values, expected)

    return await _task_action(request, task_id, TASK_FIELDS, action)


TASK_PAGES = [task_new, task_create, task_page, task_complete, task_accept, task_handoff, task_update]

__all__ = ["TASK_PAGES"]
