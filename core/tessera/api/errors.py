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
        # Litestar reports a missing parameter only in its detail text: name the parameter.
        missing = re.search(r"Missing required (\w+) parameter '([^']+)'", str(exc.detail))
        if missing:
            errors.append({"field": missing.group(2), "message": "is required", "source": missing.group(1)})
        else:
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
    errors = None
    if status in (400, 413, 415):  # the body itself is malformed, too large or of the wrong type
        errors = [{"field": "body", "message": detail, "source": "body"}]
    return Response(
        _body(status, detail, errors),
        status_code=status,
        media_type=MediaType.JSON,
        headers=getattr(exc, "headers", None),
    )


#: Integer columns are 32-bit on PostgreSQL (64-bit on SQLite): a larger number in a path,
#: query or body makes the driver raise instead of the query returning nothing.
INT_RANGE = (-(2**31), 2**31 - 1)


def _is_overflow(exc: BaseException) -> bool:
    """The driver refused a number (SQLite: OverflowError; asyncpg: DataError "value out of
    int32 range", NumericValueOutOfRangeError). Other "out of range" errors (IndexError ...)
    are bugs and stay 500s."""
    if isinstance(exc, OverflowError):
        return True
    text = str(exc).lower()
    return (
        type(exc).__name__ in {"DataError", "NumericValueOutOfRangeError"}
        and "out of" in text
        and ("range" in text)
    )


def _too_large(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return False
    return isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def _find(value: Any, path: str, bad: Any) -> list[str]:
    """Dotted paths of the leaves of ``value`` for which ``bad(leaf)`` holds."""
    if isinstance(value, dict):
        return [
            f for key, item in value.items() for f in _find(item, f"{path}.{key}" if path else str(key), bad)
        ]
    if isinstance(value, list | tuple):
        return [
            f for i, item in enumerate(value) for f in _find(item, f"{path}.{i}" if path else str(i), bad)
        ]
    return [path or "body"] if bad(value) else []


def _request_fields(request: Request[Any, Any, Any], bad: Any, message: str) -> list[dict[str, Any]]:
    """Errors naming every path parameter, query parameter and JSON body field of the request
    whose value ``bad`` rejects."""
    import json

    errors = []
    sources = [("path", dict(request.path_params)), ("query", dict(request.query_params))]
    body = request._connection_state.body  # read (and cached) by the handler that failed
    if isinstance(body, bytes) and body and "json" in request.headers.get("content-type", ""):
        try:
            sources.append(("body", json.loads(body)))
        except ValueError:
            pass
    for source, values in sources:
        for name in _find(values, "", bad):
            errors.append({"field": name, "message": message, "source": source})
    return errors


def _is_nul_refused(exc: BaseException) -> bool:
    """PostgreSQL stores no NUL character in text (SQLite does)."""
    text = str(exc)
    return type(exc).__name__ == "CharacterNotInRepertoireError" or "(0x00)" in text or ": 0x00" in text


def _integrity_error(exc: BaseException) -> tuple[int, str, list[dict[str, Any]]] | None:
    """A constraint the database enforced that the service did not check first: 409 for a
    duplicate or a record still referenced elsewhere, 422 for a missing value; the field is
    named when the database says which one (SQLite: ``table.column``; PostgreSQL: the detail)."""
    name = type(exc).__name__
    text = str(exc)
    detail = str(getattr(exc, "detail", "") or "")
    if name == "UniqueViolationError" or "UNIQUE constraint failed" in text:
        match = re.search(r"Key \(([^)]+)\)=", detail) or re.search(
            r"UNIQUE constraint failed: ([\w., ]+)", text
        )
        fields = [f.strip().split(".")[-1] for f in (match.group(1).split(",") if match else ["body"])]
        return (
            409,
            "A record with this value already exists",
            [{"field": f, "message": "already exists"} for f in fields],
        )
    if name == "ForeignKeyViolationError" or "FOREIGN KEY constraint failed" in text:
        table = re.search(r'from table "([^"]+)"', detail)
        where = f" (by {table.group(1)})" if table else ""
        return 409, f"The record is still referenced by other records{where}", []
    if name == "NotNullViolationError" or "NOT NULL constraint failed" in text:
        column = getattr(exc, "column_name", None)
        match = re.search(r"NOT NULL constraint failed: [\w]+\.(\w+)", text)
        field = column or (match.group(1) if match else "body")
        return 422, f"Validation failed: {field}: is required", [{"field": field, "message": "is required"}]
    return None


def internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    integrity = _integrity_error(exc)
    if integrity is not None:
        status, detail, errors = integrity
        log.info("constraint refused %s %s: %s", request.method, request.url.path, exc)
        return Response(_body(status, detail, errors), status_code=status, media_type=MediaType.JSON)
    if _is_overflow(exc) or _is_nul_refused(exc):
        # A number too large for an integer column, or a NUL character PostgreSQL cannot store:
        # the client's mistake, not the server's.
        if _is_overflow(exc):
            message, bad = "number out of range", _too_large
        else:
            message, bad = "must not contain NUL (\\u0000) characters", _has_nul
        errors = _request_fields(request, bad, message) or [{"field": "body", "message": message}]
        detail = "Validation failed: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return Response(_body(422, detail, errors), status_code=422, media_type=MediaType.JSON)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(_body(500, "Internal server error"), status_code=500, media_type=MediaType.JSON)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: validation_handler,
    DomainError: domain_handler,
    HTTPException: http_handler,
    Exception: internal_handler,
}


# --------------------------------------------------------------------------- OpenAPI

ERROR_SCHEMA_NAME = "Error"

_ERROR_DESCRIPTIONS = {
    "400": "Malformed request (body missing, not UTF-8, not valid JSON or multipart, nested too "
    "deeply) or a query parameter the route does not take",
    "401": "Not signed in, or an invalid, expired or revoked API token",
    "403": "A permission is missing (``missing_permission``) or the CSRF header is wrong",
    "404": "No such record, or one the caller may not read",
    "409": "Conflict: stale version (optimistic locking), duplicate, or a state that forbids it",
    "413": "The upload is too large",
    "422": "Validation failed; ``errors`` names each field",
    "429": "Too many attempts; see ``Retry-After``",
}
_PUBLIC_PATHS = {"/api/health", "/api/auth/login", "/api/auth/logout"}


def _error_schema() -> Any:
    from litestar.openapi.spec import OpenAPIType, Schema

    field_error = Schema(
        type=OpenAPIType.OBJECT,
        required=["field", "message"],
        properties={
            "field": Schema(type=OpenAPIType.STRING, description="Dotted name of the field, or 'body'"),
            "message": Schema(type=OpenAPIType.STRING),
            "source": Schema(type=OpenAPIType.STRING, description="body, query, path, header ..."),
        },
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["status", "detail", "errors"],
        properties={
            "status": Schema(type=OpenAPIType.INTEGER),
            "detail": Schema(type=OpenAPIType.STRING),
            "errors": Schema(type=OpenAPIType.ARRAY, items=field_error),
        },
        additional_properties=True,
        description="Every error the API answers: status, human-readable detail, per-field errors",
    )


def _error_codes(path: str, method: str, operation: Any) -> set[str]:
    """The 4xx codes an operation can answer, from its shape (auth, path ids, body, query)."""
    codes: set[str] = {"400"}  # any route: a query parameter it does not take (tessera.api.input)
    params = operation.parameters or []
    if operation.request_body is not None or params:
        codes |= {"400", "422"}
    if path not in _PUBLIC_PATHS:
        # Any id a route is given (path, query or body) may name a missing or hidden record.
        codes |= {"401", "403", "404"}
    if method in {"post", "put", "patch", "delete"} and path not in _PUBLIC_PATHS:
        codes |= {"404", "409", "422"}
    if path == "/api/auth/login":
        codes |= {"401", "422", "429"}
    if path.endswith("/upload"):
        codes.add("413")
    return codes


def document_errors(openapi: Any) -> Any:
    """Make the OpenAPI tell the truth about errors: Litestar documents its own error body
    (``status_code``/``extra``) on 400s, while every error here is ``{status, detail, errors}``;
    guard and domain errors (401/403/404/409/422/429) are not documented at all; and bodiless
    204s are described as JSON ``null``. Applied once to the generated schema."""
    from litestar.openapi.spec import Components, OpenAPIMediaType, OpenAPIResponse, Reference

    openapi.components = openapi.components or Components()
    schemas = openapi.components.schemas = dict(openapi.components.schemas or {})
    schemas[ERROR_SCHEMA_NAME] = _error_schema()
    ref = Reference(ref=f"#/components/schemas/{ERROR_SCHEMA_NAME}")
    for path, item in (openapi.paths or {}).items():
        if not path.startswith("/api/"):
            continue
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses = dict(operation.responses or {})
            for code in _error_codes(path, method, operation) | {c for c in responses if c >= "400"}:
                existing = responses.get(code)
                description = _ERROR_DESCRIPTIONS.get(code, "Error")
                if isinstance(existing, OpenAPIResponse) and existing.description and code not in {"400"}:
                    description = existing.description
                responses[code] = OpenAPIResponse(
                    description=description, content={MediaType.JSON: OpenAPIMediaType(schema=ref)}
                )
            for code, response in responses.items():
                if code == "204" and isinstance(response, OpenAPIResponse):
                    response.content = None
            operation.responses = dict(sorted(responses.items()))
    return openapi
