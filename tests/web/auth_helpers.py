"""Log test clients in: users, the login form's token, and a session's CSRF token.

Works with Starlette's ``TestClient`` and with a plain ``httpx.Client`` pointed
at a live server: both keep cookies between requests.
"""

from __future__ import annotations

import re
import warnings

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.exceptions import StarletteDeprecationWarning

from monitor.db import session_scope
from monitor.models import User, utcnow

with warnings.catch_warnings():
    # Starlette suggests another HTTP client package; httpx is the one this project uses.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

DEFAULT_PASSWORD = "correct horse battery staple"
_TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(engine: Engine, name: str, role: str, password: str = DEFAULT_PASSWORD) -> User:
    """Create an active user with ``role`` (viewer, moderator or admin).

    The hash is argon2 at a test cost: the production cost takes most of a
    second per hash on a busy machine, and login verifies with the hash's own cost.
    """
    with session_scope(engine) as session:
        user = User(
            name=name, role=role, password_hash=_TEST_HASHER.hash(password), created_at=utcnow()
        )
        session.add(user)
        return user


def form_token(html: str) -> str:
    """The first ``csrf_token`` hidden field in a page."""
    match = _FORM_TOKEN.search(html)
    if match is None:
        raise AssertionError("no csrf_token field on the page")
    return match.group(1)


def login_response(client: httpx.Client, name: str, password: str) -> httpx.Response:
    """Submit the login form as a browser would; the raw (unfollowed) response."""
    page = client.get("/login")
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": form_token(page.text)},
        follow_redirects=False,
    )


def login(client: httpx.Client, name: str, password: str = DEFAULT_PASSWORD) -> None:
    """Log ``client`` in, or fail the test with the page's message."""
    response = login_response(client, name, password)
    if response.status_code != 303:
        raise AssertionError(f"login as {name} failed: {response.status_code} {response.text}")


def csrf_token(client: httpx.Client) -> str:
    """The logged-in session's CSRF token (send as ``csrf_token`` or ``X-CSRF-Token``)."""
    response = client.get("/auth/session")
    response.raise_for_status()
    token: str = response.json()["csrf_token"]
    return token


def app_client(app: FastAPI, base_url: str = "http://testserver") -> TestClient:
    """A ``TestClient`` for ``app`` (its lifespan runs when used as a context manager)."""
    return TestClient(app, base_url=base_url)
