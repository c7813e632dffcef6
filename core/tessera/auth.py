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
from tessera.cache import ReadCache
from tessera.entities.tables import ApiToken, CrmUser, LoginThrottle, WebSession
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
    #: When the session ends at the latest (the absolute lifetime); idle sessions end sooner.
    expires_at: datetime


@dataclass(frozen=True)
class LoginPolicy:
    """Sign-in limits (from :class:`tessera.config.Settings`)."""

    #: Absolute session lifetime: the user signs in again after this many seconds.
    session_ttl: int = 8 * 3600
    #: Idle timeout: a session unused for this many seconds ends (each request slides it).
    session_idle: int = 3600
    #: Failed sign-ins from one address for one login before that pair is locked out.
    max_failures: int = 5
    #: Failed sign-ins for one login from any address before the login is locked out.
    max_failures_any_address: int = 50
    lockout_seconds: int = 900


LOCKED_DETAIL = "Too many failed logins; try again later"
WRONG_DETAIL = "Wrong e-mail or password"


def _throttle_keys(login: str, client: str) -> list[tuple[str, str]]:
    """``(key hash, kind)`` for the pair (address, login) and for the login alone. Keys are
    hashed so the table holds no e-mail addresses, and exist for unknown logins too."""
    return [(sha256(f"pair\n{client}\n{login}"), "pair"), (sha256(f"login\n{login}"), "login")]


async def _locked_for(keys: list[str], now: datetime) -> int | None:
    """Seconds until the longest lockout among ``keys`` ends, or None when none is locked."""
    rows = await LoginThrottle.select(LoginThrottle.locked_until).where(
        LoginThrottle.key_hash.is_in(keys), LoginThrottle.locked_until > now
    )
    if not rows:
        return None
    return max(1, int(max(r["locked_until"] for r in rows).timestamp() - now.timestamp()))


async def _count_failure(key: str, threshold: int, policy: LoginPolicy, now: datetime) -> None:
    """Add a failure to ``key`` (atomically: concurrent failures all count); lock the key once
    ``threshold`` failures fall within one lockout period."""
    window = timedelta(seconds=policy.lockout_seconds)
    for _ in range(3):
        rows = await (
            LoginThrottle.update({LoginThrottle.failures: LoginThrottle.failures + 1})
            .where(LoginThrottle.key_hash == key, LoginThrottle.window_started_at > now - window)
            .returning(LoginThrottle.failures)
        )
        if not rows:  # no row yet, or its window is over: start a new window
            rows = await (
                LoginThrottle.update({LoginThrottle.failures: 1, LoginThrottle.window_started_at: now})
                .where(LoginThrottle.key_hash == key)
                .returning(LoginThrottle.failures)
            )
        if not rows:
            try:
                await LoginThrottle.insert(LoginThrottle(key_hash=key, failures=1, window_started_at=now))
                rows = [{"failures": 1}]
            except Exception:  # a concurrent failure inserted it first: count on that row
                continue
        if rows[0]["failures"] >= threshold:
            await LoginThrottle.update(
                {
                    LoginThrottle.failures: 0,
                    LoginThrottle.window_started_at: now,
                    LoginThrottle.locked_until: now + window,
                }
            ).where(LoginThrottle.key_hash == key)
        return


async def login(email: str, password: str, client: str, policy: LoginPolicy) -> LoginResult:
    """Check the password; on success open a new session.

    Failed attempts are counted per (client address, login) and per login alone, for unknown
    logins exactly as for real accounts: the answer (401 or, once locked, 429 with
    ``Retry-After``), its body and the time it takes never tell whether the e-mail exists.
    Every outcome is audited."""
    now = clock.now()
    login_name = email.strip().lower()
    keys = _throttle_keys(login_name, client)
    user = await CrmUser.select().where(CrmUser.email == login_name).first()
    user_id = user["id"] if user is not None else None
    locked_for = await _locked_for([k for k, _ in keys], now)
    if locked_for is not None:
        await audit.record(
            "login_locked",
            "user",
            user_id,
            user_id=user_id,
            detail=f"from {client}; login {login_name[:100]!r}",
        )
        raise TooManyRequests(LOCKED_DETAIL, retry_after=locked_for)
    # Spend the same time on an unknown e-mail as on a real check.
    stored = user["password_hash"] if user is not None else _DUMMY_HASH
    ok = verify_password(stored, password) and user is not None and bool(user["is_active"])
    if not ok:
        thresholds = {"pair": policy.max_failures, "login": policy.max_failures_any_address}
        for key, kind in keys:
            await _count_failure(key, thresholds[kind], policy, now)
        detail = f"from {client}" + ("" if user is not None else f"; unknown e-mail {login_name[:100]!r}")
        await audit.record("login_failed", "user", user_id, user_id=user_id, detail=detail)
        raise NotAuthenticated(WRONG_DETAIL)
    assert user is not None
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    async with db.transaction():
        await LoginThrottle.delete().where(LoginThrottle.key_hash.is_in([k for k, _ in keys]))
        await WebSession.insert(
            WebSession(
                session_hash=sha256(session_id),
                user_id=user["id"],
                csrf_token=csrf,
                created_at=now,
                expires_at=_session_end(now, now, policy),
            )
        )
        await audit.record("login", "user", user["id"], user_id=user["id"], detail=f"from {client}")
    absolute_end = now + timedelta(seconds=policy.session_ttl)
    return LoginResult(user_id=user["id"], session_id=session_id, csrf_token=csrf, expires_at=absolute_end)


_DUMMY_HASH = _hasher.hash("tessera-dummy-password")


def _session_end(created_at: datetime, now: datetime, policy: LoginPolicy) -> datetime:
    """A session ends after ``session_idle`` seconds without use, and at the latest
    ``session_ttl`` seconds after sign-in, however busy it is."""
    idle_end = now + timedelta(seconds=policy.session_idle)
    return min(idle_end, created_at + timedelta(seconds=policy.session_ttl))


async def logout(session_id: str) -> None:
    await WebSession.delete().where(WebSession.session_hash == sha256(session_id))


async def session_user(session_id: str, policy: LoginPolicy | None = None) -> tuple[int, str] | None:
    """``(user id, csrf token)`` of a live session, or None. Using the session slides its idle
    deadline forward (never past the absolute lifetime); the stored deadline is rewritten at
    most once a minute, not on every request."""
    policy = policy or LoginPolicy()
    row = (
        await WebSession.select(
            WebSession.id,
            WebSession.user_id,
            WebSession.csrf_token,
            WebSession.created_at,
            WebSession.expires_at,
        )
        .where(WebSession.session_hash == sha256(session_id))
        .first()
    )
    now = clock.now()
    if row is None or row["expires_at"] <= now:
        return None
    if row["created_at"] + timedelta(seconds=policy.session_ttl) <= now:  # the policy got stricter
        return None
    new_end = _session_end(row["created_at"], now, policy)
    if new_end < row["expires_at"] or new_end - row["expires_at"] >= timedelta(minutes=1):
        await WebSession.update({WebSession.expires_at: new_end}).where(WebSession.id == row["id"])
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


#: Seconds a request may trust what an earlier request read about the same API token (one query
#: per request saved). Revoking through the API counts at once in this process
#: (``forget_tokens``), in another process within this many seconds; expiry is checked every time.
TOKEN_TTL = 2.0
#: token hash -> (user id, scopes, expires_at)
_tokens: ReadCache[str, tuple[int, frozenset[str] | None, datetime | None]] = ReadCache(TOKEN_TTL)


def forget_tokens() -> None:
    _tokens.clear()


async def token_user(token: str) -> tuple[int, frozenset[str] | None] | None:
    """``(user id, scopes or None for full access)`` for a valid token, else None."""
    digest = sha256(token)
    now = clock.now()
    hit = _tokens.get(digest)
    if hit is not None:
        user_id, scopes, expires_at = hit
        if expires_at is not None and expires_at <= now:
            return None
        return user_id, scopes
    row = await ApiToken.select().where(ApiToken.token_hash == digest).first()
    if row is None or row["revoked_at"] is not None:
        _tokens.pop(digest)
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        _tokens.pop(digest)
        return None
    last = row["last_used_at"]
    if last is None or (now - last) > timedelta(minutes=5):  # avoid a write on every request
        await ApiToken.update({ApiToken.last_used_at: now}).where(ApiToken.id == row["id"])
    scopes = frozenset(row["scopes"]) if row["scopes"] else None
    _tokens.put(digest, (row["user_id"], scopes, row["expires_at"]))
    return row["user_id"], scopes
