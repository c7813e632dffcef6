"""Satisfaction surveys: when a ticket is closed the client gets a one-time link
(``/service/csat/<token>``) that asks for a score 1-5 and a comment, without signing in.

The token is 32 random bytes (unguessable, URL-safe); only its SHA-256 is stored, so the
database does not hold usable links. A link works once (the answer is claimed by a conditional
``UPDATE ... WHERE answered_at IS NULL``) and is refused after it expires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from tessera import audit, clock, events
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.i18n import gettext as _

from tessera_service.tables import Csat

#: How long a survey link stays valid.
VALID_FOR = dt.timedelta(days=14)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_survey(ticket: dict[str, Any]) -> str:
    """A new survey for the closed ticket; returns its link (path). A reopened and closed again
    ticket gets a new survey (the earlier unanswered one stays valid until it expires)."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    await Csat.insert(
        Csat(
            ticket_id=ticket["id"],
            party_id=ticket["party_id"],
            token_hash=_hash(token),
            expires_at=now + VALID_FOR,
            created_at=now,
        )
    )
    return f"/service/csat/{token}"


async def survey(token: str) -> dict[str, Any]:
    """The survey behind ``token``; 404 for an unknown one, 409 when answered or expired."""
    row = await Csat.select().where(Csat.token_hash == _hash(token)).first()
    if row is None:
        raise NotFound(_("This survey link is not valid."))
    if row["answered_at"] is not None:
        raise Conflict(_("This survey has already been answered. Thank you!"))
    if row["expires_at"] <= clock.now():
        raise Conflict(_("This survey link has expired."))
    return row


async def answer(token: str, score: int, comment: str = "") -> dict[str, Any]:
    """Store the client's answer once."""
    if not isinstance(score, int) or not 1 <= score <= 5:
        raise ValidationFailed.field("score", _("Choose a score from 1 to 5."))
    if len(comment) > 5000:
        raise ValidationFailed.field("comment", "at most 5000 characters")
    row = await survey(token)
    now = clock.now()
    async with events.unit_of_work():
        claimed = (
            await Csat.update({Csat.score: score, Csat.comment: comment, Csat.answered_at: now})
            .where(Csat.id == row["id"], Csat.answered_at.is_null(), Csat.expires_at > now)
            .returning(Csat.id)
        )
        if not claimed:
            raise Conflict(_("This survey has already been answered. Thank you!"))
        await audit.record("csat", "service.ticket", row["ticket_id"], {"score": [None, score]})
        await events.emit(
            "service.ticket.csat",
            "service.ticket",
            row["ticket_id"],
            {"id": row["ticket_id"], "party_id": row["party_id"], "score": score},
        )
    return {**row, "score": score, "comment": comment, "answered_at": now}


async def ticket_scores(ticket_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The latest answered survey of each ticket."""
    out: dict[int, dict[str, Any]] = {}
    if not ticket_ids:
        return out
    for row in (
        await Csat.select()
        .where(Csat.ticket_id.is_in(ticket_ids), Csat.answered_at.is_not_null())
        .order_by(Csat.answered_at)
    ):
        out[row["ticket_id"]] = row
    return out
