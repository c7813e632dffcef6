"""What the blocking and the asyncio client share: call description, retries, decoding."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from tessera_sdk.errors import error_from_response

T = TypeVar("T")
OutT = TypeVar("OutT", bound=msgspec.Struct)
InT = TypeVar("InT", bound=msgspec.Struct)
PatchT = TypeVar("PatchT", bound=msgspec.Struct)

RETRY_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
USER_AGENT = "tessera-sdk/0.1"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: ``items`` and the cursor of the next page (``None`` at the end)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for 429/503 and connection failures: ``backoff * 2**attempt`` seconds (with
    jitter), or the server's ``Retry-After``, never more than ``max_backoff``."""

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff)
            except ValueError:
                pass
        base = self.backoff * (2**attempt)
        return min(base * (0.5 + random.random() / 2), self.max_backoff)


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    model: Any = Any
    raw: bool = False

    @property
    def retry_safe(self) -> bool:
        return self.method in IDEMPOTENT_METHODS or "Idempotency-Key" in self.headers


def body(value: Any) -> Any:
    """Structs and mappings to JSON-ready builtins; UNSET fields are left out."""
    return msgspec.to_builtins(dict(value) if isinstance(value, Mapping) else value)


def params(filters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if value is None:
            continue
        out[key] = msgspec.to_builtins(value)
    return out


def decode(response: httpx.Response, call: Call) -> Any:
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise error_from_response(response.status_code, body, dict(response.headers))
    if call.raw:
        return response
    if response.status_code == 204 or not response.content:
        return None
    data = response.json()
    if call.model is Any:
        return data
    return msgspec.convert(data, call.model)


def version_header(version: int | None) -> dict[str, str]:
    return {"If-Match": f'"{version}"'} if version is not None else {}


class BaseClient:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float,
        retry: RetryPolicy | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        #: The user this client acts for, when a test fixture created it (``as_user``).
        self.user: dict[str, Any] | None = None

    def _should_retry(self, call: Call, attempt: int, status: int | None) -> bool:
        if attempt >= self.retry.max_retries:
            return False
        if status is None:  # transport failure
            return call.retry_safe
        return status in RETRY_STATUSES

    @staticmethod
    def _kwargs(call: Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": call.params, "headers": call.headers}
        if call.files is not None:
            kwargs["files"] = call.files
            kwargs["data"] = call.data
        elif call.json is not None:
            kwargs["json"] = call.json
        return kwargs


# The generated blocking client calls ``sync_sleep`` where the asyncio source awaits
# ``async_sleep`` (unasync renames the token).
async_sleep = asyncio.sleep
sync_sleep = time.sleep
