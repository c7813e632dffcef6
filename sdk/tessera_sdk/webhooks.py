"""Verify the signature of a Tessera webhook on the receiving side.

Every delivery carries ``Tessera-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
``HMAC-SHA256(secret, f"{t}.{body}")`` over the raw request body. ``verify_signature`` checks
it in constant time and refuses a timestamp more than ``tolerance`` seconds (five minutes) away
from now, so a captured request cannot be replayed later::

    from tessera_sdk.webhooks import InvalidSignature, verify_signature

    try:
        event = verify_signature(secret, request_body, request.headers["Tessera-Signature"])
    except InvalidSignature:
        return 400
    if already_seen(event["id"]):  # at-least-once: deduplicate on the event id
        return 200
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

SIGNATURE_HEADER = "Tessera-Signature"
EVENT_ID_HEADER = "Webhook-Id"
#: Seconds a signature stays acceptable (either way, for clock skew).
DEFAULT_TOLERANCE = 300


class InvalidSignature(ValueError):
    """The body was not signed with this secret, was changed, or the signature is too old."""


def compute_signature(secret: str, body: bytes | str, timestamp: int) -> str:
    """The ``v1`` value: hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    raw = body.encode() if isinstance(body, str) else body
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + raw, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes | str,
    header: str,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's ``Tessera-Signature`` header against its raw body; returns the
    decoded event (``{"id", "type", "occurred_at", "data"}``). Raises ``InvalidSignature``
    for a wrong or missing signature, a changed body, or a timestamp more than ``tolerance``
    seconds from ``now``."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("the timestamp is not a number") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("the header needs t=<timestamp> and v1=<signature>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature(f"the signature is older than {tolerance} seconds (or from the future)")
    expected = compute_signature(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature("the signature does not match the body")
    raw = body.decode() if isinstance(body, bytes) else body
    return json.loads(raw)  # type: ignore[no-any-return]


__all__ = [
    "DEFAULT_TOLERANCE",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "InvalidSignature",
    "compute_signature",
    "verify_signature",
]
