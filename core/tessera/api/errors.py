"""One translation of every error into ``{"status", "detail", "errors": [{"field", "message"}]}``.

Validation problems are 422 with the field named (Litestar's default would be 400); anything
unexpected is a 500 whose body says nothing about the internals (the trace goes to the log).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from tessera.errors import DomainError

log = logging.getLogger("tessera.api")


def _body(
    status: int, detail: str, errors: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "detail": detail, "errors": errors or []}
    body.update(extra)
    return body


def _field_from_msgspec(message: str, key: str | None) -> tuple[str, str]:
    # msgspec says "Expected `str`, got `int` - at `$.phones[0].number`" or "Object missing
    # required field `number`"; Litestar strips the " - at" part and passes the path as the
    # key ("phones[0]", or "data" for the body itself). Turn both into a dotted field name.
    match = re.search(r"at `\$\.?([^`]*)`", message)
    text = message.split(" - at ")[0]
    path = match.group(1) if match else ("" if key in (None, "data") else key)
    path = re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")
    named = re.search(r"(?:required|unknown) field `([^`]+)`", text)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or "body", text


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            field, message = _field_from_msgspec(str(item.get("message", "")), item.get("key"))
            errors.append({"field": field, "message": message, "source": item.get("source", "body")})
    if not errors:
        errors.append({"field": "body", "message": str(exc.detail)})
    return Response(
        _body(
            422, "Validation failed: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors
        ),
        status_code=422,
        media_type=MediaType.JSON,
    )


def domain_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    headers = {}
    if exc.status == 429 and "retry_after" in exc.extra:
        headers["Retry-After"] = str(exc.extra["retry_after"])
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tessera"'
    return Response(
        _body(exc.status, exc.detail, [e.as_dict() for e in exc.errors], **exc.extra),
        status_code=exc.status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail if status < 500 else "Internal server error"
    return Response(
        _body(status, detail),
        status_code=status,
        media_type=MediaType.JSON,
        headers=getattr(exc, "headers", None),
    )


def internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(_body(500, "Internal server error"), status_code=500, media_type=MediaType.JSON)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: validation_handler,
    DomainError: domain_handler,
    HTTPException: http_handler,
    Exception: internal_handler,
}
