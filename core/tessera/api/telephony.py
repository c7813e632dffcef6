"""Routes of telephony (``tessera.telephony``): the cloud PBX webhook (shared secret), the
signed-in user's incoming-call stream (server-sent events), click-to-call and phone extensions.
docs/integrations.md, "Telephony"."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get, post, put
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from msgspec import Meta, Struct

from tessera import audit, events
from tessera.api.crud import MAX_IDEMPOTENCY_KEY, IdemKey, _claim_idempotency_key, _idempotent_replay
from tessera.api.security import settings_of
from tessera.entities import service
from tessera.entities.dto import MAX_ID
from tessera.entities.parties import PARTY
from tessera.entities.tables import CrmUser, IdempotencyRecord, TelephonyExtension
from tessera.errors import Conflict, FieldError, NotFound, ValidationFailed
from tessera.permissions import Principal
from tessera.telephony import ami, calls

#: Header carrying the webhook's shared secret.
SECRET_HEADER = "X-Tessera-Telephony-Secret"
#: Seconds between two looks for new pop-ups while a stream is open.
STREAM_POLL_SECONDS = 1.0

Extension = Annotated[str, Meta(max_length=50, pattern=r"^[0-9*#]{0,50}$")]
Number = Annotated[str, Meta(min_length=1, max_length=100)]
CallIdText = Annotated[str, Meta(min_length=1, max_length=200)]
UserId = Annotated[int, Parameter(ge=1, le=MAX_ID)]


class CallEventIn(Struct, kw_only=True, forbid_unknown_fields=True):
    """One step of a call from a cloud PBX."""

    #: ``ringing`` (also to name the extension that rings), ``answered`` or ``ended``.
    event: Literal["ringing", "answered", "ended"]
    #: The PBX's id of the call: the same on every event of the call.
    call_id: CallIdText
    direction: Literal["in", "out"] = "in"
    #: The customer's number, in any formatting (``8 (495) 123-45-67``).
    number: Annotated[str, Meta(max_length=100)] = ""
    #: The user's extension that rings (in) or dials (out).
    extension: Extension = ""
    #: When it happened (default: now).
    at: datetime | None = None
    recording_url: Annotated[str, Meta(max_length=2000, pattern=r"^(https?://.*)?$")] = ""
    #: Seconds of talk, on ``ended``, when the PBX counts them (else from answer to end).
    duration: Annotated[int, Meta(ge=0, le=86400 * 7)] | None = None


class CallOut(Struct, kw_only=True):
    call_id: str
    direction: str
    status: str
    number: str
    number_e164: str
    extension: str
    user_id: int | None
    party_id: int | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    recording_url: str
    activity_id: int | None
    task_id: int | None


class DialIn(Struct, kw_only=True, forbid_unknown_fields=True):
    """Click-to-call: ring my extension, then dial ``number``."""

    number: Number
    #: The party called (its card's button); checked to be visible to you.
    party_id: Annotated[int, Meta(ge=1, le=MAX_ID)] | None = None


class DialOut(Struct, kw_only=True):
    extension: str
    number: str


class ExtensionIn(Struct, kw_only=True, forbid_unknown_fields=True):
    #: Digits (and ``*``, ``#``); empty removes it.
    extension: Extension


class ExtensionOut(Struct, kw_only=True):
    user_id: int
    extension: str


def _call_out(row: dict[str, Any]) -> CallOut:
    return CallOut(**{k: row[k] for k in CallOut.__struct_fields__})


@post(
    "/api/telephony/events",
    operation_id="telephony_event",
    tags=["telephony"],
    status_code=202,
    security=[{}],
)
async def telephony_event(request: Request[Any, Any, Any], data: CallEventIn) -> CallOut:
    """A cloud PBX reports a call step (the same processing as the Asterisk link): the header
    ``X-Tessera-Telephony-Secret`` must carry ``telephony.webhook_secret`` (401 otherwise; 404
    while none is configured). Repeating an event changes nothing."""
    settings = settings_of(request)
    secret = settings.telephony.webhook_secret
    if not secret:
        raise NotFound("the telephony webhook is not configured")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        from litestar.exceptions import NotAuthorizedException

        raise NotAuthorizedException(f"{SECRET_HEADER} is missing or wrong")
    event = calls.CallEvent(
        kind=data.event,
        call_id=data.call_id,
        direction=data.direction,
        number=data.number,
        extension=data.extension,
        at=data.at,
        recording_url=data.recording_url,
        source="webhook",
        talk_seconds=data.duration,
    )
    return _call_out(await calls.handle(event, settings))


async def _stream(user_id: int, last_id: int, wait: float) -> AsyncIterator[ServerSentEventMessage]:
    deadline = time.monotonic() + wait
    while True:
        for row in await calls.popups_after(user_id, last_id):
            last_id = row["id"]
            yield ServerSentEventMessage(data=json.dumps(row["payload"]), event="call", id=str(row["id"]))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(STREAM_POLL_SECONDS, remaining))


@get(
    "/api/telephony/stream",
    operation_id="telephony_stream",
    tags=["telephony"],
    media_type="text/event-stream",
)
async def telephony_stream(
    request: Request[Any, Any, Any],
    principal: Principal,
    wait: Annotated[float, Parameter(ge=0, le=300)] = 55.0,
) -> ServerSentEvent:
    """Server-sent events of incoming calls to the signed-in user's extension: an event
    ``call`` per ring with the caller (the party when the user may see it, else the number),
    its open tasks and what plugins add (``tessera_caller_facts``). The stream ends after
    ``wait`` seconds (browsers reconnect by themselves and resume after ``Last-Event-ID``);
    ``wait=0`` returns what is waiting at once."""
    header = request.headers.get("Last-Event-ID", "")
    if header.isdigit():
        last_id = int(header)
    elif wait == 0:
        last_id = 0  # a one-off look: every pop-up of the last minutes
    else:
        last_id = await calls.last_popup_id(principal.user_id)  # a page opened now: new rings
    return ServerSentEvent(_stream(principal.user_id, last_id, wait), retry_duration=2000)


@post("/api/telephony/calls", operation_id="telephony_dial", tags=["telephony"], status_code=202)
async def telephony_dial(
    request: Request[Any, Any, Any], principal: Principal, data: DialIn, idempotency_key: IdemKey = None
) -> DialOut:
    """Click-to-call: the PBX rings your extension, then dials ``number`` (AMI ``Originate``).
    422 naming ``extension`` when you have none, ``number`` when it is not a phone number;
    404 for a party you may not see; 502 when the PBX refuses or cannot be reached. With an
    ``Idempotency-Key`` a retried request answers as the first did and calls once."""
    principal.require("activity.write")
    settings = settings_of(request)
    extension = await calls.extension_of(principal.user_id)
    if not extension:
        raise ValidationFailed.field("extension", "you have no phone extension: set it in your profile")
    number = calls.e164(data.number, settings.telephony.region)
    if not number:
        raise ValidationFailed.field("number", "is not a phone number")
    if data.party_id is not None:
        await service.get(PARTY, principal, data.party_id)  # 404 unless visible
    claim = None
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValidationFailed.field("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        path = request.url.path
        replay = await _idempotent_replay(idempotency_key, principal.user_id, path)
        if replay is not None:
            return replay  # type: ignore[return-value]
        async with events.unit_of_work():
            claim = await _claim_idempotency_key(idempotency_key, principal.user_id, path)
        if claim is None:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress; retry it shortly",
                [FieldError("Idempotency-Key", "is in use by a request still in progress")],
            )
    try:
        await ami.originate(settings.telephony, extension, number)
    except (ami.AmiError, ConnectionError, OSError) as exc:
        from litestar.exceptions import HTTPException

        if claim is not None:  # nothing happened: the key may be used again
            await IdempotencyRecord.delete().where(IdempotencyRecord.id == claim)
        raise HTTPException(status_code=502, detail=str(exc)) from None
    answer = DialOut(extension=extension, number=number)
    if claim is not None:
        await IdempotencyRecord.update(
            {IdempotencyRecord.status_code: 202, IdempotencyRecord.body: msgspec.json.encode(answer).decode()}
        ).where(IdempotencyRecord.id == claim)
    await audit.record(
        "dial",
        "party" if data.party_id else "telephony",
        data.party_id,
        {"number": [None, number], "extension": [None, extension]},
    )
    return answer


async def _save_extension(principal: Principal, user_id: int, extension: str) -> ExtensionOut:
    if not await CrmUser.exists().where(CrmUser.id == user_id):
        raise NotFound(f"user {user_id} not found")
    if extension:
        taken = (
            await TelephonyExtension.select(TelephonyExtension.user_id)
            .where(TelephonyExtension.extension == extension)
            .first()
        )
        if taken and taken["user_id"] != user_id:
            raise ValidationFailed.field("extension", "is another user's extension")
    old = await calls.extension_of(user_id)
    async with events.unit_of_work():
        await calls.set_extension(user_id, extension)
        if old != extension:
            await events.emit(
                "user.extension_changed",
                "user",
                user_id,
                {"id": user_id},
                also=[audit.entry("update", "user", user_id, {"phone_extension": [old, extension]})],
            )
    return ExtensionOut(user_id=user_id, extension=extension)


@get("/api/telephony/me", operation_id="get_my_extension", tags=["telephony"])
async def get_my_extension(principal: Principal) -> ExtensionOut:
    """Your phone extension (empty: none)."""
    return ExtensionOut(user_id=principal.user_id, extension=await calls.extension_of(principal.user_id))


@put("/api/telephony/me", operation_id="set_my_extension", tags=["telephony"])
async def set_my_extension(principal: Principal, data: ExtensionIn) -> ExtensionOut:
    """Set your phone extension: calls to it pop up on your pages, click-to-call rings it."""
    return await _save_extension(principal, principal.user_id, data.extension)


@get("/api/telephony/extensions", operation_id="list_extensions", tags=["telephony"])
async def list_extensions(principal: Principal) -> list[ExtensionOut]:
    """Every user's extension (``user.manage``)."""
    principal.require("user.manage")
    rows = await TelephonyExtension.select().order_by(TelephonyExtension.extension)
    return [ExtensionOut(user_id=r["user_id"], extension=r["extension"]) for r in rows]


@put("/api/telephony/extensions/{user_id:int}", operation_id="set_extension", tags=["telephony"])
async def set_extension(principal: Principal, user_id: UserId, data: ExtensionIn) -> ExtensionOut:
    """Set a user's extension (``user.manage``)."""
    principal.require("user.manage")
    return await _save_extension(principal, user_id, data.extension)


HANDLERS = [
    telephony_event,
    telephony_stream,
    telephony_dial,
    get_my_extension,
    set_my_extension,
    list_extensions,
    set_extension,
]
