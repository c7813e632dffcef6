"""The bounce webhook ``POST /api/marketing/bounces`` (shared secret, like the telephony one).

No ``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import hmac
import os
from typing import Any

import msgspec
from litestar import Request, Router, post
from litestar.exceptions import NotAuthorizedException
from msgspec import Struct
from tessera import db
from tessera.errors import NotFound, ValidationFailed

from tessera_marketing import bounces

MAX_BODY = 1024 * 1024


class BounceEvent(Struct, kw_only=True):
    email: str
    type: str
    message_id: str = ""
    detail: str = ""


class BouncesIn(Struct, kw_only=True):
    events: list[BounceEvent]


class BouncesOut(Struct, kw_only=True):
    suppressed: int
    bounced: int
    ignored: int


def secret_of(request: Request[Any, Any, Any]) -> str:
    """``marketing_bounce_secret`` in ``tessera.toml``, or ``TESSERA_MARKETING_BOUNCE_SECRET``."""
    settings = getattr(request.app.state, "settings", None)
    configured = (getattr(settings, "extra", None) or {}).get("marketing_bounce_secret") or ""
    return str(os.environ.get("TESSERA_MARKETING_BOUNCE_SECRET") or configured)


@post(
    "/bounces",
    operation_id="marketing_bounces",
    status_code=200,
    security=[{}],
    request_max_body_size=MAX_BODY,
)
async def bounce_webhook(request: Request[Any, Any, Any]) -> BouncesOut:
    """An e-mail provider reports bounces and complaints: JSON ``{"events": [{"email", "type":
    "hard_bounce|soft_bounce|complaint", "message_id", "detail"}]}``, or a raw delivery report
    posted as ``message/rfc822``. The header ``X-Tessera-Bounce-Secret`` must carry the
    configured secret (401 otherwise; 404 while none is configured). Hard bounces and
    complaints suppress the address; repeating a report changes nothing."""
    secret = secret_of(request)
    if not secret:
        raise NotFound("the bounce webhook is not configured")
    given = request.headers.get(bounces.SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise NotAuthorizedException(f"{bounces.SECRET_HEADER} is missing or wrong")
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.startswith("message/") or kind == "multipart/report":
        reports = bounces.parse(raw)
    else:
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise ValidationFailed.field("body", "JSON, or a delivery report as message/rfc822") from None
        reports = bounces.parse_payload(data)
    async with db.transaction():
        counts = await bounces.apply(reports, "webhook")
    return BouncesOut(**counts)


def routers() -> list[Any]:
    return [Router(path="/", route_handlers=[bounce_webhook], tags=["marketing"])]
