"""HTTP routes, mounted under ``/api/loyalty/``. Thin: the rules live in services."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import get, post
from msgspec import Meta, Struct
from tessera.permissions import Principal

from tessera_loyalty import services


class AwardIn(Struct, forbid_unknown_fields=True):
    party_id: int
    points: Annotated[int, Meta(gt=0, le=1_000_000)]
    reason: Annotated[str, Meta(max_length=200)] = ""


class AwardOut(Struct, kw_only=True):
    id: int
    party_id: int
    points: int
    reason: str
    awarded_at: datetime
    expires_at: datetime


class BalanceOut(Struct, kw_only=True):
    party_id: int
    points: int


@post("/awards", operation_id="loyalty_award", status_code=201)
async def award(principal: Principal, data: AwardIn) -> AwardOut:
    """Award points to a client (needs loyalty.award). They expire after a year."""
    row = await services.award(principal, data.party_id, data.points, data.reason)
    return AwardOut(**{k: row[k] for k in AwardOut.__struct_fields__})


@get("/balance/{party_id:int}", operation_id="loyalty_balance")
async def balance(principal: Principal, party_id: int) -> BalanceOut:
    """A client's points that have not expired (needs loyalty.read)."""
    return BalanceOut(party_id=party_id, points=await services.balance(principal, party_id))


ROUTES = [award, balance]
