"""Loyalty rules as plain async functions (testable without HTTP)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tessera import audit, clock, events
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_loyalty.tables import LoyaltyAward

#: Points expire this long after they were awarded.
VALIDITY = timedelta(days=365)


async def award(principal: Principal, party_id: int, points: int, reason: str) -> dict[str, Any]:
    """Award points to a party the principal may see (404 otherwise)."""
    principal.require("loyalty.award")
    if points <= 0:
        raise ValidationFailed.field("points", "must be a positive number of points")
    await service.get(PARTY, principal, party_id)
    now = clock.now()
    # Every write is audited in its own transaction (the plugin contract checks it): the award
    # and its audit entry commit together or not at all.
    async with events.unit_of_work():
        row = (
            await LoyaltyAward.insert(
                LoyaltyAward(
                    party_id=party_id,
                    points=points,
                    reason=reason,
                    awarded_by=principal.user_id,
                    awarded_at=now,
                    expires_at=now + VALIDITY,
                )
            ).returning(*LoyaltyAward.all_columns())
        )[0]
        await audit.record("create", "loyalty.award", row["id"], audit.diff(None, row))
    return dict(row)


async def balance(principal: Principal, party_id: int) -> int:
    """Points of a party that have not expired."""
    principal.require("loyalty.read")
    await service.get(PARTY, principal, party_id)
    rows = await LoyaltyAward.select(LoyaltyAward.points).where(
        LoyaltyAward.party_id == party_id,
        LoyaltyAward.expired == False,  # noqa: E712 - Piccolo
    )
    return sum(r["points"] for r in rows)


async def expire_due(now: datetime) -> int:
    """Mark awards past their expiry as expired; returns how many. Idempotent."""
    done = (
        await LoyaltyAward.update({LoyaltyAward.expired: True})
        .where(LoyaltyAward.expired == False, LoyaltyAward.expires_at <= now)  # noqa: E712
        .returning(LoyaltyAward.id)
    )
    return len(done)


async def history(party_id: int) -> list[dict[str, Any]]:
    return await LoyaltyAward.select().where(LoyaltyAward.party_id == party_id).order_by(LoyaltyAward.id)
