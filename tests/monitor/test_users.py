"""Account changes as services: the web app and the CLI share these rules and audit rows."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, User, WebSession, utcnow
from monitor.services.sessions import start_session
from monitor.services.users import (
    RESERVED_NAMES,
    add_user,
    change_own_password,
    create_first_admin,
    disable_totp,
    disable_user,
    enable_totp,
    enable_user,
    new_totp_secret,
    reset_password,
    set_password,
    set_role,
    verify_password,
    verify_second_factor,
)
from tests.web.auth_helpers import DEFAULT_PASSWORD, make_user

MONITOR = Path(__file__).resolve().parents[2] / "monitor"
NEW_PASSWORD = "a brand new long password"


def _sessions(engine: Engine, name: str, count: int = 2) -> list[str]:
    """Open ``count`` sessions for ``name``; their token hashes."""
    with session_scope(engine) as session:
        user = session.exec(select(User).where(User.name == name)).one()
        for _ in range(count):
            start_session(session=session, user=user, secret="s" * 32, address="127.0.0.1")
    return _open_sessions(engine, name)


def _open_sessions(engine: Engine, name: str) -> list[str]:
    with Session(engine) as session:
        user = session.exec(select(User).where(User.name == name)).one()
        rows = session.exec(select(WebSession).where(WebSession.user_id == user.id))
        return [row.token_hash for row in rows]


def _user(engine: Engine, name: str) -> User:
    with Session(engine) as session:
        return session.exec(select(User).where(User.name == name)).one()


def _audit(engine: Engine) -> list[tuple[str, str, str | None]]:
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).order_by(AuditEvent.id))
        return [(e.actor, e.action, e.reason) for e in events]


def _automatic_actor_names() -> set[str]:
    """Every actor name the code writes for what no person did (``FOO_ACTOR = "..."``)."""
    found: set[str] = set()
    for path in MONITOR.rglob("*.py"):
        found.update(re.findall(r'^\w*ACTOR\s*=\s*"([^"]+)"', path.read_text(), re.M))
        found.update(re.findall(r'actor=(?:name if ok else )?"([^"]+)"', path.read_text()))
    return found


def test_every_automatic_actor_name_is_reserved() -> None:
    names = _automatic_actor_names()
    assert {"system", "public", "cli", "demo", "anonymous"} <= names
    assert names <= RESERVED_NAMES


@pytest.mark.parametrize("name", ["system", "System", "PUBLIC", "anonymous", "cli", "demo"])
def test_reserved_names_are_refused(sqlite_engine: Engine, name: str) -> None:
    with session_scope(sqlite_engine) as session, pytest.raises(UserError, match="reserved"):
        add_user(session=session, name=name, role="admin", password="x" * 20, actor="t")


def test_disable_ends_every_session_on_any_path(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "ad", "admin")
    make_user(sqlite_engine, "mo", "moderator")
    _sessions(sqlite_engine, "mo")
    with session_scope(sqlite_engine) as session:
        disable_user(session=session, name="mo", actor="cli")
    assert _open_sessions(sqlite_engine, "mo") == []
    with session_scope(sqlite_engine) as session:
        enable_user(session=session, name="mo", actor="cli")
    assert not _user(sqlite_engine, "mo").disabled
    assert [a[1] for a in _audit(sqlite_engine)] == ["user_disabled", "user_enabled"]


def test_role_change_ends_sessions_and_is_audited(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "ad", "admin")
    make_user(sqlite_engine, "vi", "viewer")
    _sessions(sqlite_engine, "vi")
    with session_scope(sqlite_engine) as session:
        set_role(session=session, name="vi", role="moderator", actor="ad")
    assert _user(sqlite_engine, "vi").role == "moderator"
    assert _open_sessions(sqlite_engine, "vi") == []
    assert _audit(sqlite_engine) == [("ad", "role_changed", "vi: viewer -> moderator")]


@pytest.mark.parametrize(
    "change",
    [
        lambda session: disable_user(session=session, name="ad", actor="cli"),
        lambda session: set_role(session=session, name="ad", role="viewer", actor="cli"),
    ],
)
def test_the_last_active_admin_cannot_be_lost(
    sqlite_engine: Engine, change: Callable[[Session], object]
) -> None:
    make_user(sqlite_engine, "ad", "admin")
    with session_scope(sqlite_engine) as session, pytest.raises(UserError, match="only active"):
        change(session)
    assert _user(sqlite_engine, "ad").role == "admin" and not _user(sqlite_engine, "ad").disabled


def test_changing_ones_own_password_needs_the_current_one(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "mo", "moderator")
    here, elsewhere = _sessions(sqlite_engine, "mo")
    with session_scope(sqlite_engine) as session, pytest.raises(UserError, match="current"):
        user = session.exec(select(User).where(User.name == "mo")).one()
        change_own_password(
            session=session, user=user, current="guess", new=NEW_PASSWORD, keep_session=here
        )
    assert verify_password(_user(sqlite_engine, "mo").password_hash, DEFAULT_PASSWORD)

    with session_scope(sqlite_engine) as session:
        user = session.exec(select(User).where(User.name == "mo")).one()
        change_own_password(
            session=session,
            user=user,
            current=DEFAULT_PASSWORD,
            new=NEW_PASSWORD,
            keep_session=here,
        )
    assert verify_password(_user(sqlite_engine, "mo").password_hash, NEW_PASSWORD)
    assert _open_sessions(sqlite_engine, "mo") == [here] and elsewhere != here
    assert _audit(sqlite_engine) == [("mo", "password_changed", "mo")]


def test_reset_gives_a_one_time_password_that_must_be_changed(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "mo", "moderator")
    _sessions(sqlite_engine, "mo")
    with session_scope(sqlite_engine) as session:
        password = reset_password(session=session, name="mo", actor="ad")
    user = _user(sqlite_engine, "mo")
    assert user.must_change_password and verify_password(user.password_hash, password)
    assert not verify_password(user.password_hash, DEFAULT_PASSWORD)
    assert _open_sessions(sqlite_engine, "mo") == []

    with session_scope(sqlite_engine) as session:
        set_password(session=session, name="mo", password=NEW_PASSWORD, actor="cli")
    assert not _user(sqlite_engine, "mo").must_change_password
    assert [a[:2] for a in _audit(sqlite_engine)] == [
        ("ad", "password_reset"),
        ("cli", "password_set"),
    ]


def test_short_passwords_and_unknown_users_are_refused(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "mo", "moderator")
    with session_scope(sqlite_engine) as session, pytest.raises(UserError, match="at least 12"):
        set_password(session=session, name="mo", password="short", actor="cli")
    with session_scope(sqlite_engine) as session, pytest.raises(UserError, match="no user"):
        reset_password(session=session, name="ghost", actor="cli")
    with session_scope(sqlite_engine) as session, pytest.raises(UserError, match="not disabled"):
        enable_user(session=session, name="mo", actor="cli")


def test_the_first_admin_must_choose_a_password_at_first_login(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        assert create_first_admin(session=session)
    assert _user(sqlite_engine, "admin").must_change_password


def _code(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def _wrong_code(secret: str, at: datetime) -> str:
    """A code that matches none of the steps a check around ``at`` accepts."""
    near = {_code(secret, at + timedelta(seconds=shift)) for shift in (-30, 0, 30)}
    return next(c for c in (f"{n:06d}" for n in range(10**6)) if c not in near)


def test_a_second_factor_needs_the_password_and_a_code_and_each_code_works_once(
    sqlite_engine: Engine,
) -> None:
    make_user(sqlite_engine, "ad", "admin")
    here, elsewhere = _sessions(sqlite_engine, "ad")
    secret = new_totp_secret()
    now = utcnow()
    with session_scope(sqlite_engine) as session:
        user = session.exec(select(User).where(User.name == "ad")).one()
        for password, code, why in [
            ("guess", _code(secret, now), "password is wrong"),
            (DEFAULT_PASSWORD, _wrong_code(secret, now), "does not match"),
        ]:
            with pytest.raises(UserError, match=why):
                enable_totp(
                    session=session,
                    user=user,
                    password=password,
                    secret=secret,
                    code=code,
                    keep_session=here,
                )
        assert user.totp_secret is None
        enable_totp(
            session=session,
            user=user,
            password=DEFAULT_PASSWORD,
            secret=secret,
            code=_code(secret, now),
            keep_session=here,
        )
    assert _open_sessions(sqlite_engine, "ad") == [here] and elsewhere != here
    user = _user(sqlite_engine, "ad")
    assert user.totp_secret == secret
    later = now + timedelta(seconds=60)
    # The code used to set it up cannot be replayed; the next one works once.
    assert not verify_second_factor(user=user, code=_code(secret, now), now=now)
    assert verify_second_factor(user=user, code=_code(secret, later), now=later)
    assert not verify_second_factor(user=user, code=_code(secret, later), now=later)
    assert not verify_second_factor(user=user, code="", now=later)

    with session_scope(sqlite_engine) as session:
        disable_totp(session=session, name="ad", actor="cli")
    assert _user(sqlite_engine, "ad").totp_secret is None
    assert _open_sessions(sqlite_engine, "ad") == []
    assert [a[1] for a in _audit(sqlite_engine)] == ["totp_enabled", "totp_disabled"]


def test_a_login_with_totp_needs_the_code(sqlite_engine: Engine) -> None:
    from monitor.services.login import authenticate

    make_user(sqlite_engine, "ad", "admin")
    secret = new_totp_secret()
    with session_scope(sqlite_engine) as session:
        user = session.exec(select(User).where(User.name == "ad")).one()
        user.totp_secret = secret
    now = utcnow()
    with session_scope(sqlite_engine) as session:
        assert (
            authenticate(
                session=session, name="ad", password=DEFAULT_PASSWORD, address="a", now=now
            )
            is None
        )
        assert authenticate(
            session=session,
            name="ad",
            password=DEFAULT_PASSWORD,
            address="a",
            code=_code(secret, now),
            now=now,
        )
    assert [a[1] for a in _audit(sqlite_engine)] == ["login_failed", "login"]
