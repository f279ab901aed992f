"""``hashtag-monitor worker`` on PostgreSQL: two workers share the jobs, and a worker
killed mid-job loses nothing and does nothing twice."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.config import Settings
from monitor.db import create_db_engine, session_scope, upgrade
from monitor.models import AuditEvent, MediaAnalysis
from monitor.services.audit import Action
from monitor.services.ingest import record_posts
from monitor.services.jobs import enqueue_waiting, job_app
from monitor.services.staging import stage_all_waiting
from tests.factories import make_post
from tests.fakes.server import FakeServer, Reply
from tests.monitor import analysis_detectors as fake
from tests.processes import CLI, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SLOW_DETECTOR = "slow=tests.monitor.analysis_detectors:Slow"


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_db_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def env(tmp_path: Path, postgres_url: str) -> dict[str, str]:
    markers = tmp_path / "markers"
    markers.mkdir()
    return {
        "DATABASE_URL": postgres_url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "DATA_DIR": str(tmp_path / "data"),
        "IMAGE_ANALYSIS": "true",
        "OUTBOUND_ALLOW_PRIVATE": "true",
        # A busy machine must not fail the downloads this test is not about.
        "HTTP_TIMEOUT_SECONDS": "10",
        fake.MARKERS_ENV: str(markers),
    }


@pytest.fixture
def settings(configure: Callable[..., Settings], env: dict[str, str]) -> Settings:
    return configure(**env)


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "worker", "--heartbeat-seconds", "1", "--detector", SLOW_DETECTOR],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _analyses(engine: Engine) -> list[MediaAnalysis]:
    with Session(engine) as session:
        return list(session.exec(select(MediaAnalysis)))


def test_a_worker_killed_mid_job_has_its_job_done_once_by_another(
    engine: Engine, settings: Settings, env: dict[str, str], fake_server: FakeServer
) -> None:
    posts = []
    for name, colour in (("slow", fake.SLOW), ("a", (20, 160, 40)), ("b", (40, 40, 160))):
        body = _png(colour)
        fake_server.route(
            "GET", f"/{name}.png", lambda _r, b=body: Reply(200, b, {"Content-Type": "image/png"})
        )
        media = (Media(kind="image", url=f"{fake_server.url}/{name}.png", alt=name),)
        with session_scope(engine) as session:
            posts += record_posts(session=session, posts=[make_post(media=media)]).new_ids
    stage_all_waiting(engine=engine, settings=settings)
    assert enqueue_waiting(engine=engine, settings=settings, app=job_app(engine)) == 3
    # Queued again at once: the queueing lock keeps each copy to one waiting job.
    assert enqueue_waiting(engine=engine, settings=settings, app=job_app(engine)) == 0

    markers = Path(env[fake.MARKERS_ENV])
    workers = [_worker(env), _worker(env)]
    try:
        wait_until(lambda: list(markers.iterdir()), "a worker to start on the slow image")
        [marker] = list(markers.iterdir())
        victim_pid = int(marker.name.partition("-")[0])
        [victim] = [w for w in workers if w.pid == victim_pid]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)

        def all_done() -> bool:
            rows = _analyses(engine)
            return len(rows) == 3 and all(row.status == "done" for row in rows)

        wait_until(all_done, "the survivor to finish every job, the killed one's too")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()

    slow_row = next(row for row in _analyses(engine) if row.post_id == posts[0])
    assert slow_row.attempts == 2  # cut off once, then done by the other worker
    with Session(engine) as session:
        flags = list(session.exec(select(AuditEvent).where(AuditEvent.action == Action.FLAG)))
    # Each image's finding applied exactly once, the killed job's included.
    assert sorted(event.post_id for event in flags) == sorted(posts)
