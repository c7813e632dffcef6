"""Administration pages under ``/app/admin`` (issue 15, item 9): users, teams, roles and their
permissions, substitutions, custom fields, plugins, process templates, scheduled and background
jobs, and the audit log.

Every page is guarded by the permission its API routes require (``user.manage`` for the
directory, ``customfield.manage``, ``workflow.manage``, ``job.manage``, ``audit.read``); a user
without it gets the 403 page. Forms are decoded through the API's own structs
(``UserIn``/``UserPatch``, ``TeamIn``, ``RoleIn``, ``SubstitutionIn``, ``CustomFieldsIn``,
``PublishIn``, ``JobPatch``) and written by the same services (``tessera.entities.service`` with
the ``admin`` entity specs, ``customfields.set_admin_properties``,
``workflow.routes.publish_new_version``, the job routes' own functions), so a page refuses what
the API refuses, for the same reason. docs/ui.md, "Administration".
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import audit_visibility, auth, clock, customfields, events, i18n
from tessera.api import background
from tessera.api.routes import CustomFieldsIn, JobPatch, list_job_runs, list_jobs, set_job
from tessera.api.security import deliver_reset_link, reset_link, settings_of
from tessera.entities import admin, service
from tessera.entities.tables import AuditLog, CrmUser, CustomFieldSchema, Role, Substitution, Team
from tessera.errors import (
    DomainError,
    FieldError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from tessera.i18n import N_
from tessera.permissions import SCOPES, Principal, all_permissions
from tessera.web import pages
from tessera.web.forms import decode_form, field_errors
from tessera.web.pages import check_csrf, current_principal, error_page, render

# --------------------------------------------------------------------------- sections, guard

#: (key, label, permission the page needs: the one its API routes require).
SECTIONS: list[tuple[str, str, str]] = [
    ("users", N_("Users"), "user.manage"),
    ("teams", N_("Teams"), "user.manage"),
    ("roles", N_("Roles and permissions"), "user.manage"),
    ("substitutions", N_("Substitutions"), "user.manage"),
    ("custom-fields", N_("Custom fields"), "customfield.manage"),
    ("plugins", N_("Plugins"), "user.manage"),
    ("workflows", N_("Process templates"), "workflow.manage"),
    ("jobs", N_("Scheduled jobs"), "job.manage"),
    ("background-jobs", N_("Background jobs"), "job.manage"),
    ("audit", N_("Audit log"), "audit.read"),
]
#: Holding any of these shows the "Admin" link and the admin home page.
ADMIN_PERMISSIONS = tuple(dict.fromkeys(permission for _k, _l, permission in SECTIONS))
_NEEDS = {key: permission for key, _label, permission in SECTIONS}


def may_administer(principal: Principal | None) -> bool:
    """Whether ``principal`` may open at least one admin page (the nav shows "Admin")."""
    return principal is not None and any(principal.can(p) for p in ADMIN_PERMISSIONS)


pages._env.globals["may_administer"] = may_administer


def _sections(principal: Principal) -> list[dict[str, str]]:
    return [
        {"key": key, "href": f"/app/admin/{key}", "label": i18n.gettext(label)}
        for key, label, permission in SECTIONS
        if principal.can(permission)
    ]


def _refusal() -> PermissionDenied:
    return PermissionDenied(i18n.gettext("You may not do this."))


async def _page_user(request: Request[Any, Any, Any], section: str) -> Principal | Response[Any]:
    """The signed-in user who may open ``section``; else the sign-in redirect or the 403 page."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    if not principal.can(_NEEDS[section]):
        return error_page(request, principal, _refusal())
    return principal


async def _form_user(request: Request[Any, Any, Any], section: str) -> tuple[Principal, dict[str, str], Any]:
    """For a POST: the signed-in user allowed ``section`` whose form carries the CSRF token,
    the form (one value per field) and the raw multi-dict (for lists of checkboxes)."""
    principal = await current_principal(request)
    if principal is None:
        raise NotAuthenticated(i18n.gettext("Sign in first"))
    raw = await request.form()
    form = {key: str(value) for key, value in raw.items() if isinstance(value, str)}
    check_csrf(principal, form)
    if not principal.can(_NEEDS[section]):
        raise _refusal()
    return principal, form, raw


def _show(
    request: Request[Any, Any, Any], template: str, principal: Principal, section: str, **context: Any
) -> Response[str]:
    errors = dict(context.pop("errors", None) or {})
    return render(
        request,
        template,
        principal=principal,
        section=section,
        sections=_sections(principal),
        error=errors.pop("", None),
        errors=errors,
        notice=_notice(request.query_params.get("done", "")),
        **context,
    )


#: Messages shown after a form succeeded (``?done=...``), translated when shown.
_NOTICE_TEXTS = {
    "created": N_("Saved."),
    "saved": N_("Saved."),
    "ended": N_("The substitution has ended."),
    "published": N_("A new version has been published."),
    "published-migrated": N_("A new version has been published and the running processes moved onto it."),
    "unchanged": N_("This definition is the current version already; nothing was published."),
    "retried": N_("The job has been queued again."),
    "cancelled": N_("The job has been cancelled."),
    "switched": N_("Saved."),
    "reset-sent": N_("A link to set a new password has been sent by e-mail."),
}


def _notice(done: str) -> str | None:
    text = _NOTICE_TEXTS.get(done)
    return i18n.gettext(text) if text else None


def _back(url: str, done: str) -> Redirect:
    joiner = "&" if "?" in url else "?"
    return Redirect(f"{url}{joiner}done={done}", status_code=303)


def _refused(exc: DomainError, fields: set[str] | frozenset[str]) -> dict[str, str]:
    """A service's refusal as errors beside the form's fields; 403/404 stay as they are."""
    if exc.status not in (409, 422):
        raise exc
    return field_errors(exc, fields)


# --------------------------------------------------------------------------- labels

i18n.register_labels(
    "role.name",
    {
        "admin": N_("Administrator"),
        "head": N_("Head of a sales team"),
        "manager": N_("Account manager"),
        "auditor": N_("Auditor"),
    },
)
i18n.register_labels(
    "role.scope", {"own": N_("Own records"), "team": N_("The team's records"), "all": N_("All records")}
)
i18n.register_labels(
    "job.outcome",
    {"running": N_("Running"), "ok": N_("Succeeded"), "error": N_("Failed"), "timeout": N_("Timed out")},
)
i18n.register_labels(
    "job.status",
    {
        "queued": N_("Queued"),
        "running": N_("Running"),
        "done": N_("Done"),
        "failed": N_("Failed"),
        "cancelled": N_("Cancelled"),
    },
)
i18n.register_labels(
    "job.kind",
    {
        "email.send": N_("Send an e-mail"),
        "webhook.deliver": N_("Deliver a webhook event"),
        "mail.inbound": N_("Hand an incoming e-mail to plugins"),
        "import.parties": N_("Import clients from a file"),
    },
)
i18n.register_labels(
    "audit.action",
    {
        "create": N_("Created"),
        "update": N_("Changed"),
        "delete": N_("Deleted"),
        "login": N_("Signed in"),
        "login_failed": N_("Sign-in failed"),
        "login_locked": N_("Sign-in locked"),
        "export": N_("Exported"),
        "revoke": N_("Revoked"),
        "publish": N_("Published"),
        "password_wrong": N_("Wrong current password"),
        "password_reset": N_("Password reset"),
        "password_change": N_("Password changed"),
        "reset_failed": N_("Password reset failed"),
        "reset_requested": N_("Password reset asked for"),
        "handoff": N_("Handed off"),
        "complete": N_("Completed"),
        "dial": N_("Called from the CRM"),
        "import_started": N_("Import started"),
    },
)
i18n.register_labels(
    "audit.entity",
    {
        "party": N_("Client"),
        "contact": N_("Contact"),
        "activity": N_("Activity"),
        "task": N_("Task"),
        "note": N_("Note"),
        "attachment": N_("File"),
        "user": N_("User"),
        "team": N_("Team"),
        "role": N_("Role"),
        "substitution": N_("Substitution"),
        "api_token": N_("API token"),
        "telephony": N_("Telephony"),
        "webhook": N_("Webhook"),
        "custom_field_schema": N_("Custom fields"),
        "workflow_template": N_("Process template"),
        "workflow_instance": N_("Process"),
        "sales.deal": N_("Deal"),
    },
)
i18n.register_labels(
    "permission.area",
    {
        "party": N_("Clients and contacts"),
        "activity": N_("Activities"),
        "task": N_("Tasks"),
        "note": N_("Notes and files"),
        "search": N_("Search"),
        "user": N_("Users"),
        "audit": N_("Audit log"),
        "job": N_("Scheduled jobs"),
        "webhook": N_("Webhooks"),
        "workflow": N_("Processes"),
        "sales": N_("Sales"),
        "service": N_("Service"),
        "marketing": N_("Marketing"),
        "receivables": N_("Receivables"),
        "knowledge_base": N_("Knowledge base"),
    },
)
i18n.register_labels(
    "custom.type",
    {
        "string": N_("Text"),
        "integer": N_("Whole number"),
        "number": N_("Number"),
        "boolean": N_("Yes / no"),
        "date": N_("Date"),
        "choice": N_("Choice from a list"),
    },
)
#: The kernel's permission descriptions (tessera.permissions), in the catalogue so that the
#: roles page shows them translated; plugins' descriptions are translated by their catalogues.
PERMISSION_TEXTS = (
    N_("Read parties (clients, partners, suppliers) and their contacts"),
    N_("Create and change parties and contacts"),
    N_("Delete parties and contacts"),
    N_("Export parties to a file"),
    N_("Read activities (calls, meetings, letters ...)"),
    N_("Log and plan activities"),
    N_("Delete activities"),
    N_("Read tasks"),
    N_("Create, hand off and complete tasks"),
    N_("Delete tasks"),
    N_("Read notes and attachments"),
    N_("Write notes and upload attachments"),
    N_("Use full-text search"),
    N_("Manage users, teams, roles and substitutions"),
    N_("Declare custom fields"),
    N_("Read the audit log"),
    N_("See and switch scheduled jobs"),
    N_("Create, change and delete outbound webhooks and read their delivery log"),
    N_("Read process instances and deviations"),
    N_("Create process templates; suspend, resume, stop and reassign instances"),
    N_("Everything, every record"),
    N_("Head of a sales team: the team's records, exports"),
    N_("Account manager: own clients only, no export"),
    N_("Reads the whole audit log, and no record"),
)


def role_label(name: str) -> str:
    """A default role in words; an admin-made role by the name the admin gave it."""
    return i18n.label("role.name", name) if name in {"admin", "head", "manager", "auditor"} else name


def permission_rows(granted: list[str], known: dict[str, str]) -> list[dict[str, str]]:
    """What a role's permission list grants, in words: ``*`` is everything, ``sales.*`` every
    permission of that area; each with its name as a secondary detail."""
    out = []
    for name in granted:
        if name == "*":
            text = i18n.gettext("Every permission")
        elif name.endswith(".*"):
            area = name[:-2]
            inside = [k for k in known if k.startswith(area + ".")]
            words = i18n.label("permission.area", area)
            if inside:
                text = i18n.gettext("Every permission of “%(area)s”", area=words)
            else:
                text = i18n.gettext(
                    "Every permission of “%(area)s” (no enabled plugin defines any yet)", area=words
                )
        else:
            text = i18n.translate_message(known.get(name, "")) or i18n.gettext(
                "(not defined by any enabled plugin)"
            )
        out.append({"name": name, "text": text})
    return out


pages._env.globals["role_label"] = role_label


# --------------------------------------------------------------------------- home


@get("/app/admin", include_in_schema=False)
async def admin_home(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    if not may_administer(principal):
        return error_page(request, principal, _refusal())
    return _show(request, "admin_home.html", principal, "")


# --------------------------------------------------------------------------- users

USER_FIELDS = frozenset({"name", "email", "password", "team_id", "roles", "timezone", "locale"})


async def _directory() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    teams = await Team.select(Team.id, Team.name).order_by(Team.name)
    roles = await Role.select().order_by(Role.name)
    return teams, roles


async def _users_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    reset: dict[str, Any] | None = None,
) -> Response[str]:
    from tessera.api.filters import user_filters

    params = request.query_params
    cursor = params.get("cursor") or None
    q = (params.get("q") or "").strip()[:200]
    team = params.get("team_id", "")
    state = params.get("state", "")
    conditions = user_filters(
        q=q or None,
        team_id=int(team) if team.isdigit() and service.valid_id(int(team)) else None,
        is_active={"active": True, "inactive": False}.get(state),
    )
    page = await service.list_page(admin.USER, principal, conditions, order="name", cursor=cursor, limit=100)
    users = await admin.with_roles(page.items)
    teams, roles = await _directory()
    response = _show(
        request,
        "admin_users.html",
        principal,
        "users",
        users=users,
        next_cursor=page.next_cursor,
        filters={"q": q, "team_id": team, "state": state},
        teams=teams,
        team_names={t["id"]: t["name"] for t in teams},
        roles=roles,
        form=form or {"roles": ["manager"]},
        errors=errors,
        reset=reset,
    )
    response.status_code = status
    return response


@get("/app/admin/users", include_in_schema=False)
async def users_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _page_user(request, "users")
    if isinstance(principal, Response):
        return principal
    return await _users_page(request, principal)


def _user_values(form: dict[str, str], raw: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The form's scalar fields and the values the page adds (the list of roles)."""
    sent = {k: v for k, v in form.items() if k in USER_FIELDS | {"csrf_token"} and k != "roles"}
    return sent, {"roles": [str(r) for r in raw.getall("roles")] if "roles" in raw else []}


@post("/app/admin/users", include_in_schema=False, status_code=303)
async def user_create(request: Request[Any, Any, Any]) -> Response[Any]:
    """Create (invite) a user. Without a password the page arranges a reset link so the person
    chooses one: sent by e-mail when e-mail is set up, else shown once to the admin."""
    principal, form, raw = await _form_user(request, "users")
    sent, extra = _user_values(form, raw)
    try:
        body = decode_form(admin.UserIn, sent, **extra)
        async with events.unit_of_work():
            row = await service.create(admin.USER, principal, _set(body))
    except DomainError as exc:
        kept = {**form, "roles": extra["roles"], "password": ""}
        return await _users_page(
            request, principal, form=kept, errors=_refused(exc, USER_FIELDS), status=exc.status
        )
    if body.password:
        return _back(f"/app/admin/users/{row['id']}", "created")
    return await _arrange_reset(request, principal, row)


def _set(body: Any) -> dict[str, Any]:
    from tessera.entities.dto import set_fields

    return set_fields(body)


async def _arrange_reset(
    request: Request[Any, Any, Any], principal: Principal, user: dict[str, Any]
) -> Response[Any]:
    """A single-use link to set a new password for ``user`` (``auth.create_reset_token``,
    valid ``password_reset_ttl``): delivered by ``deliver_reset_link`` when e-mail is set up
    (``smtp_host``) or a plugin delivers reset links, else shown once on the page."""
    settings = settings_of(request)
    pm = request.app.state.pm
    delivers = bool(settings.smtp_host) or bool(pm.hook.tessera_password_reset_link.get_hookimpls())
    async with events.unit_of_work():
        token, expires_at = await auth.create_reset_token(
            user["id"], settings.password_reset_ttl, created_by=principal.user_id
        )
        if delivers:
            await deliver_reset_link(request, user, token, expires_at)
    if delivers:
        return _back(f"/app/admin/users/{user['id']}", "reset-sent")
    response = await _user_page(
        request, principal, user["id"], reset={"link": reset_link(request, token), "expires_at": expires_at}
    )
    response.headers["Cache-Control"] = "no-store"  # the link is shown once
    return response


async def _user_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    user_id: int,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    reset: dict[str, Any] | None = None,
) -> Response[str]:
    try:
        user = (await admin.with_roles([await service.get(admin.USER, principal, user_id)]))[0]
    except DomainError as exc:
        return error_page(request, principal, exc)
    teams, roles = await _directory()
    response = _show(
        request,
        "admin_user.html",
        principal,
        "users",
        user=user,
        teams=teams,
        roles=roles,
        form=form or {**user, "team_id": user["team_id"] or ""},
        errors=errors,
        reset=reset,
    )
    response.status_code = status
    return response


@get("/app/admin/users/{user_id:int}", include_in_schema=False)
async def user_page(request: Request[Any, Any, Any], user_id: int) -> Response[Any]:
    principal = await _page_user(request, "users")
    if isinstance(principal, Response):
        return principal
    return await _user_page(request, principal, user_id)


@post("/app/admin/users/{user_id:int}", include_in_schema=False, status_code=303)
async def user_update(request: Request[Any, Any, Any], user_id: int) -> Response[Any]:
    """Change a user's name, e-mail, team and roles (``UserPatch``, as ``PATCH /api/users/{id}``)."""
    principal, form, raw = await _form_user(request, "users")
    sent, extra = _user_values(form, raw)
    sent.pop("password", None)
    if not sent.get("team_id"):
        extra["team_id"] = None  # "no team" is a value here, not "unchanged"
    try:
        body = decode_form(admin.UserPatch, sent, **extra)
        async with events.unit_of_work():
            await service.update(admin.USER, principal, user_id, _set(body))
    except DomainError as exc:
        kept = {**form, "roles": extra["roles"]}
        return await _user_page(
            request, principal, user_id, form=kept, errors=_refused(exc, USER_FIELDS), status=exc.status
        )
    return _back(f"/app/admin/users/{user_id}", "saved")


@post("/app/admin/users/{user_id:int}/active", include_in_schema=False, status_code=303)
async def user_active(request: Request[Any, Any, Any], user_id: int) -> Response[Any]:
    """Deactivate (``is_active=false``: no sign-in, sessions end) or reactivate a user."""
    principal, form, _raw = await _form_user(request, "users")
    try:
        body = decode_form(admin.UserPatch, {"is_active": form.get("is_active", "")})
        if user_id == principal.user_id and body.is_active is False:
            refusal = i18n.gettext("You cannot deactivate yourself.")
            raise ValidationFailed(refusal, [FieldError("is_active", refusal)])
        async with events.unit_of_work():
            await service.update(admin.USER, principal, user_id, _set(body))
            if body.is_active is False:
                await auth.end_sessions(user_id)  # their open web sessions end now
    except DomainError as exc:
        return await _user_page(
            request, principal, user_id, errors=_refused(exc, frozenset()), status=exc.status
        )
    return _back(f"/app/admin/users/{user_id}", "saved")


@post("/app/admin/users/{user_id:int}/password-reset", include_in_schema=False, status_code=200)
async def user_reset(request: Request[Any, Any, Any], user_id: int) -> Response[Any]:
    """Reset a user's password: a single-use link, by e-mail or shown once to the admin."""
    principal, _form, _raw = await _form_user(request, "users")
    user = (
        await CrmUser.select(CrmUser.id, CrmUser.email, CrmUser.name, CrmUser.is_active)
        .where(CrmUser.id == user_id)
        .first()
    )
    if user is None or not user["is_active"]:
        return error_page(request, principal, NotFound(f"user {user_id} not found"))
    return await _arrange_reset(request, principal, user)


# --------------------------------------------------------------------------- teams

TEAM_FIELDS = frozenset({"name", "description"})


async def _teams_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    page = await service.list_page(admin.TEAM, principal, [], order="name", limit=500)
    counts: dict[int, int] = {}
    for row in await CrmUser.select(CrmUser.team_id).where(CrmUser.team_id.is_not_null()):
        counts[row["team_id"]] = counts.get(row["team_id"], 0) + 1
    response = _show(
        request,
        "admin_teams.html",
        principal,
        "teams",
        teams=page.items,
        counts=counts,
        form=form or {},
        errors=errors,
    )
    response.status_code = status
    return response


@get("/app/admin/teams", include_in_schema=False)
async def teams_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _page_user(request, "teams")
    if isinstance(principal, Response):
        return principal
    return await _teams_page(request, principal)


@post("/app/admin/teams", include_in_schema=False, status_code=303)
async def team_create(request: Request[Any, Any, Any]) -> Response[Any]:
    principal, form, _raw = await _form_user(request, "teams")
    try:
        body = decode_form(admin.TeamIn, {k: v for k, v in form.items() if k in TEAM_FIELDS})
        async with events.unit_of_work():
            row = await service.create(admin.TEAM, principal, _set(body))
    except DomainError as exc:
        return await _teams_page(
            request, principal, form=form, errors=_refused(exc, TEAM_FIELDS), status=exc.status
        )
    return _back(f"/app/admin/teams/{row['id']}", "created")


async def _team_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    team_id: int,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    try:
        team = await service.get(admin.TEAM, principal, team_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    members = await admin.with_roles(
        await CrmUser.select(CrmUser.id, CrmUser.name, CrmUser.email, CrmUser.is_active)
        .where(CrmUser.team_id == team_id)
        .order_by(CrmUser.name)
    )
    others = (
        await CrmUser.select(CrmUser.id, CrmUser.name)
        .where(
            (CrmUser.team_id != team_id) | CrmUser.team_id.is_null(),
            CrmUser.is_active == True,  # noqa: E712
        )
        .order_by(CrmUser.name)
    )
    response = _show(
        request,
        "admin_team.html",
        principal,
        "teams",
        team=team,
        members=members,
        others=others,
        form=form or team,
        errors=errors,
    )
    response.status_code = status
    return response


@get("/app/admin/teams/{team_id:int}", include_in_schema=False)
async def team_page(request: Request[Any, Any, Any], team_id: int) -> Response[Any]:
    principal = await _page_user(request, "teams")
    if isinstance(principal, Response):
        return principal
    return await _team_page(request, principal, team_id)


@post("/app/admin/teams/{team_id:int}", include_in_schema=False, status_code=303)
async def team_update(request: Request[Any, Any, Any], team_id: int) -> Response[Any]:
    """Rename a team or change its description (``TeamPatch``)."""
    principal, form, _raw = await _form_user(request, "teams")
    try:
        body = decode_form(admin.TeamPatch, {k: v for k, v in form.items() if k in TEAM_FIELDS})
        async with events.unit_of_work():
            await service.update(admin.TEAM, principal, team_id, _set(body))
    except DomainError as exc:
        return await _team_page(
            request, principal, team_id, form=form, errors=_refused(exc, TEAM_FIELDS), status=exc.status
        )
    return _back(f"/app/admin/teams/{team_id}", "saved")


@post("/app/admin/teams/{team_id:int}/members", include_in_schema=False, status_code=303)
async def team_members(request: Request[Any, Any, Any], team_id: int) -> Response[Any]:
    """Add a user to the team (``user_id``) or take one out (``remove``): the user's
    ``team_id``, changed through the user service like ``PATCH /api/users/{id}``."""
    principal, form, _raw = await _form_user(request, "teams")
    try:
        await service.get(admin.TEAM, principal, team_id)
        remove = form.get("remove", "")
        target = remove or form.get("user_id", "")
        if not target.isdigit():
            refusal = i18n.gettext("Choose a user.")
            raise ValidationFailed(refusal, [FieldError("user_id", refusal)])
        body = decode_form(admin.UserPatch, {}, team_id=None if remove else team_id)
        async with events.unit_of_work():
            await service.update(admin.USER, principal, int(target), _set(body))
    except DomainError as exc:
        return await _team_page(
            request, principal, team_id, errors=_refused(exc, frozenset({"user_id"})), status=exc.status
        )
    return _back(f"/app/admin/teams/{team_id}", "saved")


# --------------------------------------------------------------------------- roles

ROLE_FIELDS = frozenset({"name", "description", "scope", "permissions"})


def _role_context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    known = all_permissions(request.app.state.pm)
    catalogue = [{"name": name, "text": i18n.translate_message(text)} for name, text in sorted(known.items())]
    return {"known": known, "catalogue": catalogue, "scopes": SCOPES}


async def _roles_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    context = _role_context(request)
    roles = await Role.select().order_by(Role.name)
    for role in roles:
        role["granted"] = permission_rows(role["permissions"] or [], context["known"])
    response = _show(
        request,
        "admin_roles.html",
        principal,
        "roles",
        roles=roles,
        form=form or {"scope": "own", "permissions": []},
        errors=errors,
        **context,
    )
    response.status_code = status
    return response


@get("/app/admin/roles", include_in_schema=False)
async def roles_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _page_user(request, "roles")
    if isinstance(principal, Response):
        return principal
    return await _roles_page(request, principal)


def _role_values(form: dict[str, str], raw: Any) -> tuple[dict[str, str], list[str]]:
    sent = {k: v for k, v in form.items() if k in {"name", "description", "scope"}}
    return sent, [str(p) for p in raw.getall("permissions")] if "permissions" in raw else []


@post("/app/admin/roles", include_in_schema=False, status_code=303)
async def role_create(request: Request[Any, Any, Any]) -> Response[Any]:
    principal, form, raw = await _form_user(request, "roles")
    sent, granted = _role_values(form, raw)
    try:
        body = decode_form(admin.RoleIn, sent, permissions=granted)
        async with events.unit_of_work():
            row = await service.create(admin.ROLE, principal, _set(body))
    except DomainError as exc:
        return await _roles_page(
            request,
            principal,
            form={**form, "permissions": granted},
            errors=_refused(exc, ROLE_FIELDS),
            status=exc.status,
        )
    return _back(f"/app/admin/roles/{row['id']}", "created")


async def _role_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    role_id: int,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    try:
        role = await service.get(admin.ROLE, principal, role_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    context = _role_context(request)
    # Wildcards and permissions of plugins not enabled here stay listed, so saving keeps them.
    extra = [p for p in role["permissions"] or [] if p not in context["known"]]
    members = (
        await CrmUser.select(CrmUser.id, CrmUser.name)
        .where(CrmUser.id.is_in(_role_users(role_id)))
        .order_by(CrmUser.name)
    )
    response = _show(
        request,
        "admin_role.html",
        principal,
        "roles",
        role=role,
        extra=permission_rows(extra, context["known"]),
        members=members,
        form=form or role,
        errors=errors,
        **context,
    )
    response.status_code = status
    return response


def _role_users(role_id: int) -> Any:
    from tessera.entities.tables import UserRole

    return UserRole.select(UserRole.user_id).where(UserRole.role_id == role_id)


@get("/app/admin/roles/{role_id:int}", include_in_schema=False)
async def role_page(request: Request[Any, Any, Any], role_id: int) -> Response[Any]:
    principal = await _page_user(request, "roles")
    if isinstance(principal, Response):
        return principal
    return await _role_page(request, principal, role_id)


@post("/app/admin/roles/{role_id:int}", include_in_schema=False, status_code=303)
async def role_update(request: Request[Any, Any, Any], role_id: int) -> Response[Any]:
    """Change a role's permissions, scope, name or description (``RolePatch``)."""
    principal, form, raw = await _form_user(request, "roles")
    sent, granted = _role_values(form, raw)
    try:
        body = decode_form(admin.RolePatch, sent, permissions=granted)
        async with events.unit_of_work():
            await service.update(admin.ROLE, principal, role_id, _set(body))
    except DomainError as exc:
        return await _role_page(
            request,
            principal,
            role_id,
            form={**form, "permissions": granted},
            errors=_refused(exc, ROLE_FIELDS),
            status=exc.status,
        )
    return _back(f"/app/admin/roles/{role_id}", "saved")


# --------------------------------------------------------------------------- substitutions

SUBSTITUTION_FIELDS = frozenset({"absent_user_id", "substitute_id", "starts_at", "ends_at", "reason"})


async def _substitutions_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    now = clock.now()
    shown = request.query_params.get("show", "")
    query = Substitution.select().order_by(Substitution.starts_at, ascending=False).limit(200)
    if shown != "all":
        query = query.where(Substitution.ends_at > now)
    rows = await query
    people = await CrmUser.select(CrmUser.id, CrmUser.name, CrmUser.is_active).order_by(CrmUser.name)
    response = _show(
        request,
        "admin_substitutions.html",
        principal,
        "substitutions",
        substitutions=rows,
        names={p["id"]: p["name"] for p in people},
        people=[p for p in people if p["is_active"]],
        now=now,
        show_all=shown == "all",
        zone=str(_zone()),
        form=form or {},
        errors=errors,
    )
    response.status_code = status
    return response


@get("/app/admin/substitutions", include_in_schema=False)
async def substitutions_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _page_user(request, "substitutions")
    if isinstance(principal, Response):
        return principal
    return await _substitutions_page(request, principal)


def _zone() -> Any:
    """The reader's time zone (profile setting), else UTC."""
    name = i18n.current_timezone()
    try:
        return ZoneInfo(name) if name else UTC
    except (ValueError, KeyError):
        return UTC


def _in_my_zone(value: str) -> str:
    """A ``datetime-local`` input (no zone) taken in the user's own time zone, the zone the
    pages show times in; anything else is left for the struct to judge."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        return value
    return parsed.replace(tzinfo=_zone()).isoformat()


@post("/app/admin/substitutions", include_in_schema=False, status_code=303)
async def substitution_create(request: Request[Any, Any, Any]) -> Response[Any]:
    """A substitution (``SubstitutionIn``): while it lasts the substitute sees and works on
    what the absent user sees."""
    principal, form, _raw = await _form_user(request, "substitutions")
    sent = {k: v for k, v in form.items() if k in SUBSTITUTION_FIELDS}
    for name in ("starts_at", "ends_at"):
        sent[name] = _in_my_zone(sent.get(name, ""))
    try:
        body = decode_form(admin.SubstitutionIn, sent)
        async with events.unit_of_work():
            await service.create(admin.SUBSTITUTION, principal, _set(body))
    except DomainError as exc:
        return await _substitutions_page(
            request, principal, form=form, errors=_refused(exc, SUBSTITUTION_FIELDS), status=exc.status
        )
    return _back("/app/admin/substitutions", "created")


@post("/app/admin/substitutions/{substitution_id:int}/end", include_in_schema=False, status_code=303)
async def substitution_end(request: Request[Any, Any, Any], substitution_id: int) -> Response[Any]:
    """End a substitution now; one that has not begun yet is withdrawn (deleted)."""
    principal, _form, _raw = await _form_user(request, "substitutions")
    now = clock.now()
    try:
        row = await service.get(admin.SUBSTITUTION, principal, substitution_id)
        async with events.unit_of_work():
            if row["starts_at"] >= now:
                await service.delete(admin.SUBSTITUTION, principal, substitution_id)
            else:
                body = decode_form(admin.SubstitutionPatch, {}, ends_at=now)
                await service.update(admin.SUBSTITUTION, principal, substitution_id, _set(body))
    except DomainError as exc:
        return await _substitutions_page(
            request, principal, errors=_refused(exc, frozenset()), status=exc.status
        )
    return _back("/app/admin/substitutions", "ended")


# --------------------------------------------------------------------------- custom fields

FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FIELD_TYPES = ("string", "integer", "number", "boolean", "date", "choice")
CUSTOM_FIELDS = frozenset({"name", "title", "type", "choices", "max_length", "required"})


def field_type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "choice"
    if schema.get("format") == "date":
        return "date"
    kind = schema.get("type")
    return kind if kind in FIELD_TYPES else "string"


async def _admin_properties(entity_type: str) -> tuple[dict[str, Any], list[str]]:
    row = (
        await CustomFieldSchema.select()
        .where(CustomFieldSchema.entity_type == entity_type)
        .first()
        .output(load_json=True)
    )
    if row is None:
        return {}, []
    return dict(row["properties"] or {}), list(row["required"] or [])


async def _custom_fields_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    target: str | None,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    pm = request.app.state.pm
    targets = customfields.declared_targets(pm)
    if target is not None and target not in targets:
        return error_page(request, principal, NotFound(f"custom field target {target!r} not found"))
    fields: list[dict[str, Any]] = []
    if target is not None:
        schema = await customfields.effective_schema(pm, target)
        mine, _required = await _admin_properties(target)
        for name, spec in sorted(schema["properties"].items()):
            fields.append(
                {
                    "name": name,
                    "title": spec.get("title") or "",
                    "type": field_type(spec),
                    "choices": ", ".join(str(c) for c in spec.get("enum", [])),
                    "max_length": spec.get("maxLength", ""),
                    "required": name in schema["required"],
                    "admin": name in mine,
                    "schema": json.dumps(spec, ensure_ascii=False),
                }
            )
        editing = request.query_params.get("edit")
        if form is None and editing:
            form = next((f for f in fields if f["name"] == editing and f["admin"]), None)
    response = _show(
        request,
        "admin_custom_fields.html",
        principal,
        "custom-fields",
        targets=sorted(targets),
        target=target,
        fields=fields,
        types=FIELD_TYPES,
        form=form or {"type": "string"},
        errors=errors,
    )
    response.status_code = status
    return response


@get("/app/admin/custom-fields", include_in_schema=False)
async def custom_fields_home(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _page_user(request, "custom-fields")
    if isinstance(principal, Response):
        return principal
    return await _custom_fields_page(request, principal, None)


@get("/app/admin/custom-fields/{target:str}", include_in_schema=False)
async def custom_fields_page(request: Request[Any, Any, Any], target: str) -> Response[Any]:
    principal = await _page_user(request, "custom-fields")
    if isinstance(principal, Response):
        return principal
    return await _custom_fields_page(request, principal, target)


def _field_schema(form: dict[str, str], plugin_fields: set[str]) -> tuple[str, dict[str, Any]]:
    """The JSON schema of the field the form describes; ``ValidationFailed`` naming the input."""
    name = form.get("name", "").strip()
    if not FIELD_NAME.match(name):
        raise ValidationFailed.field(
            "name", i18n.gettext("use small Latin letters, digits and _, starting with a letter")
        )
    if name in plugin_fields:
        raise ValidationFailed.field(
            "name", i18n.gettext("a plugin declares this field; choose another name")
        )
    kind = form.get("type", "")
    if kind not in FIELD_TYPES:
        raise ValidationFailed.field("type", "is not one of the allowed choices")
    schema: dict[str, Any]
    if kind == "choice":
        choices = [c.strip() for c in form.get("choices", "").split(",") if c.strip()]
        if not choices:
            raise ValidationFailed.field("choices", i18n.gettext("list the choices, separated by commas"))
        schema = {"type": "string", "enum": list(dict.fromkeys(choices))}
    elif kind == "date":
        schema = {"type": "string", "format": "date"}
    else:
        schema = {"type": kind}
    if kind == "string" and form.get("max_length", "").strip():
        text = form["max_length"].strip()
        if not text.isdigit() or int(text) < 1:
            raise ValidationFailed.field("max_length", "must be a whole number")
        schema["maxLength"] = int(text)
    if form.get("title", "").strip():
        schema["title"] = form["title"].strip()[:200]
    return name, schema


@post("/app/admin/custom-fields/{target:str}", include_in_schema=False, status_code=303)
async def custom_field_save(request: Request[Any, Any, Any], target: str) -> Response[Any]:
    """Add or change one admin field of ``target``, or remove it (``remove``): the admin's
    whole set is then stored through ``customfields.set_admin_properties`` (``CustomFieldsIn``,
    as ``PUT /api/custom-fields/{entity_type}``), which checks the JSON schema."""
    principal, form, _raw = await _form_user(request, "custom-fields")
    pm = request.app.state.pm
    try:
        declared = customfields.declared_targets(pm)
        if target not in declared:
            raise NotFound(f"custom field target {target!r} not found")
        properties, required = await _admin_properties(target)
        if form.get("remove"):
            properties.pop(form["remove"], None)
            required = [r for r in required if r != form["remove"]]
        else:
            name, schema = _field_schema(form, set(declared[target]))
            properties[name] = schema
            required = [r for r in required if r != name] + ([name] if form.get("required") else [])
        body = decode_form(CustomFieldsIn, {}, properties=properties, required=required)
        await customfields.set_admin_properties(pm, target, body.properties, body.required, principal.user_id)
    except DomainError as exc:
        return await _custom_fields_page(
            request, principal, target, form=form, errors=_refused(exc, CUSTOM_FIELDS), status=exc.status
        )
    return _back(f"/app/admin/custom-fields/{target}", "saved")


# --------------------------------------------------------------------------- plugins


@get("/app/admin/plugins", include_in_schema=False)
async def plugins_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Installed plugins, whether each is enabled here and its version (read-only: enabling
    one is a setting, then ``tessera migrate`` and a restart)."""
    from tessera.plugins import enabled_plugin_names, installed_plugins

    principal = await _page_user(request, "plugins")
    if isinstance(principal, Response):
        return principal
    enabled = set(enabled_plugin_names(request.app.state.pm))
    installed = installed_plugins()
    rows = [
        {
            "name": name,
            "enabled": name in enabled,
            "installed": name in installed,
            "version": installed[name].version if name in installed else None,
            "distribution": installed[name].distribution if name in installed else None,
        }
        for name in sorted(set(installed) | enabled)
    ]
    return _show(request, "admin_plugins.html", principal, "plugins", plugins=rows)


# --------------------------------------------------------------------------- process templates


def norm_text(norm: dict[str, Any] | None) -> str:
    """A stage's norm in words: "4 h", "1 d (calendar days)"."""
    if not norm:
        return ""
    parts = []
    for unit, text in (("days", N_("%(n)s d")), ("hours", N_("%(n)s h")), ("minutes", N_("%(n)s min"))):
        if norm.get(unit):
            parts.append(i18n.gettext(text, n=norm[unit]))
    calendar = norm.get("calendar")
    suffix = ""
    if calendar == "calendar":
        suffix = " " + i18n.gettext("(calendar time)")
    elif calendar == "business" or (calendar is None and parts):
        suffix = " " + i18n.gettext("(business time)")
    return " ".join(parts) + suffix


pages._env.globals["norm_text"] = norm_text


def person_text(person: dict[str, Any] | None, people: dict[int, str]) -> str:
    """Who a stage's responsible or controller is, in words."""
    if not person:
        return ""
    if "user" in person:
        return people.get(person["user"], "") or i18n.gettext("A user who no longer exists")
    if "role" in person:
        role = role_label(person["role"])
        if person.get("team") == "owner":
            return i18n.gettext("%(role)s of the owner's team", role=role)
        return i18n.gettext("Any %(role)s", role=role)
    if person.get("owner"):
        return i18n.gettext("The record's owner")
    if person.get("starter"):
        return i18n.gettext("Who started the process")
    if "rule" in person:
        return i18n.gettext("Chosen by the plugin rule “%(rule)s”", rule=person["rule"])
    return ""


pages._env.globals["person_text"] = person_text


def schedule_text(schedule: str) -> str:
    """A job's schedule in words: ``every 3600s`` -> "every 1 h"; a cron line stays a cron
    line, introduced as such."""
    match = re.fullmatch(r"every (\d+)s", schedule or "")
    if match:
        seconds = int(match.group(1))
        if seconds % 3600 == 0:
            amount = i18n.gettext("%(n)s h", n=seconds // 3600)
        elif seconds % 60 == 0:
            amount = i18n.gettext("%(n)s min", n=seconds // 60)
        else:
            amount = i18n.gettext("%(n)s s", n=seconds)
        return i18n.gettext("every %(amount)s", amount=amount)
    if schedule.startswith("cron "):
        return i18n.gettext("by the timetable %(cron)s (cron)", cron=schedule[5:])
    return schedule


pages._env.globals["schedule_text"] = schedule_text


@get("/app/admin/workflows", include_in_schema=False)
async def workflows_page(request: Request[Any, Any, Any]) -> Response[Any]:
    from tessera.workflow import templates

    principal = await _page_user(request, "workflows")
    if isinstance(principal, Response):
        return principal
    await templates.sync_plugin_templates(request.app.state.pm)
    return _show(
        request, "admin_workflows.html", principal, "workflows", templates=await templates.list_current()
    )


async def _workflow_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    key: str,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    from tessera.workflow import templates

    await templates.sync_plugin_templates(request.app.state.pm)
    try:
        versions = await templates.list_versions(key)
    except DomainError as exc:
        return error_page(request, principal, exc)
    wanted = request.query_params.get("version", "")
    current = next((v for v in versions if v["is_current"]), versions[-1])
    shown = next((v for v in versions if str(v["version"]) == wanted), current)
    definition = json.dumps(current["definition"], ensure_ascii=False, indent=2)
    people = {u["id"]: u["name"] for u in await CrmUser.select(CrmUser.id, CrmUser.name)}
    response = _show(
        request,
        "admin_workflow.html",
        principal,
        "workflows",
        key=key,
        versions=versions,
        shown=shown,
        stages=_stages(shown["definition"]),
        people=people,
        form=form or {"definition": definition},
        errors=errors,
    )
    response.status_code = status
    return response


def _stages(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages of a definition, each with the names of the stages it leads to."""
    from tessera.workflow import templates

    stages = definition.get("stages", [])
    names = {s["key"]: s.get("name") or s["key"] for s in stages}
    return [
        {**s, "next": [names.get(t["to"], t["to"]) for t in templates.next_candidates(definition, s["key"])]}
        for s in stages
    ]


@get("/app/admin/workflows/{key:str}", include_in_schema=False)
async def workflow_page(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    principal = await _page_user(request, "workflows")
    if isinstance(principal, Response):
        return principal
    return await _workflow_page(request, principal, key)


@post("/app/admin/workflows/{key:str}/versions", include_in_schema=False, status_code=303)
async def workflow_publish(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    """Publish the edited definition as the next version of ``key`` (``PublishIn`` through
    ``publish_new_version``, as ``POST /api/workflow/templates/{key}/versions``). Running
    processes keep their version."""
    from tessera.workflow.routes import PublishIn, publish_new_version

    principal, form, _raw = await _form_user(request, "workflows")
    try:
        try:
            definition = json.loads(form.get("definition", ""))
        except ValueError as exc:
            raise ValidationFailed.field(
                "definition",
                i18n.gettext("is not valid JSON (line %(line)s)", line=getattr(exc, "lineno", "?")),
            ) from exc
        if not isinstance(definition, dict):
            raise ValidationFailed.field("definition", "has the wrong kind of value")
        # "Move running processes onto it": the API's ``migrate`` with stages keeping their keys.
        migrate = {"comment": form.get("comment", "")} if form.get("migrate") else None
        body = decode_form(PublishIn, {}, definition=definition, migrate=migrate)
        published = await publish_new_version(principal, request.app.state.pm, key, body)
    except DomainError as exc:
        errors = _refused(exc, frozenset({"definition"}))
        # A refusal about a path inside the definition ("definition.stages.0.norm") is shown
        # above the text with the path, as the template's author needs it.
        details = [f"{e.field}: {e.message}" for e in exc.errors if e.field.startswith("definition.")]
        if details:
            errors["definition"] = "; ".join(details)
        return await _workflow_page(request, principal, key, form=form, errors=errors, status=exc.status)
    if published.migrated:
        return _back(f"/app/admin/workflows/{key}", "published-migrated")
    return _back(f"/app/admin/workflows/{key}", "published" if published.created else "unchanged")


# --------------------------------------------------------------------------- jobs


@get("/app/admin/jobs", include_in_schema=False)
async def jobs_page(request: Request[Any, Any, Any], job: str | None = None) -> Response[Any]:
    """Scheduled jobs (switch on/off) and their last runs with outcome; the job routes'
    own functions (``list_jobs``, ``list_job_runs``) read them."""
    principal = await _page_user(request, "jobs")
    if isinstance(principal, Response):
        return principal
    from tessera.scheduler import collect_jobs

    jobs = await list_jobs.fn(request, principal)
    runs = await list_job_runs.fn(principal, job_name=job or None, limit=100)
    titles = {
        name: i18n.translate_message(spec.description) if spec.description else i18n.label("job.name", name)
        for name, (_plugin, spec) in collect_jobs(request.app.state.pm).items()
    }
    return _show(
        request,
        "admin_jobs.html",
        principal,
        "jobs",
        jobs=jobs,
        runs=runs,
        job=job or "",
        titles=titles,
    )


#: What the kernel's scheduled jobs do (tessera.scheduler), in the catalogue so that the jobs
#: page shows them translated; plugins' job descriptions are translated by their catalogues.
JOB_TEXTS = (
    N_("Notify controllers of tasks past their deadline"),
    N_("Deliver domain events left undelivered by a crash"),
    N_("Escalate process instances past their stage norm or missing required actions"),
    N_("Run delayed process-stage actions that are due (planned calls, tasks, events)"),
    N_("Index records whose indexing failed (index locked or unavailable)"),
    N_("Delete expired web sessions"),
)


@post("/app/admin/jobs/{name:str}/switch", include_in_schema=False, status_code=303)
async def job_switch(request: Request[Any, Any, Any], name: str) -> Response[Any]:
    principal, form, _raw = await _form_user(request, "jobs")
    try:
        body = decode_form(JobPatch, {"enabled": form.get("enabled", "")})
        await set_job.fn(principal, name, body)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return _back("/app/admin/jobs", "switched")


@get("/app/admin/background-jobs", include_in_schema=False)
async def background_jobs_page(request: Request[Any, Any, Any], status: str | None = None) -> Response[Any]:
    principal = await _page_user(request, "background-jobs")
    if isinstance(principal, Response):
        return principal
    statuses = ("queued", "running", "done", "failed", "cancelled")
    chosen = status if status in statuses else None
    rows = await background.list_background_jobs.fn(principal, status=chosen, kind=None, limit=200)
    return _show(
        request,
        "admin_background_jobs.html",
        principal,
        "background-jobs",
        jobs=rows,
        statuses=statuses,
        status=chosen or "",
    )


@post("/app/admin/background-jobs/{job_id:int}/{action:str}", include_in_schema=False, status_code=303)
async def background_job_action(request: Request[Any, Any, Any], job_id: int, action: str) -> Response[Any]:
    """Retry a failed or cancelled job, or cancel a queued or running one (the API's routes)."""
    principal, _form, _raw = await _form_user(request, "background-jobs")
    handlers = {"retry": background.retry_background_job, "cancel": background.cancel_background_job}
    if action not in handlers:
        return error_page(request, principal, NotFound("no such action"))
    try:
        await handlers[action].fn(principal, job_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return _back("/app/admin/background-jobs", "retried" if action == "retry" else "cancelled")


# --------------------------------------------------------------------------- audit log

AUDIT_PAGE = 50
AUDIT_FILTERS = frozenset({"entity", "entity_id", "user_id", "date_from", "date_to"})


def _day_start(value: date) -> datetime:
    return datetime.combine(value, time.min, tzinfo=_zone())


async def _audit_conditions(principal: Principal, query: dict[str, str]) -> tuple[list[Any], dict[str, str]]:
    """Conditions of the filters (and the entries ``principal`` may read:
    ``audit_visibility.visibility``, as ``GET /api/audit``), and errors beside the filters."""
    conditions: list[Any] = []
    errors: dict[str, str] = {}
    entity = query.get("entity", "")[:60]
    if entity:
        conditions.append(AuditLog.entity == entity)
    ids: dict[str, int] = {}
    for name in ("entity_id", "user_id"):
        text = query.get(name, "").strip()
        if text:
            if text.isdigit() and service.valid_id(int(text)):
                ids[name] = int(text)
            else:
                errors[name] = i18n.gettext("must be a whole number")
    if "user_id" in ids:
        conditions.append(AuditLog.user_id == ids["user_id"])
    visible = await audit_visibility.condition(principal, ids.get("entity_id"), entity or None)
    if visible is not None:
        conditions.append(visible)
    for name in ("date_from", "date_to"):
        text = query.get(name, "").strip()
        if not text:
            continue
        try:
            day = date.fromisoformat(text)
        except ValueError:
            errors[name] = i18n.gettext("is not a valid date")
            continue
        if name == "date_from":
            conditions.append(AuditLog.at >= _day_start(day))
        else:
            conditions.append(AuditLog.at < _day_start(day + timedelta(days=1)))
    return conditions, errors


def _change_rows(entity: str, changes: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for field, value in (changes or {}).items():
        old, new = ([*value, None, None])[:2] if isinstance(value, list) else (None, value)
        group = f"{entity}.{field}"
        if not i18n.labelled_codes(group) and field.endswith("s"):
            group = f"{entity}.{field[:-1]}"  # a list of codes: relations -> party.relation
        out.append(
            {
                "field": i18n.label("field", field),
                "code_field": field,
                "old": _plain(_coded(group, old)),
                "new": _plain(_coded(group, new)),
            }
        )
    return out


def _coded(group: str, value: Any) -> Any:
    """A stored code in words when its group has labels (``party.status``, a plugin's
    ``sales.deal.status``); any other value as it is."""
    known = i18n.labelled_codes(group)
    if not known:
        return value
    if isinstance(value, str) and value in known:
        return i18n.label(group, value)
    if isinstance(value, list) and all(isinstance(v, str) and v in known for v in value):
        return ", ".join(i18n.label(group, v) for v in value)
    return value


def _plain(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return i18n.gettext("yes") if value else i18n.gettext("no")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:199] + "…"


async def _workflow_words(rows: list[dict[str, Any]]) -> None:
    """Process entries in words: a template's entry names the template ("Новая сделка B2B"),
    not its key; a process's stage changes name the stages of its template, not their keys."""
    from tessera.workflow.tables import WorkflowInstance, WorkflowTemplate

    template_ids = [r["entity_id"] for r in rows if r["entity"] == "workflow_template" and r["entity_id"]]
    if template_ids:
        names = {
            t["id"]: t["name"]
            for t in await WorkflowTemplate.select(WorkflowTemplate.id, WorkflowTemplate.name).where(
                WorkflowTemplate.id.is_in(template_ids)
            )
        }
        for row in rows:
            if row["entity"] == "workflow_template" and names.get(row["entity_id"]):
                row["detail"] = i18n.shipped_text(names[row["entity_id"]])
    instance_ids = [r["entity_id"] for r in rows if r["entity"] == "workflow_instance" and r["entity_id"]]
    if not instance_ids:
        return
    instances = await WorkflowInstance.select(
        WorkflowInstance.id, WorkflowInstance.template_key, WorkflowInstance.template_version
    ).where(WorkflowInstance.id.is_in(instance_ids))
    keys = {(i["template_key"], i["template_version"]) for i in instances}
    stage_names: dict[tuple[str, int], dict[str, str]] = {}
    for key, version in keys:
        template = (
            await WorkflowTemplate.select(WorkflowTemplate.definition)
            .where(WorkflowTemplate.key == key, WorkflowTemplate.version == version)
            .output(load_json=True)
            .first()
        )
        definition = (template or {}).get("definition") or {}
        stage_names[(key, version)] = {
            s["key"]: i18n.shipped_text(s["name"])
            for s in definition.get("stages", [])
            if s.get("key") and s.get("name")
        }
    by_instance = {
        i["id"]: stage_names.get((i["template_key"], i["template_version"]), {}) for i in instances
    }
    for row in rows:
        names = by_instance.get(row["entity_id"]) if row["entity"] == "workflow_instance" else None
        if not names:
            continue
        for change in row["change_rows"]:
            if change.get("code_field") in {"stage", "current_stage"}:
                change["old"] = names.get(change["old"], change["old"])
                change["new"] = names.get(change["new"], change["new"])


@get("/app/admin/audit", include_in_schema=False)
async def audit_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The audit log, newest first, with filters (record type, record, user, dates) and
    previous/next pages; each reader sees the entries ``audit_visibility`` lets them read."""
    principal = await _page_user(request, "audit")
    if isinstance(principal, Response):
        return principal
    query = {k: v for k, v in request.query_params.items() if k in AUDIT_FILTERS}
    conditions, errors = await _audit_conditions(principal, query)
    before = request.query_params.get("before", "")
    after = request.query_params.get("after", "")
    select = AuditLog.select()
    rows: list[dict[str, Any]] = []
    has_older = has_newer = False
    if not errors:
        if after.isdigit():
            found = (
                await select.where(*conditions, AuditLog.id > int(after))
                .order_by(AuditLog.id)
                .limit(AUDIT_PAGE + 1)
                .output(load_json=True)
            )
            has_newer = len(found) > AUDIT_PAGE
            rows = list(reversed(found[:AUDIT_PAGE]))
            has_older = True
        else:
            if before.isdigit():
                conditions.append(AuditLog.id < int(before))
                has_newer = True
            query_rows = select.where(*conditions) if conditions else select
            found = (
                await query_rows.order_by(AuditLog.id, ascending=False)
                .limit(AUDIT_PAGE + 1)
                .output(load_json=True)
            )
            has_older = len(found) > AUDIT_PAGE
            rows = found[:AUDIT_PAGE]
    people = {
        u["id"]: u["name"] for u in await CrmUser.select(CrmUser.id, CrmUser.name).order_by(CrmUser.name)
    }
    for row in rows:
        row["change_rows"] = _change_rows(row["entity"], row["changes"])
    await _workflow_words(rows)
    entities = sorted({*service.specs(), "api_token", "webhook", "custom_field_schema", "workflow_template"})
    from urllib.parse import urlencode

    base = urlencode({k: v for k, v in query.items() if v})
    return _show(
        request,
        "admin_audit.html",
        principal,
        "audit",
        rows=rows,
        people=people,
        entities=entities,
        form=query,
        errors=errors,
        older=f"?{base}&before={rows[-1]['id']}" if has_older and rows else None,
        newer=f"?{base}&after={rows[0]['id']}" if has_newer and rows else None,
    )


HANDLERS = [
    admin_home,
    users_page,
    user_create,
    user_page,
    user_update,
    user_active,
    user_reset,
    teams_page,
    team_create,
    team_page,
    team_update,
    team_members,
    roles_page,
    role_create,
    role_page,
    role_update,
    substitutions_page,
    substitution_create,
    substitution_end,
    custom_fields_home,
    custom_fields_page,
    custom_field_save,
    plugins_page,
    workflows_page,
    workflow_page,
    workflow_publish,
    jobs_page,
    job_switch,
    background_jobs_page,
    background_job_action,
    audit_page,
]

__all__ = ["ADMIN_PERMISSIONS", "HANDLERS", "may_administer"]
