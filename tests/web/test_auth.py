"""Logins: cookies, CSRF on the login form, throttling and lockout, session ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import create_db_engine, session_scope, upgrade
from monitor.models import AuditEvent, LoginAttempt, WebSession, utcnow
from monitor.services.gallery import encode_cursor
from monitor.services.login import (
    LOCK_AFTER_FAILURES,
    LOGIN_FORM_LIFETIME,
    MAX_DELAY_SECONDS,
    SLOW_AFTER_FAILURES,
    THROTTLE_WINDOW,
    attempt_login,
    check_throttle,
    new_login_csrf,
)
from monitor.services.takedown import issue_token
from monitor.services.users import disable_user, unlock_logins
from monitor.web.app import create_app
from monitor.web.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from monitor.web.routes.auth import safe_next
from tests.web.auth_helpers import (
    DEFAULT_PASSWORD,
    TestClient,
    app_client,
    csrf_token,
    form_token,
    login,
    login_response,
    make_user,
)

PUBLIC_PATHS = (
    "/gallery",
    "/gallery/embed",
    "/gallery.json",
    "/embed.js",
    "/media/ab/x.jpg",
    "/takedown",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/app.css",
)


def _set_cookie(response: httpx.Response) -> str:
    return "; ".join(response.headers.get_list("set-cookie"))


def test_login_sets_a_hardened_cookie_and_logout_ends_the_session_on_the_server(
    app: FastAPI, client: TestClient
) -> None:
    response = login_response(client, "mo", DEFAULT_PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    cookie = _set_cookie(response)
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    stolen = client.cookies[SESSION_COOKIE]
    assert client.get("/auth/session").json()["user"] == "mo"

    logout = client.post("/logout", data={"csrf_token": csrf_token(client)}, follow_redirects=False)
    assert logout.status_code == 303 and logout.headers["location"] == "/login"

    with app_client(app) as replay:
        replay.cookies.set(SESSION_COOKIE, stolen)
        assert replay.get("/auth/session").status_code == 401


def test_the_cookie_is_secure_when_the_site_is_https(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    make_user(sqlite_engine, "mo", "moderator")
    settings = configure(PUBLIC_BASE_URL="https://monitor.example.org")
    app = create_app(settings, engine=sqlite_engine)
    with app_client(app, base_url="https://testserver") as client:
        response = login_response(client, "mo", DEFAULT_PASSWORD)
    assert response.status_code == 303
    assert "Secure" in _set_cookie(response)


@pytest.mark.parametrize("name", ["mo", "nobody", "<script>alert(1)</script>"])
def test_a_wrong_password_is_refused_escaped_and_audited(
    sqlite_engine: Engine, client: TestClient, name: str
) -> None:
    response = login_response(client, name, "wrong password here")
    assert response.status_code == 401
    assert "Wrong user name, password or authentication code" in response.text
    assert "<script>alert(1)" not in response.text
    assert SESSION_COOKIE not in _set_cookie(response)
    with Session(sqlite_engine) as session:
        [event] = session.exec(select(AuditEvent))
    assert event.action == "login_failed" and event.actor == "anonymous"


def test_the_login_form_needs_its_own_token(sqlite_engine: Engine, client: TestClient) -> None:
    fields = {"name": "mo", "password": DEFAULT_PASSWORD}
    assert client.post("/login", data=fields).status_code == 403
    token = form_token(client.get("/login").text)
    forged = {**fields, "csrf_token": token[:-2] + "xx"}
    assert client.post("/login", data=forged, follow_redirects=False).status_code == 403
    client.cookies.clear()
    stray = {**fields, "csrf_token": token}
    assert client.post("/login", data=stray, follow_redirects=False).status_code == 403
    with Session(sqlite_engine) as session:
        assert session.exec(select(WebSession)).first() is None


def _post_login_form(client: TestClient, nonce: str, field: str) -> httpx.Response:
    """Send the login form with ``nonce`` in its cookie and ``field`` as its token."""
    client.cookies.clear()
    client.cookies.set(LOGIN_CSRF_COOKIE, nonce)
    fields = {"name": "mo", "password": DEFAULT_PASSWORD, "csrf_token": field}
    return client.post("/login", data=fields, follow_redirects=False)


def test_an_old_login_form_is_refused(client: TestClient, settings: Settings) -> None:
    issued = time.time() - LOGIN_FORM_LIFETIME.total_seconds() - 5
    nonce, field = new_login_csrf(settings.ensure_secret_key(), now=issued)

    response = _post_login_form(client, nonce, field)

    assert response.status_code == 403 and "The form expired" in response.text
    assert SESSION_COOKIE not in _set_cookie(response)


def _value_of(token: str) -> str:
    """What a signed token carries in clear, which is what an attacker would put in the cookie."""
    return token.partition(".")[0]


@pytest.mark.parametrize("minted", ["takedown form", "gallery cursor", "session cookie"])
def test_tokens_signed_for_other_uses_are_not_login_form_tokens(
    client: TestClient, settings: Settings, minted: str
) -> None:
    secret = settings.ensure_secret_key()
    if minted == "takedown form":
        token = issue_token(secret, 7)
    elif minted == "gallery cursor":
        token = encode_cursor(datetime(2026, 7, 1, tzinfo=UTC), 5, secret)
    else:
        login(client, "mo")
        token = client.cookies[SESSION_COOKIE]
    response = _post_login_form(client, _value_of(token), token)

    assert response.status_code == 403 and "The form expired" in response.text
    assert SESSION_COOKIE not in _set_cookie(response)


@pytest.mark.parametrize("minted", ["login form", "takedown form", "gallery cursor"])
def test_tokens_signed_for_other_uses_are_not_sessions(
    client: TestClient, settings: Settings, minted: str
) -> None:
    secret = settings.ensure_secret_key()
    login(client, "mo")
    raw = _value_of(client.cookies[SESSION_COOKIE])
    client.cookies.clear()
    if minted == "login form":
        token = form_token(client.get("/login").text)
    elif minted == "takedown form":
        token = issue_token(secret, 7)
    else:
        token = encode_cursor(datetime(2026, 7, 1, tzinfo=UTC), 5, secret)

    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/auth/session").status_code == 401
    client.cookies.set(SESSION_COOKIE, raw)
    assert client.get("/auth/session").status_code == 401


def test_repeated_failures_slow_logins_even_with_the_right_password(
    sqlite_engine: Engine, client: TestClient
) -> None:
    for _ in range(SLOW_AFTER_FAILURES):
        assert login_response(client, "mo", "not the password").status_code == 401
    response = login_response(client, "mo", DEFAULT_PASSWORD)
    assert response.status_code == 429
    assert "Try again in" in response.text and int(response.headers["retry-after"]) >= 1
    with Session(sqlite_engine) as session:
        assert session.exec(select(WebSession)).first() is None


def test_failures_count_per_account_and_per_address(sqlite_engine: Engine) -> None:
    now = utcnow()
    with session_scope(sqlite_engine) as session:
        for number in range(LOCK_AFTER_FAILURES):
            at = now - timedelta(minutes=10) + timedelta(seconds=number)
            session.add(LoginAttempt(at=at, name=f"user{number}", address="10.0.0.9"))
            session.add(LoginAttempt(at=at, name="mo", address=f"10.1.0.{number}"))
    with Session(sqlite_engine) as session:
        by_address = check_throttle(session=session, name="someone", address="10.0.0.9", now=now)
        by_name = check_throttle(session=session, name="mo", address="10.9.9.9", now=now)
        fresh = check_throttle(session=session, name="other", address="10.9.9.9", now=now)
        later = check_throttle(
            session=session, name="mo", address="10.9.9.9", now=now + THROTTLE_WINDOW
        )
    assert by_address.locked and not by_address.allowed
    # An account is slowed, never locked: the last guess was long enough ago to try again.
    assert by_name.allowed
    assert fresh.allowed and later.allowed


def test_a_success_resets_the_count(sqlite_engine: Engine) -> None:
    now = utcnow()
    with session_scope(sqlite_engine) as session:
        for number in range(SLOW_AFTER_FAILURES):
            session.add(
                LoginAttempt(at=now - timedelta(seconds=60 - number), name="mo", address="a")
            )
        session.add(
            LoginAttempt(at=now - timedelta(seconds=1), name="mo", address="a", success=True)
        )
    with Session(sqlite_engine) as session:
        assert check_throttle(session=session, name="mo", address="a", now=now).allowed


@pytest.mark.parametrize("field", ["expires_at", "last_seen_at"])
def test_an_expired_or_idle_session_sends_pages_to_login_and_scripts_get_401(
    sqlite_engine: Engine, client: TestClient, field: str
) -> None:
    login(client, "mo")
    with session_scope(sqlite_engine) as session:
        row = session.exec(select(WebSession)).one()
        setattr(row, field, utcnow() - timedelta(days=1))
    page = client.get("/queue?tab=flagged", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fqueue%3Ftab%3Dflagged"
    assert client.get("/auth/session").status_code == 401
    with Session(sqlite_engine) as session:
        assert session.exec(select(WebSession)).first() is None


def test_disabling_a_user_ends_their_session_at_once(
    sqlite_engine: Engine, client: TestClient
) -> None:
    login(client, "mo")
    with session_scope(sqlite_engine) as session:
        disable_user(session=session, name="mo", actor="admin")
    assert client.get("/auth/session").status_code == 401
    assert login_response(client, "mo", DEFAULT_PASSWORD).status_code == 401


@pytest.mark.parametrize(
    "cookie", ["", "garbage", "abc.def", "x" * 5000, "token.0000000000000000000000000000000000"]
)
def test_forged_cookies_are_not_sessions(client: TestClient, cookie: str) -> None:
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/auth/session").status_code == 401


def test_a_tampered_signature_is_refused(client: TestClient) -> None:
    login(client, "mo")
    token, _, mac = client.cookies[SESSION_COOKIE].rpartition(".")
    client.cookies.set(SESSION_COOKIE, f"{token}.{mac[::-1]}")
    assert client.get("/auth/session").status_code == 401


def test_login_goes_on_to_the_page_asked_for(client: TestClient) -> None:
    page = client.get("/login?next=/admin/audit")
    response = client.post(
        "/login",
        data={
            "name": "mo",
            "password": DEFAULT_PASSWORD,
            "csrf_token": form_token(page.text),
            "next": "/admin/audit",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/admin/audit"
    again = client.get("/login?next=/queue?tab=flagged", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/queue?tab=flagged"


@pytest.mark.parametrize(
    "target",
    [None, "", "https://evil.example", "//evil.example", "/\\evil.example", "/a\r\nSet-Cookie: x"],
)
def test_next_never_leaves_the_site(target: str | None) -> None:
    assert safe_next(target) == "/queue"


def test_huge_login_fields_get_a_clear_refusal(client: TestClient) -> None:
    page = client.get("/login")
    fields = {"name": "n" * 20_000, "password": "p", "csrf_token": form_token(page.text)}
    assert client.post("/login", data=fields).status_code == 422
    fields = {"name": "mo", "password": "p" * 9000, "csrf_token": form_token(page.text)}
    assert client.post("/login", data=fields).status_code == 401


@pytest.mark.parametrize("logged_in", [False, True])
def test_public_routes_never_set_cookies(client: TestClient, logged_in: bool) -> None:
    if logged_in:
        login(client, "mo")
    for path in PUBLIC_PATHS:
        response = client.get(path)
        assert "set-cookie" not in response.headers, path


def test_staff_pages_carry_strict_security_headers(client: TestClient) -> None:
    login(client, "mo")
    for path in ("/login", "/queue"):
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_logging_in_again_ends_the_previous_session(app: FastAPI, client: TestClient) -> None:
    login(client, "mo")
    first = client.cookies[SESSION_COOKIE]
    with app_client(app) as browser:
        token = form_token(browser.get("/login").text)
        browser.cookies.set(SESSION_COOKIE, first)
        fields = {"name": "mo", "password": DEFAULT_PASSWORD, "csrf_token": token}
        response = browser.post("/login", data=fields, follow_redirects=False)
    assert response.status_code == 303
    assert first not in _set_cookie(response)
    assert client.get("/auth/session").status_code == 401


def _fail_many(engine: Engine, *, name: str, address: str, count: int, now: datetime) -> None:
    """``count`` failed logins as ``name``, one a second up to ``now``, from many addresses."""
    with session_scope(engine) as session:
        for number in range(count):
            at = now - timedelta(seconds=count - number)
            session.add(LoginAttempt(at=at, name=name, address=f"{address}{number}"))


def test_an_outsider_cannot_lock_a_known_account_out(sqlite_engine: Engine) -> None:
    now = utcnow()
    _fail_many(
        sqlite_engine, name="mo", address="198.51.100.", count=LOCK_AFTER_FAILURES * 3, now=now
    )
    with Session(sqlite_engine) as session:
        slowed = check_throttle(session=session, name="mo", address="10.9.9.9", now=now)
        waited = check_throttle(
            session=session,
            name="mo",
            address="10.9.9.9",
            now=now + timedelta(seconds=MAX_DELAY_SECONDS + 1),
        )
    assert not slowed.allowed and not slowed.locked
    assert slowed.retry_after <= MAX_DELAY_SECONDS + 1
    assert waited.allowed


def test_logging_in_does_not_clear_an_addresss_failures(
    sqlite_engine: Engine, client: TestClient
) -> None:
    """An insider cannot spray guesses and reset their address's count with their own login."""
    now = utcnow()
    with session_scope(sqlite_engine) as session:
        for number in range(LOCK_AFTER_FAILURES - 1):
            at = now - timedelta(minutes=5) + timedelta(seconds=number)
            session.add(LoginAttempt(at=at, name=f"victim{number}", address="testclient"))
    login(client, "mo")
    with session_scope(sqlite_engine) as session:
        session.add(LoginAttempt(at=utcnow(), name="victim", address="testclient"))
    with Session(sqlite_engine) as session:
        throttle = check_throttle(session=session, name="victim", address="testclient")
    assert throttle.locked and not throttle.allowed


def test_an_admin_unlock_lifts_an_accounts_delay(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "mo", "moderator")
    now = utcnow()
    _fail_many(sqlite_engine, name="mo", address="198.51.100.", count=LOCK_AFTER_FAILURES, now=now)
    with session_scope(sqlite_engine) as session:
        assert unlock_logins(session=session, name="mo", actor="ad") == LOCK_AFTER_FAILURES
    with Session(sqlite_engine) as session:
        assert check_throttle(session=session, name="mo", address="10.9.9.9", now=now).allowed


def test_forty_concurrent_guesses_are_counted_atomically(db_url: str) -> None:
    """Each guess checks and records under a lock: only the first few reach the password."""
    engine = create_db_engine(db_url)
    upgrade(engine)
    make_user(engine, "mo", "moderator")
    guesses = 40
    start = threading.Barrier(guesses)

    def guess(number: int) -> bool:
        start.wait()
        with Session(engine) as session:
            outcome = attempt_login(
                session=session, name="mo", password=f"guess {number}", address=f"10.0.0.{number}"
            )
            session.commit()
        return outcome.throttle.allowed

    try:
        with ThreadPoolExecutor(max_workers=guesses) as pool:
            checked = sum(pool.map(guess, range(guesses)))
        with Session(engine) as session:
            recorded = len(session.exec(select(LoginAttempt)).all())
    finally:
        engine.dispose()
    assert checked == recorded == SLOW_AFTER_FAILURES
