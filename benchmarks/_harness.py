"""What every benchmark shares: the SPEC's JSON line, and timing helpers.

Each result is a ratio against a simpler baseline measured in the same run,
because the machine is shared and absolute times wobble.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from sqlalchemy.engine import Engine

from monitor.db import create_db_engine, upgrade


def emit(bench: str, metric: str, value: float, baseline: float, n: int, **extra: Any) -> None:
    """Print one result line: ``ratio`` is value / baseline."""
    ratio = value / baseline if baseline else float("nan")
    line = {
        "bench": bench,
        "metric": metric,
        "value": round(value, 3),
        "baseline": round(baseline, 3),
        "ratio": round(ratio, 3),
        "n": n,
        **extra,
    }
    print(json.dumps(line), flush=True)


def seconds(action: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def stamp(moment: datetime) -> str:
    """A time as ``UTCDateTime`` stores it on SQLite (naive UTC), for rows written raw."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


class ScratchDatabase:
    """A fresh, migrated SQLite database in a temporary directory."""

    def __init__(self) -> None:
        self._dir = TemporaryDirectory(prefix="hm-bench-")
        self.path = Path(self._dir.name) / "bench.db"
        self.url = f"sqlite:///{self.path}"

    def __enter__(self) -> Engine:
        self.engine = create_db_engine(self.url)
        upgrade(self.engine)
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()
        self._dir.cleanup()


#: One audit row of a decision, as the bulk fills write them.
EVENT_SQL = (
    "INSERT INTO moderation_events (post_id, at, actor, action, from_status, to_status)"
    " VALUES (?,?,?,?,?,?)"
)


@contextmanager
def bulk_writer(path: str, *, analyse: bool = True) -> Iterator[sqlite3.Connection]:
    """A raw connection that fills a scratch store fast (WAL, no fsync, one transaction),
    closed afterwards; ``analyse`` gathers the planner's statistics as a live store has."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        with connection:
            yield connection
        if analyse:
            connection.execute("ANALYZE")
    finally:
        connection.close()


def read_rows(path: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """The rows of one query on a scratch store, through a connection of its own."""
    connection = sqlite3.connect(path)
    try:
        return [tuple(row) for row in connection.execute(sql, params).fetchall()]
    finally:
        connection.close()
