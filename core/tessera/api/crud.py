"""Builds the standard REST routes of an entity from its ``EntitySpec``:

``GET /things`` (filters, keyset pagination), ``GET /things/count``, ``GET /things/{id}``
(with ETag), ``POST /things`` (Idempotency-Key), ``PATCH /things/{id}`` (If-Match or
``version`` for optimistic locking), ``DELETE /things/{id}``.

This module deliberately does not use ``from __future__ import annotations``: the handlers are
built in closures and Litestar reads their annotations as real objects.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post
from litestar.di import Provide
from litestar.params import HeaderParameter, Parameter

from tessera import clock, customfields, events
from tessera.entities import service
from tessera.entities.dto import set_fields, to_struct
from tessera.entities.tables import IdempotencyRecord
from tessera.errors import Conflict, FieldError, PreconditionFailed, PreconditionRequired, ValidationFailed
from tessera.permissions import Principal

#: Length of ``idempotency_record.key``.
MAX_IDEMPOTENCY_KEY = 200

Decorate = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]

Limit = Annotated[int, Parameter(ge=1, le=500, description="Page size (1-500)")]
CursorParam = Annotated[str | None, Parameter(description="Cursor from the previous page's next_cursor")]
IfMatch = Annotated[
    str | None, HeaderParameter(name="If-Match", description="Version the change is based on")
]
IdemKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", description="Retry-safe create: same key, same result"),
]


def page_struct(out: type[msgspec.Struct]) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        f"{out.__name__}Page",
        [("items", list[out]), ("next_cursor", str | None)],  # type: ignore[valid-type]
        module=out.__module__,
    )


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    try:
        return int(text)
    except ValueError as exc:
        raise ValidationFailed.field("If-Match", 'must be the record version, e.g. "3"') from exc


def _precondition_failed(exc: Conflict) -> PreconditionFailed | Conflict:
    """A stale ``If-Match`` is an HTTP precondition that failed (RFC 9110: 412), with the
    current version in the body; other conflicts (a stale ``version`` in the body, a duplicate,
    a state that forbids the change) stay 409."""
    if "current_version" not in exc.extra:
        return exc
    return PreconditionFailed(
        exc.detail, [FieldError("If-Match", "does not match the current version")], **exc.extra
    )


def require_precondition(
    request: Request[Any, Any, Any], spec: service.EntitySpec, if_match: str | None, body_version: Any
) -> None:
    """With the ``require_preconditions`` setting, a change or delete of a versioned record
    must say which version it is based on (``If-Match``, or ``version`` in a PATCH body),
    else 428 Precondition Required (RFC 6585): no blind overwrite of someone else's change."""
    settings = request.app.state.settings
    if not getattr(settings, "require_preconditions", False) or if_match is not None:
        return
    if body_version is not None or not any(c._meta.name == "version" for c in spec.table._meta.columns):
        return
    raise PreconditionRequired(
        f"this server requires a precondition on writes: send If-Match with the {spec.name}'s "
        "version (its ETag)",
        [FieldError("If-Match", "is required")],
    )


async def _decorated(rows: list[dict[str, Any]], decorate: Decorate | None) -> list[dict[str, Any]]:
    return await decorate(rows) if decorate else rows


async def _idempotent_replay(key: str, user_id: int, path: str) -> Response[Any] | None:
    row = (
        await IdempotencyRecord.select()
        .where(
            IdempotencyRecord.key == key, IdempotencyRecord.user_id == user_id, IdempotencyRecord.path == path
        )
        .first()
    )
    if row is None or not row["status_code"]:
        return None
    return Response(
        json.loads(row["body"]), status_code=row["status_code"], headers={"Idempotent-Replay": "true"}
    )


async def _claim_idempotency_key(key: str, user_id: int, path: str) -> int | None:
    """Insert the key's row in the current transaction, before the create; None when another
    request holds it. The unique index on (user_id, path, key) makes this the arbiter: on
    PostgreSQL a concurrent request with the same key waits here until the first one commits
    (then finds its row) or rolls back (then claims the key itself); on SQLite write
    transactions are serialised, so the second one sees the first's committed row."""
    rows = (
        await IdempotencyRecord.insert(
            IdempotencyRecord(
                key=key, user_id=user_id, path=path, status_code=0, body="", created_at=clock.now()
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(IdempotencyRecord.id)
    )
    return rows[0]["id"] if rows else None


async def idempotent_create(
    key: str | None,
    user_id: int,
    path: str,
    make: Callable[[], Awaitable[Any]],
    status_code: int = 201,
) -> Response[Any]:
    """Run ``make`` (a create that returns the response body) once per ``Idempotency-Key``: a
    retry with the same key from the same user on the same path answers the stored first
    result with ``Idempotent-Replay: true``. For create routes outside ``entity_router`` (webhook
    subscriptions, attachments); the key's row is claimed in the create's transaction."""
    if key is None:
        return Response(await make(), status_code=status_code)
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed.field("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")
    replay = await _idempotent_replay(key, user_id, path)
    if replay is not None:
        return replay
    async with events.unit_of_work():
        claim = await _claim_idempotency_key(key, user_id, path)
        if claim is None:
            replay = await _idempotent_replay(key, user_id, path)
            if replay is not None:
                return replay
            raise Conflict(
                "a request with this Idempotency-Key is still in progress; retry it shortly",
                [FieldError("Idempotency-Key", "is in use by a request still in progress")],
            )
        body = await make()
        await IdempotencyRecord.update(
            {
                IdempotencyRecord.status_code: status_code,
                IdempotencyRecord.body: msgspec.json.encode(body).decode(),
            }
        ).where(IdempotencyRecord.id == claim)
    return Response(body, status_code=status_code)


def entity_router(
    *,
    spec: service.EntitySpec,
    path: str,
    tag: str,
    out: type[msgspec.Struct],
    create_body: type[msgspec.Struct] | None,
    patch_body: type[msgspec.Struct] | None,
    filters: Callable[..., Any],
    decorate: Decorate | None = None,
    extra_handlers: list[Any] | None = None,
    name: str | None = None,
) -> Router:
    """The REST routes of one entity as a Router mounted at ``path``."""
    label = name or spec.name
    page = page_struct(out)

    async def shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows as the API shows them: read-only custom fields filled in by the plugins
        that keep them, then the entity's own decoration."""
        if spec.custom_fields:
            rows = await customfields.with_plugin_values(service.plugin_manager(), spec.name, rows)
        return await _decorated(rows, decorate)

    async def to_out(row: dict[str, Any]) -> Any:
        return to_struct((await shown([row]))[0], out)

    orders = [v for f in spec.order_fields for v in (f, f"-{f}")]

    # ``opt["entity_spec"]`` lets tests find every list and the table behind it.
    @get("/", operation_id=f"list_{label}", summary=f"List {label} records", opt={"entity_spec": spec})
    async def list_records(
        principal: Principal,
        conditions: list[Any],
        limit: Limit = 50,
        cursor: CursorParam = None,
        order: Annotated[
            str | None,
            Parameter(
                description=f"One of {', '.join(spec.order_fields)}; -x descending",
                schema_extra={"enum": orders},
            ),
        ] = None,
    ) -> page:  # type: ignore[valid-type]
        result = await service.list_page(spec, principal, conditions, order=order, cursor=cursor, limit=limit)
        items = await shown(result.items)
        return page(items=[to_struct(r, out) for r in items], next_cursor=result.next_cursor)

    list_records.fn.__doc__ = f"List the {label} records you may see, with filters and keyset pagination."

    @get("/count", operation_id=f"count_{label}", summary=f"Count {label} records")
    async def count_records(principal: Principal, conditions: list[Any]) -> dict[str, int]:
        """Count the records you may see that match the filters."""
        return {"count": await service.count(spec, principal, conditions)}

    @get("/{record_id:int}", operation_id=f"get_{label}", summary=f"Get one {label}")
    async def get_record(principal: Principal, record_id: int) -> Response[out]:  # type: ignore[valid-type]
        """One record; 404 when it does not exist or you may not see it. ETag is its version."""
        row = await service.get(spec, principal, record_id)
        headers = {"ETag": f'"{row["version"]}"'} if "version" in row else {}
        return Response(await to_out(row), headers=headers)

    handlers: list[Any] = [list_records, count_records, get_record]

    if create_body is not None:

        @post("/", operation_id=f"create_{label}", summary=f"Create a {label}")
        async def create_record(
            request: Request[Any, Any, Any],
            principal: Principal,
            data: create_body,  # type: ignore[valid-type]
            idempotency_key: IdemKey = None,
        ) -> Response[out]:  # type: ignore[valid-type]
            """Create a record. With an Idempotency-Key header a retry returns the first result."""
            if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                # Checked up front: a longer key would only fail when stored, after the create.
                raise ValidationFailed.field("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")
            path = request.url.path
            if idempotency_key:
                replay = await _idempotent_replay(idempotency_key, principal.user_id, path)
                if replay is not None:
                    return replay
            async with events.unit_of_work():
                claim = None
                if idempotency_key:
                    claim = await _claim_idempotency_key(idempotency_key, principal.user_id, path)
                    if claim is None:
                        # A concurrent request with this key committed first: answer as it did.
                        replay = await _idempotent_replay(idempotency_key, principal.user_id, path)
                        if replay is not None:
                            return replay
                        raise Conflict(
                            "a request with this Idempotency-Key is still in progress; retry it shortly",
                            [FieldError("Idempotency-Key", "is in use by a request still in progress")],
                        )
                row = await service.create(spec, principal, set_fields(data))
                if claim is not None:
                    body = await to_out(row)
                    # Same transaction as the record: the stored answer exists exactly when it does.
                    await IdempotencyRecord.update(
                        {
                            IdempotencyRecord.status_code: 201,
                            IdempotencyRecord.body: msgspec.json.encode(body).decode(),
                        }
                    ).where(IdempotencyRecord.id == claim)
            # Without a key the answer is built after the commit: the write lock (SQLite) and
            # the transaction are held no longer than the writes need.
            return Response(body if claim is not None else await to_out(row), status_code=201)

        handlers.append(create_record)

    if patch_body is not None:

        @patch("/{record_id:int}", operation_id=f"update_{label}", summary=f"Change a {label}")
        async def update_record(
            request: Request[Any, Any, Any],
            principal: Principal,
            record_id: int,
            data: patch_body,  # type: ignore[valid-type]
            if_match: IfMatch = None,
        ) -> out:  # type: ignore[valid-type]
            """Change the fields you send. Send the version you read (If-Match header, or the
            ``version`` field) and a concurrent change makes this fail instead of being
            overwritten: 412 for a stale If-Match, 409 for a stale ``version`` (both with
            ``current_version``). With ``require_preconditions`` set, a change without either is
            428."""
            values = set_fields(data)
            expected = values.pop("version", None)
            require_precondition(request, spec, if_match, expected)
            header_version = parse_if_match(if_match)
            if header_version is not None:
                expected = header_version
            try:
                row = await service.update(spec, principal, record_id, values, expected)
            except Conflict as exc:
                raise (_precondition_failed(exc) if header_version is not None else exc) from None
            return await to_out(row)

        handlers.append(update_record)

    @delete("/{record_id:int}", operation_id=f"delete_{label}", summary=f"Delete a {label}", status_code=204)
    async def delete_record(
        request: Request[Any, Any, Any], principal: Principal, record_id: int, if_match: IfMatch = None
    ) -> None:
        """Delete the record (the audit log keeps its last values). A stale If-Match is 412
        (with ``current_version``); with ``require_preconditions`` set, no If-Match is 428."""
        require_precondition(request, spec, if_match, None)
        header_version = parse_if_match(if_match)
        try:
            await service.delete(spec, principal, record_id, header_version)
        except Conflict as exc:
            raise (_precondition_failed(exc) if header_version is not None else exc) from None

    handlers.append(delete_record)
    handlers.extend(extra_handlers or [])
    return Router(
        path=path,
        route_handlers=handlers,
        tags=[tag],
        dependencies={"conditions": Provide(filters, sync_to_thread=False)},
    )
