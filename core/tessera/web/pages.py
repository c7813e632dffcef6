"""Web pages (Jinja2, no JavaScript needed). They call the same services as the API, so the
same permissions and visibility apply; forms carry the session's CSRF token."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, get_args

from jinja2 import BaseLoader, ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, select_autoescape
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from tessera import auth, clock, events, i18n
from tessera.api.cards import client_card_data
from tessera.api.profile import set_locale
from tessera.api.security import SESSION_COOKIE, LoginIn, open_session, session_of
from tessera.entities import activities, service
from tessera.entities.dto import set_fields
from tessera.entities.tables import CrmUser, Notification
from tessera.errors import DomainError, FieldError, NotAuthenticated, PermissionDenied, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal, cached_principal
from tessera.plugins import call_each
from tessera.web import fields
from tessera.web.card import card_extras
from tessera.web.forms import decode_form, field_errors

#: Template folders of plugins by plugin name (``"sales/deals.html"``), filled by
#: ``plugin_pages.web_routers`` when an app is built.
PLUGIN_TEMPLATES: dict[str, BaseLoader] = {}
_env = Environment(
    loader=ChoiceLoader(
        [FileSystemLoader(Path(__file__).parent / "templates"), PrefixLoader(PLUGIN_TEMPLATES)]
    ),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
)
# Texts of every template in the request's language (tessera.i18n reads a context variable
# set per request by ``use_locale``); newstyle: ``{{ _("Hello %(name)s", name=...) }}``.
_env.install_gettext_callables(  # type: ignore[attr-defined]
    gettext=lambda message: i18n.gettext(message),
    ngettext=lambda singular, plural, n: i18n.translations().ngettext(singular, plural, n),
    newstyle=True,
)
_env.filters["when"] = lambda value: i18n.format_datetime(value) if isinstance(value, datetime) else ""
_env.filters["date"] = i18n.format_date
_env.filters["number"] = i18n.format_number
_env.filters["money"] = i18n.format_money
_env.globals["percent"] = i18n.format_percent
_env.globals["label"] = i18n.label
_env.globals["tr"] = i18n.translate_message  # a text that is not in the template (a plugin's label)
_env.globals["item_status"] = lambda kind, status: i18n.label(_status_group(kind), status)
_env.globals["status_title"] = lambda title: _status_title(title)
_env.globals["status_change"] = i18n.status_change
_env.globals["languages"] = i18n.language_names
_env.globals["current_locale"] = i18n.current_locale

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _status_group(kind: str) -> str:
    """The label group of a timeline item's status: ``activity.call`` -> ``activity.status``."""
    if kind.startswith("activity."):
        return "activity.status"
    return f"{kind}.status"


def _status_title(title: str) -> str:
    """A party status change of the card's timeline (``"new -> current"``) in words."""
    old, sep, new = title.partition(" -> ")
    return i18n.status_change(old, new) if sep else title


def use_locale(request: Request[Any, Any, Any], user_locale: str | None = None) -> str:
    """Choose the request's language and use it for the rest of the request: the user's
    profile setting, else ``Accept-Language``, else the ``default_locale`` setting."""
    if user_locale in i18n.LOCALES:
        request.state.locale = user_locale
    chosen = getattr(request.state, "locale", None) or i18n.negotiate(request.headers.get("accept-language"))
    return i18n.activate(chosen, getattr(request.state, "timezone", None))


async def current_principal(request: Request[Any, Any, Any]) -> Principal | None:
    """The signed-in user of a web request (session cookie), or None. Also switches the
    request to the user's language and time zone (``use_locale``)."""
    found = await session_of(request)
    if found is None:
        use_locale(request)
        return None
    user_id, csrf = found
    principal = await cached_principal(user_id, csrf_token=csrf)
    if principal is not None:
        row = await CrmUser.select(CrmUser.locale, CrmUser.timezone).where(CrmUser.id == user_id).first()
        if row is not None:
            request.state.timezone = row["timezone"]
        use_locale(request, row["locale"] if row else None)
        # The header's unread count on every page (one count on an indexed column).
        request.state.unread_notifications = await unread_count(user_id)
    else:
        use_locale(request)
    return principal


async def unread_count(user_id: int) -> int:
    """The user's unread notifications (the header of every page shows the number)."""
    return int(
        await Notification.count().where(Notification.user_id == user_id, Notification.read_at.is_null())
    )


#: Plugin entries the header shows beside the kernel's own links; the rest go into "More", so
#: the header stays one row on a laptop however many plugins are enabled.
MAX_HEADER_PLUGIN_ITEMS = 3


def header_nav(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plugins' entries with ``more`` set on every visible one past the first
    :data:`MAX_HEADER_PLUGIN_ITEMS` (in plugin order)."""
    out: list[dict[str, Any]] = []
    shown = 0
    for item in items:
        if not item.get("more"):
            shown += 1
            if shown > MAX_HEADER_PLUGIN_ITEMS:
                item = {**item, "more": True}
        out.append(item)
    return out


def render(
    request: Request[Any, Any, Any], template: str, status: int = 200, **context: Any
) -> Response[str]:
    """Render a template (``"party.html"``, or a plugin's ``"sales/deals.html"``) with the
    navigation of every enabled plugin."""
    pm = request.app.state.pm
    principal = context.get("principal")
    nav = header_nav(
        [
            item
            for _name, items in call_each(pm, "tessera_nav_items")
            for item in (items or [])
            if not item.get("permission") or (principal is not None and principal.can(item["permission"]))
        ]
    )
    use_locale(request)
    context.setdefault("errors", {})
    context.setdefault("form", {})
    context.setdefault("unread", getattr(request.state, "unread_notifications", None))
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = _env.get_template(template).render(nav=nav, request_path=path, **context)
    # MediaType.HTML: Litestar adds the charset itself (a charset in media_type was doubled).
    return Response(html, media_type=MediaType.HTML, status_code=status)


def error_page(
    request: Request[Any, Any, Any], principal: Principal | None, exc: DomainError
) -> Response[str]:
    """The kernel's error page with the error's status (404 for a record the user may not read)."""
    use_locale(request)
    return render(
        request,
        "error.html",
        status=exc.status,
        principal=principal,
        # A 404's detail names the record's kind and id; a person is told it plainly.
        message=i18n.gettext("There is no such record, or you may not see it.")
        if exc.status == 404
        else i18n.translate_message(exc.detail),
    )


def check_csrf(principal: Principal, form: dict[str, str]) -> None:
    """Refuse (403) a form that does not carry the session's ``csrf_token`` field."""
    if not principal.csrf_token or form.get("csrf_token") != principal.csrf_token:
        raise PermissionDenied(i18n.gettext("The form expired; reload the page and try again"))


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Redirect:
    return Redirect("/app" if await current_principal(request) else "/login")


#: Messages the sign-in page shows after another page sent the user there (``?done=...``).
LOGIN_NOTICES = {"password-reset": N_("Your password has been changed. Sign in with the new one.")}


@get("/login", include_in_schema=False)
async def login_page(request: Request[Any, Any, Any], done: str = "") -> Response[str]:
    use_locale(request)
    notice = LOGIN_NOTICES.get(done)
    return render(
        request,
        "login.html",
        principal=None,
        error=None,
        email="",
        notice=i18n.gettext(notice) if notice else None,
    )


@post("/login", include_in_schema=False, status_code=303)
async def login_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    use_locale(request)
    try:
        body = decode_form(LoginIn, data)  # the API's sign-in body, same limits
        _, cookie = await open_session(request, body.email, body.password)
    except DomainError as exc:
        errors = (
            field_errors(exc, {"email", "password"})
            if exc.status == 422
            else {"": i18n.translate_message(exc.detail)}
        )
        return render(
            request,
            "login.html",
            status=exc.status,
            principal=None,
            error=errors.pop("", None),
            errors=errors,
            email=data.get("email", ""),
        )
    return Redirect("/app", status_code=303, cookies=[cookie])


@post("/logout", include_in_schema=False, status_code=303)
async def logout_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    principal = await current_principal(request)
    if principal is not None:
        check_csrf(principal, data)
        await auth.logout(request.cookies.get(SESSION_COOKIE, ""))
    return Redirect(
        "/login", status_code=303, cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")]
    )


async def _require(request: Request[Any, Any, Any]) -> Principal:
    principal = await current_principal(request)
    if principal is None:
        raise NotAuthenticated(i18n.gettext("Sign in first"))
    return principal


#: Fields of the card's "log a call" form (the rest of ``ActivityIn`` keeps the API's defaults).
ACTIVITY_FORM_FIELDS = fields.ACTIVITY_FIELDS


async def _card(
    request: Request[Any, Any, Any],
    principal: Principal,
    party_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    try:
        card = await client_card_data(request.app.state.pm, principal, party_id, newest_first=True)
    except DomainError as exc:
        return error_page(request, principal, exc)
    tabs = [
        tab
        for _n, items in call_each(request.app.state.pm, "tessera_party_tabs", party_id=party_id)
        for tab in items or []
    ]
    # Who else works here, open tasks, files, widgets, what the user may change (web/card.py).
    extras = await card_extras(request.app.state.pm, principal, party_id)
    errors = dict(errors or {})
    return render(
        request,
        "card.html",
        status=status,
        principal=principal,
        card=card,
        tabs=tabs,
        activity_types=list(get_args(activities.ActivityType)),
        error=errors.pop("", None),
        errors=errors,
        form=form or {},
        **extras,
    )


@get("/app/parties/{party_id:int}", include_in_schema=False)
async def party_card(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _card(request, principal, party_id)


@post("/app/parties/{party_id:int}/activities", include_in_schema=False, status_code=303)
async def log_activity(request: Request[Any, Any, Any], party_id: int) -> Response[Any]:
    """Log (or, with a future time, plan) an activity: the form is decoded through the API's
    ``ActivityIn`` and created by the same service; a refusal re-renders the card (422) with
    the reason beside the field and the user's input kept."""
    principal = await _require(request)
    data = fields.form_state(await request.form(), fields.ACTIVITY_MULTI)
    check_csrf(principal, data)
    sent = fields.activity_body(data)
    if not sent.get("starts_at"):
        sent["starts_at"] = clock.now().isoformat()  # left empty: now (the form says so)
    try:
        body = decode_form(activities.ActivityIn, sent, party_id=party_id)
        if "status" not in sent:  # the card's form: a past or present time logs, a future one plans
            body.status = "done" if body.starts_at.tzinfo and body.starts_at <= clock.now() else "planned"
        async with events.unit_of_work():
            await service.create(activities.ACTIVITY, principal, set_fields(body))
    except DomainError as exc:
        if exc.status not in (409, 422):
            return error_page(request, principal, exc)
        return await _card(
            request,
            principal,
            party_id,
            form=dict(data),
            errors=field_errors(exc, ACTIVITY_FORM_FIELDS),
            status=exc.status,
        )
    return Redirect(f"/app/parties/{party_id}", status_code=303)


@post("/app/language", include_in_schema=False, status_code=303)
async def language_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """The language switcher of every page (works without JavaScript): stores the chosen
    language in the user's profile and goes back to the page it was sent from."""
    principal = await _require(request)
    check_csrf(principal, data)
    locale = data.get("locale", "")
    if locale not in i18n.LOCALES:
        refusal = i18n.gettext("This language is not available.")
        return error_page(request, principal, ValidationFailed(refusal, [FieldError("locale", refusal)]))
    await set_locale(principal.user_id, locale)
    back = data.get("next", "")
    if not back.startswith("/") or back.startswith("//"):
        back = "/app"  # only a path of this site, never another site
    return Redirect(back, status_code=303)


WEB_HANDLERS = [
    language_submit,
    home,
    login_page,
    login_submit,
    logout_submit,
    party_card,
    log_activity,
]
