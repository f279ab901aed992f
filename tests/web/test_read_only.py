"""Pages that only read take no write lock on SQLite (issue 18's transactions, issue 19's
"one slow request freezes the service").

Every test holds SQLite's write lock in another connection, as a poll or a decision
does, and asks a read-only route: it must answer without waiting for that writer.
Without the fix each request would wait out the 30-second busy timeout and fail.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from monitor.config import Settings
from monitor.db import read_only, session_scope
from monitor.models import Post
from monitor.web.app import create_app
from tests.web.auth_helpers import app_client


@pytest.fixture
def database(sqlite_engine: Engine) -> tuple[Engine, Path]:
    return sqlite_engine, Path(str(sqlite_engine.url.database))


@pytest.fixture
def writer(database: tuple[Engine, Path]) -> Iterator[sqlite3.Connection]:
    """Another process's writer, mid-transaction, holding the write lock."""
    connection = sqlite3.connect(database[1], isolation_level=None, timeout=0)
    connection.execute("BEGIN IMMEDIATE")
    yield connection
    connection.execute("ROLLBACK")
    connection.close()


def test_a_read_only_session_reads_while_a_writer_holds_the_lock(
    database: tuple[Engine, Path], writer: sqlite3.Connection
) -> None:
    engine, _ = database
    with session_scope(read_only(engine)) as session:
        assert session.exec(select(Post)).all() == []


def test_readyz_answers_while_a_writer_holds_the_lock(
    database: tuple[Engine, Path],
    writer: sqlite3.Connection,
    configure: Callable[..., Settings],
) -> None:
    engine, _ = database
    with app_client(create_app(configure(), engine=engine)) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json()["checks"]["database"] == "ok"


def test_the_public_pages_answer_while_a_writer_holds_the_lock(
    database: tuple[Engine, Path],
    writer: sqlite3.Connection,
    configure: Callable[..., Settings],
) -> None:
    """The finding: a moderator approving a post with slow images, or one client that
    never reads a large gallery.json, made /gallery, /gallery.json and /media fail."""
    engine, _ = database
    with app_client(create_app(configure(), engine=engine)) as client:
        for path in ("/gallery", "/gallery/embed", "/gallery.json"):
            assert client.get(path).status_code == 200, path
        assert client.get(f"/media/{'0' * 64}-320.jpg").status_code == 404
