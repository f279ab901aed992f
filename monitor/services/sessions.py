"""Staff logins' server-side sessions: the signed cookie value, expiry, CSRF tokens and
flash messages.

The cookie holds a random token signed by :mod:`monitor.signing`; the
database keeps only the token's SHA-256. A session is valid while its row
exists, it has not expired (absolute and idle limits), and its user is still
active, so logout, disabling a user and expiry end it at once. Which account
changes end a user's sessions is :mod:`monitor.services.users`' rule (it calls
:func:`end_sessions`), so the web app and the CLI apply it alike. The cookie's
name and flags are the web app's business (:mod:`monitor.web.deps`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from monitor.models import User, WebSession, utcnow
from monitor.signing import BadToken, Use, sign, unsign

SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE_LIMIT = timedelta(hours=2)
#: Refresh ``last_seen_at`` at most this often, so reading pages does not write every time.
LAST_SEEN_GRANULARITY = timedelta(minutes=1)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cookie_token(secret: str, cookie: str | None) -> str | None:
    """The raw session token inside a cookie we signed, or None for anything else."""
    try:
        return unsign(Use.SESSION, cookie or "", secret=secret)
    except BadToken:
        return None


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison that treats a missing token as a mismatch."""
    if not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


@dataclasses.dataclass(frozen=True, slots=True)
class ActiveLogin:
    user: User
    web_session: WebSession


def start_session(
    *, session: Session, user: User, secret: str, address: str, now: datetime | None = None
) -> str:
    """Create a session row for ``user`` and return the signed cookie value."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=_hash_token(token),
            user_id=user.id or 0,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
            address=address[:100],
        )
    )
    return sign(Use.SESSION, token, secret=secret)


def load_session(
    *, session: Session, cookie: str | None, secret: str, now: datetime | None = None
) -> ActiveLogin | None:
    """The live login behind a cookie, or None when it is forged, ended, idle or expired."""
    token = _cookie_token(secret, cookie)
    if token is None:
        return None
    now = now or utcnow()
    web_session = session.get(WebSession, _hash_token(token))
    if web_session is None:
        return None
    if web_session.expires_at <= now or now - web_session.last_seen_at > SESSION_IDLE_LIMIT:
        session.delete(web_session)
        session.commit()
        return None
    user = session.get(User, web_session.user_id)
    if user is None or user.disabled:
        return None
    if now - web_session.last_seen_at > LAST_SEEN_GRANULARITY:
        web_session.last_seen_at = now
        session.add(web_session)
        session.commit()
    return ActiveLogin(user=user, web_session=web_session)


def end_session(*, session: Session, cookie: str | None, secret: str) -> None:
    """Delete the session row behind ``cookie`` (logout); unknown cookies are ignored."""
    token = _cookie_token(secret, cookie)
    if token is None:
        return
    row = session.get(WebSession, _hash_token(token))
    if row is not None:
        session.delete(row)


def end_sessions(*, session: Session, user_id: int, keep: str | None = None) -> None:
    """Log a user out everywhere, except the session whose token hash is ``keep``."""
    query = sa.delete(WebSession).where(WebSession.user_id == user_id)  # type: ignore[arg-type]
    if keep is not None:
        query = query.where(WebSession.token_hash != keep)  # type: ignore[arg-type]
    session.execute(query)


def purge_expired_sessions(*, session: Session, now: datetime | None = None) -> None:
    """Drop the rows of sessions past their absolute limit."""
    now = now or utcnow()
    session.execute(sa.delete(WebSession).where(WebSession.expires_at <= now))  # type: ignore[arg-type]


def add_flash(*, session: Session, request_session: WebSession, message: str) -> None:
    """Keep a message for the next page this login shows (post, redirect, get)."""
    request_session.flash = [*(request_session.flash or []), message[:500]][-5:]
    session.add(request_session)


def pop_flash(*, session: Session, request_session: WebSession) -> list[str]:
    """The pending messages, removed so they show once."""
    messages = list(request_session.flash or [])
    if messages:
        request_session.flash = None
        session.add(request_session)
        session.commit()
    return messages
