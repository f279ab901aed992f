"""Engines, sessions and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from monitor.errors import DatabaseError
from monitor.resources import migrations_dir

SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_db_engine(url: str) -> Engine:
    """An engine tuned per backend: WAL, busy timeout and foreign keys on SQLite."""
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            _create_private_file(Path(database))
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _create_private_file(path: Path) -> None:
    """Create the SQLite file (and its folder) readable by the service's user only.

    SQLite gives its -wal and -shm files the database file's permissions, so they
    stay private too; an existing file keeps the permissions it has.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (below), so the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


#: Execution option of :func:`read_only`: the connection's transactions never write.
_READ_ONLY = "hashtag_monitor_read_only"


def read_only(engine: Engine) -> Engine:
    """The same engine and pool, for work that only reads (public pages, health checks).

    On SQLite its transactions begin deferred, so they take no write lock: a page
    sent slowly to a client that never reads it cannot hold up polls, decisions and
    every other writer (WAL readers do not block writers). Elsewhere it is the engine.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
    """Take the write lock at BEGIN: a deferred transaction that reads and then writes
    fails at once with "database is locked" when another writer committed in between,
    instead of waiting out the busy timeout. Read-only work begins deferred."""
    if connection.get_execution_options().get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class SchemaState(StrEnum):
    EMPTY = "empty"
    CURRENT = "current"
    BEHIND = "behind"
    AHEAD = "ahead"


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def schema_state(engine: Engine) -> SchemaState:
    """Where the database's schema stands against this version's migrations."""
    script = ScriptDirectory.from_config(_alembic_config(engine))
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except OperationalError as exc:
        raise DatabaseError(f"database unreachable: {describe_db_error(exc)}") from None
    heads = set(script.get_heads())
    if not current:
        return SchemaState.EMPTY
    if current == heads:
        return SchemaState.CURRENT
    known = {rev.revision for rev in script.walk_revisions()}
    return SchemaState.BEHIND if current <= known else SchemaState.AHEAD


def upgrade(engine: Engine) -> None:
    """Apply every migration up to the newest (``hashtag-monitor db upgrade``)."""
    if schema_state(engine) is SchemaState.AHEAD:
        raise DatabaseError(
            "the database schema is newer than this version of hashtag-monitor; upgrade the"
            " software instead"
        )
    command.upgrade(_alembic_config(engine), "heads")


def require_current_schema(engine: Engine, *, auto_upgrade_empty: bool = False) -> None:
    """Refuse to run on a schema we do not know; optionally create it on an empty database."""
    state = schema_state(engine)
    if state is SchemaState.EMPTY and auto_upgrade_empty:
        upgrade(engine)
    elif state is SchemaState.EMPTY:
        raise DatabaseError("the database is empty: run `hashtag-monitor db upgrade` first")
    elif state is SchemaState.BEHIND:
        raise DatabaseError("the database schema is out of date: run `hashtag-monitor db upgrade`")
    elif state is SchemaState.AHEAD:
        raise DatabaseError(
            "the database schema is newer than this version of hashtag-monitor; refusing to start"
        )


def describe_db_error(exc: BaseException) -> str:
    """The first line of a driver error, without SQL or parameters."""
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__
