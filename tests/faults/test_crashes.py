"""SIGKILL in the middle of a refresh and of an approval that is pinning media.

The process is killed at a known point (the platform or media server is made
to hang there), then the work is done again, and the stored state is checked
against the truth: nothing half-applied, nothing half-published.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from adapters.base import Media
from monitor.config import Settings
from monitor.db import create_db_engine, upgrade
from monitor.models import MediaItem, Post, PostStatus
from monitor.services.ingest import record_posts
from monitor.services.media import erase_unreferenced_media
from monitor.services.moderation import decide
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from monitor.services.staging import stage_post
from monitor.services.users import add_user
from tests.factories import make_post
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FOREVER, FakeServer, Reply
from tests.monitor.test_media import jpeg_with_gps
from tests.processes import CLI

DEADLINE_S = 60


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not ready() and time.monotonic() < deadline:
        assert process.poll() is None, "the process ended before the point to kill it"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def database(tmp_path: Path) -> tuple[str, sa.Engine]:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()


def test_sigkill_mid_refresh_then_refresh_again(
    database: tuple[str, sa.Engine], configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    url, engine = database
    settings = configure(DATABASE_URL=url, MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    statuses = mastodon.add_many(60)
    poll_all(engine=engine, settings=settings)
    for status in statuses:
        status["favourites_count"] = 7
    mastodon.delete(statuses[0]["id"])  # answered by the first bulk request
    mastodon.delete(statuses[-1]["id"])  # by the last one, never reached before the kill
    # The second of three bulk requests hangs, and the process dies waiting for it.
    mastodon.server.fail("hang", path="/api/v1/statuses", after=1, seconds=FOREVER)

    process = _cli("refresh", env={"HTTP_TIMEOUT_SECONDS": "60"})
    _kill_when(process, lambda: mastodon.server.hits("/api/v1/statuses") >= 2)

    # A batch of refs is applied in one transaction: nothing of it was half-applied.
    with Session(engine) as session:
        posts = {p.external_id: p for p in session.exec(select(Post))}
    assert {p.status for p in posts.values()} == {PostStatus.PENDING}
    assert {p.likes for p in posts.values()} == {0}

    mastodon.server.faults.clear()
    [summary] = refresh_all(engine=engine, settings=settings)
    assert summary.ok and summary.removed == 2
    with Session(engine) as session:
        posts = {p.external_id: p for p in session.exec(select(Post))}
    assert len(posts) == 60
    assert {
        p.status for uri, p in posts.items() if uri in (statuses[0]["uri"], statuses[-1]["uri"])
    } == {PostStatus.REMOVED}
    assert all(p.likes == 7 for p in posts.values() if p.status != PostStatus.REMOVED)


def test_sigkill_while_fetching_media_leaves_the_post_pending_and_nothing_published(
    database: tuple[str, sa.Engine],
    configure: Callable[..., Settings],
    fake_server: FakeServer,
    tmp_path: Path,
) -> None:
    url, engine = database
    media_dir = tmp_path / "media"
    settings = configure(DATABASE_URL=url, MEDIA_DIR=str(media_dir), OUTBOUND_ALLOW_PRIVATE="true")
    photo = jpeg_with_gps(1600, 1200)
    fake_server.route(
        "GET", "/photo.jpg", lambda request: Reply(200, photo, {"Content-Type": "image/jpeg"})
    )
    post = make_post(
        media=(
            Media(kind="image", url=f"{fake_server.url}/photo.jpg", alt="A hand with a message"),
        )
    )
    with Session(engine) as session:
        record_posts(session=session, posts=[post])
        add_user(
            session=session,
            name="alice",
            role="moderator",
            password="a long enough password",
            actor="test",
        )
        session.commit()
    # The image arrives a byte at a time: the approval is killed mid-download.
    fake_server.fail("drip", path="/photo.jpg", seconds=0.5)

    process = _cli(
        "moderate", "approve", f"mastodon:{post.external_id}", "--as", "alice",
        env={"DATABASE_URL": url, "MEDIA_DIR": str(media_dir), "OUTBOUND_ALLOW_PRIVATE": "true"},
    )  # fmt: skip
    _kill_when(process, lambda: fake_server.hits("/photo.jpg") >= 1)

    with Session(engine) as session:
        stored = session.exec(select(Post)).one()
        item = session.exec(select(MediaItem)).one()
        assert stored.status == PostStatus.PENDING
        assert item.pinned_path is None
        erase_unreferenced_media(session, settings, grace_seconds=0)
    assert not [p for p in media_dir.rglob("*") if p.is_file()]  # no half-written file kept

    with Session(engine) as session:
        stored = session.exec(select(Post)).one()
    # The next try fetches the picture (outside any transaction), then approves it.
    stage_post(engine=engine, settings=settings, post_id=stored.id or 0, retry=True)
    with Session(engine) as session:
        stored = session.exec(select(Post)).one()
        decide(session=session, post=stored, action="approve", actor="alice", settings=settings)
        session.commit()
        item = session.exec(select(MediaItem)).one()
    assert item.pinned_path is not None and (media_dir / item.pinned_path).is_file()
