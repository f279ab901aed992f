"""Fixtures of the web tests, defined once: a migrated database per test, settings, the
app, a client and its logged-in variants, and one Chromium per module.

A module asks for what it needs by name and overrides a fixture by defining one of
the same name (its own ``settings`` or ``app``), as pytest resolves the nearest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.web.app import create_app
from tests.web.auth_helpers import TestClient, app_client, login, make_user
from tests.web.browser import chromium


@pytest.fixture
def sqlite_engine(gallery_engine: Engine) -> Engine:
    """A migrated SQLite database per test, copied from the session's template (fast)."""
    return gallery_engine


@pytest.fixture
def settings(configure: Callable[..., Settings]) -> Settings:
    """The defaults of a deployment; a module overrides this for keys it is about."""
    return configure()


@pytest.fixture
def app(sqlite_engine: Engine, settings: Settings) -> FastAPI:
    """The staff app with one user of each staff role: ``ad``, ``mo`` and ``vi``."""
    make_user(sqlite_engine, "ad", "admin")
    make_user(sqlite_engine, "mo", "moderator")
    make_user(sqlite_engine, "vi", "viewer")
    return create_app(settings, engine=sqlite_engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of ``app`` with its lifespan running, not logged in."""
    with app_client(app) as client:
        yield client


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    login(client, "ad")
    return client


@pytest.fixture
def moderator(client: TestClient) -> TestClient:
    login(client, "mo")
    return client


@pytest.fixture
def viewer(client: TestClient) -> TestClient:
    login(client, "vi")
    return client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per module."""
    with chromium() as browser:
        yield browser
