"""Web form pages (``/marketing/forms``, admins with ``marketing.form.manage``): the list of
forms, a new form, and each form's page with its editor, the HTML snippet to paste into the
company's site (the honeypot field hidden from people) and the form's recent leads.

The editor is decoded through the API's ``WebFormIn`` / ``WebFormPatch`` and saved by the same
service (``forms.FORM``) as ``/api/marketing/web-forms``, so a value the API refuses is refused
here for the same reason, shown beside its field with what the admin typed kept.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

import html
import re
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import db, events, i18n
from tessera.entities import service
from tessera.entities.dto import set_fields
from tessera.entities.tables import CrmUser, Team
from tessera.errors import DomainError, FieldError, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.permissions import Principal
from tessera.web.forms import human
from tessera.web.plugin_pages import Form, check_csrf, current_principal, decode_form, error_page, render

from tessera_marketing import forms, services
from tessera_marketing.routes import WebFormIn, WebFormPatch
from tessera_marketing.tables import Campaign, Lead

INPUT_TYPES = {"email": "email", "phone": "tel"}
TARGET_LABELS = {
    "name": N_("Person's name"),
    "company": N_("Company"),
    "position": N_("Position (of the person writing for a company)"),
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "note": N_("Message"),
}
MODE_LABELS = {
    "round_robin": N_("In turn among the chosen managers"),
    "least_loaded": N_("To the chosen manager with the fewest new leads"),
    "user": N_("Always to one manager"),
    "territory": N_("By territory: a form field's value picks the manager"),
    "team_list": N_("To a team's lead list (a member takes it)"),
}
i18n.register_labels("marketing.form.target", TARGET_LABELS)
i18n.register_labels("marketing.form.mode", MODE_LABELS)
SIMPLE_FIELDS = ("key", "name", "source", "campaign_id", "honeypot", "per_ip_per_hour", "per_form_per_hour")
BLANK_ROWS = 3


def _target_label(target: str, custom: dict[str, str]) -> str:
    if target.startswith("custom."):
        return custom.get(target, target[7:])
    return i18n.label("marketing.form.target", target)


def snippet(form: dict[str, Any], base: str, custom: dict[str, str] | None = None) -> str:
    """The HTML form a site embeds (plain HTML: it works without JavaScript or CORS): one input
    per mapped field with its label (the form's label, else the target's words), the required
    ones marked, and the honeypot field pushed off screen."""
    esc = html.escape
    custom = custom or {}
    required = set(form.get("required") or [])
    labels = form.get("labels") or {}
    lines = [f'<form method="post" action="{esc(base.rstrip("/"))}/api/marketing/forms/{esc(form["key"])}">']
    for name, target in (form["fields"] or {}).items():
        text = html.escape(labels.get(name) or _target_label(target, custom), quote=False)
        need = " required" if name in required else ""
        mark = " *" if need else ""
        if target == "note":
            lines.append(
                f'  <p><label>{text}{mark}<br><textarea name="{esc(name)}"{need}></textarea></label></p>'
            )
        else:
            kind = INPUT_TYPES.get(target, "text")
            lines.append(
                f'  <p><label>{text}{mark}<br><input type="{kind}" name="{esc(name)}"{need}></label></p>'
            )
    lines.append(
        f'  <input type="text" name="{esc(form["honeypot"])}" tabindex="-1" autocomplete="off" '
        'style="position:absolute;left:-9999px" aria-hidden="true">'
    )
    lines.append(f'  <p><button type="submit">{html.escape(_("Send"), quote=False)}</button></p>')
    lines.append("</form>")
    return "\n".join(lines)


def _base(request: Request[Any, Any, Any]) -> str:
    from tessera.config import Settings

    settings = getattr(request.app.state, "settings", None)
    if isinstance(settings, Settings) and settings.public_url:
        return settings.public_url
    return str(request.base_url)


async def _custom_fields() -> dict[str, str]:
    from tessera_marketing.segments import party_custom_schema

    schema = await party_custom_schema()
    return {f"custom.{k}": str((v or {}).get("title") or k) for k, v in sorted(schema.items())}


async def _choices() -> dict[str, Any]:
    return {
        "campaigns": await Campaign.select(Campaign.id, Campaign.name).order_by(Campaign.name),
        "users": await CrmUser.select(CrmUser.id, CrmUser.name, CrmUser.email)
        .where(CrmUser.is_active == True)  # noqa: E712
        .order_by(CrmUser.name),
        "teams": await Team.select(Team.id, Team.name).order_by(Team.name),
        "custom": await _custom_fields(),
        "targets": list(forms.TARGETS),
        "modes": list(MODE_LABELS),
    }


# --------------------------------------------------------------------------- form <-> page


def form_of(row: dict[str, Any], users: list[dict[str, Any]]) -> dict[str, str]:
    """The editor's fields for a stored form."""
    out = {k: "" if row.get(k) is None else str(row[k]) for k in SIMPLE_FIELDS}
    out["active"] = "on" if row.get("active") else ""
    for i, (name, target) in enumerate((row.get("fields") or {}).items()):
        out[f"field-{i}-name"] = name
        out[f"field-{i}-target"] = target
        out[f"field-{i}-label"] = (row.get("labels") or {}).get(name, "")
        out[f"field-{i}-required"] = "on" if name in (row.get("required") or []) else ""
    out["allowed_origins"] = "\n".join(row.get("allowed_origins") or [])
    rule = row.get("distribution") or {}
    out["mode"] = rule.get("mode") or "round_robin"
    for uid in rule.get("user_ids") or []:
        out[f"user-{uid}"] = "on"
    out["team_id"] = str(rule.get("team_id") or "")
    out["territory_field"] = rule.get("field") or ""
    emails = {u["id"]: u["email"] for u in users}
    out["territories"] = "\n".join(
        f"{value} = {emails.get(uid, uid)}" for value, uid in (rule.get("territories") or {}).items()
    )
    return out


def _rows(form: dict[str, str]) -> list[int]:
    used = sorted({int(m.group(1)) for k in form if (m := re.match(r"^field-(\d+)-name$", k))})
    last = used[-1] + 1 if used else 0
    return [*used, *range(last, last + BLANK_ROWS)]


def body_of(form: dict[str, str], users: list[dict[str, Any]]) -> dict[str, Any]:
    """The API body (``WebFormIn``) of the editor's fields; a territory line naming no user is
    refused here, beside the field (the API takes user ids)."""
    body: dict[str, Any] = {k: form[k].strip() for k in SIMPLE_FIELDS if (form.get(k) or "").strip()}
    body["active"] = form.get("active") == "on"
    fields: dict[str, str] = {}
    labels: dict[str, str] = {}
    required: list[str] = []
    for i in _rows(form):
        name = (form.get(f"field-{i}-name") or "").strip()
        if not name:
            continue
        fields[name] = form.get(f"field-{i}-target") or ""
        if (form.get(f"field-{i}-label") or "").strip():
            labels[name] = form[f"field-{i}-label"].strip()
        if form.get(f"field-{i}-required") == "on":
            required.append(name)
    body.update(fields=fields, labels=labels, required=required)
    body["allowed_origins"] = [
        o.strip() for o in (form.get("allowed_origins") or "").splitlines() if o.strip()
    ]
    by_key = {u["email"].lower(): u["id"] for u in users} | {u["name"].lower(): u["id"] for u in users}
    territories: dict[str, int] = {}
    for line in (form.get("territories") or "").splitlines():
        if not line.strip():
            continue
        value, _sep, who = line.partition("=")
        uid = by_key.get(who.strip().lower())
        if not value.strip() or uid is None:
            raise ValidationFailed(
                "distribution.territories: " + forms.MESSAGES["no_user"],
                [FieldError("distribution.territories", forms.MESSAGES["no_user"])],
            )
        territories[value.strip()] = uid
    rule: dict[str, Any] = {
        "mode": form.get("mode") or "round_robin",
        "user_ids": [u["id"] for u in users if form.get(f"user-{u['id']}") == "on"],
        "field": (form.get("territory_field") or "").strip(),
        "territories": territories,
    }
    if form.get("team_id"):
        rule["team_id"] = form["team_id"]
    body["distribution"] = rule
    return body


_DISTRIBUTION = {
    "mode": "mode",
    "user_ids": "user_ids",
    "team_id": "team_id",
    "field": "territory_field",
    "territories": "territories",
}


def page_errors(exc: DomainError, form: dict[str, str]) -> dict[str, str]:
    """The API's field errors placed beside the editor's fields (a mapped field's row, the
    origins box, the distribution's inputs), in words a person reads."""
    rows = {(form.get(f"field-{i}-name") or "").strip(): i for i in _rows(form)}
    out: dict[str, str] = {}
    for error in exc.errors:
        path = error.field.removeprefix("$.")
        head, _dot, rest = path.partition(".")
        head = re.sub(r"\[\d+\]$", "", head)
        if head in SIMPLE_FIELDS or head == "allowed_origins":
            key = head
        elif head in ("fields", "required", "labels") and rest:
            key = f"field-{rows[rest]}" if rest in rows else "fields"
        elif head == "fields":
            key = "fields"
        elif head == "distribution":
            key = _DISTRIBUTION.get(re.sub(r"\[\d+\]$", "", rest.partition(".")[0]), "mode")
        else:
            key = ""
        text = human(error.message)
        out[key] = f"{out[key]}; {text}" if key in out else text
    if not out:
        out[""] = i18n.translate_message(exc.detail)
    return out


# --------------------------------------------------------------------------- pages


async def _editor(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    row: dict[str, Any] | None,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    choices = await _choices()
    if form is None:
        form = (
            form_of(row, choices["users"])
            if row is not None
            else {
                "active": "on",
                "source": "web",
                "honeypot": "website_url",
                "per_ip_per_hour": "5",
                "per_form_per_hour": "500",
                "mode": "round_robin",
                "field-0-name": "name",
                "field-0-target": "name",
                "field-1-name": "email",
                "field-1-target": "email",
                "field-1-required": "on",
                "field-2-name": "phone",
                "field-2-target": "phone",
                "field-3-name": "message",
                "field-3-target": "note",
            }
        )
    leads: list[dict[str, Any]] = []
    names: dict[str, Any] = {"parties": {}, "users": {}}
    if row is not None and principal.can("marketing.lead.read"):
        from tessera.web import lists

        page = await service.list_page(
            services.LEAD, principal, [Lead.form_id == row["id"]], order="-received_at", limit=20
        )
        leads = page.items
        names = await lists.names(
            user_ids={r["assignee_id"] for r in leads}, party_ids={r["party_id"] for r in leads}
        )
    errors = dict(errors or {})
    return render(
        request,
        "marketing/form.html",
        status=status,
        principal=principal,
        row=row,
        form=form,
        rows=_rows(form),
        error=errors.pop("", None),
        errors=errors,
        snippet=snippet(row, _base(request), choices["custom"]) if row is not None else "",
        leads=leads,
        names=names,
        **choices,
    )


@get("/forms")
async def forms_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Web forms with their leads count (marketing.form.manage)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        page = await service.list_page(forms.FORM, principal, [], order="name", limit=200)
    except DomainError as exc:
        return error_page(request, principal, exc)
    counts = {
        int(r["form_id"]): int(r["n"])
        for r in await db.raw(
            "SELECT form_id, COUNT(*) AS n FROM marketing_lead WHERE form_id IS NOT NULL GROUP BY form_id"
        )
    }
    campaigns = {c["id"]: c["name"] for c in await Campaign.select(Campaign.id, Campaign.name)}
    return render(
        request,
        "marketing/forms.html",
        principal=principal,
        forms=page.items,
        counts=counts,
        campaigns=campaigns,
    )


@get("/forms/new")
async def new_form_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """A new web form: its fields and what they fill, the sites allowed to post it, its
    campaign and how its leads are distributed."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        forms.FORM.require(principal, "write")
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _editor(request, principal, row=None)


@post("/forms/new", status_code=303)
async def new_form_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Create the form (``WebFormIn``, the API's create) and open its page."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        forms.FORM.require(principal, "write")
        users = await _choices()
        body = decode_form(WebFormIn, {}, **body_of(data, users["users"]))
        async with events.unit_of_work():
            row = await service.create(forms.FORM, principal, set_fields(body))
    except DomainError as exc:
        if exc.status != 422:
            return error_page(request, principal, exc)
        return await _editor(
            request, principal, row=None, form=dict(data), errors=page_errors(exc, data), status=422
        )
    return Redirect(f"/marketing/forms/{row['id']}", status_code=303)


@get("/forms/{form_id:int}")
async def form_page(request: Request[Any, Any, Any], form_id: int) -> Response[Any]:
    """A web form: the snippet to embed, its recent leads and its editor."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        row = await service.get(forms.FORM, principal, form_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _editor(request, principal, row=row)


@post("/forms/{form_id:int}", status_code=303)
async def form_submit(request: Request[Any, Any, Any], form_id: int, data: Form) -> Response[Any]:
    """Save the form's changes (``WebFormPatch``, the API's update)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    row = None
    try:
        row = await service.get(forms.FORM, principal, form_id)
        forms.FORM.require(principal, "write")
        users = await _choices()
        values = body_of(data, users["users"])
        changes = set_fields(decode_form(WebFormPatch, {}, **values))
        if "campaign_id" not in values:  # an emptied campaign clears it
            changes["campaign_id"] = None
        async with events.unit_of_work():
            await service.update(forms.FORM, principal, form_id, changes)
    except DomainError as exc:
        if exc.status != 422 or row is None:
            return error_page(request, principal, exc)
        return await _editor(
            request, principal, row=row, form=dict(data), errors=page_errors(exc, data), status=422
        )
    return Redirect(f"/marketing/forms/{form_id}", status_code=303)


HANDLERS = [forms_page, new_form_page, new_form_submit, form_page, form_submit]
