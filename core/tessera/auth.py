"""Authentication: argon2 passwords with lockout, hashed API tokens with scopes and expiry,
server-side web sessions (a fresh id at every login, so a planted id is never adopted)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tessera import audit, clock, db
from tessera.entities.tables import ApiToken, CrmUser, WebSession
from tessera.errors import NotAuthenticated, TooManyRequests, ValidationFailed

_hasher = PasswordHasher()
TOKEN_PREFIX = "tsr_"
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.field("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class LoginResult:
    user_id: int
    session_id: str
    csrf_token: str
    expires_at: datetime


async def login(
    email: str, password: str, ttl_seconds: int, max_failures: int, lockout_seconds: int
) -> LoginResult:
    """Check the password; on success open a new session. Failed attempts count towards a
    temporary lockout; both outcomes are audited. The error never says whether the e-mail exists."""
    now = clock.now()
    user = await CrmUser.select().where(CrmUser.email == email.strip().lower()).first()
    if user is None:
        # Spend the same time as a real check so timing does not reveal which e-mails exist.
        verify_password(_DUMMY_HASH, password)
        await audit.record("login_failed", "user", None, detail=f"unknown e-mail {email[:100]!r}")
        raise NotAuthenticated("Wrong e-mail or password")
    if user["locked_until"] is not None and user["locked_until"] > now:
        await audit.record("login_locked", "user", user["id"], user_id=user["id"])
        raise TooManyRequests(
            "Too many failed logins; try again later",
            retry_after=int((user["locked_until"] - now).total_seconds()),
        )
    if not user["is_active"] or not verify_password(user["password_hash"], password):
        failures = user["failed_logins"] + 1
        locked_until = now + timedelta(seconds=lockout_seconds) if failures >= max_failures else None
        await CrmUser.update(
            {CrmUser.failed_logins: 0 if locked_until else failures, CrmUser.locked_until: locked_until}
        ).where(CrmUser.id == user["id"])
        await audit.record("login_failed", "user", user["id"], user_id=user["id"])
        raise NotAuthenticated("Wrong e-mail or password")
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=ttl_seconds)
    async with db.transaction():
        await CrmUser.update({CrmUser.failed_logins: 0, CrmUser.locked_until: None}).where(
            CrmUser.id == user["id"]
        )
        await WebSession.insert(
            WebSession(
                session_hash=sha256(session_id),
                user_id=user["id"],
                csrf_token=csrf,
                created_at=now,
                expires_at=expires,
            )
        )
        await audit.record("login", "user", user["id"], user_id=user["id"])
    return LoginResult(user_id=user["id"], session_id=session_id, csrf_token=csrf, expires_at=expires)


_DUMMY_HASH = _hasher.hash("tessera-dummy-password")


async def logout(session_id: str) -> None:
    await WebSession.delete().where(WebSession.session_hash == sha256(session_id))


async def session_user(session_id: str) -> tuple[int, str] | None:
    """``(user id, csrf token)`` of a live session, or None."""
    row = (
        await WebSession.select(WebSession.user_id, WebSession.csrf_token, WebSession.expires_at)
        .where(WebSession.session_hash == sha256(session_id))
        .first()
    )
    if row is None or row["expires_at"] <= clock.now():
        return None
    return row["user_id"], row["csrf_token"]


async def create_token(
    user_id: int, name: str, scopes: list[str] | None = None, expires_at: datetime | None = None
) -> tuple[int, str]:
    """Create an API token; the plain token is returned once and only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    rows = await ApiToken.insert(
        ApiToken(
            user_id=user_id,
            name=name,
            token_hash=sha256(token),
            prefix=token[:12],
            scopes=scopes or [],
            expires_at=expires_at,
            created_at=clock.now(),
        )
    ).returning(ApiToken.id)
    await audit.record(
        "create", "api_token", rows[0]["id"], {"name": [None, name], "scopes": [None, scopes or []]}
    )
    return rows[0]["id"], token


async def token_user(token: str) -> tuple[int, frozenset[str] | None] | None:
    """``(user id, scopes or None for full access)`` for a valid token, else None."""
    row = await ApiToken.select().where(ApiToken.token_hash == sha256(token)).first()
    now = clock.now()
    if row is None or row["revoked_at"] is not None:
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    last = row["last_used_at"]
    if last is None or (now - last) > timedelta(minutes=5):  # avoid a write on every request
        await ApiToken.update({ApiToken.last_used_at: now}).where(ApiToken.id == row["id"])
    scopes = row["scopes"] or []
    return row["user_id"], (frozenset(scopes) if scopes else None)
