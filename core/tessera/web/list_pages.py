"""The kernel's list pages (issue 15.2): /app/parties, /app/contacts, /app/activities,
/app/tasks, declared with ``tessera.web.lists``, and the routes every list shares: export
(``/app/lists/{name}/export``) and bulk actions (``/app/lists/{name}/bulk``).

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any, get_args

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import clock, i18n
from tessera.api import filters as f
from tessera.entities import activities, parties, tasks
from tessera.errors import DomainError, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.web import lists
from tessera.web.lists import BulkAction, Cell, ListColumn, ListSpec, QuickFilter
from tessera.web.saved_views import PAGE_HANDLERS as VIEW_PAGES

# --------------------------------------------------------------------------- bulk changes


def owner_changes(column: str) -> Any:
    """A bulk "assign owner" setting ``column`` to the chosen user's id."""

    def changes(row: dict[str, Any], value: str) -> dict[str, Any]:
        try:
            user_id = int(value)
        except (TypeError, ValueError):
            raise ValidationFailed.field(column, N_("choose a user")) from None
        return {column: user_id}

    return changes


def add_tag(row: dict[str, Any], value: str) -> dict[str, Any]:
    tag = (value or "").strip()
    if not tag or len(tag) > 100:
        raise ValidationFailed.field("tag", N_("must be 1-100 characters"))
    tags = list(row.get("tags") or [])
    return {"tags": tags if tag in tags else [*tags, tag]}


ASSIGN_OWNER = N_("Assign owner")


def task_for(party_key: str) -> Any:
    """A bulk "create a task" for each row: titled as typed, about the row's client, for its
    owner (through ``TaskIn`` and the tasks service, as the new-task form)."""

    async def apply(principal: Principal, row: dict[str, Any], value: str) -> None:
        import msgspec

        from tessera.entities import service
        from tessera.entities.dto import set_fields

        title = (value or "").strip()
        if not title or len(title) > 500:
            raise ValidationFailed.field("task_title", N_("must be 1-500 characters"))
        body = {"title": title, "party_id": row.get(party_key), "assignee_id": row.get("owner_id")}
        data = msgspec.convert({k: v for k, v in body.items() if v is not None}, tasks.TaskIn)
        await service.create(tasks.TASK, principal, set_fields(data))

    return apply


CREATE_TASK = N_("Create a task for each, titled")


# --------------------------------------------------------------------------- loaders


async def _load_people(principal: Principal, rows: list[dict[str, Any]]) -> dict[str, Any]:
    users: set[Any] = set()
    for key in ("owner_id", "assignee_id", "controller_id"):
        users |= {r.get(key) for r in rows}
    return await lists.names(
        user_ids=users, party_ids={r.get("party_id") for r in rows}, team_ids={r.get("team_id") for r in rows}
    )


def _party_cell(row: dict[str, Any], ctx: dict[str, Any]) -> Cell:
    party_id = row.get("party_id")
    if not party_id:
        return Cell()
    return Cell(text=ctx.get("parties", {}).get(party_id, ""), href=f"/app/parties/{party_id}")


def _phones(row: dict[str, Any], ctx: dict[str, Any]) -> Cell:
    """The numbers; ``dial`` lets the telephony script add a click-to-call button to each."""
    text = "; ".join(p.get("number", "") for p in row.get("phones") or [] if isinstance(p, dict))
    return Cell(text=text, css="dial" if text else "")


def _emails(row: dict[str, Any], ctx: dict[str, Any]) -> str:
    return "; ".join(e.get("address", "") for e in row.get("emails") or [] if isinstance(e, dict))


def _task_deadline(row: dict[str, Any], ctx: dict[str, Any]) -> Cell:
    tasks.decorate(row)
    return Cell(text=lists.when("deadline")(row, ctx), css="bad" if row.get("overdue") else "")


# --------------------------------------------------------------------------- the lists

PARTIES = lists.register(
    ListSpec(
        name="parties",
        title=N_("Clients"),
        url="/app/parties",
        entity=parties.PARTY,
        filters=f.party_filters,
        default_order="name",
        columns=[
            ListColumn(
                "name",
                N_("Name"),
                lambda r, c: Cell(text=r["name"], href=f"/app/parties/{r['id']}"),
                export=lists.raw("name"),
                sort="name",
            ),
            ListColumn(
                "relations",
                N_("Relation"),
                lambda r, c: ", ".join(i18n.label("party.relation", x) for x in r.get("relations") or []),
            ),
            ListColumn("status", N_("Status"), lists.labelled("party.status", "status")),
            ListColumn("owner", N_("Owner"), lists.user_cell("owner_id")),
            ListColumn("team", N_("Team"), lambda r, c: c.get("teams", {}).get(r.get("team_id"), "")),
            ListColumn("phones", N_("Phone"), _phones),
            ListColumn("tags", N_("Tags"), lambda r, c: Cell(pills=list(r.get("tags") or []))),
            ListColumn(
                "created_at",
                N_("Created"),
                lists.when("created_at"),
                export=lists.raw("created_at"),
                sort="created_at",
            ),
        ],
        quick=[
            QuickFilter("q", N_("Name contains")),
            QuickFilter("status", N_("Status"), "choice", ("potential", "current", "former"), "party.status"),
            QuickFilter(
                "relation",
                N_("Relation"),
                "choice",
                ("client", "partner", "supplier", "competitor"),
                "party.relation",
            ),
            QuickFilter("kind", N_("Kind"), "choice", ("organisation", "person"), "party.kind"),
            QuickFilter("owner_id", N_("Owner"), "user"),
            QuickFilter("team_id", N_("Team"), "team"),
            QuickFilter("tag", N_("Tag")),
            QuickFilter("phone_or_email", N_("Phone or e-mail")),
            QuickFilter("created_after", N_("Created from"), "date"),
            QuickFilter("created_before", N_("Created before"), "date"),
        ],
        row_href=lambda r: f"/app/parties/{r['id']}",
        load=_load_people,
        bulk=[
            BulkAction("owner", ASSIGN_OWNER, "user", "owner_id", owner_changes("owner_id")),
            BulkAction("tag", N_("Add tag"), "text", "tag", add_tag),
            BulkAction("task", CREATE_TASK, "text", "task_title", apply=task_for("id")),
        ],
        actions=[("/app/parties/new", N_("New client"))],
        presets=[(N_("My clients"), lambda p: {"owner_id": str(p.user_id)})],
        empty=N_("No clients match."),
    )
)

CONTACTS = lists.register(
    ListSpec(
        name="contacts",
        title=N_("Contacts"),
        url="/app/contacts",
        entity=parties.CONTACT,
        filters=f.contact_filters,
        default_order="name",
        columns=[
            ListColumn(
                "name",
                N_("Name"),
                lambda r, c: Cell(text=r["name"], href=f"/app/parties/{r['party_id']}"),
                export=lists.raw("name"),
                sort="name",
            ),
            ListColumn("party", N_("Client"), _party_cell),
            ListColumn("position", N_("Position"), lists.raw("position")),
            ListColumn("role", N_("Role"), lists.raw("role")),
            ListColumn("phones", N_("Phone"), _phones),
            ListColumn("emails", N_("E-mail"), _emails),
            ListColumn(
                "created_at",
                N_("Created"),
                lists.when("created_at"),
                export=lists.raw("created_at"),
                sort="created_at",
            ),
        ],
        quick=[
            QuickFilter("q", N_("Name contains")),
            QuickFilter("phone_or_email", N_("Phone or e-mail")),
        ],
        row_href=lambda r: f"/app/parties/{r['party_id']}",
        load=_load_people,
        empty=N_("No contacts match."),
    )
)

ACTIVITIES = lists.register(
    ListSpec(
        name="activities",
        title=N_("Activities"),
        url="/app/activities",
        entity=activities.ACTIVITY,
        filters=f.activity_filters,
        default_order="-starts_at",
        columns=[
            ListColumn(
                "starts_at",
                N_("When"),
                lists.when("starts_at"),
                export=lists.raw("starts_at"),
                sort="starts_at",
            ),
            ListColumn("type", N_("Type"), lists.labelled("activity.type", "type")),
            ListColumn(
                "subject",
                N_("Subject"),
                lambda r, c: Cell(
                    text=r["subject"], href=f"/app/parties/{r['party_id']}" if r.get("party_id") else None
                ),
                export=lists.raw("subject"),
            ),
            ListColumn("party", N_("Client"), _party_cell),
            ListColumn(
                "status",
                N_("Status"),
                lambda r, c: Cell(
                    text=i18n.label("activity.status", r["status"]),
                    css="bad" if r["status"] == "planned" and r["starts_at"] < clock.now() else "",
                ),
            ),
            ListColumn("owner", N_("Owner"), lists.user_cell("owner_id")),
        ],
        quick=[
            QuickFilter("q", N_("Subject contains")),
            QuickFilter("type", N_("Type"), "choice", get_args(activities.ActivityType), "activity.type"),
            QuickFilter(
                "status", N_("Status"), "choice", ("planned", "done", "cancelled"), "activity.status"
            ),
            QuickFilter("owner_id", N_("Owner"), "user"),
            QuickFilter("team_id", N_("Team"), "team"),
            QuickFilter("overdue", N_("Overdue"), "flag"),
            QuickFilter("starts_after", N_("From"), "date"),
            QuickFilter("starts_before", N_("Before"), "date"),
        ],
        row_href=lambda r: f"/app/parties/{r['party_id']}" if r.get("party_id") else None,
        bulk=[
            BulkAction("owner", ASSIGN_OWNER, "user", "owner_id", owner_changes("owner_id")),
            BulkAction("task", CREATE_TASK, "text", "task_title", apply=task_for("party_id")),
        ],
        presets=[(N_("My planned"), lambda p: {"owner_id": str(p.user_id), "status": "planned"})],
        load=_load_people,
        empty=N_("No activities match."),
    )
)

TASKS = lists.register(
    ListSpec(
        name="tasks",
        title=N_("Tasks"),
        url="/app/tasks",
        entity=tasks.TASK,
        filters=f.task_filters,
        default_order="deadline",
        columns=[
            ListColumn(
                "title",
                N_("Task"),
                lambda r, c: Cell(text=r["title"], href=f"/app/tasks/{r['id']}"),
                export=lists.raw("title"),
            ),
            ListColumn(
                "deadline", N_("Deadline"), _task_deadline, export=lists.raw("deadline"), sort="deadline"
            ),
            ListColumn("status", N_("Status"), lists.labelled("task.status", "status")),
            ListColumn("priority", N_("Priority"), lists.labelled("task.priority", "priority")),
            ListColumn("assignee", N_("Assignee"), lists.user_cell("assignee_id")),
            ListColumn("controller", N_("Controller"), lists.user_cell("controller_id")),
            ListColumn("party", N_("Client"), _party_cell),
            ListColumn(
                "created_at",
                N_("Created"),
                lists.when("created_at"),
                export=lists.raw("created_at"),
                sort="created_at",
            ),
        ],
        quick=[
            QuickFilter(
                "status", N_("Status"), "choice", ("open", "in_progress", "done", "cancelled"), "task.status"
            ),
            QuickFilter("open", N_("Open only"), "flag"),
            QuickFilter("overdue", N_("Overdue"), "flag"),
            QuickFilter("assignee_id", N_("Assignee"), "user"),
            QuickFilter("controller_id", N_("Controller"), "user"),
            QuickFilter("team_id", N_("Team"), "team"),
            QuickFilter(
                "priority", N_("Priority"), "choice", ("low", "normal", "high", "urgent"), "task.priority"
            ),
            QuickFilter("deadline_before", N_("Deadline before"), "date"),
        ],
        row_href=lambda r: f"/app/tasks/{r['id']}",
        load=_load_people,
        bulk=[BulkAction("owner", N_("Assign to"), "user", "assignee_id", owner_changes("assignee_id"))],
        actions=[("/app/tasks/new", N_("New task"))],
        presets=[
            (N_("My open tasks"), lambda p: {"assignee_id": str(p.user_id), "open": "true"}),
            (N_("Overdue"), lambda p: {"overdue": "true"}),
        ],
        empty=N_("No tasks match."),
    )
)


# --------------------------------------------------------------------------- routes


@get("/app/parties", include_in_schema=False)
async def party_list(request: Request[Any, Any, Any]) -> Response[Any]:
    return await lists.list_response(request, PARTIES)


@get("/app/contacts", include_in_schema=False)
async def contact_list(request: Request[Any, Any, Any]) -> Response[Any]:
    return await lists.list_response(request, CONTACTS)


@get("/app/activities", include_in_schema=False)
async def activity_list(request: Request[Any, Any, Any]) -> Response[Any]:
    return await lists.list_response(request, ACTIVITIES)


@get("/app/tasks", include_in_schema=False)
async def task_list(request: Request[Any, Any, Any]) -> Response[Any]:
    return await lists.list_response(request, TASKS)


@get("/app/lists/{list_name:str}/export", include_in_schema=False)
async def export_list(request: Request[Any, Any, Any], list_name: str) -> Response[Any]:
    """The rows of a list the user may see with the page's filters, as CSV or XLSX
    (``format=csv|xlsx``); refusals are shown on the list page."""
    from tessera.web.pages import current_principal, error_page

    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        spec = lists.get_list(list_name)
    except DomainError as exc:
        return error_page(request, principal, exc)
    try:
        return await lists.export_rows(request, spec, principal, request.query_params.get("format", "csv"))
    except (lists.FilterErrors, ValidationFailed) as exc:
        return await lists.list_response(request, spec, error=lists.filter_message(exc), status=exc.status)
    except DomainError as exc:
        return error_page(request, principal, exc)


@post("/app/lists/{list_name:str}/bulk", include_in_schema=False, status_code=303)
async def bulk_submit(request: Request[Any, Any, Any], list_name: str) -> Response[Any]:
    """A bulk action on the rows ticked on a list page (works without JavaScript): all of
    them change, or none (the refused rows are named on the page)."""
    from tessera.web.pages import _require, check_csrf, error_page

    principal = await _require(request)
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    check_csrf(principal, data)
    try:
        spec = lists.get_list(list_name)
    except DomainError as exc:
        return error_page(request, principal, exc)
    action = next((a for a in spec.bulk if a.key == data.get("action")), None)
    try:
        ids: list[int] = []
        for raw in form.getall("ids", []) if hasattr(form, "getall") else []:
            try:
                ids.append(int(raw))
            except (TypeError, ValueError):
                raise ValidationFailed.field("ids", N_("must be record ids")) from None
        value = data.get(action.field, "") if action else ""
        outcome = await lists.apply_bulk(spec, principal, data.get("action", ""), ids, value)
    except DomainError as exc:
        message = "; ".join(i18n.translate_message(e.message) for e in exc.errors) or i18n.translate_message(
            exc.detail
        )
        return await lists.list_response(
            request, spec, error=i18n.gettext("Nothing was changed:") + " " + message, status=exc.status
        )
    if outcome.refused:
        refused = "; ".join(
            f"#{record_id}: {i18n.translate_message(reason)}" for record_id, reason in outcome.refused
        )
        return await lists.list_response(
            request,
            spec,
            error=i18n.gettext("Nothing was changed: you may not change these rows:") + " " + refused,
            status=403,
        )
    back = spec.url + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(back, status_code=303)


HANDLERS = [party_list, contact_list, activity_list, task_list, export_list, bulk_submit, *VIEW_PAGES]
