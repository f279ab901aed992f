"""Leader election: of several ``run`` processes, exactly one runs the scheduled jobs.

On PostgreSQL the leader holds a session-level advisory lock on a connection
it keeps open; when the process dies its connection closes and PostgreSQL
frees the lock, so another process takes over at its next try. On SQLite,
which serves one machine, an exclusive ``flock`` on a file beside the database
does the same job.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("monitor.leader")

#: Arbitrary but fixed: the advisory lock key every replica competes for.
ADVISORY_LOCK_KEY = 0x4854_4D4F  # "HTMO"


class LeaderLock:
    """Try to become the leader; ``held`` says whether this process is it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self._file: IO[str] | None = None
        # Attempts may come from two threads at once (the election job and a caller);
        # the second must see the first one's lock, not compete with it.
        self._attempt = threading.Lock()

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def try_acquire(self) -> bool:
        """One non-blocking attempt; True if this process is (now) the leader."""
        with self._attempt:
            if self.held:
                return True
            if self.engine.dialect.name == "postgresql":
                return self._try_advisory_lock()
            return self._try_file_lock()

    def still_held(self) -> bool:
        """False when the connection holding the advisory lock died (a database restart)."""
        if self._connection is None:
            return self._file is not None
        try:
            self._connection.execute(sa.text("SELECT 1")).scalar_one()
            self._connection.commit()
        except SQLAlchemyError:
            return False
        return True

    def other_leader_exists(self) -> bool:
        """Whether some other process holds leadership (for /readyz on followers)."""
        if self.held:
            return False
        if self.engine.dialect.name == "postgresql":
            query = sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = :key AND granted"
            )
            with self.engine.connect() as connection:
                return bool(connection.execute(query, {"key": ADVISORY_LOCK_KEY}).scalar_one())
        with open(self._lock_path(), "a+") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False

    def release(self) -> None:
        with self._attempt:
            self._release()

    def _release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _try_advisory_lock(self) -> bool:
        connection = self.engine.connect()
        try:
            got = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar_one()
            connection.commit()
        except SQLAlchemyError:
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        log.info("this process is the scheduler leader (PostgreSQL advisory lock)")
        return True

    def _lock_path(self) -> Path:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return Path(f"/tmp/hashtag-monitor-{os.getuid()}.leader")
        return Path(f"{database}.leader")

    def _try_file_lock(self) -> bool:
        handle = open(self._lock_path(), "a+")  # noqa: SIM115  kept open while we lead
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        log.info("this process is the scheduler leader (lock file %s)", self._lock_path())
        return True
