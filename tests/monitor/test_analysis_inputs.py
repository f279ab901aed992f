"""Hostile and odd pictures on their way through staging and the image checks.

Each either becomes a stored copy that is checked (done, with the face detector
run on it for real), or is refused at staging with the reason on the card, never
checked and never approvable. No input leaves a post "checked, nothing found"
without a check having run, and none stops the next post being checked.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.analysis.runner import Analyser
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import MediaAnalysis, MediaItem, Post
from monitor.services.analysis import DONE, analyse_waiting
from monitor.services.ingest import record_posts
from monitor.services.moderation import CloserLookNeeded, decide, load_cards
from monitor.services.staging import stage_all_waiting
from tests.factories import make_post
from tests.fakes.server import FakeServer, Reply
from tests.monitor.test_media import png_bomb
from tests.web.auth_helpers import make_user


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _animated_gif() -> bytes:
    frames = [Image.new("P", (120, 80), colour) for colour in (1, 50, 200)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _png16() -> bytes:
    return _save(Image.new("I;16", (300, 200), 40000), "PNG")


def _cmyk_jpeg() -> bytes:
    return _save(Image.new("CMYK", (300, 200), (0, 120, 200, 10)), "JPEG")


STORED = {
    "animated.gif": _animated_gif,
    "cmyk.jpg": _cmyk_jpeg,
    "sixteen-bit.png": _png16,
    "tiny.png": lambda: _save(Image.new("RGB", (1, 1), "red"), "PNG"),
    "huge.jpg": lambda: _save(Image.new("RGB", (6000, 4000), (90, 90, 90)), "JPEG", quality=30),
}
REFUSED = {
    "bomb.png": png_bomb,
    "truncated.jpg": lambda: _save(Image.new("RGB", (400, 300), "blue"), "JPEG")[:600],
    "not-an-image.jpg": lambda: b"<html><body>hello</body></html>",
}


@pytest.fixture(scope="module")
def analyser() -> Iterator[Analyser]:
    with Analyser(targets={"faces": "monitor.analysis.faces:FaceDetector"}) as analyser:
        analyser.start()
        yield analyser


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path, sqlite_url: str) -> Settings:
    return configure(
        DATABASE_URL=sqlite_url,
        OUTBOUND_ALLOW_PRIVATE="true",
        MEDIA_DIR=str(tmp_path / "media"),
        IMAGE_ANALYSIS="true",
        HTTP_TIMEOUT_SECONDS="10",
    )


def test_odd_and_hostile_pictures_are_checked_or_refused_never_waved_through(
    sqlite_engine: Engine, settings: Settings, analyser: Analyser, fake_server: FakeServer
) -> None:
    make_user(sqlite_engine, "mod", "moderator")
    ids: dict[str, int] = {}
    for name, build in {**STORED, **REFUSED}.items():
        body = build()
        fake_server.route(
            "GET", f"/{name}", lambda _r, b=body: Reply(200, b, {"Content-Type": "image/jpeg"})
        )
        media = (Media(kind="image", url=f"{fake_server.url}/{name}", alt=name),)
        with session_scope(sqlite_engine) as session:
            ids[name] = record_posts(session=session, posts=[make_post(media=media)]).new_ids[0]
    stage_all_waiting(engine=sqlite_engine, settings=settings)

    assert analyse_waiting(engine=sqlite_engine, settings=settings, analyser=analyser) == len(
        STORED
    )

    with Session(sqlite_engine) as session:
        rows = {row.post_id: row for row in session.exec(select(MediaAnalysis))}
        for name in STORED:
            row = rows[ids[name]]
            assert (row.status, row.error, row.findings) == (DONE, None, []), name
        for name in REFUSED:
            item = session.exec(select(MediaItem).where(MediaItem.post_id == ids[name])).one()
            assert item.pin_error and ids[name] not in rows, name
            post = session.get(Post, ids[name])
            assert post is not None
            [card] = load_cards(session, [post], image_analysis=True)
            assert card.being_checked == []  # nothing stored, so nothing to check...
            with pytest.raises(CloserLookNeeded, match="could not be fetched for review"):
                # ...and nothing approvable: the moderator is told why.
                decide(
                    session=session,
                    post=post,
                    action="approve",
                    actor="mod",
                    settings=settings,
                    media_seen=True,
                )
