"""Typed exceptions for API errors. Every error body of the server is
``{"status": 422, "detail": "...", "errors": [{"field": "email", "message": "..."}]}``; the
exception carries all three, so callers can show field errors next to their inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class TesseraError(Exception):
    """An error answer of the API (or a transport failure, with ``status`` 0)."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[FieldError] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])
        self.body: dict[str, Any] = body or {}
        self.headers: dict[str, str] = headers or {}

    @property
    def field_errors(self) -> dict[str, str]:
        """``{field: message}`` (the first message per field)."""
        out: dict[str, str] = {}
        for error in self.errors:
            out.setdefault(error.field, error.message)
        return out


class BadRequest(TesseraError):
    """400: the request could not be understood."""


class AuthenticationError(TesseraError):
    """401: no, a wrong, an expired or a revoked token."""


class PermissionDenied(TesseraError):
    """403: signed in, but not allowed."""


class NotFound(TesseraError):
    """404: the record does not exist or you may not see it."""


class Conflict(TesseraError):
    """409: a stale version (someone changed the record since you read it) or a duplicate."""

    @property
    def current_version(self) -> int | None:
        """The record's version now, when the answer names it (a stale version): reload it,
        apply your change again and send this version."""
        value = self.body.get("current_version")
        return value if isinstance(value, int) else None


class PreconditionFailed(Conflict):
    """412: the version you sent in ``If-Match`` (``version=`` of the SDK's ``update`` and
    ``delete``) is no longer current; ``current_version`` says which one is. A subclass of
    :class:`Conflict`, so code written for the 409 of a stale version keeps working."""


class PreconditionRequired(TesseraError):
    """428: the server requires a version on changes and deletes (``require_preconditions``):
    pass ``version=`` to ``update``/``delete``."""


class ValidationError(TesseraError):
    """422: the input breaks a rule; ``errors`` name the fields."""


class RateLimited(TesseraError):
    """429 after the client's retries ran out."""


class ServerError(TesseraError):
    """5xx after the client's retries ran out (503 is retried first)."""


class ServiceUnavailable(ServerError):
    """503 after the client's retries ran out."""


class TransportError(TesseraError):
    """The server could not be reached (connection refused, timeout) after retries."""


_BY_STATUS: dict[int, type[TesseraError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    428: PreconditionRequired,
    422: ValidationError,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_from_response(status: int, body: Any, headers: dict[str, str] | None = None) -> TesseraError:
    """Build the exception for an error response (``body`` is the decoded JSON, if any)."""
    data = body if isinstance(body, dict) else {}
    detail = str(data.get("detail") or (body if isinstance(body, str) and body else f"HTTP {status}"))
    errors = [
        FieldError(field=str(e.get("field", "")), message=str(e.get("message", "")))
        for e in data.get("errors") or []
        if isinstance(e, dict)
    ]
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else TesseraError)
    return cls(status, detail, errors, data, headers)


__all__ = [
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "FieldError",
    "NotFound",
    "PermissionDenied",
    "PreconditionFailed",
    "PreconditionRequired",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "TesseraError",
    "TransportError",
    "ValidationError",
    "error_from_response",
]
