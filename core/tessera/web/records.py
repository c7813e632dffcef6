"""Create, edit and delete from the web UI: parties (with channels, addresses, tags and custom
fields), their contacts, activities (edit, mark done, delete), notes and attachments (upload,
download, delete) on the client card.

Every form is decoded through the API route's own struct (``PartyIn``, ``PartyPatch``,
``ContactIn``, ``ActivityPatch``, ``NoteIn`` ...) and written by the same service call the
API makes (``service.create`` / ``update`` / ``delete``, ``notes.store_attachment``), so the
same inputs are refused for the same reasons, and the same permissions and record visibility
apply. A refusal shows the page again with the reason beside the field (422) and the user's
input kept; a record one may only read answers the 403 page, one one may not see the 404 page.
Edit forms carry the record's ``version``: a change made meanwhile by someone else is refused
(409) instead of being overwritten, as the API's ``If-Match`` / ``version`` precondition does.
Deleting asks for a confirmation first (a page with a POST form, no JavaScript needed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.response import File, Redirect

from tessera import clock, customfields, events, i18n
from tessera.entities import activities, notes, parties, service
from tessera.entities.dto import set_fields
from tessera.entities.tables import Team
from tessera.errors import DomainError, FieldError, NotFound, PermissionDenied, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.web import fields
from tessera.web.card import active_users, may
from tessera.web.forms import decode_form, field_errors
from tessera.web.pages import _card, _require, check_csrf, current_principal, error_page, render

i18n.register_labels("party.kind", {"organisation": N_("Organisation"), "person": N_("Person")})
i18n.register_labels("address.type", {"legal": N_("Legal"), "postal": N_("Postal"), "actual": N_("Actual")})
i18n.register_labels(
    "contact.channel",
    {
        "phone": N_("Phone"),
        "email": N_("E-mail"),
        "letter": N_("Letter"),
        "sms": N_("SMS"),
        "messenger": N_("Messenger"),
    },
)

PHONE_TYPES = ("work", "mobile", "home", "fax", "other")
EMAIL_TYPES = ("work", "home", "other")
ADDRESS_TYPES = ("legal", "postal", "actual")
CHANNEL_ROWS = ("phones", "emails")
PARTY_SCALARS = ("name", "kind", "status", "owner_id", "team_id", "tax_id", "website")
CONTACT_SCALARS = ("name", "position", "role", "preferred_channel")

CHANGED_MEANWHILE = N_(
    "Someone else changed this record while you were editing it. Reload the page to see their "
    "change, then apply yours again."
)
MAY_NOT_CHANGE = N_("You may read this record but not change it.")


# --------------------------------------------------------------------------- shared helpers


def refused(request: Request[Any, Any, Any], principal: Principal, exc: DomainError) -> Response[str]:
    """The error page of a refusal that is not about a field: 404 (not visible), 403 (may only
    read it, or lacks the permission) in words, the rest as the service said."""
    if exc.status == 403:
        message = MAY_NOT_CHANGE if exc.detail.startswith("You may read") else N_("You may not do this.")
        return render(request, "error.html", status=403, principal=principal, message=i18n.gettext(message))
    return error_page(request, principal, exc)


def form_errors(
    exc: DomainError, names: set[str] | frozenset[str], rows: dict[str, dict[int, int]] | None = None
) -> dict[str, str]:
    """``field_errors`` for a record form: row errors renamed to the form's rows, a tag's error
    shown beside the tags, a stale version in words."""
    if exc.status == 409:
        return {"": i18n.gettext(CHANGED_MEANWHILE)}
    renamed = []
    for e in exc.errors:
        field = e.field
        if field.startswith("tags."):
            field = "tags"
        for list_name, where in (rows or {}).items():
            field = next(iter(fields.renumber_errors({field: ""}, list_name, where)))
        renamed.append(FieldError(field, e.message))
    return field_errors(type(exc)(exc.detail, renamed), names)


def _form_names(form: dict[str, Any], base: tuple[str, ...], custom: list[dict[str, Any]]) -> set[str]:
    return set(form) | set(base) | {f["form_name"] for f in custom} | {"relations", "tags"}


def _local(value: datetime | None) -> str:
    """A stored time as the value of an ``<input type="datetime-local">`` (the server's zone,
    as ``decode_form`` reads it back)."""
    if value is None:
        return ""
    return value.astimezone(clock.now().tzinfo).strftime("%Y-%m-%dT%H:%M")


async def _owners(principal: Principal) -> list[dict[str, Any]]:
    """Users a record may be given to by ``principal`` (those whose records they see)."""
    return [u for u in await active_users() if principal.check_visible_owner(u["id"], u["team_id"])]


def _labelled(group: str, codes: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    return [(c, i18n.label(group, c)) for c in codes]


def _channel_body(form: dict[str, Any], body: dict[str, Any]) -> dict[str, dict[int, int]]:
    where: dict[str, dict[int, int]] = {}
    for list_name in (*CHANNEL_ROWS, "addresses"):
        if any(k.startswith(f"{list_name}.") for k in form):
            body[list_name], where[list_name] = fields.rows_from_form(form, list_name)
    return where


def _redirect(path: str) -> Redirect:
    return Redirect(path, status_code=303)


# --------------------------------------------------------------------------- parties


async def _party_view(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    party: dict[str, Any] | None,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "party"))
    errors = dict(errors or {})
    teams = await Team.select(Team.id, Team.name).order_by(Team.name)
    return render(
        request,
        "record_party.html",
        status=status,
        principal=principal,
        party=party,
        form=form,
        error=errors.pop("", None),
        errors=errors,
        custom=custom,
        kinds=_labelled("party.kind", get_args(parties.PartyKind)),
        statuses=_labelled("party.status", get_args(parties.LifecycleStatus)),
        relations=_labelled("party.relation", get_args(parties.Relation)),
        owners=[(u["id"], u["name"]) for u in await _owners(principal)],
        teams=[(t["id"], t["name"]) for t in teams],
        phone_types=_labelled("phone.type", PHONE_TYPES),
        email_types=_labelled("phone.type", EMAIL_TYPES),
        address_types=_labelled("address.type", ADDRESS_TYPES),
        phone_rows=fields.row_count(form, "phones"),
        email_rows=fields.row_count(form, "emails"),
        address_rows=fields.row_count(form, "addresses"),
    )


def _party_form(party: dict[str, Any], custom: list[dict[str, Any]]) -> dict[str, Any]:
    form: dict[str, Any] = {k: "" if party.get(k) is None else str(party[k]) for k in PARTY_SCALARS}
    form["relations"] = list(party.get("relations") or [])
    form["tags"] = ", ".join(party.get("tags") or [])
    form["version"] = str(party["version"])
    for list_name in (*CHANNEL_ROWS, "addresses"):
        fields.rows_to_form(form, list_name, party.get(list_name) or [])
    fields.custom_to_form(form, custom, party.get("custom") or {})
    return form


def _party_body(
    form: dict[str, Any], custom: list[dict[str, Any]], existing: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, dict[int, int]]]:
    body: dict[str, Any] = {k: form[k] for k in PARTY_SCALARS if k in form}
    if existing is not None and body.get("team_id") == "":
        body.pop("team_id")  # "the owner's team": left as it is on an edit
    body["relations"] = list(form.get("relations") or [])
    body["tags"] = fields.split_tags(str(form.get("tags") or ""))
    where = _channel_body(form, body)
    body["custom"] = fields.custom_from_form(form, custom, existing.get("custom") if existing else None)
    if existing is not None and not body["custom"]:
        body.pop("custom")
    if existing is not None and form.get("version"):
        body["version"] = form["version"]
    return body, where


@get("/app/parties/new", include_in_schema=False)
async def party_new(request: Request[Any, Any, Any]) -> Response[Any]:
    """The form of a new client."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    if not may(principal, parties.PARTY, "write"):
        return refused(request, principal, PermissionDenied("", missing_permission="party.write"))
    form = {
        "kind": "organisation",
        "status": "potential",
        "relations": ["client"],
        "owner_id": str(principal.user_id),
    }
    return await _party_view(request, principal, party=None, form=form)


@post("/app/parties/new", include_in_schema=False, status_code=303)
async def party_create(request: Request[Any, Any, Any]) -> Response[Any]:
    """Create the client through ``PartyIn`` and the parties service (as ``POST /api/parties``)."""
    principal = await _require(request)
    form = fields.form_state(await request.form(), ("relations",))
    check_csrf(principal, form)
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "party"))
    body, where = _party_body(form, custom, None)
    try:
        data = decode_form(parties.PartyIn, body)
        async with events.unit_of_work():
            row = await service.create(parties.PARTY, principal, set_fields(data))
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        errors = form_errors(exc, _form_names(form, PARTY_SCALARS, custom), where)
        return await _party_view(request, principal, party=None, form=form, errors=errors, status=exc.status)
    return _redirect(f"/app/parties/{row['id']}")


@get("/app/parties/{party_id:int}/edit", include_in_schema=False)
async def party_edit(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """The client's edit form (403 for who may only read the client, 404 for who may not)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        party = await service.get_for_write(parties.PARTY, principal, party_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "party"))
    return await _party_view(request, principal, party=party, form=_party_form(party, custom))


@post("/app/parties/{party_id:int}/edit", include_in_schema=False, status_code=303)
async def party_update(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """Save the client through ``PartyPatch`` and ``service.update`` with the version the form
    was read at (a change made meanwhile is refused, not overwritten)."""
    principal = await _require(request)
    form = fields.form_state(await request.form(), ("relations",))
    check_csrf(principal, form)
    try:
        existing = await service.get_for_write(parties.PARTY, principal, party_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "party"))
    body, where = _party_body(form, custom, existing)
    # Lists not on the form any more (every row emptied) become empty lists.
    for list_name in (*CHANNEL_ROWS, "addresses"):
        body.setdefault(list_name, [])
    try:
        data = decode_form(parties.PartyPatch, body)
        values = set_fields(data)
        expected = values.pop("version", None)
        await service.update(parties.PARTY, principal, party_id, values, expected)
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        errors = form_errors(exc, _form_names(form, PARTY_SCALARS, custom), where)
        return await _party_view(
            request, principal, party=existing, form=form, errors=errors, status=exc.status
        )
    return _redirect(f"/app/parties/{party_id}")


async def _confirm(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    what: str,
    name: str,
    action: str,
    back: str,
    version: Any = None,
    warning: str = "",
) -> Response[str]:
    return render(
        request,
        "record_delete.html",
        principal=principal,
        what=what,
        name=name,
        action=action,
        back=back,
        version=version,
        warning=warning,
    )


@get("/app/parties/{party_id:int}/delete", include_in_schema=False)
async def party_delete_confirm(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """Asks before deleting a client (only for who may delete it)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        await service.get(parties.PARTY, principal, party_id)  # 404 before 403
        parties.PARTY.require(principal, "delete")
        party = await service.get_for_write(parties.PARTY, principal, party_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    return await _confirm(
        request,
        principal,
        what=i18n.gettext("the client"),
        name=party["name"],
        action=f"/app/parties/{party_id}/delete",
        back=f"/app/parties/{party_id}",
        version=party["version"],
        warning=i18n.gettext("Its contacts, activities, tasks, notes and files are deleted with it."),
    )


@post("/app/parties/{party_id:int}/delete", include_in_schema=False, status_code=303)
async def party_delete(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        version = int(form["version"]) if str(form.get("version", "")).isdigit() else None
        await service.delete(parties.PARTY, principal, party_id, version)
    except DomainError as exc:
        if exc.status == 409:
            return refused(request, principal, DomainError(i18n.gettext(CHANGED_MEANWHILE)))
        return refused(request, principal, exc)
    return _redirect("/app/parties")


# --------------------------------------------------------------------------- contacts


async def _contact_view(
    request: Request[Any, Any, Any],
    principal: Principal,
    *,
    party: dict[str, Any],
    contact: dict[str, Any] | None,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "contact"))
    errors = dict(errors or {})
    return render(
        request,
        "record_contact.html",
        status=status,
        principal=principal,
        party=party,
        contact=contact,
        form=form,
        error=errors.pop("", None),
        errors=errors,
        custom=custom,
        channels=[("", "—"), *_labelled("contact.channel", ("phone", "email", "letter", "sms", "messenger"))],
        phone_types=_labelled("phone.type", PHONE_TYPES),
        email_types=_labelled("phone.type", EMAIL_TYPES),
        phone_rows=fields.row_count(form, "phones"),
        email_rows=fields.row_count(form, "emails"),
    )


def _contact_body(
    form: dict[str, Any], custom: list[dict[str, Any]], existing: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, dict[int, int]]]:
    body: dict[str, Any] = {k: form[k] for k in CONTACT_SCALARS if k in form}
    where: dict[str, dict[int, int]] = {}
    for list_name in CHANNEL_ROWS:
        body[list_name], where[list_name] = fields.rows_from_form(form, list_name)
    body["custom"] = fields.custom_from_form(form, custom, existing.get("custom") if existing else None)
    if existing is not None and not body["custom"]:
        body.pop("custom")
    if existing is not None and form.get("version"):
        body["version"] = form["version"]
    return body, where


@get("/app/parties/{party_id:int}/contacts/new", include_in_schema=False)
async def contact_new(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        parties.CONTACT.require(principal, "write")
        party = await service.get_for_write(parties.PARTY, principal, party_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    return await _contact_view(request, principal, party=party, contact=None, form={})


@post("/app/parties/{party_id:int}/contacts/new", include_in_schema=False, status_code=303)
async def contact_create(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """Add a contact through ``ContactIn`` and the contacts service (as ``POST /api/contacts``)."""
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        party = await service.get_for_write(parties.PARTY, principal, party_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "contact"))
    body, where = _contact_body(form, custom, None)
    try:
        data = decode_form(parties.ContactIn, body, party_id=party_id)
        async with events.unit_of_work():
            await service.create(parties.CONTACT, principal, set_fields(data))
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        errors = form_errors(exc, _form_names(form, CONTACT_SCALARS, custom), where)
        return await _contact_view(
            request, principal, party=party, contact=None, form=form, errors=errors, status=exc.status
        )
    return _redirect(f"/app/parties/{party_id}#contacts")


async def _contact_for_write(principal: Principal, contact_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    contact = await service.get_for_write(parties.CONTACT, principal, contact_id)
    party = await service.get(parties.PARTY, principal, contact["party_id"])
    return contact, party


@get("/app/contacts/{contact_id:int}/edit", include_in_schema=False)
async def contact_edit(request: Request[Any, Any, Any], contact_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        contact, party = await _contact_for_write(principal, contact_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "contact"))
    form: dict[str, Any] = {k: str(contact.get(k) or "") for k in CONTACT_SCALARS}
    form["version"] = str(contact["version"])
    for list_name in CHANNEL_ROWS:
        fields.rows_to_form(form, list_name, contact.get(list_name) or [])
    fields.custom_to_form(form, custom, contact.get("custom") or {})
    return await _contact_view(request, principal, party=party, contact=contact, form=form)


@post("/app/contacts/{contact_id:int}/edit", include_in_schema=False, status_code=303)
async def contact_update(request: Request[Any, Any, Any], contact_id: int) -> Response[Any]:
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        contact, party = await _contact_for_write(principal, contact_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    custom = fields.custom_fields(await customfields.effective_schema(request.app.state.pm, "contact"))
    body, where = _contact_body(form, custom, contact)
    try:
        data = decode_form(parties.ContactPatch, body)
        values = set_fields(data)
        expected = values.pop("version", None)
        await service.update(parties.CONTACT, principal, contact_id, values, expected)
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        errors = form_errors(exc, _form_names(form, CONTACT_SCALARS, custom), where)
        return await _contact_view(
            request, principal, party=party, contact=contact, form=form, errors=errors, status=exc.status
        )
    return _redirect(f"/app/parties/{party['id']}#contacts")


@get("/app/contacts/{contact_id:int}/delete", include_in_schema=False)
async def contact_delete_confirm(request: Request[Any, Any, Any], contact_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        contact, party = await _contact_for_write(principal, contact_id)
        parties.CONTACT.require(principal, "delete")
    except DomainError as exc:
        return refused(request, principal, exc)
    return await _confirm(
        request,
        principal,
        what=i18n.gettext("the contact"),
        name=f"{contact['name']} ({party['name']})",
        action=f"/app/contacts/{contact_id}/delete",
        back=f"/app/parties/{party['id']}#contacts",
        version=contact["version"],
    )


@post("/app/contacts/{contact_id:int}/delete", include_in_schema=False, status_code=303)
async def contact_delete(request: Request[Any, Any, Any], contact_id: int) -> Response[Any]:
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        _contact, party = await _contact_for_write(principal, contact_id)
        version = int(form["version"]) if str(form.get("version", "")).isdigit() else None
        await service.delete(parties.CONTACT, principal, contact_id, version)
    except DomainError as exc:
        return refused(request, principal, exc)
    return _redirect(f"/app/parties/{party['id']}#contacts")


# --------------------------------------------------------------------------- activities


async def _activity_view(
    request: Request[Any, Any, Any],
    principal: Principal,
    activity: dict[str, Any],
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    errors = dict(errors or {})
    contacts: list[dict[str, Any]] = []
    party = None
    if activity["party_id"] is not None:
        from tessera.entities.tables import Contact

        try:
            party = await service.get(parties.PARTY, principal, activity["party_id"])
            contacts = (
                await service.list_page(
                    parties.CONTACT, principal, [Contact.party_id == activity["party_id"]], limit=500
                )
            ).items
        except DomainError:
            party = None
    return render(
        request,
        "record_activity.html",
        status=status,
        principal=principal,
        activity=activity,
        party=party,
        form=form,
        error=errors.pop("", None),
        errors=errors,
        types=_labelled("activity.type", get_args(activities.ActivityType)),
        statuses=_labelled("activity.status", get_args(activities.ActivityStatus)),
        users=[(u["id"], u["name"]) for u in await active_users()],
        contacts=[(c["id"], c["name"]) for c in contacts],
        may_delete=may(principal, activities.ACTIVITY, "delete"),
    )


def _activity_back(activity: dict[str, Any]) -> str:
    return f"/app/parties/{activity['party_id']}#history" if activity.get("party_id") else "/app"


@get("/app/activities/{activity_id:int}/edit", include_in_schema=False)
async def activity_edit(request: Request[Any, Any, Any], activity_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        activity = await service.get_for_write(activities.ACTIVITY, principal, activity_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    activity = (await activities.with_participants([activity]))[0]
    form: dict[str, Any] = {
        k: str(activity.get(k) or "")
        for k in ("type", "subject", "status", "description", "outcome", "agreements")
    }
    form["starts_at"] = _local(activity["starts_at"])
    form["duration_minutes"] = str(activity["duration_minutes"] or "")
    form["participant_user_ids"] = [str(i) for i in activity["participant_user_ids"]]
    form["participant_contact_ids"] = [str(i) for i in activity["participant_contact_ids"]]
    form["version"] = str(activity["version"])
    return await _activity_view(request, principal, activity, form)


@post("/app/activities/{activity_id:int}/edit", include_in_schema=False, status_code=303)
async def activity_update(request: Request[Any, Any, Any], activity_id: int) -> Response[Any]:
    """Save through ``ActivityPatch`` and ``service.update`` (as ``PATCH /api/activities/{id}``)."""
    principal = await _require(request)
    form = fields.form_state(await request.form(), fields.ACTIVITY_MULTI)
    check_csrf(principal, form)
    try:
        activity = await service.get_for_write(activities.ACTIVITY, principal, activity_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    body = fields.activity_body(form)
    if form.get("version"):
        body["version"] = form["version"]
    try:
        data = decode_form(activities.ActivityPatch, body)
        values = set_fields(data)
        expected = values.pop("version", None)
        await service.update(activities.ACTIVITY, principal, activity_id, values, expected)
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        errors = form_errors(exc, fields.ACTIVITY_FIELDS)
        return await _activity_view(request, principal, activity, form, errors, exc.status)
    return _redirect(_activity_back(activity))


@post("/app/activities/{activity_id:int}/done", include_in_schema=False, status_code=303)
async def activity_done(request: Request[Any, Any, Any], activity_id: int) -> Response[Any]:
    """Mark a planned activity done (the card's button)."""
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        activity = await service.get_for_write(activities.ACTIVITY, principal, activity_id)
        body = {"status": "done", **({"version": form["version"]} if form.get("version") else {})}
        values = set_fields(decode_form(activities.ActivityPatch, body))
        expected = values.pop("version", None)  # the version the card showed
        await service.update(activities.ACTIVITY, principal, activity_id, values, expected)
    except DomainError as exc:
        if exc.status == 409 and activity.get("party_id"):
            return await _card(
                request,
                principal,
                activity["party_id"],
                errors={"": i18n.gettext(CHANGED_MEANWHILE)},
                status=409,
            )
        return refused(request, principal, exc)
    return _redirect(_activity_back(activity))


@get("/app/activities/{activity_id:int}/delete", include_in_schema=False)
async def activity_delete_confirm(request: Request[Any, Any, Any], activity_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        activity = await service.get_for_write(activities.ACTIVITY, principal, activity_id)
        activities.ACTIVITY.require(principal, "delete")
    except DomainError as exc:
        return refused(request, principal, exc)
    return await _confirm(
        request,
        principal,
        what=i18n.label("activity.type", activity["type"]),
        name=activity["subject"],
        action=f"/app/activities/{activity_id}/delete",
        back=_activity_back(activity),
        version=activity["version"],
    )


@post("/app/activities/{activity_id:int}/delete", include_in_schema=False, status_code=303)
async def activity_delete(request: Request[Any, Any, Any], activity_id: int) -> Response[Any]:
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        activity = await service.get_for_write(activities.ACTIVITY, principal, activity_id)
        version = int(form["version"]) if str(form.get("version", "")).isdigit() else None
        await service.delete(activities.ACTIVITY, principal, activity_id, version)
    except DomainError as exc:
        return refused(request, principal, exc)
    return _redirect(_activity_back(activity))


# --------------------------------------------------------------------------- notes


@post("/app/parties/{party_id:int}/notes", include_in_schema=False, status_code=303)
async def note_create(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """Add a note through ``NoteIn`` and the notes service (as ``POST /api/notes``)."""
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        data = decode_form(notes.NoteIn, {"body": form.get("body", "")}, party_id=party_id)
        async with events.unit_of_work():
            await service.create(notes.NOTE, principal, set_fields(data))
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        errors = form_errors(exc, {"body"})
        return await _card(request, principal, party_id, form=form, errors=errors, status=exc.status)
    return _redirect(f"/app/parties/{party_id}#history")


@get("/app/notes/{note_id:int}/delete", include_in_schema=False)
async def note_delete_confirm(request: Request[Any, Any, Any], note_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        note = await service.get_for_write(notes.NOTE, principal, note_id)
        notes.NOTE.require(principal, "delete")
    except DomainError as exc:
        return refused(request, principal, exc)
    back = f"/app/parties/{note['party_id']}#history" if note["party_id"] else "/app"
    return await _confirm(
        request,
        principal,
        what=i18n.gettext("the note"),
        name=note["body"][:200],
        action=f"/app/notes/{note_id}/delete",
        back=back,
        version=note["version"],
    )


@post("/app/notes/{note_id:int}/delete", include_in_schema=False, status_code=303)
async def note_delete(request: Request[Any, Any, Any], note_id: int) -> Response[Any]:
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        note = await service.get_for_write(notes.NOTE, principal, note_id)
        version = int(form["version"]) if str(form.get("version", "")).isdigit() else None
        await service.delete(notes.NOTE, principal, note_id, version)
    except DomainError as exc:
        return refused(request, principal, exc)
    return _redirect(f"/app/parties/{note['party_id']}#history" if note["party_id"] else "/app")


# --------------------------------------------------------------------------- attachments


@post("/app/parties/{party_id:int}/attachments", include_in_schema=False, status_code=303)
async def attachment_upload(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """Upload a file to the client (multipart form, field ``file``), stored by the same
    function as ``POST /api/attachments/upload`` with the same checks and size limits."""
    principal = await _require(request)
    raw = await request.form()
    form = fields.form_state(raw)
    check_csrf(principal, form)
    upload = raw.get("file")
    try:
        if not isinstance(upload, UploadFile):
            raise ValidationFailed.field("file", "a multipart file field named 'file' is required")
        content = await upload.read()
        await notes.store_attachment(
            principal,
            request.app.state.settings.data_dir,
            upload.filename,
            upload.content_type,
            content,
            party_id,
        )
    except DomainError as exc:
        if exc.status not in (409, 422):
            return refused(request, principal, exc)
        if any(e.field == "party_id" for e in exc.errors):
            return refused(request, principal, NotFound(f"party {party_id} not found"))
        errors = form_errors(exc, {"file"})
        return await _card(request, principal, party_id, form={}, errors=errors, status=exc.status)
    return _redirect(f"/app/parties/{party_id}#files")


@get("/app/attachments/{attachment_id:int}", include_in_schema=False)
async def attachment_download(request: Request[Any, Any, Any], attachment_id: int) -> Response[Any]:
    """The file's bytes, as a download (never shown as a page), for who may read it."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        row, path = await notes.attachment_path(principal, attachment_id)
        if not path.is_file():
            raise NotFound(f"file of attachment {attachment_id} is missing from storage")
    except DomainError as exc:
        return refused(request, principal, exc)
    return File(
        path=path,
        filename=row["filename"],
        media_type=row["content_type"],
        content_disposition_type="attachment",
    )


@get("/app/attachments/{attachment_id:int}/delete", include_in_schema=False)
async def attachment_delete_confirm(request: Request[Any, Any, Any], attachment_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        row = await service.get_for_write(notes.ATTACHMENT, principal, attachment_id)
        notes.ATTACHMENT.require(principal, "delete")
    except DomainError as exc:
        return refused(request, principal, exc)
    back = f"/app/parties/{row['party_id']}#files" if row["party_id"] else "/app"
    return await _confirm(
        request,
        principal,
        what=i18n.gettext("the file"),
        name=row["filename"],
        action=f"/app/attachments/{attachment_id}/delete",
        back=back,
    )


@post("/app/attachments/{attachment_id:int}/delete", include_in_schema=False, status_code=303)
async def attachment_delete(request: Request[Any, Any, Any], attachment_id: int) -> Response[Any]:
    principal = await _require(request)
    form = fields.form_state(await request.form())
    check_csrf(principal, form)
    try:
        row = await service.get_for_write(notes.ATTACHMENT, principal, attachment_id)
        await service.delete(notes.ATTACHMENT, principal, attachment_id)
    except DomainError as exc:
        return refused(request, principal, exc)
    return _redirect(f"/app/parties/{row['party_id']}#files" if row["party_id"] else "/app")


RECORD_PAGES = [
    party_new,
    party_create,
    party_edit,
    party_update,
    party_delete_confirm,
    party_delete,
    contact_new,
    contact_create,
    contact_edit,
    contact_update,
    contact_delete_confirm,
    contact_delete,
    activity_edit,
    activity_update,
    activity_done,
    activity_delete_confirm,
    activity_delete,
    note_create,
    note_delete_confirm,
    note_delete,
    attachment_upload,
    attachment_download,
    attachment_delete_confirm,
    attachment_delete,
]

__all__ = ["RECORD_PAGES", "form_errors", "refused"]
