"""Typed HTTP client for the Tessera API: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

    from tessera_sdk import Client, models

    with Client("https://crm.example.com", token="tsr_...") as crm:
        acme = crm.parties.create(models.PartyIn(name="Acme", relations=["client"]))
        for party in crm.parties.list(status="current"):      # follows every page
            print(party.id, party.name)
        crm.parties.update(acme.id, {"website": "https://acme.example"}, version=acme.version)

* Results are ``tessera_sdk.models`` structs generated from the server's OpenAPI schema.
* Lists are iterated across pages (keyset cursors); ``.page()`` gives one page.
* 429 and 503 answers (and connection failures) are retried with exponential back-off,
  honouring ``Retry-After``; creates carry an ``Idempotency-Key`` so a retried create never
  makes a second record.
* Error answers raise ``tessera_sdk.errors`` exceptions with the field errors attached.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from tessera_sdk import models as m
from tessera_sdk.errors import TesseraError, TransportError, error_from_response

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
class _Call:
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


def _body(value: Any) -> Any:
    """Structs and mappings to JSON-ready builtins; UNSET fields are left out."""
    return msgspec.to_builtins(dict(value) if isinstance(value, Mapping) else value)


def _params(filters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if value is None:
            continue
        out[key] = msgspec.to_builtins(value)
    return out


def _decode(response: httpx.Response, call: _Call) -> Any:
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


def _version_header(version: int | None) -> dict[str, str]:
    return {"If-Match": f'"{version}"'} if version is not None else {}


class _Base:
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

    def _should_retry(self, call: _Call, attempt: int, status: int | None) -> bool:
        if attempt >= self.retry.max_retries:
            return False
        if status is None:  # transport failure
            return call.retry_safe
        return status in RETRY_STATUSES

    @staticmethod
    def _kwargs(call: _Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": call.params, "headers": call.headers}
        if call.files is not None:
            kwargs["files"] = call.files
            kwargs["data"] = call.data
        elif call.json is not None:
            kwargs["json"] = call.json
        return kwargs


# =========================================================================== blocking client


class Client(_Base):
    """Blocking client. ``Client(base_url, token)``; use as a context manager or ``close()``."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, retry, headers)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )
        self.parties = Parties(self, "/api/parties", m.PartyOut, m.PartyOutPage)
        self.contacts = Entity[m.ContactOut, m.ContactIn, m.ContactPatch](
            self, "/api/contacts", m.ContactOut, m.ContactOutPage
        )
        self.activities = Entity[m.ActivityOut, m.ActivityIn, m.ActivityPatch](
            self, "/api/activities", m.ActivityOut, m.ActivityOutPage
        )
        self.tasks = Tasks(self, "/api/tasks", m.TaskOut, m.TaskOutPage)
        self.notes = Entity[m.NoteOut, m.NoteIn, m.NotePatch](self, "/api/notes", m.NoteOut, m.NoteOutPage)
        self.attachments = Attachments(self, "/api/attachments", m.AttachmentOut, m.AttachmentOutPage)
        self.users = Entity[m.UserOut, m.UserIn, m.UserPatch](self, "/api/users", m.UserOut, m.UserOutPage)
        self.teams = Entity[m.TeamOut, m.TeamIn, m.TeamPatch](self, "/api/teams", m.TeamOut, m.TeamOutPage)
        self.roles = Entity[m.RoleOut, m.RoleIn, m.RolePatch](self, "/api/roles", m.RoleOut, m.RoleOutPage)
        self.substitutions = Entity[m.SubstitutionOut, m.SubstitutionIn, m.SubstitutionPatch](
            self, "/api/substitutions", m.SubstitutionOut, m.SubstitutionOutPage
        )

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _execute(self, call: _Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, **self._kwargs(call))
            except httpx.TransportError as exc:
                if not self._should_retry(call, attempt, None):
                    raise TransportError(0, f"{call.method} {call.path}: {exc!r}") from exc
                time.sleep(self.retry.delay(attempt, None))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and self._should_retry(
                call, attempt, response.status_code
            ):
                time.sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            return _decode(response, call)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        model: Any = Any,
    ) -> Any:
        """Any endpoint (plugin routes included); the JSON answer converted to ``model``."""
        call = _Call(
            method.upper(),
            path,
            _params(params or {}),
            None if json is None else _body(json),
            dict(headers or {}),
            model=model,
        )
        return self._execute(call)

    def get(self, path: str, *, model: Any = Any, **params: Any) -> Any:
        return self.request("GET", path, params=params, model=model)

    def post(
        self, path: str, json: Any = None, *, model: Any = Any, idempotency_key: str | None = None
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", path, json=json, headers=headers, model=model)

    def iterate(self, path: str, model: Any = Any, *, limit: int = 100, **filters: Any) -> Iterator[Any]:
        """Items of any paginated list endpoint (``{"items", "next_cursor"}``), page after page."""
        cursor: str | None = None
        while True:
            page = self.request("GET", path, params={**filters, "limit": limit, "cursor": cursor})
            for item in page["items"]:
                yield item if model is Any else msgspec.convert(item, model)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # ------------------------------------------------------------------ kernel endpoints

    def health(self) -> dict[str, str]:
        return self._execute(_Call("GET", "/api/health"))  # type: ignore[no-any-return]

    def me(self) -> m.MeOut:
        return self._execute(_Call("GET", "/api/auth/me", model=m.MeOut))  # type: ignore[no-any-return]

    def create_token(self, name: str, scopes: list[str] | None = None) -> m.TokenCreated:
        body = _body(m.TokenIn(name=name, scopes=scopes or []))
        return self._execute(_Call("POST", "/api/auth/tokens", json=body, model=m.TokenCreated))  # type: ignore[no-any-return]

    def tokens(self) -> list[m.TokenOut]:
        return self._execute(_Call("GET", "/api/auth/tokens", model=list[m.TokenOut]))  # type: ignore[no-any-return]

    def revoke_token(self, token_id: int) -> None:
        self._execute(_Call("DELETE", f"/api/auth/tokens/{token_id}"))

    def permissions(self) -> dict[str, str]:
        return self._execute(_Call("GET", "/api/permissions", model=dict[str, str]))  # type: ignore[no-any-return]

    def plugins(self) -> list[dict[str, Any]]:
        return self._execute(_Call("GET", "/api/plugins"))  # type: ignore[no-any-return]

    def jobs(self) -> list[m.JobOut]:
        return self._execute(_Call("GET", "/api/jobs", model=list[m.JobOut]))  # type: ignore[no-any-return]

    def set_job_enabled(self, name: str, enabled: bool) -> m.JobOut:
        call = _Call("PUT", f"/api/jobs/{name}", json={"enabled": enabled}, model=m.JobOut)
        return self._execute(call)  # type: ignore[no-any-return]

    def job_runs(self, job_name: str | None = None, limit: int = 100) -> list[m.JobRunOut]:
        params = _params({"job_name": job_name, "limit": limit})
        return self._execute(_Call("GET", "/api/jobs/runs", params, model=list[m.JobRunOut]))  # type: ignore[no-any-return]

    def audit(self, **filters: Any) -> list[m.AuditOut]:
        return self._execute(_Call("GET", "/api/audit", _params(filters), model=list[m.AuditOut]))  # type: ignore[no-any-return]

    def notifications(self, unread: bool = False) -> list[m.NotificationOut]:
        call = _Call("GET", "/api/notifications", {"unread": unread}, model=list[m.NotificationOut])
        return self._execute(call)  # type: ignore[no-any-return]

    def custom_fields(self, entity_type: str) -> dict[str, Any]:
        return self._execute(_Call("GET", f"/api/custom-fields/{entity_type}"))  # type: ignore[no-any-return]

    def set_custom_fields(
        self, entity_type: str, properties: dict[str, Any], required: list[str] | None = None
    ) -> dict[str, Any]:
        body = _body(m.CustomFieldsIn(properties=properties, required=required or []))
        return self._execute(_Call("PUT", f"/api/custom-fields/{entity_type}", json=body))  # type: ignore[no-any-return]


class Entity(Generic[OutT, InT, PatchT]):
    """The standard REST routes of one kernel entity."""

    def __init__(self, client: Client, path: str, out: type[OutT], page: type[msgspec.Struct]) -> None:
        self._client = client
        self.path = path
        self.out = out
        self._page = page

    def page(
        self, *, cursor: str | None = None, limit: int = 50, order: str | None = None, **filters: Any
    ) -> Page[OutT]:
        params = _params({**filters, "cursor": cursor, "limit": limit, "order": order})
        data = self._client._execute(_Call("GET", self.path, params))
        return Page([msgspec.convert(i, self.out) for i in data["items"]], data.get("next_cursor"))

    def list(self, *, page_size: int = 100, order: str | None = None, **filters: Any) -> Iterator[OutT]:
        """Every record you may see that matches the filters, fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.page(cursor=cursor, limit=page_size, order=order, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count(self, **filters: Any) -> int:
        return int(self._client._execute(_Call("GET", f"{self.path}/count", _params(filters)))["count"])

    def get(self, record_id: int) -> OutT:
        return self._client._execute(_Call("GET", f"{self.path}/{record_id}", model=self.out))  # type: ignore[no-any-return]

    def create(self, data: InT | Mapping[str, Any], *, idempotency_key: str | None = None) -> OutT:
        """Create a record. A fresh Idempotency-Key is sent unless you pass one (pass your own
        to make a create safe across process restarts)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        call = _Call("POST", self.path, json=_body(data), headers=headers, model=self.out)
        return self._client._execute(call)  # type: ignore[no-any-return]

    def update(
        self, record_id: int, changes: PatchT | Mapping[str, Any], *, version: int | None = None
    ) -> OutT:
        """Change the given fields. With ``version`` (the one you read) a concurrent change
        raises ``Conflict`` instead of being overwritten."""
        call = _Call(
            "PATCH",
            f"{self.path}/{record_id}",
            json=_body(changes),
            headers=_version_header(version),
            model=self.out,
        )
        return self._client._execute(call)  # type: ignore[no-any-return]

    def delete(self, record_id: int, *, version: int | None = None) -> None:
        self._client._execute(_Call("DELETE", f"{self.path}/{record_id}", headers=_version_header(version)))


class Parties(Entity[m.PartyOut, m.PartyIn, m.PartyPatch]):
    def card(self, party_id: int, order: str = "desc") -> m.ClientCard:
        """The client card: the party, its contacts and its whole history (plugins' items too)."""
        call = _Call("GET", f"{self.path}/{party_id}/card", {"order": order}, model=m.ClientCard)
        return self._client._execute(call)  # type: ignore[no-any-return]

    def participants(self, party_id: int) -> list[m.Participant]:
        call = _Call("GET", f"{self.path}/{party_id}/participants", model=list[m.Participant])
        return self._client._execute(call)  # type: ignore[no-any-return]

    def status_history(self, party_id: int) -> list[dict[str, Any]]:
        return self._client._execute(_Call("GET", f"{self.path}/{party_id}/status-history"))  # type: ignore[no-any-return]

    def export_csv(self, **filters: Any) -> str:
        response = self._client._execute(_Call("GET", f"{self.path}/export", _params(filters), raw=True))
        return str(response.text)


class Tasks(Entity[m.TaskOut, m.TaskIn, m.TaskPatch]):
    def handoff(self, task_id: int, to_user_id: int, comment: str = "") -> m.TaskOut:
        body = _body(m.HandoffIn(to_user_id=to_user_id, comment=comment))
        return self._client._execute(  # type: ignore[no-any-return]
            _Call("POST", f"{self.path}/{task_id}/handoff", json=body, model=m.TaskOut)
        )

    def complete(self, task_id: int, result: str = "", version: int | None = None) -> m.TaskOut:
        body = _body(m.CompleteIn(result=result, version=m.UNSET if version is None else version))
        return self._client._execute(  # type: ignore[no-any-return]
            _Call("POST", f"{self.path}/{task_id}/complete", json=body, model=m.TaskOut)
        )

    def handoffs(self, task_id: int) -> list[m.HandoffOut]:
        call = _Call("GET", f"{self.path}/{task_id}/handoffs", model=list[m.HandoffOut])
        return self._client._execute(call)  # type: ignore[no-any-return]


class Attachments(Entity[m.AttachmentOut, msgspec.Struct, msgspec.Struct]):
    def upload(
        self,
        filename: str,
        content: bytes,
        content_type: str = "application/octet-stream",
        party_id: int | None = None,
        subject_ref: str = "",
    ) -> m.AttachmentOut:
        data = {"party_id": "" if party_id is None else str(party_id), "subject_ref": subject_ref}
        call = _Call(
            "POST",
            f"{self.path}/upload",
            files={"file": (filename, content, content_type)},
            data=data,
            model=m.AttachmentOut,
        )
        return self._client._execute(call)  # type: ignore[no-any-return]

    def download(self, attachment_id: int) -> bytes:
        response = self._client._execute(_Call("GET", f"{self.path}/{attachment_id}/content", raw=True))
        return bytes(response.content)


# =========================================================================== asyncio client


class AsyncClient(_Base):
    """The asyncio twin of ``Client``: same resources, every call awaited, lists are
    ``async for``."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, retry, headers)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )
        self.parties = AsyncParties(self, "/api/parties", m.PartyOut, m.PartyOutPage)
        self.contacts = AsyncEntity[m.ContactOut, m.ContactIn, m.ContactPatch](
            self, "/api/contacts", m.ContactOut, m.ContactOutPage
        )
        self.activities = AsyncEntity[m.ActivityOut, m.ActivityIn, m.ActivityPatch](
            self, "/api/activities", m.ActivityOut, m.ActivityOutPage
        )
        self.tasks = AsyncTasks(self, "/api/tasks", m.TaskOut, m.TaskOutPage)
        self.notes = AsyncEntity[m.NoteOut, m.NoteIn, m.NotePatch](
            self, "/api/notes", m.NoteOut, m.NoteOutPage
        )
        self.attachments = AsyncEntity[m.AttachmentOut, msgspec.Struct, msgspec.Struct](
            self, "/api/attachments", m.AttachmentOut, m.AttachmentOutPage
        )
        self.users = AsyncEntity[m.UserOut, m.UserIn, m.UserPatch](
            self, "/api/users", m.UserOut, m.UserOutPage
        )
        self.teams = AsyncEntity[m.TeamOut, m.TeamIn, m.TeamPatch](
            self, "/api/teams", m.TeamOut, m.TeamOutPage
        )
        self.roles = AsyncEntity[m.RoleOut, m.RoleIn, m.RolePatch](
            self, "/api/roles", m.RoleOut, m.RoleOutPage
        )
        self.substitutions = AsyncEntity[m.SubstitutionOut, m.SubstitutionIn, m.SubstitutionPatch](
            self, "/api/substitutions", m.SubstitutionOut, m.SubstitutionOutPage
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _execute(self, call: _Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, **self._kwargs(call))
            except httpx.TransportError as exc:
                if not self._should_retry(call, attempt, None):
                    raise TransportError(0, f"{call.method} {call.path}: {exc!r}") from exc
                await asyncio.sleep(self.retry.delay(attempt, None))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and self._should_retry(
                call, attempt, response.status_code
            ):
                await asyncio.sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            return _decode(response, call)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        model: Any = Any,
    ) -> Any:
        """Any endpoint (plugin routes included); the JSON answer converted to ``model``."""
        call = _Call(
            method.upper(),
            path,
            _params(params or {}),
            None if json is None else _body(json),
            dict(headers or {}),
            model=model,
        )
        return await self._execute(call)

    async def get(self, path: str, *, model: Any = Any, **params: Any) -> Any:
        return await self.request("GET", path, params=params, model=model)

    async def post(
        self, path: str, json: Any = None, *, model: Any = Any, idempotency_key: str | None = None
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self.request("POST", path, json=json, headers=headers, model=model)

    async def iterate(
        self, path: str, model: Any = Any, *, limit: int = 100, **filters: Any
    ) -> AsyncIterator[Any]:
        cursor: str | None = None
        while True:
            page = await self.request("GET", path, params={**filters, "limit": limit, "cursor": cursor})
            for item in page["items"]:
                yield item if model is Any else msgspec.convert(item, model)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def health(self) -> dict[str, str]:
        return await self._execute(_Call("GET", "/api/health"))  # type: ignore[no-any-return]

    async def me(self) -> m.MeOut:
        return await self._execute(_Call("GET", "/api/auth/me", model=m.MeOut))  # type: ignore[no-any-return]

    async def create_token(self, name: str, scopes: list[str] | None = None) -> m.TokenCreated:
        body = _body(m.TokenIn(name=name, scopes=scopes or []))
        return await self._execute(_Call("POST", "/api/auth/tokens", json=body, model=m.TokenCreated))  # type: ignore[no-any-return]

    async def permissions(self) -> dict[str, str]:
        return await self._execute(_Call("GET", "/api/permissions", model=dict[str, str]))  # type: ignore[no-any-return]

    async def plugins(self) -> list[dict[str, Any]]:
        return await self._execute(_Call("GET", "/api/plugins"))  # type: ignore[no-any-return]

    async def jobs(self) -> list[m.JobOut]:
        return await self._execute(_Call("GET", "/api/jobs", model=list[m.JobOut]))  # type: ignore[no-any-return]

    async def audit(self, **filters: Any) -> list[m.AuditOut]:
        return await self._execute(_Call("GET", "/api/audit", _params(filters), model=list[m.AuditOut]))  # type: ignore[no-any-return]


class AsyncEntity(Generic[OutT, InT, PatchT]):
    """The standard REST routes of one kernel entity, awaited."""

    def __init__(self, client: AsyncClient, path: str, out: type[OutT], page: type[msgspec.Struct]) -> None:
        self._client = client
        self.path = path
        self.out = out
        self._page = page

    async def page(
        self, *, cursor: str | None = None, limit: int = 50, order: str | None = None, **filters: Any
    ) -> Page[OutT]:
        params = _params({**filters, "cursor": cursor, "limit": limit, "order": order})
        data = await self._client._execute(_Call("GET", self.path, params))
        return Page([msgspec.convert(i, self.out) for i in data["items"]], data.get("next_cursor"))

    async def list(
        self, *, page_size: int = 100, order: str | None = None, **filters: Any
    ) -> AsyncIterator[OutT]:
        cursor: str | None = None
        while True:
            page = await self.page(cursor=cursor, limit=page_size, order=order, **filters)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def count(self, **filters: Any) -> int:
        data = await self._client._execute(_Call("GET", f"{self.path}/count", _params(filters)))
        return int(data["count"])

    async def get(self, record_id: int) -> OutT:
        return await self._client._execute(_Call("GET", f"{self.path}/{record_id}", model=self.out))  # type: ignore[no-any-return]

    async def create(self, data: InT | Mapping[str, Any], *, idempotency_key: str | None = None) -> OutT:
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        call = _Call("POST", self.path, json=_body(data), headers=headers, model=self.out)
        return await self._client._execute(call)  # type: ignore[no-any-return]

    async def update(
        self, record_id: int, changes: PatchT | Mapping[str, Any], *, version: int | None = None
    ) -> OutT:
        call = _Call(
            "PATCH",
            f"{self.path}/{record_id}",
            json=_body(changes),
            headers=_version_header(version),
            model=self.out,
        )
        return await self._client._execute(call)  # type: ignore[no-any-return]

    async def delete(self, record_id: int, *, version: int | None = None) -> None:
        await self._client._execute(
            _Call("DELETE", f"{self.path}/{record_id}", headers=_version_header(version))
        )


class AsyncParties(AsyncEntity[m.PartyOut, m.PartyIn, m.PartyPatch]):
    async def card(self, party_id: int, order: str = "desc") -> m.ClientCard:
        call = _Call("GET", f"{self.path}/{party_id}/card", {"order": order}, model=m.ClientCard)
        return await self._client._execute(call)  # type: ignore[no-any-return]

    async def participants(self, party_id: int) -> list[m.Participant]:
        call = _Call("GET", f"{self.path}/{party_id}/participants", model=list[m.Participant])
        return await self._client._execute(call)  # type: ignore[no-any-return]


class AsyncTasks(AsyncEntity[m.TaskOut, m.TaskIn, m.TaskPatch]):
    async def handoff(self, task_id: int, to_user_id: int, comment: str = "") -> m.TaskOut:
        body = _body(m.HandoffIn(to_user_id=to_user_id, comment=comment))
        return await self._client._execute(  # type: ignore[no-any-return]
            _Call("POST", f"{self.path}/{task_id}/handoff", json=body, model=m.TaskOut)
        )

    async def complete(self, task_id: int, result: str = "", version: int | None = None) -> m.TaskOut:
        body = _body(m.CompleteIn(result=result, version=m.UNSET if version is None else version))
        return await self._client._execute(  # type: ignore[no-any-return]
            _Call("POST", f"{self.path}/{task_id}/complete", json=body, model=m.TaskOut)
        )


#: Resource attribute -> (path, output model, input model, patch model): what the client
#: covers; a test checks every entry against the OpenAPI schema.
ENTITY_RESOURCES: dict[
    str, tuple[str, type[msgspec.Struct], type[msgspec.Struct] | None, type[msgspec.Struct] | None]
] = {
    "parties": ("/api/parties", m.PartyOut, m.PartyIn, m.PartyPatch),
    "contacts": ("/api/contacts", m.ContactOut, m.ContactIn, m.ContactPatch),
    "activities": ("/api/activities", m.ActivityOut, m.ActivityIn, m.ActivityPatch),
    "tasks": ("/api/tasks", m.TaskOut, m.TaskIn, m.TaskPatch),
    "notes": ("/api/notes", m.NoteOut, m.NoteIn, m.NotePatch),
    "attachments": ("/api/attachments", m.AttachmentOut, None, None),
    "users": ("/api/users", m.UserOut, m.UserIn, m.UserPatch),
    "teams": ("/api/teams", m.TeamOut, m.TeamIn, m.TeamPatch),
    "roles": ("/api/roles", m.RoleOut, m.RoleIn, m.RolePatch),
    "substitutions": ("/api/substitutions", m.SubstitutionOut, m.SubstitutionIn, m.SubstitutionPatch),
}


__all__ = [
    "ENTITY_RESOURCES",
    "AsyncClient",
    "AsyncEntity",
    "Client",
    "Entity",
    "Page",
    "RetryPolicy",
    "TesseraError",
]
