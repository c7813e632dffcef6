"""Who is calling: the ``principal`` dependency (Bearer API token or session cookie with CSRF
header), and the login/logout/token routes."""

from __future__ import annotations

import functools
import ipaddress
import secrets
from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.params import Parameter
from msgspec import Meta, Struct

from tessera import audit, auth, clock, i18n
from tessera.config import Settings
from tessera.entities.dto import MAX_ID
from tessera.entities.tables import ApiToken
from tessera.errors import NotAuthenticated, NotFound, PermissionDenied, ValidationFailed
from tessera.events import set_actor
from tessera.i18n import N_
from tessera.permissions import Principal, cached_principal, forget_principals, grants

SESSION_COOKIE = "tessera_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def settings_of(request: Request[Any, Any, Any]) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def login_policy(settings: Settings) -> auth.LoginPolicy:
    return auth.LoginPolicy(
        session_ttl=settings.session_ttl,
        session_idle=settings.session_idle,
        max_failures=settings.login_max_failures,
        max_failures_any_address=settings.login_max_failures_any_address,
        lockout_seconds=settings.login_lockout_seconds,
    )


@functools.lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_trusted(address: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(proxies))


def client_address(request: Request[Any, Any, Any]) -> str:
    """The client's address: the connection's peer, unless the peer is one of the configured
    ``trusted_proxies``; then the nearest ``X-Forwarded-For`` hop that is not a trusted proxy
    (hops further left are the client's own claims and are not believed). ``tessera serve``
    runs uvicorn without its own forwarded-header handling, so this is the only place that
    reads the header (docs/security.md, "Client address")."""
    peer = request.client.host if request.client else "unknown"
    proxies = settings_of(request).trusted_proxies
    if not proxies or not _is_trusted(peer, proxies):
        return peer
    hops = [
        hop.strip()
        for value in request.headers.getall("x-forwarded-for", [])
        for hop in value.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _is_trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


async def session_of(request: Request[Any, Any, Any]) -> tuple[int, str] | None:
    """``(user id, csrf token)`` of the request's live session cookie (sliding its idle end)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    return await auth.session_user(session_id, login_policy(settings_of(request)))


async def resolve_principal(request: Request[Any, Any, Any]) -> Principal | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        found = await auth.token_user(header[7:].strip())
        if found is None:
            raise NotAuthenticated("Invalid, expired or revoked API token")
        user_id, scopes = found
        try:
            principal = await cached_principal(user_id, token_scopes=scopes)
        except NotFound as exc:  # a deactivated user's tokens stop working: 401, not 404
            raise NotAuthenticated("Invalid, expired or revoked API token") from exc
    else:
        session = await session_of(request)
        if session is None:
            return None
        user_id, csrf = session
        sent = request.headers.get(CSRF_HEADER, "")
        if request.method not in SAFE_METHODS and not secrets.compare_digest(sent.encode(), csrf.encode()):
            raise PermissionDenied(f"Missing or wrong {CSRF_HEADER} header (cross-site request refused)")
        try:
            principal = await cached_principal(user_id, csrf_token=csrf)
        except NotFound:  # the user was deactivated: the session is worthless
            return None
    set_actor(principal.user_id)
    return principal


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the signed-in principal, or 401."""
    principal = await resolve_principal(request)
    if principal is None:
        raise NotAuthenticated("Sign in or send an API token (Authorization: Bearer ...)")
    return principal


class LoginIn(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254)]
    password: Annotated[str, Meta(min_length=1, max_length=200)]


class LoginOut(Struct):
    user_id: int
    csrf_token: str
    expires_at: datetime


class MeOut(Struct):
    user_id: int
    name: str
    email: str
    permissions: list[str]
    scope: str
    team_id: int | None
    acting_for: list[int]
    csrf_token: str | None


class TokenIn(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    scopes: list[str] = []
    expires_at: datetime | None = None


class TokenCreated(Struct):
    id: int
    token: str
    name: str
    scopes: list[str]
    expires_at: datetime | None


class TokenOut(Struct):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


async def open_session(
    request: Request[Any, Any, Any], email: str, password: str
) -> tuple[auth.LoginResult, Cookie]:
    """Sign in for the API and the web page alike: drop any session id the client brought
    along (never adopt it), check the password, return the result and the cookie to set."""
    settings = settings_of(request)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await auth.logout(old)
    result = await auth.login(email, password, client_address(request), login_policy(settings))
    cookie = Cookie(
        key=SESSION_COOKIE,
        value=result.session_id,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        max_age=settings.session_ttl,
        path="/",
    )
    return result, cookie


@post("/api/auth/login", operation_id="login", tags=["auth"], status_code=200)
async def login(request: Request[Any, Any, Any], data: LoginIn) -> Response[LoginOut]:
    """Sign in with e-mail and password. Sets the session cookie (a new session id every time)
    and returns the CSRF token to send as ``X-CSRF-Token`` on writes. ``expires_at`` is the
    session's absolute end; unused for ``session_idle`` seconds it ends sooner. Repeated
    failures from one address for one login (existing or not) answer 429 for a while."""
    result, cookie = await open_session(request, data.email, data.password)
    return Response(
        LoginOut(user_id=result.user_id, csrf_token=result.csrf_token, expires_at=result.expires_at),
        cookies=[cookie],
    )


@post("/api/auth/logout", operation_id="logout", tags=["auth"], status_code=204)
async def logout(request: Request[Any, Any, Any]) -> Response[None]:
    """End the current web session."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await auth.logout(session_id)
    return Response(
        None, status_code=204, cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")]
    )


@get("/api/auth/me", operation_id="me", tags=["auth"])
async def me(principal: Principal) -> MeOut:
    """The signed-in user, their permissions and visibility scope. With a scoped API token,
    ``permissions`` are what that token may do."""
    permissions = principal.permissions
    if principal.token_scopes is not None:
        permissions = frozenset(s for s in principal.token_scopes if grants(principal.permissions, s))
    return MeOut(
        user_id=principal.user_id,
        name=principal.name,
        email=principal.email,
        permissions=sorted(permissions),
        scope=principal.scope,
        team_id=principal.team_id,
        acting_for=sorted(principal.acting_for),
        csrf_token=principal.csrf_token,
    )


@post("/api/auth/tokens", operation_id="create_token", tags=["auth"])
async def create_token(principal: Principal, data: TokenIn) -> TokenCreated:
    """Create an API token for yourself. The token is shown once; only its hash is stored.
    ``scopes`` narrows it to some of your permissions (empty: all of them)."""
    if data.expires_at is not None:
        if data.expires_at.tzinfo is None:
            raise ValidationFailed.field("expires_at", "must carry a time zone")
        if data.expires_at <= clock.now():
            raise ValidationFailed.field("expires_at", "must be in the future")
    for scope in data.scopes:
        # principal.can also applies the calling token's own scopes, so a narrow token can
        # only mint tokens at most as narrow as itself.
        if not grants(principal.permissions, scope) or not principal.can(scope):
            raise ValidationFailed.field("scopes", f"you do not hold {scope!r}")
    scopes = list(data.scopes)
    if not scopes and principal.token_scopes is not None:
        scopes = sorted(principal.token_scopes)  # "all of them" means all the caller's token has
    token_id, token = await auth.create_token(principal.user_id, data.name, scopes, data.expires_at)
    return TokenCreated(id=token_id, token=token, name=data.name, scopes=scopes, expires_at=data.expires_at)


@get("/api/auth/tokens", operation_id="list_tokens", tags=["auth"])
async def list_tokens(principal: Principal) -> list[TokenOut]:
    """Your API tokens (without the secret)."""
    rows = await ApiToken.select().where(ApiToken.user_id == principal.user_id).order_by(ApiToken.id)
    return [
        TokenOut(
            id=r["id"],
            name=r["name"],
            prefix=r["prefix"],
            scopes=r["scopes"] or [],
            expires_at=r["expires_at"],
            last_used_at=r["last_used_at"],
            revoked_at=r["revoked_at"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


@delete("/api/auth/tokens/{token_id:int}", operation_id="revoke_token", tags=["auth"], status_code=204)
async def revoke_token(principal: Principal, token_id: Annotated[int, Parameter(gt=0, le=MAX_ID)]) -> None:
    """Revoke one of your API tokens (admins holding user.manage may revoke anyone's)."""
    row = await ApiToken.select(ApiToken.user_id).where(ApiToken.id == token_id).first()
    if row is None or (row["user_id"] != principal.user_id and not principal.can("user.manage")):
        raise NotFound(f"token {token_id} not found")
    await ApiToken.update({ApiToken.revoked_at: clock.now()}).where(ApiToken.id == token_id)
    auth.forget_tokens()
    await audit.record("revoke", "api_token", token_id)


# --------------------------------------------------------------------------- passwords

Password = Annotated[str, Meta(min_length=auth.MIN_PASSWORD_LENGTH, max_length=200)]


class PasswordChangeIn(Struct, forbid_unknown_fields=True):
    current_password: Annotated[str, Meta(min_length=1, max_length=200)]
    new_password: Password
    #: Also revoke all your API tokens (default: they keep working).
    revoke_tokens: bool = False


class ResetRequestIn(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254)]


class ResetRequested(Struct):
    detail: str


class PasswordResetIn(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=200)]
    new_password: Password
    #: Also revoke all the account's API tokens (default: they keep working).
    revoke_tokens: bool = False


class ResetTokenOut(Struct):
    user_id: int
    token: str
    expires_at: datetime


RESET_REQUESTED = "If an active account has this e-mail address, a password reset has been arranged for it"


def _is_bearer(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


@post("/api/auth/password", operation_id="change_password", tags=["auth"], status_code=204)
async def change_password(
    request: Request[Any, Any, Any], principal: Principal, data: PasswordChangeIn
) -> Response[None]:
    """Change your own password; ``current_password`` is required. Your other web sessions end
    (the one making this call stays signed in); your API tokens keep working unless
    ``revoke_tokens`` is true. Wrong current passwords count like failed sign-ins (then 429)."""
    await apply_password_change(request, principal, data)
    return Response(None, status_code=204)


async def apply_password_change(
    request: Request[Any, Any, Any], principal: Principal, data: PasswordChangeIn
) -> None:
    """A password change asked for by ``principal`` (the API route and the web page): the
    calling session stays, the user's other sessions end (``auth.change_password``)."""
    keep = None if _is_bearer(request) else request.cookies.get(SESSION_COOKIE)
    await auth.change_password(
        principal.user_id,
        data.current_password,
        data.new_password,
        client_address(request),
        login_policy(settings_of(request)),
        keep_session_id=keep,
        revoke_tokens=data.revoke_tokens,
    )
    forget_principals()


def public_base_url(request: Request[Any, Any, Any]) -> str:
    """Where people reach this deployment: setting ``public_url``, else the request's base URL."""
    return (settings_of(request).public_url or str(request.base_url)).rstrip("/")


def reset_link(request: Request[Any, Any, Any], token: str) -> str:
    """The web page that sets a new password with ``token`` (``/password-reset?token=...``)."""
    from urllib.parse import quote

    return f"{public_base_url(request)}/password-reset?token={quote(token, safe='')}"


def reset_email_text(user: dict[str, Any], link: str, expires_at: datetime) -> tuple[str, str]:
    """Subject and text of the reset message, in the user's language (their profile setting,
    else the default language)."""
    locale = user.get("locale") or None
    subject = i18n.gettext_for(locale, N_("Reset your Tessera CRM password"))
    text = i18n.gettext_for(
        locale,
        N_(
            "Hello %(name)s,\n\n"
            "someone (hopefully you) asked to reset the password of your Tessera CRM account.\n"
            "Open this link to choose a new password; it works once and until %(until)s:\n\n"
            "%(link)s\n\n"
            "If you did not ask for this, ignore this message: your password stays as it is.\n"
        ),
        name=user["name"],
        until=expires_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
        link=link,
    )
    return subject, text


async def deliver_reset_link(
    request: Request[Any, Any, Any], user: dict[str, Any], token: str, expires_at: datetime
) -> None:
    """The one place a reset token leaves the server for its user, called inside the unit of
    work that stored the token. A plugin implementing ``tessera_password_reset_link`` delivers
    it its own way (it overrides the rest); otherwise, when SMTP is configured
    (``smtp_host``), the kernel e-mail service sends the link to the web reset page (no party
    activity; the text is wiped from the job once sent); when nothing can deliver it, every
    administrator is asked, in their inbox and without the token, to create a reset token
    for the user (``POST /api/users/{id}/password-reset``) and pass it on."""
    from tessera.api.cards import admin_locales
    from tessera.email import send_email
    from tessera.entities.tables import Notification
    from tessera.plugins import await_me_maybe

    pm = request.app.state.pm
    delivered = await await_me_maybe(
        pm.hook.tessera_password_reset_link(user=dict(user), token=token, expires_at=expires_at)
    )
    if delivered:
        return
    if settings_of(request).smtp_host:
        subject, text = reset_email_text(user, reset_link(request, token), expires_at)
        await send_email(user["email"], subject, text, record_activity=False, redact_after_send=True)
        return
    user_words = {"name": user["name"], "email": user["email"]}
    for admin_id, locale in (await admin_locales()).items():
        await Notification.insert(
            Notification(
                user_id=admin_id,
                kind="password_reset",
                # In the administrator's own language (written now, read later).
                title=i18n.gettext_for(
                    locale, N_("%(name)s <%(email)s> asked for a password reset"), **user_words
                ),
                body=i18n.gettext_for(
                    locale,
                    N_(
                        "Create a reset link for them (Administration, Users, or POST "
                        "/api/users/%(id)s/password-reset) and pass it on to them in person."
                    ),
                    id=user["id"],
                ),
                ref=f"user:{user['id']}",
                created_at=clock.now(),
            )
        )


@post(
    "/api/auth/password-reset/request", operation_id="request_password_reset", tags=["auth"], status_code=202
)
async def request_password_reset(request: Request[Any, Any, Any], data: ResetRequestIn) -> ResetRequested:
    """Ask for a password reset. The answer is the same whether or not the e-mail belongs to
    an account; for an active one a single-use token valid ``password_reset_ttl`` seconds is
    created and delivered (see ``tessera_password_reset_link``). Repeated requests from one
    address for one e-mail answer 429 for a while, known e-mail or not."""
    await arrange_reset(request, data.email)
    return ResetRequested(detail=RESET_REQUESTED)


async def arrange_reset(request: Request[Any, Any, Any], email: str) -> None:
    """A reset asked for by e-mail address (the API route and the web page "Forgot
    password?"): ``auth.request_reset`` with delivery by :func:`deliver_reset_link`."""
    settings = settings_of(request)

    async def deliver(user: dict[str, Any], token: str, expires_at: datetime) -> None:
        await deliver_reset_link(request, user, token, expires_at)

    await auth.request_reset(
        email, client_address(request), login_policy(settings), settings.password_reset_ttl, deliver
    )


@post("/api/auth/password-reset", operation_id="reset_password", tags=["auth"], status_code=204)
async def reset_password(request: Request[Any, Any, Any], data: PasswordResetIn) -> Response[None]:
    """Set a new password with a reset token. The token works once and until it expires; every
    web session of the account ends; its API tokens keep working unless ``revoke_tokens``. A
    wrong, used or expired token is 422 naming ``token`` and counts like a failed sign-in from
    this address (then 429 with ``Retry-After``)."""
    await apply_password_reset(request, data)
    return Response(None, status_code=204)


async def apply_password_reset(request: Request[Any, Any, Any], data: PasswordResetIn) -> None:
    """A new password set with a reset token (the API route and the web page): the token is
    used up and every web session of the account ends (``auth.reset_password``)."""
    await auth.reset_password(
        data.token,
        data.new_password,
        client_address(request),
        login_policy(settings_of(request)),
        revoke_tokens=data.revoke_tokens,
    )
    forget_principals()


@post(
    "/api/users/{user_id:int}/password-reset",
    operation_id="create_password_reset",
    tags=["users"],
    status_code=201,
)
async def create_password_reset(
    request: Request[Any, Any, Any],
    principal: Principal,
    user_id: Annotated[int, Parameter(gt=0, le=MAX_ID)],
) -> ResetTokenOut:
    """Create a single-use reset token for a user (needs ``user.manage``) to pass on to them;
    it is shown once (only its hash is stored) and expires after ``password_reset_ttl`` seconds."""
    from tessera.entities.tables import CrmUser

    principal.require("user.manage")
    user = await CrmUser.select(CrmUser.id, CrmUser.is_active).where(CrmUser.id == user_id).first()
    if user is None or not user["is_active"]:
        raise NotFound(f"user {user_id} not found")
    ttl = settings_of(request).password_reset_ttl
    token, expires_at = await auth.create_reset_token(user_id, ttl, created_by=principal.user_id)
    return ResetTokenOut(user_id=user_id, token=token, expires_at=expires_at)


AUTH_HANDLERS = [
    login,
    logout,
    me,
    create_token,
    list_tokens,
    revoke_token,
    change_password,
    request_password_reset,
    reset_password,
    create_password_reset,
]
