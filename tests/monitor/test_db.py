"""Schema migrations and backend behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.db import SchemaState, create_db_engine, require_current_schema, schema_state, upgrade
from monitor.errors import DatabaseError
from monitor.models import Source


def test_empty_database_is_upgraded_on_request(db_url: str) -> None:
    engine = create_db_engine(db_url)
    assert schema_state(engine) is SchemaState.EMPTY
    with pytest.raises(DatabaseError, match="db upgrade"):
        require_current_schema(engine)
    require_current_schema(engine, auto_upgrade_empty=True)
    assert schema_state(engine) is SchemaState.CURRENT
    upgrade(engine)  # idempotent
    engine.dispose()


def test_a_newer_schema_is_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM alembic_version"))
        connection.execute(sa.text("INSERT INTO alembic_version VALUES ('f00d')"))
    assert schema_state(engine) is SchemaState.AHEAD
    with pytest.raises(DatabaseError, match="newer than this version"):
        require_current_schema(engine)
    with pytest.raises(DatabaseError, match="newer"):
        upgrade(engine)


def test_times_come_back_aware_utc(engine: Engine) -> None:
    local = datetime(2021, 3, 28, 2, 30, tzinfo=timezone(timedelta(hours=1)))
    with Session(engine) as session:
        session.add(Source(key="k", platform="mastodon", last_success_at=local))
        session.commit()
    with Session(engine) as session:
        stored = session.get_one(Source, 1)
    assert stored.last_success_at == local
    assert stored.last_success_at.tzinfo is not None
    assert stored.last_success_at.utcoffset() == timedelta(0)


def test_naive_times_are_refused(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Source(key="k", platform="mastodon", last_success_at=datetime(2021, 1, 1)))
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            session.commit()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_unreachable_database_is_one_clear_error() -> None:
    engine = create_db_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseError, match="database unreachable"):
        schema_state(engine)


def test_utc_now_column_default(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(Source(key="k", platform="mastodon", last_poll_at=now))
        session.commit()
        assert session.get_one(Source, 1).last_poll_at == now


def test_a_new_sqlite_database_is_private_to_the_service_user(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "monitor.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_data_folders_are_created_private(tmp_path: Path) -> None:
    from monitor.config import check_writable_dir

    check_writable_dir("MEDIA_DIR", tmp_path / "data" / "media")
    assert stat.S_IMODE((tmp_path / "data" / "media").stat().st_mode) == 0o700
