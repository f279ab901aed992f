"""The database failing under a poll: locked, read-only, connections killed.

Each fault must give a readable "database error: ..." on the poll's summary,
leave nothing half-written (a page and its cursor commit together or not at
all), and let a later poll store everything once the database is back.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.db import create_db_engine, upgrade
from monitor.models import Post, Source
from monitor.services.polling import poll_all
from tests.conftest import POSTGRES_ADMIN_URL
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FakeRequest
from tests.faults.schedule import SCHEDULE_ENV, TIMELINE

TAG = "CEADAY21"
#: Far less than a poll is willing to wait in production (30 s), so a held lock wins.
SHORT_BUSY_TIMEOUT_MS = 200


@pytest.fixture
def settings(configure: Callable[..., Settings], mastodon: FakeMastodon) -> Settings:
    return configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS=TAG, **SCHEDULE_ENV)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "monitor.db"


@pytest.fixture
def impatient_engine(db_path: Path) -> Iterator[Engine]:
    """An upgraded SQLite engine that waits only briefly for another writer's lock."""
    engine = create_db_engine(f"sqlite:///{db_path}")
    upgrade(engine)

    def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={SHORT_BUSY_TIMEOUT_MS}")

    engine.dispose()  # connections from now on get the short timeout
    sa.event.listen(engine, "connect", short_busy_timeout)
    yield engine
    engine.dispose()


def _counts(engine: Engine) -> tuple[int, int]:
    """(rows, distinct external ids) of the posts table."""
    with engine.connect() as connection:
        table = Post.__table__
        return connection.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(table.c.external_id)))
        ).one()


def _cursor(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return connection.execute(sa.select(Source.__table__.c.cursor)).scalar_one_or_none()


@contextmanager
def _writer_holding_the_lock(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection inside a write transaction, released on exit."""
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


def test_a_lock_held_from_the_start_is_a_clear_error_then_everything_is_stored(
    impatient_engine: Engine, db_path: Path, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(50)
    with _writer_holding_the_lock(db_path) as holder:
        holder.execute("BEGIN IMMEDIATE")
        [summary] = poll_all(engine=impatient_engine, settings=settings)
    assert not summary.ok
    assert summary.error == "database error: database is locked"
    assert _counts(impatient_engine) == (0, 0)

    [healed] = poll_all(engine=impatient_engine, settings=settings)
    assert healed.ok and healed.new == 50
    assert _counts(impatient_engine) == (50, 50)


def test_a_lock_taken_mid_poll_leaves_nothing_half_written(
    impatient_engine: Engine, db_path: Path, settings: Settings, mastodon: FakeMastodon
) -> None:
    """Another writer takes the lock while the poll waits for its first page."""
    mastodon.add_many(30)
    with _writer_holding_the_lock(db_path) as holder:

        def lock_on_first_page(request: FakeRequest) -> None:
            if request.path.startswith(TIMELINE) and not holder.in_transaction:
                holder.execute("BEGIN IMMEDIATE")

        mastodon.server.on_request = lock_on_first_page
        [summary] = poll_all(engine=impatient_engine, settings=settings)
        mastodon.server.on_request = None

    assert not summary.ok
    assert (summary.error or "").startswith("database error: database is locked")
    assert summary.new == 0
    assert _counts(impatient_engine) == (0, 0)  # the page and its cursor: neither
    assert _cursor(impatient_engine) is None

    [healed] = poll_all(engine=impatient_engine, settings=settings)
    assert healed.ok and healed.new == 30
    assert _counts(impatient_engine) == (30, 30)


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make the file unwritable for this process: mode 0444, and immutable for root,
    whom file modes do not stop."""
    mode = path.stat().st_mode
    path.chmod(0o444)
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    try:
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True, capture_output=True)
        path.chmod(mode)


def test_a_read_only_database_is_a_clear_error_and_no_crash(
    db_path: Path, settings: Settings, mastodon: FakeMastodon
) -> None:
    setup = create_db_engine(f"sqlite:///{db_path}")
    upgrade(setup)
    setup.dispose()
    mastodon.add_many(10)

    with _read_only(db_path):
        engine = create_db_engine(f"sqlite:///{db_path}")
        [summary] = poll_all(engine=engine, settings=settings)
        engine.dispose()
    assert not summary.ok
    assert summary.error == "database error: attempt to write a readonly database"

    # Writable again: the next run (a restart opens new connections) stores everything.
    engine = create_db_engine(f"sqlite:///{db_path}")
    [healed] = poll_all(engine=engine, settings=settings)
    assert healed.ok and healed.new == 10
    assert _counts(engine) == (10, 10)
    engine.dispose()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_connections_killed_mid_run_are_replaced_and_nothing_is_lost(
    db_url: str, settings: Settings, mastodon: FakeMastodon
) -> None:
    """Only this test's own backends are terminated: they carry an application_name
    made for this test, and the admin connection that kills them has none."""
    application = f"hm_faults_{uuid.uuid4().hex[:12]}"
    engine = create_db_engine(f"{db_url}&application_name={application}")
    upgrade(engine)
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    killed: list[int] = []

    def kill_our_backends() -> None:
        with admin.connect() as connection:
            killed.extend(
                connection.execute(
                    # AND may evaluate its operands in any order; CASE may not: no other
                    # backend is ever passed to pg_terminate_backend.
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE CASE"
                        " WHEN application_name = :name AND pid <> pg_backend_pid()"
                        " THEN pg_terminate_backend(pid) ELSE false END"
                    ),
                    {"name": application},
                ).scalars()
            )

    try:
        mastodon.add_many(5)
        [first] = poll_all(engine=engine, settings=settings)
        assert first.ok and first.new == 5
        mastodon.add_many(100)

        def kill_before_second_page(request: FakeRequest) -> None:
            if request.path.startswith(TIMELINE) and request.arg("min_id") and not killed:
                if mastodon.server.hits(TIMELINE) >= 3:  # the first forward page is stored
                    kill_our_backends()

        mastodon.server.on_request = kill_before_second_page
        poll_all(engine=engine, settings=settings)  # may succeed or fail: either is fine
        mastodon.server.on_request = None
        assert killed, "no connection of this test was terminated"

        kill_our_backends()  # and once more between polls
        [healed] = poll_all(engine=engine, settings=settings)
        assert healed.ok, healed.error
        assert _counts(engine) == (105, 105)
    finally:
        engine.dispose()
        admin.dispose()
