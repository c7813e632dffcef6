"""HTTP protections that hold for every route, the kernel's and every plugin's, because they are
applied where every response and every request passes (docs/security.md, "HTTP headers" and
"Cross-site requests"):

* :func:`security_headers` (a ``before_send`` hook) gives every response a Content-Security-
  Policy without inline scripts, ``X-Content-Type-Options: nosniff``, a ``Referrer-Policy``,
  ``X-Frame-Options`` and one well-formed ``Content-Type`` (Litestar appends ``; charset=utf-8``
  to a ``text/*`` type even when the handler already named the charset).
* :class:`OriginCheck` (middleware) refuses with 403 an unsafe request that a browser made from
  another origin (``Origin`` / ``Sec-Fetch-Site``) unless it carries an API token: session
  cookies are sent by the browser on its own, so on top of the CSRF token the request must come
  from our own pages. Requests without those headers (non-browser clients) still need the CSRF
  token for a cookie session.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from tessera.errors import PermissionDenied

#: No inline script anywhere (the OpenAPI pages' start-up code is a static file too); styles may
#: be inline (``style=""`` attributes in templates; Redoc injects its styles). Frames: none.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _one_content_type(value: str) -> str:
    """``text/html; charset=utf-8; charset=utf-8`` -> ``text/html; charset=utf-8`` (each
    parameter once, the first occurrence kept)."""
    kind, *params = [p.strip() for p in value.split(";")]
    seen: dict[str, str] = {}
    for param in params:
        name = param.split("=", 1)[0].strip().lower()
        if param and name not in seen:
            seen[name] = param
    return "; ".join([kind, *seen.values()])


async def security_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: the security headers on every HTTP response (a handler's own value
    wins), and one Content-Type."""
    if message["type"] != "http.response.start":
        return
    headers: list[tuple[bytes, bytes]] = list(message.get("headers") or [])
    present = {name.lower() for name, _ in headers}
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name.lower() == b"content-type":
            value = _one_content_type(value.decode("latin-1")).encode("latin-1")
        out.append((name, value))
    for name, value in SECURITY_HEADERS.items():
        if name.encode() not in present:
            out.append((name.encode(), value.encode()))
    message["headers"] = out


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _forwarded_host(scope: Scope) -> str | None:
    """``X-Forwarded-Host`` when the peer is a configured trusted proxy (which may address the
    app by another name than the browser did), else None."""
    from tessera.api.security import _is_trusted

    forwarded = _header(scope, b"x-forwarded-host")
    app = scope.get("app")
    settings = getattr(getattr(app, "state", None), "settings", None)
    proxies = tuple(getattr(settings, "trusted_proxies", ()) or ())
    client = scope.get("client")
    if not forwarded or not proxies or not client or not _is_trusted(str(client[0]), proxies):
        return None
    return forwarded.split(",")[0].strip()


def cross_site(scope: Scope) -> bool:
    """True when a browser says the request comes from a page of another origin: its
    ``Origin`` names another host than the one addressed (``Host``), or is ``null``, or
    ``Sec-Fetch-Site`` is ``cross-site``/``same-site``. The host is compared (not the scheme):
    behind a TLS-terminating proxy the app itself is reached over plain http. Behind a trusted
    proxy (``trusted_proxies``) ``X-Forwarded-Host`` names the host when sent."""
    fetch_site = (_header(scope, b"sec-fetch-site") or "").lower()
    if fetch_site in {"cross-site", "same-site"}:
        return True
    origin = _header(scope, b"origin")
    if origin is None:
        return False
    host = (_forwarded_host(scope) or _header(scope, b"host") or "").lower()
    parts = urlsplit(origin.strip())
    return origin.strip().lower() == "null" or not parts.netloc or parts.netloc.lower() != host


def public_cross_site(scope: Scope) -> bool:
    """True for a route meant to be posted from other sites (a plugin's public web form):
    marked ``opt={"cross_site": True}`` and public (its handler takes no ``principal``, so no
    session cookie is ever used and there is nothing a forged request could act as). The
    handler answers CORS itself for the origins it allows."""
    import inspect

    handler = scope.get("route_handler")
    if handler is None or not (getattr(handler, "opt", None) or {}).get("cross_site"):
        return False
    fn = getattr(handler, "fn", None)
    return fn is not None and "principal" not in inspect.signature(fn).parameters


class OriginCheck(ASGIMiddleware):
    """403 for an unsafe request from another origin that does not carry an API token (public
    cross-site routes excepted, see :func:`public_cross_site`)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        method = str(scope.get("method", "GET")).upper()
        bearer = (_header(scope, b"authorization") or "").lower().startswith("bearer ")
        if method in UNSAFE_METHODS and not bearer and cross_site(scope) and not public_cross_site(scope):
            raise PermissionDenied("Cross-site request refused: it must come from this site's own pages")
        await next_app(scope, receive, send)


__all__: list[Any] = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "OriginCheck", "security_headers"]
