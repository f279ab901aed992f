"""User accounts: argon2 password hashes, roles, the one-time first admin, and every change
to an account (password, reset, enable, disable, role), each audited.

The rule "this change ends the user's other sessions" lives here, so the web app
and the CLI apply it alike: a disabled user, a new role, a password set or reset
by someone else all end every session; changing one's own password keeps the
session it was changed in and ends the rest.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

import pyotp
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from monitor.errors import UserError
from monitor.models import LoginAttempt, Role, User, WebSession, utcnow
from monitor.services import audit
from monitor.services.audit import Action

_hasher = PasswordHasher()
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
FIRST_ADMIN = "admin"
TOTP_ISSUER = "hashtag-monitor"
TOTP_DIGITS = 6
#: Names the audit log uses for what no person did (automatic actions, the public, the
#: command line, a failed login): a person so named would read as one of them.
RESERVED_NAMES = frozenset({"anonymous", "cli", "demo", "public", "system"})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password: at most {MAX_PASSWORD_LENGTH} characters")


def _check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError(f"role {role!r}: choose {', '.join(Role)}") from None


def _audit(session: Session, actor: str, action: Action, reason: str) -> None:
    audit.record(session, actor=actor, action=action, reason=reason)


def add_user(*, session: Session, name: str, role: str, password: str, actor: str) -> User:
    """Create a user; names are unique, simple and not reserved, passwords long enough."""
    if not _NAME_RE.match(name):
        raise UserError(f"user name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if name.casefold() in RESERVED_NAMES:
        raise UserError(f"user name {name!r} is reserved for the audit log; choose another")
    role = _check_role(role)
    _check_password(password)
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise UserError(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password), created_at=utcnow())
    session.add(user)
    _audit(session, actor, Action.USER_ADDED, f"{name} as {role}")
    return user


def get_user(*, session: Session, name: str) -> User:
    """A user by name, disabled or not, or a UserError."""
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise UserError(f"no user named {name!r}")
    return user


def end_sessions(*, session: Session, user_id: int, keep: str | None = None) -> None:
    """Log a user out everywhere, except the session whose token hash is ``keep``."""
    query = sa.delete(WebSession).where(WebSession.user_id == user_id)  # type: ignore[arg-type]
    if keep is not None:
        query = query.where(WebSession.token_hash != keep)  # type: ignore[arg-type]
    session.execute(query)


def _other_active_admins(session: Session, user: User) -> int:
    return len(
        session.exec(
            select(User).where(
                User.role == Role.ADMIN,
                User.disabled == False,  # noqa: E712  SQL, not Python truthiness
                User.id != user.id,
            )
        ).all()
    )


def _refuse_losing_last_admin(session: Session, user: User) -> None:
    """Nobody could manage accounts any more: refuse to disable or demote the last admin."""
    if user.role == Role.ADMIN and not user.disabled and not _other_active_admins(session, user):
        raise UserError(f"{user.name} is the only active admin; make another admin first")


def disable_user(*, session: Session, name: str, actor: str) -> User:
    """Disable a user: no login, no decisions, and every session of theirs ends now."""
    user = get_user(session=session, name=name)
    _refuse_losing_last_admin(session, user)
    user.disabled = True
    session.add(user)
    end_sessions(session=session, user_id=user.id or 0)
    _audit(session, actor, Action.USER_DISABLED, name)
    return user


def enable_user(*, session: Session, name: str, actor: str) -> User:
    """Let a disabled user log in again (with the password they had)."""
    user = get_user(session=session, name=name)
    if not user.disabled:
        raise UserError(f"{name} is not disabled")
    user.disabled = False
    session.add(user)
    _audit(session, actor, Action.USER_ENABLED, name)
    return user


def set_role(*, session: Session, name: str, role: str, actor: str) -> User:
    """Change a user's role; their sessions end so every page is served under the new one."""
    user = get_user(session=session, name=name)
    role = _check_role(role)
    if user.role == role:
        raise UserError(f"{name} is already a {role}")
    if role != Role.ADMIN:
        _refuse_losing_last_admin(session, user)
    before, user.role = user.role, role
    session.add(user)
    end_sessions(session=session, user_id=user.id or 0)
    _audit(session, actor, Action.ROLE_CHANGED, f"{name}: {before} -> {role}")
    return user


def set_password(*, session: Session, name: str, password: str, actor: str) -> User:
    """An admin sets a user's password (``users passwd``); every session of theirs ends."""
    user = get_user(session=session, name=name)
    _check_password(password)
    user.password_hash = hash_password(password)
    user.must_change_password = False
    session.add(user)
    end_sessions(session=session, user_id=user.id or 0)
    _audit(session, actor, Action.PASSWORD_SET, name)
    return user


def change_own_password(
    *, session: Session, user: User, current: str, new: str, keep_session: str | None
) -> User:
    """A user changes their own password: the current one is required; other sessions end."""
    if not verify_password(user.password_hash, current[:MAX_PASSWORD_LENGTH]):
        raise UserError("the current password is wrong")
    _check_password(new)
    if new == current:
        raise UserError("choose a new password, not the current one")
    user.password_hash = hash_password(new)
    user.must_change_password = False
    session.add(user)
    end_sessions(session=session, user_id=user.id or 0, keep=keep_session)
    _audit(session, user.name, Action.PASSWORD_CHANGED, user.name)
    return user


def reset_password(*, session: Session, name: str, actor: str) -> str:
    """Give a user a one-time password, shown once; they must change it at the next login."""
    user = get_user(session=session, name=name)
    password = secrets.token_urlsafe(18)
    user.password_hash = hash_password(password)
    user.must_change_password = True
    session.add(user)
    end_sessions(session=session, user_id=user.id or 0)
    _forget_failed_logins(session, name)
    _audit(session, actor, Action.PASSWORD_RESET, name)
    return password


def _forget_failed_logins(session: Session, name: str) -> int:
    result = session.execute(
        sa.delete(LoginAttempt).where(
            col(LoginAttempt.name) == name,
            col(LoginAttempt.success).is_(False),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def unlock_logins(*, session: Session, name: str, actor: str) -> int:
    """Forget an account's failed logins, lifting its login delay; returns how many."""
    user = get_user(session=session, name=name)
    forgotten = _forget_failed_logins(session, user.name)
    _audit(session, actor, Action.LOGINS_UNLOCKED, user.name)
    return forgotten


def new_totp_secret() -> str:
    """A fresh secret for an authenticator app (shown once, kept only once confirmed)."""
    return pyotp.random_base32()


def totp_uri(name: str, secret: str) -> str:
    """The ``otpauth://`` address authenticator apps read, with this product as issuer."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=TOTP_ISSUER)


def _accepted_step(secret: str, code: str, last_step: int | None, now: datetime) -> int | None:
    """The 30-second step ``code`` belongs to (this one or a neighbour), unless already used."""
    code = code.strip().replace(" ", "")
    if not (code.isascii() and code.isdigit() and len(code) == TOTP_DIGITS):
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // totp.interval
    for candidate in (step, step - 1, step + 1):
        if (last_step is None or candidate > last_step) and secrets.compare_digest(
            totp.generate_otp(candidate), code
        ):
            return candidate
    return None


def verify_second_factor(*, user: User, code: str, now: datetime | None = None) -> bool:
    """True without TOTP; with it, the code must be current and not used before."""
    if user.totp_secret is None:
        return True
    step = _accepted_step(user.totp_secret, code, user.totp_last_step, now or utcnow())
    if step is None:
        return False
    user.totp_last_step = step
    return True


def enable_totp(
    *, session: Session, user: User, password: str, secret: str, code: str, keep_session: str | None
) -> User:
    """Turn on a second factor: the password and a code from the app prove both are at hand."""
    if not verify_password(user.password_hash, password[:MAX_PASSWORD_LENGTH]):
        raise UserError("the password is wrong")
    if not re.fullmatch(r"[A-Z2-7]{32}", secret):
        raise UserError("the setup key is not one this page gave; reload the page")
    step = _accepted_step(secret, code, None, utcnow())
    if step is None:
        raise UserError("that code does not match; check the app's clock and try the next code")
    user.totp_secret, user.totp_last_step = secret, step
    session.add(user)
    end_sessions(session=session, user_id=user.id or 0, keep=keep_session)
    _audit(session, user.name, Action.TOTP_ENABLED, user.name)
    return user


def disable_totp(*, session: Session, name: str, actor: str) -> User:
    """Turn a user's second factor off (a lost phone); their sessions end."""
    user = get_user(session=session, name=name)
    if user.totp_secret is None:
        raise UserError(f"{name} has no second factor set up")
    user.totp_secret, user.totp_last_step = None, None
    session.add(user)
    end_sessions(session=session, user_id=user.id or 0)
    _audit(session, actor, Action.TOTP_DISABLED, name)
    return user


def list_users(*, session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.name)))


def get_active_user(*, session: Session, name: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None or user.disabled:
        raise UserError(f"no active user named {name!r}")
    return user


def create_first_admin(*, session: Session) -> str | None:
    """On a database with no users, create ``admin`` and return its one-time password."""
    if session.exec(select(User)).first() is not None:
        return None
    password = secrets.token_urlsafe(18)
    admin = add_user(
        session=session, name=FIRST_ADMIN, role=Role.ADMIN, password=password, actor="system"
    )
    # The one-time password sits in the service's log: it only serves to choose a real one.
    admin.must_change_password = True
    return password
