"""Routes of outbound webhooks (``tessera.webhooks``), for admins (``webhook.manage``):
subscriptions, their delivery log and a test ping. The secret is returned once, by the POST
that creates the subscription; every write is audited and emitted as a ``webhook.*`` event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post
from litestar.params import Parameter
from msgspec import UNSET, Meta, Struct, UnsetType

from tessera import audit, clock, events, webhooks
from tessera.api.crud import IdemKey, idempotent_create
from tessera.api.security import settings_of
from tessera.entities.dto import MAX_ID, set_fields, to_struct
from tessera.entities.tables import WebhookDelivery, WebhookSubscription
from tessera.errors import NotFound, ValidationFailed
from tessera.permissions import Principal

WebhookId = Annotated[int, Parameter(ge=1, le=MAX_ID)]
Url = Annotated[str, Meta(min_length=1, max_length=2000)]
EventType = Annotated[
    str, Meta(min_length=1, max_length=100, pattern=r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")
]
EventTypes = Annotated[list[EventType], Meta(min_length=1, max_length=100)]
Description = Annotated[str, Meta(max_length=2000)]


class WebhookIn(Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url
    #: ``party.created``, ``party.*`` or ``*``.
    event_types: EventTypes
    description: Description = ""
    active: bool = True


class WebhookPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class WebhookOut(Struct, kw_only=True):
    id: int
    url: str
    event_types: list[str]
    description: str
    active: bool
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut, kw_only=True):
    #: The signing secret: shown here once, never again.
    secret: str


class DeliveryOut(Struct, kw_only=True):
    id: int
    subscription_id: int
    event_id: int
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str
    job_id: int | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None


class PingOut(Struct, kw_only=True):
    event_id: int


_PUBLIC = [c for c in WebhookSubscription._meta.columns if c._meta.name != "secret"]


async def _get(webhook_id: int) -> dict[str, Any]:
    row = (
        await WebhookSubscription.select(*_PUBLIC)
        .where(WebhookSubscription.id == webhook_id)
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return row  # type: ignore[no-any-return]


async def _check_url(request: Request[Any, Any, Any], url: str) -> str:
    try:
        target = await webhooks.resolve(url, webhooks.allowed_networks(settings_of(request)))
    except webhooks.RefusedTarget as exc:
        raise ValidationFailed.field("url", str(exc)) from None
    return target.url


@get("/api/webhooks", operation_id="list_webhooks", tags=["webhooks"])
async def list_webhooks(principal: Principal) -> list[WebhookOut]:
    """Outbound webhook subscriptions (``webhook.manage``); secrets are never listed."""
    principal.require("webhook.manage")
    rows = await WebhookSubscription.select(*_PUBLIC).order_by(WebhookSubscription.id).output(load_json=True)
    return [to_struct(r, WebhookOut) for r in rows]


@post("/api/webhooks", operation_id="create_webhook", tags=["webhooks"])
async def create_webhook(
    request: Request[Any, Any, Any], principal: Principal, data: WebhookIn, idempotency_key: IdemKey = None
) -> Response[WebhookCreated]:
    """Subscribe a URL to event types. The URL must be http(s) and resolve to public addresses
    only (or to a network in ``webhook_allowed_networks``): otherwise 422 naming ``url``. The
    response carries the signing ``secret``, shown this once (and to a retry with the same
    ``Idempotency-Key``, which creates no second subscription)."""
    principal.require("webhook.manage")
    url = await _check_url(request, data.url)
    return await idempotent_create(
        idempotency_key, principal.user_id, request.url.path, lambda: _create_webhook(principal, data, url)
    )


async def _create_webhook(principal: Principal, data: WebhookIn, url: str) -> WebhookCreated:
    now = clock.now()
    secret = webhooks.new_secret()
    fields = {
        "url": url,
        "event_types": data.event_types,
        "description": data.description,
        "active": data.active,
    }
    async with events.unit_of_work():
        rows = await WebhookSubscription.insert(
            WebhookSubscription(
                **fields, secret=secret, created_by=principal.user_id, created_at=now, updated_at=now
            )
        ).returning(WebhookSubscription.id)
        webhook_id = rows[0]["id"]
        await events.emit(
            "webhook.created",
            "webhook",
            webhook_id,
            {"id": webhook_id, "url": url},
            also=[audit.entry("create", "webhook", webhook_id, audit.diff(None, fields))],
        )
    webhooks.forget_subscriptions()
    row = await _get(webhook_id)
    return to_struct({**row, "secret": secret}, WebhookCreated)


@get("/api/webhooks/{webhook_id:int}", operation_id="get_webhook", tags=["webhooks"])
async def get_webhook(principal: Principal, webhook_id: WebhookId) -> WebhookOut:
    """One subscription (without its secret)."""
    principal.require("webhook.manage")
    return to_struct(await _get(webhook_id), WebhookOut)


@patch("/api/webhooks/{webhook_id:int}", operation_id="update_webhook", tags=["webhooks"])
async def update_webhook(
    request: Request[Any, Any, Any], principal: Principal, webhook_id: WebhookId, data: WebhookPatch
) -> WebhookOut:
    """Change the URL (checked again), event types, description or switch it on and off."""
    principal.require("webhook.manage")
    changes = set_fields(data)
    if "url" in changes:
        changes["url"] = await _check_url(request, changes["url"])
    async with events.unit_of_work():
        old = await _get(webhook_id)
        if changes:
            await WebhookSubscription.update(
                {
                    **{getattr(WebhookSubscription, k): v for k, v in changes.items()},
                    WebhookSubscription.updated_at: clock.now(),
                }
            ).where(WebhookSubscription.id == webhook_id)
            diff = audit.diff({k: old[k] for k in changes}, changes)
            await events.emit(
                "webhook.updated",
                "webhook",
                webhook_id,
                {"id": webhook_id, "changes": sorted(diff)},
                also=[audit.entry("update", "webhook", webhook_id, diff)],
            )
    webhooks.forget_subscriptions()
    return to_struct(await _get(webhook_id), WebhookOut)


@delete("/api/webhooks/{webhook_id:int}", operation_id="delete_webhook", tags=["webhooks"], status_code=204)
async def delete_webhook(principal: Principal, webhook_id: WebhookId) -> None:
    """Delete a subscription; deliveries still queued for it fail (its log stays)."""
    principal.require("webhook.manage")
    async with events.unit_of_work():
        old = await _get(webhook_id)
        await WebhookSubscription.delete().where(WebhookSubscription.id == webhook_id)
        await events.emit(
            "webhook.deleted",
            "webhook",
            webhook_id,
            {"id": webhook_id},
            also=[audit.entry("delete", "webhook", webhook_id, audit.diff(old, None))],
        )
    webhooks.forget_subscriptions()


@get("/api/webhooks/{webhook_id:int}/deliveries", operation_id="list_webhook_deliveries", tags=["webhooks"])
async def list_webhook_deliveries(
    principal: Principal, webhook_id: WebhookId, limit: Annotated[int, Parameter(ge=1, le=500)] = 100
) -> list[DeliveryOut]:
    """The delivery log, newest first: per event its status, attempts, last answer and error."""
    principal.require("webhook.manage")
    await _get(webhook_id)
    rows = (
        await WebhookDelivery.select()
        .where(WebhookDelivery.subscription_id == webhook_id)
        .order_by(WebhookDelivery.id, ascending=False)
        .limit(limit)
    )
    return [to_struct(r, DeliveryOut) for r in rows]


@post("/api/webhooks/{webhook_id:int}/test", operation_id="test_webhook", tags=["webhooks"], status_code=202)
async def test_webhook(principal: Principal, webhook_id: WebhookId) -> PingOut:
    """Send a ``webhook.ping`` event to this subscription (through the delivery queue, like any
    event: its outcome shows in the delivery log)."""
    principal.require("webhook.manage")
    await _get(webhook_id)
    async with events.unit_of_work():
        await events.emit(webhooks.PING, "webhook", webhook_id, {"id": webhook_id})
    row = (
        await WebhookDelivery.select(WebhookDelivery.event_id)
        .where(WebhookDelivery.subscription_id == webhook_id, WebhookDelivery.event_type == webhooks.PING)
        .order_by(WebhookDelivery.id, ascending=False)
        .first()
    )
    return PingOut(event_id=row["event_id"] if row else 0)


HANDLERS = [
    list_webhooks,
    create_webhook,
    get_webhook,
    update_webhook,
    delete_webhook,
    list_webhook_deliveries,
    test_webhook,
]
