"""``hashtag-monitor run`` as a real process: schema, first admin, polling, web, shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.fakes.mastodon import FakeMastodon
from tests.processes import CLI, free_port, wait_until


def _start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "run"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    return output


def test_run_creates_schema_prints_admin_once_polls_and_serves(
    tmp_path: Path, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(5)
    port = free_port()
    database = tmp_path / "data" / "monitor.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MASTODON", "DATABASE"))},
        "DATABASE_URL": f"sqlite:///{database}",
        "PORT": str(port),
        "MASTODON_INSTANCES": mastodon.url,
        "HASHTAGS": "CEADAY21",
        "DATA_DIR": str(tmp_path / "data"),
        "MEDIA_DIR": str(tmp_path / "data" / "media"),
    }
    base = f"http://127.0.0.1:{port}"
    engine = sa.create_engine(f"sqlite:///{database}")

    def stored_posts() -> int:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM posts")).scalar_one()

    process = _start(env, tmp_path)
    try:
        wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, "/healthz")
        wait_until(lambda: stored_posts() == 5, "the first poll")
        ready = httpx.get(f"{base}/readyz").json()
        home = httpx.get(f"{base}/")
    finally:
        first_output = _stop(process)
    assert process.returncode == 0, first_output
    assert ready["checks"] == {"database": "ok", "scheduler": "ok", "leader": "leader"}
    assert "#CEADAY21" in home.text
    assert first_output.count("one-time password") == 1

    process = _start(env, tmp_path)
    try:
        wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, "/healthz again")
    finally:
        second_output = _stop(process)
    assert "one-time password" not in second_output
    assert stored_posts() == 5
    engine.dispose()


def test_run_on_a_busy_port_says_so_in_one_line_before_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DATABASE")},
            "DATABASE_URL": f"sqlite:///{tmp_path / 'monitor.db'}",
            "PORT": str(port),
            "DATA_DIR": str(tmp_path / "data"),
            "MEDIA_DIR": str(tmp_path / "data" / "media"),
        }
        done = subprocess.run(
            [*CLI, "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert "Serving on" not in done.stdout and "one-time password" not in done.stdout
    assert done.stderr == (
        f"error: port {port} is in use: set PORT to a free one, or stop what listens there\n"
    )
