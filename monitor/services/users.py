"""User accounts: argon2 password hashes, roles, and the one-time first admin."""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from monitor.errors import UserError
from monitor.models import ModerationEvent, Role, User, utcnow

_hasher = PasswordHasher()
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH = 12
FIRST_ADMIN = "admin"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def add_user(*, session: Session, name: str, role: str, password: str, actor: str) -> User:
    """Create a user; names are unique and simple, passwords long enough."""
    if not _NAME_RE.match(name):
        raise UserError(f"user name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if role not in {r.value for r in Role}:
        raise UserError(f"role {role!r}: choose {', '.join(r.value for r in Role)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if session.exec(select(User).where(User.name == name)).first() is not None:
        raise UserError(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password), created_at=utcnow())
    session.add(user)
    session.add(
        ModerationEvent(at=utcnow(), actor=actor, action="user_added", reason=f"{name} as {role}")
    )
    return user


def disable_user(*, session: Session, name: str, actor: str) -> User:
    user = session.exec(select(User).where(User.name == name)).first()
    if user is None:
        raise UserError(f"no user named {name!r}")
    user.disabled = True
    session.add(ModerationEvent(at=utcnow(), actor=actor, action="user_disabled", reason=name))
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
    add_user(session=session, name=FIRST_ADMIN, role=Role.ADMIN, password=password, actor="system")
    return password
