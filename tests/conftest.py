"""Shared fixtures: a real database per test (SQLite file and PostgreSQL schema),
isolated configuration, and local platform servers."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect
from sqlalchemy.engine import Engine

from monitor.config import Settings, get_settings, load_settings
from monitor.db import create_db_engine, upgrade
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FakeServer

# A browser assertion waits for its condition; on a machine busy with other work the
# page can take longer than Playwright's 5-second default to get there.
expect.set_options(timeout=20_000)

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: Fast network policy for tests: tiny timeouts and backoff, a few retries.
FAST_HTTP = {
    "HTTP_TIMEOUT_SECONDS": "1",
    "HTTP_RETRIES": "2",
    "HTTP_BACKOFF_SECONDS": "0.01",
    "HTTP_MAX_RETRY_AFTER_SECONDS": "2",
}


@functools.cache
def _config_keys() -> frozenset[str]:
    """Every key any adapter reads (scanned once: entry points are slow to list)."""
    from adapters import available_adapters, get_adapter

    keys = {name.upper() for name in Settings.model_fields}
    for name in available_adapters():
        try:
            keys.update(get_adapter(name).config_keys)
        except Exception:  # noqa: BLE001  a broken plugin must not break every test
            continue
    return frozenset(keys)


@pytest.fixture(autouse=True)
def isolated_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every test starts in an empty directory with none of our keys in the environment."""
    workdir = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(workdir)
    for key in _config_keys():
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432, and CI must not skip it")
        return False
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh schema of its own, dropped after."""
    if not postgres_available:
        pytest.skip("PostgreSQL not reachable")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'monitor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database URL, for tests that are not about the storage backend."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'monitor.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an upgraded database, on both backends."""
    engine = create_db_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """An upgraded SQLite engine, for tests of logic rather than storage."""
    engine = create_db_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Set configuration keys in the environment (as a deployment would) and load settings."""

    def apply(**env: str) -> Settings:
        for key, value in {**FAST_HTTP, **env}.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        return load_settings()

    return apply


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer().start()
    yield server
    server.stop()


@pytest.fixture
def training_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample platform registered as ``hashtag-monitor demo`` does; gone after the test."""
    import adapters
    from monitor.demo.adapter import register

    monkeypatch.setattr(adapters, "_EXTRA", {})
    register()


@pytest.fixture
def mastodon(fake_server: FakeServer) -> FakeMastodon:
    """A local Mastodon instance speaking the documented API."""
    return FakeMastodon(fake_server)


#: Modules whose tests start child processes, kill them, or run the whole service; with the
#: browser tests they are the ``slow`` ones that ``make test-fast`` leaves out.
SLOW_MODULES = frozenset(
    {
        "tests/faults/test_crashes.py",
        "tests/test_run.py",
        "tests/test_failover.py",
        "tests/test_demo.py",
        "tests/test_screenshots.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tests (see SLOW_MODULES and the ``browser`` marker) as ``slow``."""
    root = config.rootpath
    for item in items:
        relative = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if relative in SLOW_MODULES or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
