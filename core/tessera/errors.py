"""Domain errors raised by services; the API maps each to its HTTP status and the JSON body
``{"status": 422, "detail": "...", "errors": [{"field": "email", "message": "..."}]}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class DomainError(Exception):
    status = 400

    def __init__(self, detail: str, errors: list[FieldError] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra


class ValidationFailed(DomainError):
    """Input is well-formed JSON but breaks a rule (422)."""

    status = 422

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls(f"{field}: {message}", [FieldError(field, message)])


class NotFound(DomainError):
    status = 404


class PermissionDenied(DomainError):
    status = 403


class NotAuthenticated(DomainError):
    status = 401


class Conflict(DomainError):
    """The change clashes with the record's state: stale version, duplicate, missing step (409)."""

    status = 409


class PreconditionFailed(DomainError):
    """A stale ``If-Match``: the record changed since the client read it (412, RFC 9110); the
    body carries ``current_version``."""

    status = 412


class PreconditionRequired(DomainError):
    """The server requires a precondition (``If-Match``) on this write and none was sent (428,
    RFC 6585)."""

    status = 428


class TooManyRequests(DomainError):
    status = 429
