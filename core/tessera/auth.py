"""Authentication: argon2 passwords with lockout, hashed API tokens with scopes and expiry,
server-side web sessions (a fresh id at every login, so a planted id is never adopted)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tessera import audit, clock, db, events
from tessera.cache import ReadCache
from tessera.entities.tables import ApiToken, CrmUser, LoginThrottle, PasswordReset, WebSession
from tessera.errors import NotAuthenticated, TooManyRequests, ValidationFailed

#: The argon2id hasher of new passwords (``configure_password_hashing``; argon2-cffi's default
#: cost until then). Verifying reads the parameters a hash was made with.
_hasher = PasswordHasher()
_dummy_hash: list[str] = []
TOKEN_PREFIX = "tsr_"
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed.field("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def configure_password_hashing(time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Hash new passwords with this argon2id cost (``Settings.argon2_*``). A cost argon2
    refuses stops start-up with a ``ValueError`` naming the settings, not the first sign-in."""
    global _hasher
    wanted = (time_cost, memory_kib, parallelism)
    if (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism) != wanted:
        try:
            hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
            hasher.hash("tessera-check-the-parameters")
        except Exception as exc:
            raise ValueError(
                f"argon2_time_cost={time_cost}, argon2_memory_kib={memory_kib}, "
                f"argon2_parallelism={parallelism}: argon2 refuses them ({exc}); the memory must be "
                "at least 8 KiB per lane"
            ) from exc
        _hasher = hasher
        _dummy_hash.clear()


def needs_rehash(stored_hash: str) -> bool:
    """Whether a stored hash was made with another cost than the configured one."""
    try:
        return bool(stored_hash) and _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return False


def _dummy() -> str:
    """A hash of the configured cost, checked for unknown e-mails so that they take as long as
    a real account (made on first use: hashing at import cost every process a fifth of a
    second of CPU)."""
    if not _dummy_hash:
        _dummy_hash.append(_hasher.hash("tessera-dummy-password"))
    return _dummy_hash[0]


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
    stored = user["password_hash"] if user is not None else _dummy()
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
        detail = f"from {client}"
        if needs_rehash(user["password_hash"]):
            # Made with another cost (an older default, or the administrator changed it): the
            # password is at hand only now, so it is hashed again with the configured one.
            await CrmUser.update({CrmUser.password_hash: _hasher.hash(password)}).where(
                CrmUser.id == user["id"]
            )
            detail += "; password hash renewed with the configured cost"
        await audit.record("login", "user", user["id"], user_id=user["id"], detail=detail)
    absolute_end = now + timedelta(seconds=policy.session_ttl)
    return LoginResult(user_id=user["id"], session_id=session_id, csrf_token=csrf, expires_at=absolute_end)


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


# --------------------------------------------------------------------------- password changes


async def end_sessions(user_id: int, keep_session_id: str | None = None) -> int:
    """End every web session of ``user_id`` (except ``keep_session_id``, the caller's own):
    each one's next request is unauthenticated. Returns how many ended."""
    where = [WebSession.user_id == user_id]
    if keep_session_id:
        where.append(WebSession.session_hash != sha256(keep_session_id))
    rows = await WebSession.delete().where(*where).returning(WebSession.id)
    return len(rows)


async def revoke_all_tokens(user_id: int) -> int:
    """Revoke every live API token of ``user_id`` (counts at once in this process)."""
    rows = await (
        ApiToken.update({ApiToken.revoked_at: clock.now()})
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_null())
        .returning(ApiToken.id)
    )
    forget_tokens()
    for row in rows:
        await audit.record("revoke", "api_token", row["id"], user_id=user_id, detail="password changed")
    return len(rows)


async def password_changed(
    user_id: int, *, keep_session_id: str | None = None, revoke_tokens: bool = False
) -> None:
    """What follows every password change (self-service, by an administrator, by a reset):
    the user's other web sessions end; their API tokens stay unless ``revoke_tokens``; reset
    tokens not used yet stop working. Run inside the change's transaction."""
    await end_sessions(user_id, keep_session_id)
    if revoke_tokens:
        await revoke_all_tokens(user_id)
    await PasswordReset.update({PasswordReset.used_at: clock.now()}).where(
        PasswordReset.user_id == user_id, PasswordReset.used_at.is_null()
    )


async def _throttled(keys: list[tuple[str, str]], now: datetime) -> None:
    locked_for = await _locked_for([k for k, _ in keys], now)
    if locked_for is not None:
        raise TooManyRequests(LOCKED_DETAIL, retry_after=locked_for)


async def _fail(keys: list[tuple[str, str]], policy: LoginPolicy, now: datetime) -> None:
    thresholds = {"pair": policy.max_failures, "login": policy.max_failures_any_address}
    for key, kind in keys:
        await _count_failure(key, thresholds[kind], policy, now)


async def change_password(
    user_id: int,
    current_password: str,
    new_password: str,
    client: str,
    policy: LoginPolicy,
    *,
    keep_session_id: str | None = None,
    revoke_tokens: bool = False,
) -> None:
    """Self-service password change: the current password is required (a stolen session or
    token alone cannot take the account over), wrong guesses count against the same
    throttle as sign-ins of this login; then :func:`password_changed`."""
    now = clock.now()
    user = await CrmUser.select().where(CrmUser.id == user_id).first()
    if user is None:
        raise NotAuthenticated("Sign in again")
    keys = _throttle_keys(user["email"], client)
    await _throttled(keys, now)
    if not verify_password(user["password_hash"], current_password):
        await _fail(keys, policy, now)
        await audit.record("password_wrong", "user", user_id, user_id=user_id, detail=f"from {client}")
        raise ValidationFailed.field("current_password", "is not your current password")
    new_hash = hash_password(new_password)
    async with db.transaction():
        await CrmUser.update({CrmUser.password_hash: new_hash}).where(CrmUser.id == user_id)
        await password_changed(user_id, keep_session_id=keep_session_id, revoke_tokens=revoke_tokens)
        await audit.record(
            "password_change",
            "user",
            user_id,
            user_id=user_id,
            detail=f"from {client}" + ("; API tokens revoked" if revoke_tokens else ""),
        )


# --------------------------------------------------------------------------- password reset

#: Prefix of reset tokens (so a leaked one is recognisable, like API tokens).
RESET_PREFIX = "tsr_reset_"
RESET_INVALID = "The reset token is invalid, expired or already used"


async def create_reset_token(
    user_id: int, ttl_seconds: int, created_by: int | None = None
) -> tuple[str, datetime]:
    """A single-use reset token for ``user_id`` valid ``ttl_seconds``; only its SHA-256 is
    stored. Returns the token (shown once) and its expiry."""
    token = RESET_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    expires_at = now + timedelta(seconds=ttl_seconds)
    await PasswordReset.insert(
        PasswordReset(
            user_id=user_id,
            token_hash=sha256(token),
            created_by=created_by,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await audit.record(
        "reset_created",
        "user",
        user_id,
        detail="by an administrator" if created_by else "requested by the user",
    )
    return token, expires_at


def _reset_keys(client: str) -> list[tuple[str, str]]:
    """Reset attempts are throttled per client address (the token names no login) and, against
    guessing spread over many addresses, under one key for all of them."""
    return [(sha256(f"reset\n{client}"), "pair"), (sha256("reset\n*"), "login")]


async def reset_password(
    token: str, new_password: str, client: str, policy: LoginPolicy, *, revoke_tokens: bool = False
) -> int:
    """Set a new password with a reset token: the token is consumed (atomically: two requests
    with one token cannot both succeed), every session of the user ends. Wrong, expired and used
    tokens count as failed sign-ins do (per address, then 429 with ``Retry-After``). Returns
    the user id."""
    now = clock.now()
    keys = _reset_keys(client)
    await _throttled(keys, now)
    new_hash = hash_password(new_password)  # a too short password spends no attempt, no token
    async with db.transaction():
        used = await (
            PasswordReset.update({PasswordReset.used_at: now})
            .where(
                PasswordReset.token_hash == sha256(token),
                PasswordReset.used_at.is_null(),
                PasswordReset.expires_at > now,
            )
            .returning(PasswordReset.user_id)
        )
        user = None
        if used:
            user = (
                await CrmUser.select(CrmUser.id, CrmUser.is_active)
                .where(CrmUser.id == used[0]["user_id"])
                .first()
            )
        if user is not None and user["is_active"]:
            await CrmUser.update({CrmUser.password_hash: new_hash}).where(CrmUser.id == user["id"])
            await password_changed(user["id"], revoke_tokens=revoke_tokens)
            await audit.record(
                "password_reset",
                "user",
                user["id"],
                user_id=user["id"],
                detail=f"from {client}" + ("; API tokens revoked" if revoke_tokens else ""),
            )
            return int(user["id"])
    await _fail(keys, policy, now)
    await audit.record("reset_failed", "user", None, detail=f"from {client}")
    raise ValidationFailed.field("token", RESET_INVALID)


async def request_reset(email: str, client: str, policy: LoginPolicy, ttl_seconds: int, deliver: Any) -> None:
    """A user asks for a reset by e-mail address. For an active account a token is created and
    handed to ``deliver(user, token, expires_at)`` (``tessera.api.security.deliver_reset_link``);
    for an unknown or inactive address nothing happens. The caller answers the same either way.
    Requests count like failed sign-ins per (address, e-mail) — known or not — so nobody can
    flood a mailbox or the administrators' inbox: past the limit, 429 for everyone alike."""
    address = email.strip().lower()
    now = clock.now()
    keys = [
        (sha256(f"reset-request\n{client}\n{address}"), "pair"),
        (sha256(f"reset-request\n{address}"), "login"),
    ]
    await _throttled(keys, now)
    await _fail(keys, policy, now)
    user = (
        await CrmUser.select(CrmUser.id, CrmUser.email, CrmUser.name, CrmUser.is_active, CrmUser.locale)
        .where(CrmUser.email == address)
        .first()
    )
    if user is None or not user["is_active"]:
        await audit.record("reset_requested", "user", None, detail=f"unknown e-mail {address[:100]!r}")
        return
    async with events.unit_of_work():  # the message (a job) is queued only with its stored token
        token, expires_at = await create_reset_token(user["id"], ttl_seconds)
        await deliver(user, token, expires_at)
