"""Outbound webhooks (issue 16.5): committed domain events POSTed, signed, to subscribers.

* A subscription (table ``webhook_subscription``) names a URL, event types (``party.created``,
  ``party.*`` or ``*``) and a secret generated at creation (shown once).
* ``on_events`` is an events batch listener: for each committed event matching an active
  subscription it writes a delivery row and enqueues a ``webhook.deliver`` background job, both
  keyed ``"<subscription>:<event>"``. The events outbox redelivers an event whose listeners did
  not finish (crash after commit), and the keys make that enqueue idempotent: one delivery per
  pair, at least once.
* The job POSTs ``{"id", "type", "occurred_at", "data"}`` with ``Webhook-Id`` (the event id,
  for deduplication) and ``Tessera-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``;
  a non-2xx answer, a redirect or a network error fails the attempt and the job retries with
  back-off (``tessera.jobs``). Every attempt updates the delivery row (the delivery log).
* Targets resolving to loopback, private, link-local (cloud metadata), multicast, reserved or
  unspecified addresses are refused when saved and again at each delivery; the request goes to
  the address that was checked (pinned: a DNS answer changing in between cannot redirect it),
  redirects are not followed. ``Settings.webhook_allowed_networks`` lets an admin allow networks.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from piccolo.utils.encoding import dump_json

from tessera import clock, events, jobs
from tessera.cache import ReadCache
from tessera.config import Settings
from tessera.entities.tables import WebhookDelivery, WebhookSubscription

log = logging.getLogger("tessera.webhooks")

KIND = "webhook.deliver"
PING = "webhook.ping"
MAX_ATTEMPTS = 10
SIGNATURE_HEADER = "Tessera-Signature"
EVENT_ID_HEADER = "Webhook-Id"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "Tessera-Webhooks/1"

_settings: Settings | None = None

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def configure(settings: Settings | None) -> None:
    """The process's settings (the allowed networks, for deliveries the worker runs)."""
    global _settings
    _settings = settings


class RefusedTarget(ValueError):
    """The URL is not an http(s) URL, does not resolve, or reaches a forbidden address."""


# --------------------------------------------------------------------------- signing


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Tessera-Signature`` header value for ``body`` (the Stripe scheme)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


# --------------------------------------------------------------------------- target checks


def _networks(allowed: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in allowed]


def forbidden(ip: IPAddress) -> bool:
    """Whether ``ip`` is no public unicast address (loopback, private, link-local with the
    cloud metadata service, multicast, reserved, unspecified, shared; IPv4-mapped included)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    #: The checked addresses the request may go to.
    addresses: tuple[str, ...]


def parse_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL, or ``RefusedTarget``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise RefusedTarget(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedTarget("only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise RefusedTarget("the URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("credentials in the URL are not allowed (the signature authenticates)")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(url: str, allowed: Sequence[str] = ()) -> Target:
    """Resolve the URL's host (every address, the way the system resolver reads it: octal
    ``0177.0.0.1`` and decimal ``2130706433`` are 127.0.0.1) and refuse it if any address is
    forbidden and outside the ``allowed`` networks."""
    scheme, host, port = parse_url(url)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedTarget(f"the host {host!r} does not resolve ({exc})") from None
    nets = _networks(allowed)
    addresses: list[str] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone
        ip = ipaddress.ip_address(raw)
        if forbidden(ip) and not any(ip in net for net in nets):
            raise RefusedTarget(
                f"the host resolves to {ip}, a loopback, private, link-local or reserved address"
            )
        if raw not in addresses:
            addresses.append(raw)
    if not addresses:
        raise RefusedTarget(f"the host {host!r} does not resolve")
    return Target(url=url.strip(), scheme=scheme, host=host, port=port, addresses=tuple(addresses))


def allowed_networks(settings: Settings | None) -> tuple[str, ...]:
    return settings.webhook_allowed_networks if settings is not None else ()


# --------------------------------------------------------------------------- matching, enqueue


def matches(patterns: Iterable[str], name: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == name:
            return True
        if pattern.endswith(".*") and name.startswith(pattern[:-1]):
            return True
    return False


def event_body(event: events.DomainEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.name,
        "occurred_at": event.occurred_at.isoformat(),
        "data": {"entity": event.entity, "entity_id": event.entity_id, **event.payload},
    }


#: Seconds the listener reuses the list of active subscriptions: it runs after every write in
#: the system, and one query per delivery was a round trip added to every create and workflow
#: transition. A change through the API in this process counts at once
#: (``forget_subscriptions``), one made by another process within this many seconds.
SUBSCRIPTIONS_TTL = 2.0
_active: ReadCache[str, list[dict[str, Any]]] = ReadCache(SUBSCRIPTIONS_TTL)


def forget_subscriptions() -> None:
    """A subscription was created, changed or deleted: the listener reads them afresh."""
    _active.clear()


async def _active_subscriptions() -> list[dict[str, Any]]:
    hit = _active.get("active")
    if hit is None:
        rows = await WebhookSubscription.select(
            WebhookSubscription.id, WebhookSubscription.event_types, WebhookSubscription.created_at
        ).where(WebhookSubscription.active == True)  # noqa: E712
        hit = _active.put("active", rows)
    return hit


async def on_events(batch: list[events.DomainEvent]) -> None:
    """Events batch listener: a delivery and a ``webhook.deliver`` job per committed event and
    matching active subscription (idempotent: a redelivered event adds nothing)."""
    subscriptions = await _active_subscriptions()
    if not subscriptions:
        return
    wanted: list[tuple[int, events.DomainEvent]] = []
    for event in batch:
        for sub in subscriptions:
            if _before(event.occurred_at, sub["created_at"]):
                continue  # a subscription hears events from its creation on (not old ones redelivered)
            if event.name == PING:
                if event.entity_id == sub["id"]:
                    wanted.append((sub["id"], event))
            elif not event.name.startswith("webhook.") and matches(_list(sub["event_types"]), event.name):
                wanted.append((sub["id"], event))
    if not wanted:
        return
    async with events.unit_of_work():
        for sub_id, event in wanted:
            key = f"{sub_id}:{event.id}"
            inserted = (
                await WebhookDelivery.insert(
                    WebhookDelivery(
                        subscription_id=sub_id,
                        key=key,
                        event_id=event.id,
                        event_type=event.name,
                        status="pending",
                        created_at=clock.now(),
                    )
                )
                .on_conflict(target=WebhookDelivery.key, action="DO NOTHING")
                .returning(WebhookDelivery.id)
            )
            if not inserted:
                continue  # delivered before (the event came round again)
            body = dump_json(event_body(event))
            job_id = await jobs.enqueue(
                KIND,
                {
                    "subscription_id": sub_id,
                    "delivery_id": inserted[0]["id"],
                    "event_id": event.id,
                    "body": body,
                },
                max_attempts=MAX_ATTEMPTS,
                dedup_key=f"webhook:{key}",
            )
            await WebhookDelivery.update({WebhookDelivery.job_id: job_id}).where(
                WebhookDelivery.id == inserted[0]["id"]
            )


def _before(occurred_at: datetime, created_at: datetime | None) -> bool:
    if created_at is None or occurred_at.tzinfo is None or created_at.tzinfo is None:
        return False
    return occurred_at < created_at


def _list(value: Any) -> list[str]:
    return list(json.loads(value) if isinstance(value, str) else value or [])


# --------------------------------------------------------------------------- delivery (worker)


async def post(target: Target, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST to the checked address itself (not a fresh DNS answer): the URL carries the IP,
    ``Host`` the name, and for https the TLS server name (SNI and certificate check) is the
    name too (httpx's ``sni_hostname`` extension). Redirects are not followed."""
    ip = target.addresses[0]
    literal = f"[{ip}]" if ":" in ip else ip
    parts = urlsplit(target.url)
    default = 443 if target.scheme == "https" else 80
    netloc = literal if target.port == default else f"{literal}:{target.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = target.host if target.port == default else f"{target.host}:{target.port}"
    if ":" in target.host:
        host_header = f"[{target.host}]" if target.port == default else f"[{target.host}]:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=_tls())
    async with client:
        return await client.post(
            pinned, content=body, headers={**headers, "Host": host_header}, extensions=extensions
        )


_tls_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    """One TLS context for every delivery (building one costs tens of milliseconds)."""
    global _tls_context
    if _tls_context is None:
        _tls_context = ssl.create_default_context()
    return _tls_context


class DeliveryFailed(Exception):
    """An attempt failed (retried with back-off)."""


async def _log(delivery_id: int, **changes: Any) -> None:
    values = {getattr(WebhookDelivery, k): v for k, v in changes.items()}
    await WebhookDelivery.update(values).where(WebhookDelivery.id == delivery_id)


@jobs.kernel_kind("webhook.deliver", timeout=30.0)
async def deliver_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Handler of ``webhook.deliver`` jobs: one attempt, logged on the delivery row."""
    delivery_id = int(payload["delivery_id"])
    now = clock.now()
    last = ctx.attempt >= ctx.max_attempts
    sub = (
        await WebhookSubscription.select().where(WebhookSubscription.id == payload["subscription_id"]).first()
    )
    if sub is None or not sub["active"]:
        reason = "the subscription was deleted" if sub is None else "the subscription is inactive"
        await _log(delivery_id, status="failed", last_error=reason, last_attempt_at=now, attempts=ctx.attempt)
        raise jobs.PermanentFailure(reason)
    settings = ctx.settings or _settings
    try:
        target = await resolve(sub["url"], allowed_networks(settings))
    except RefusedTarget as exc:
        message = f"target refused: {exc}"
        await _log(
            delivery_id, status="failed", last_error=message, last_attempt_at=now, attempts=ctx.attempt
        )
        raise jobs.PermanentFailure(message) from None
    body = str(payload["body"]).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: str(payload["event_id"]),
        "X-Tessera-Event-Id": str(payload["event_id"]),
        SIGNATURE_HEADER: sign(sub["secret"], body, int(now.timestamp())),
    }
    code: int | None = None
    try:
        response = await post(target, body, headers)
        code = response.status_code
        if 300 <= code < 400:
            location = response.headers.get("location", "?")
            error = f"answered {code} (redirect to {location!r}); redirects are not followed"
        elif not 200 <= code < 300:
            error = f"answered {code}"
        else:
            error = ""
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    if error:
        await _log(
            delivery_id,
            status="failed" if last else "retrying",
            attempts=ctx.attempt,
            last_status_code=code,
            last_error=error,
            last_attempt_at=now,
        )
        raise DeliveryFailed(error)
    await _log(
        delivery_id,
        status="delivered",
        attempts=ctx.attempt,
        last_status_code=code,
        last_error="",
        last_attempt_at=now,
        delivered_at=clock.now(),
    )
    return {"status_code": code, "delivery_id": delivery_id}
