"""Backups: SQLite's online backup API, or ``pg_dump`` for PostgreSQL.

Both are safe while ``run`` is writing: SQLite copies a consistent snapshot
page by page, and ``pg_dump`` reads inside one repeatable-read transaction.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import Engine

from monitor.errors import UserError


def backup_database(engine: Engine, out: Path) -> str:
    """Write a backup of the database to ``out``; returns a line describing it."""
    if out.exists():
        raise UserError(f"{out} exists already; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    if engine.dialect.name == "sqlite":
        return _backup_sqlite(engine, out)
    return _backup_postgres(engine, out)


def _backup_sqlite(engine: Engine, out: Path) -> str:
    database = engine.url.database
    if not database or database == ":memory:":
        raise UserError("an in-memory database cannot be backed up")
    source = sqlite3.connect(database)
    target = sqlite3.connect(out)
    try:
        with target:
            source.backup(target)
    finally:
        source.close()
        target.close()
    return (
        f"SQLite backup written to {out} ({out.stat().st_size} bytes); restore by copying it back"
    )


def _backup_postgres(engine: Engine, out: Path) -> str:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise UserError("pg_dump not found: install the PostgreSQL client (postgresql-client)")
    url = engine.url
    command = [pg_dump, "--format=custom", "--no-owner", f"--file={out}"]
    # A deployment confined to one schema (search_path in the URL) dumps just that schema.
    options = str(url.query.get("options", ""))
    if "search_path=" in options:
        command.append(f"--schema={options.split('search_path=', 1)[1].split()[0]}")
    plain = url.set(drivername="postgresql", query={})
    command.append(f"--dbname={plain.render_as_string(hide_password=False)}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        out.unlink(missing_ok=True)
        problem = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"pg_dump failed: {problem}")
    return f"PostgreSQL dump written to {out}; restore with pg_restore --dbname=... {out}"
