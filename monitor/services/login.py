"""Staff logins: the password (and second factor) check, the login form's CSRF pair, and
throttling of failed attempts.

Failed logins are counted per account and per client address over a window.
Past a first threshold each further try must wait a growing delay (at most
``MAX_DELAY_SECONDS``). An address past a second threshold is locked for the
rest of the window; an account never is, so nobody can lock a known user out by
guessing at it, and a success resets only its own account's count, so an insider
cannot clear their address's count by logging in. An admin's unlock forgets an
account's failures. The check and the record of an attempt are one step under a
per-account and per-address lock, so concurrent guesses cannot all pass the check.
A good login then starts a session (:mod:`monitor.services.sessions`).
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.models import LoginAttempt, User, utcnow
from monitor.services import audit
from monitor.services.audit import Action
from monitor.services.sessions import purge_expired_sessions, tokens_match
from monitor.services.users import hash_password, verify_password, verify_second_factor
from monitor.signing import BadToken, Use, sign, unsign

#: How long the login form (its cookie and its signed field) stays good.
LOGIN_FORM_LIFETIME = timedelta(hours=1)
THROTTLE_WINDOW = timedelta(minutes=15)
SLOW_AFTER_FAILURES = 3
LOCK_AFTER_FAILURES = 10
MAX_DELAY_SECONDS = 60
MAX_NAME_CHARS = 100
MAX_PASSWORD_CHARS = 1024


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A real hash to verify against when the user does not exist, so timing is uniform."""
    return hash_password(secrets.token_urlsafe(16))


def new_login_csrf(secret: str, *, now: float | None = None) -> tuple[str, str]:
    """A (cookie, form field) pair that protects the login form before any session exists."""
    nonce = secrets.token_urlsafe(24)
    return nonce, sign(Use.LOGIN_FORM, nonce, secret=secret, now=now)


def login_csrf_valid(
    secret: str, cookie: str | None, field: str | None, *, now: float | None = None
) -> bool:
    """True when ``field`` is a recent login form token we signed for this cookie's nonce."""
    try:
        nonce = unsign(
            Use.LOGIN_FORM, field or "", secret=secret, max_age=LOGIN_FORM_LIFETIME, now=now
        )
    except BadToken:
        return False
    return tokens_match(nonce, cookie)


@dataclasses.dataclass(frozen=True, slots=True)
class Throttle:
    """Whether a login may be tried now; ``retry_after`` seconds when it may not."""

    allowed: bool
    retry_after: int = 0
    locked: bool = False


def _recent_failures(
    session: Session, column: str, value: str, since: datetime, *, reset_on_success: bool
) -> list[datetime]:
    table = LoginAttempt.__table__
    start = since
    if reset_on_success:
        last_success = session.execute(
            sa.select(sa.func.max(table.c.at)).where(
                table.c[column] == value, table.c.success.is_(True), table.c.at >= since
            )
        ).scalar_one_or_none()
        start = max(since, last_success) if last_success else since
    rows = session.execute(
        sa.select(table.c.at)
        .where(table.c[column] == value, table.c.success.is_(False), table.c.at >= start)
        .order_by(table.c.at.desc())
        .limit(LOCK_AFTER_FAILURES)
    )
    return [row.at for row in rows]


def _delay(failures: list[datetime], now: datetime) -> int:
    """Seconds until the next try is allowed, growing with each failure past the first few."""
    if len(failures) < SLOW_AFTER_FAILURES:
        return 0
    delay = min(MAX_DELAY_SECONDS, 2 ** (len(failures) - SLOW_AFTER_FAILURES + 1))
    return max(0, int((failures[0] + timedelta(seconds=delay) - now).total_seconds()) + 1)


def check_throttle(
    *, session: Session, name: str, address: str, now: datetime | None = None
) -> Throttle:
    """Slow an account or an address with many recent failed logins; lock only an address."""
    now = now or utcnow()
    since = now - THROTTLE_WINDOW
    by_address = _recent_failures(session, "address", address, since, reset_on_success=False)
    if len(by_address) >= LOCK_AFTER_FAILURES:
        until = by_address[-1] + THROTTLE_WINDOW
        wait = max(1, int((until - now).total_seconds()) + 1)
        return Throttle(allowed=False, retry_after=wait, locked=True)
    by_name = _recent_failures(session, "name", name, since, reset_on_success=True)
    wait = max(_delay(by_address, now), _delay(by_name, now))
    return Throttle(allowed=False, retry_after=wait) if wait > 0 else Throttle(allowed=True)


def _serialise_attempts(session: Session, name: str, address: str) -> None:
    """Hold the account's and the address's lock until this attempt is committed.

    SQLite transactions already begin with the write lock (``BEGIN IMMEDIATE``);
    PostgreSQL takes transaction-scoped advisory locks, in a fixed order.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted((f"login-name:{name}", f"login-address:{address}")):
        session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


@dataclasses.dataclass(frozen=True, slots=True)
class LoginOutcome:
    """The user on a good password; otherwise None, with the throttle that applied."""

    user: User | None
    throttle: Throttle


def attempt_login(
    *,
    session: Session,
    name: str,
    password: str,
    address: str,
    code: str = "",
    now: datetime | None = None,
) -> LoginOutcome:
    """Throttle check, password check and the attempt's record as one step (the caller
    commits): a throttled try checks no password and records nothing."""
    name, address = name[:MAX_NAME_CHARS], address[:100]
    _serialise_attempts(session, name, address)
    throttle = check_throttle(session=session, name=name, address=address, now=now)
    if not throttle.allowed:
        return LoginOutcome(None, throttle)
    user = authenticate(
        session=session, name=name, password=password, address=address, code=code, now=now
    )
    return LoginOutcome(user, throttle)


def authenticate(
    *,
    session: Session,
    name: str,
    password: str,
    address: str,
    code: str = "",
    now: datetime | None = None,
) -> User | None:
    """Check a password (and the TOTP code where one is set up), record the attempt (and
    an audit row); the user, or None. A wrong code counts as a failed login."""
    now = now or utcnow()
    name, address = name[:MAX_NAME_CHARS], address[:100]
    user = session.exec(select(User).where(User.name == name)).first()
    password_hash = user.password_hash if user is not None else _dummy_hash()
    ok = verify_password(password_hash, password[:MAX_PASSWORD_CHARS])
    ok = ok and user is not None and not user.disabled
    if ok and user is not None and user.totp_secret is not None:
        ok = verify_second_factor(user=user, code=code[:20], now=now)
        session.add(user)
    session.add(LoginAttempt(at=now, name=name, address=address, success=ok))
    audit.record(
        session,
        at=now,
        actor=name if ok else "anonymous",
        action=Action.LOGIN if ok else Action.LOGIN_FAILED,
        reason=None if ok else f"failed login as {name!r}",
        detail={"address": address},
    )
    return user if ok else None


def purge_expired(*, session: Session, now: datetime | None = None) -> None:
    """Drop ended sessions and attempts older than the throttle window."""
    now = now or utcnow()
    purge_expired_sessions(session=session, now=now)
    session.execute(
        sa.delete(LoginAttempt).where(LoginAttempt.at < now - THROTTLE_WINDOW)  # type: ignore[arg-type]
    )
