"""Errors where a person reads them: outside ``/api/`` (the web pages, the kernel's and every
plugin's, and unknown paths under them) an error is the HTML error page with the error's
status, not the API's JSON body. The API's handlers still decide status, detail and headers;
this only changes how the answer is dressed for a browser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import MediaType, Request, Response

from tessera import i18n
from tessera.errors import DomainError
from tessera.i18n import N_

#: What a person is told for errors that carry no message of our own (Litestar's 404, 405 ...).
_PLAIN = {
    400: N_("The request could not be read."),
    401: N_("Sign in first."),
    403: N_("You may not do this."),
    404: N_("There is no such page."),
    405: N_("This page does not accept that kind of request."),
    413: N_("What you sent is too large."),
    415: N_("What you sent is of a kind this page does not accept."),
    429: N_("Too many attempts; try again later."),
}
_SERVER = N_("Something went wrong on our side; try again in a moment.")


def wants_page(request: Request[Any, Any, Any]) -> bool:
    """A request for a page rather than for the API: not under ``/api/`` (nor the OpenAPI
    document), and not asking for JSON first."""
    path = request.url.path
    if path.startswith("/api/") or path == "/api" or path.startswith("/schema/openapi"):
        return False
    accept = request.headers.get("accept", "")
    return not accept.split(",")[0].strip().startswith("application/json")


def _message(exc: Exception, status: int) -> str:
    if status >= 500:
        return i18n.gettext(_SERVER)
    if isinstance(exc, DomainError):
        return i18n.translate_message(exc.detail)
    return i18n.gettext(_PLAIN.get(status, _PLAIN[400]))


class _ErrorPage(Response[str]):
    """The HTML error page, rendered when it is sent: the exception handler is synchronous,
    but the signed-in user (their language, navigation and header) is read from the session
    and the database, which needs ``await``."""

    def __init__(self, exc: Exception, status: int, headers: dict[str, str]) -> None:
        super().__init__("", status_code=status, media_type=MediaType.HTML)
        self._exc = exc
        self._keep = headers

    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **kwargs: Any) -> Any:
        exc, status, keep = self._exc, self.status_code, self._keep

        async def send_page(scope: Any, receive: Any, send: Any) -> None:
            from tessera.web.pages import current_principal, render, use_locale

            try:
                principal = await current_principal(request)
            except Exception:  # the error page must show even without a database
                principal = None
                use_locale(request)
            page = render(
                request,
                "error.html",
                status=status,
                principal=principal,
                message=_message(exc, status),
                status_code=status,
            )
            page.headers.update(keep)
            await page.to_asgi_response(app, request, type_encoders=kwargs.get("type_encoders"))(
                scope, receive, send
            )

        return send_page


def for_pages(handler: Callable[..., Response[Any]]) -> Callable[..., Response[Any]]:
    """Wrap an API exception handler so that page requests get the HTML error page, in the
    signed-in user's language and with their navigation when there is a session."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        response = handler(request, exc)
        if not wants_page(request):
            return response
        keep = {
            name: value
            for name, value in (response.headers or {}).items()
            if name.lower() in {"retry-after", "www-authenticate", "allow"}
        }
        return _ErrorPage(exc, response.status_code, keep)

    return handle


def page_aware(handlers: dict[Any, Any]) -> dict[Any, Any]:
    """The app's exception handlers, each answering page requests with the error page."""
    return {exc: for_pages(handler) for exc, handler in handlers.items()}


__all__ = ["for_pages", "page_aware", "wants_page"]
