"""A poll killed with SIGKILL between two pages loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from monitor.config import Settings
from monitor.db import create_db_engine, upgrade
from monitor.services.polling import poll_all
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FOREVER
from tests.processes import CLI

DEADLINE_S = 60


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql)).scalar_one()


def test_sigkill_mid_poll_then_repoll(
    tmp_path: Path, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    settings = configure(DATABASE_URL=url, MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    engine = create_db_engine(url)
    upgrade(engine)
    mastodon.add_many(5)
    poll_all(engine=engine, settings=settings)
    mastodon.add_many(120)
    # The second page of the next poll hangs: the process dies waiting for it.
    mastodon.server.fail("hang", path="/api/v1/timelines/tag/", after=1, seconds=FOREVER)

    process = subprocess.Popen(
        [*CLI, "poll"],
        env={**os.environ, "HTTP_TIMEOUT_SECONDS": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + DEADLINE_S
    while _count(engine, "SELECT count(*) FROM posts") < 45 and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert _count(engine, "SELECT count(*) FROM posts") == 45

    mastodon.server.faults.clear()
    [summary] = poll_all(engine=engine, settings=settings)
    assert summary.ok and summary.new == 80
    assert _count(engine, "SELECT count(*) FROM posts") == 125
    assert _count(engine, "SELECT count(DISTINCT external_id) FROM posts") == 125
    unfinished = _count(engine, "SELECT count(*) FROM poll_runs WHERE finished_at IS NULL")
    assert unfinished == 1  # the killed run stays visible as never finished
    engine.dispose()
