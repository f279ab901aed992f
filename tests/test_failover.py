"""Two ``run`` processes on PostgreSQL: one leads, and the other takes over when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.fakes.mastodon import FakeMastodon
from tests.processes import CLI, free_port, wait_until


def _leader(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/readyz").json()["checks"].get("leader", "")


def test_leader_dies_and_the_follower_carries_on_polling(
    tmp_path: Path, postgres_url: str, mastodon: FakeMastodon
) -> None:
    db_url = postgres_url
    mastodon.add_many(3)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MASTODON", "DATABASE"))},
        "DATABASE_URL": db_url,
        "MASTODON_INSTANCES": mastodon.url,
        "HASHTAGS": "CEADAY21",
        "POLL_INTERVAL_SECONDS": "10",
        "DATA_DIR": str(tmp_path),
    }
    ports = [free_port(), free_port()]
    processes = []
    for port in ports:
        processes.append(
            subprocess.Popen(
                [*CLI, "run"],
                env={**env, "PORT": str(port)},
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_until(lambda port=port: _leader(port) in ("leader", "follower"), "an election")
    engine = sa.create_engine(db_url)

    def stored() -> int:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM posts")).scalar_one()

    try:
        roles = [_leader(port) for port in ports]
        assert sorted(roles) == ["follower", "leader"]
        wait_until(lambda: stored() == 3, "the leader's first poll")
        leader = roles.index("leader")
        follower = 1 - leader
        processes[leader].send_signal(signal.SIGKILL)
        processes[leader].wait(timeout=10)
        mastodon.add_many(4)
        wait_until(lambda: _leader(ports[follower]) == "leader", "the follower to take over")
        wait_until(lambda: stored() == 7, "the new leader to poll")
        with engine.connect() as connection:
            distinct = connection.execute(
                sa.text("SELECT count(DISTINCT external_id) FROM posts")
            ).scalar_one()
        assert distinct == 7
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
        engine.dispose()
