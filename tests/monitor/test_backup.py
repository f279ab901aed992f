"""Backups taken while the database is in use, and restored."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from monitor.db import create_db_engine, upgrade
from monitor.errors import UserError
from monitor.services.backup import backup_database
from monitor.services.ingest import record_posts
from tests.conftest import POSTGRES_ADMIN_URL
from tests.factories import make_post


def _count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM posts")).scalar_one()


def test_sqlite_backup_while_open_and_restore(tmp_path: Path) -> None:
    live = tmp_path / "monitor.db"
    engine = create_db_engine(f"sqlite:///{live}")
    upgrade(engine)
    with Session(engine) as session:
        record_posts(session=session, posts=[make_post() for _ in range(25)])
        session.commit()
        # A transaction stays open on the live database during the backup.
        session.execute(sa.text("SELECT count(*) FROM posts")).scalar_one()
        line = backup_database(engine, tmp_path / "backups" / "monitor.bak")
    assert "restore by copying it back" in line
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM posts"))
    engine.dispose()

    shutil.copy(tmp_path / "backups" / "monitor.bak", live)
    restored = create_db_engine(f"sqlite:///{live}")
    assert _count(restored) == 25
    restored.dispose()


def test_backup_refuses_to_overwrite(tmp_path: Path, sqlite_engine: sa.Engine) -> None:
    (tmp_path / "exists.bak").write_text("precious")
    with pytest.raises(UserError, match="exists already"):
        backup_database(sqlite_engine, tmp_path / "exists.bak")


def test_postgres_dump_of_our_schema_restores(tmp_path: Path, postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    upgrade(engine)
    with Session(engine) as session:
        record_posts(session=session, posts=[make_post() for _ in range(5)])
        session.commit()
    dump = tmp_path / "monitor.dump"
    assert "pg_restore" in backup_database(engine, dump)
    schema = str(engine.url.query["options"]).split("search_path=", 1)[1]
    engine.dispose()

    # Restore into a brand-new database, as after losing the server.
    scratch = f"restore_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
    try:
        target = admin.url.set(drivername="postgresql", database=scratch)
        subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={target.render_as_string(False)}", str(dump)],
            capture_output=True,
            check=True,
        )
        restored = sa.create_engine(admin.url.set(database=scratch))
        with restored.connect() as connection:
            count = connection.execute(sa.text(f'SELECT count(*) FROM "{schema}".posts'))
            assert count.scalar_one() == 5
        restored.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{scratch}" WITH (FORCE)'))
        admin.dispose()
