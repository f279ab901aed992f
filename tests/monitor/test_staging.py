"""Staging: media is downloaded once, before review, and approval publishes those bytes.

Each test here reproduces a finding of the security review (issue 12, point 7) or
a rule of the approval guarantee: the public sees exactly what a person saw.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Media
from monitor.config import Settings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.models import AuditEvent, MediaItem, Post, PostStatus
from monitor.services.ingest import record_posts
from monitor.services.media import erase_unreferenced_media, is_published_media
from monitor.services.moderation import (
    StaleDecision,
    decide,
    decide_many,
    load_cards,
    record_reveal,
)
from monitor.services.staging import posts_waiting, stage_all_waiting, stage_post
from tests.factories import make_post
from tests.fakes.server import FakeServer, Reply
from tests.monitor.test_media import jpeg_with_gps, png_bytes, serve, stored_files
from tests.web.auth_helpers import make_user


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(
        OUTBOUND_ALLOW_PRIVATE="true",
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
    )


def _add_post(engine: Engine, *media: Media, **overrides: object) -> int:
    with session_scope(engine) as session:
        result = record_posts(session=session, posts=[make_post(media=tuple(media), **overrides)])
    return result.new_ids[0]


def _post(engine: Engine, post_id: int) -> Post:
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        return post


def _media(engine: Engine, post_id: int) -> list[MediaItem]:
    with Session(engine) as session:
        query = select(MediaItem).where(MediaItem.post_id == post_id).order_by(MediaItem.position)
        return list(session.exec(query))


def _decide(engine: Engine, settings: Settings, post_id: int, action: str, **options: object):
    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        return decide(
            session=session,
            post=post,
            action=action,
            actor="mod",
            settings=settings,
            reason="test" if action == "reject" else None,
            **options,  # type: ignore[arg-type]
        )


def _swapping(server: FakeServer, path: str, first: bytes, then: bytes) -> str:
    """A hostile host: one picture on the first request, another on every later one."""
    served = {"count": 0}

    def reply(_request: object) -> Reply:
        served["count"] += 1
        return Reply(200, first if served["count"] == 1 else then, {"Content-Type": "image/png"})

    server.route("GET", path, reply)
    return server.url + path


def test_staging_stores_images_and_video_thumbnails_once_and_bumps_the_version(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    make_user(gallery_engine, "mod", "moderator")
    photo = serve(fake_server, "/photo.jpg", jpeg_with_gps())
    thumb = serve(fake_server, "/thumb.png", png_bytes(400, 225), "image/png")
    post_id = _add_post(
        gallery_engine,
        Media(kind="image", url=photo, alt="Hands with a message"),
        Media(kind="video", url=fake_server.url + "/clip.mp4", preview_url=thumb, alt="Clip"),
        Media(kind="audio", url=fake_server.url + "/voice.mp3"),
    )
    assert posts_waiting(gallery_engine) == [post_id]

    outcome = stage_post(engine=gallery_engine, settings=settings, post_id=post_id)

    assert outcome.stored == 2 and not outcome.failed
    assert _post(gallery_engine, post_id).version == 2
    image, video, audio = _media(gallery_engine, post_id)
    assert (image.pinned_width, image.pinned_height) == (100, 200)
    assert video.pinned_widths == [320, 400]
    assert audio.pinned_hash is None and audio.pin_error is None
    assert posts_waiting(gallery_engine) == []
    # Staging again, or approving, downloads nothing more: there is one copy.
    assert not stage_post(engine=gallery_engine, settings=settings, post_id=post_id).changed
    _decide(gallery_engine, settings, post_id, "approve")
    assert fake_server.hits("/photo.jpg") == 1 and fake_server.hits("/thumb.png") == 1
    assert fake_server.hits("/clip.mp4") == 0 and fake_server.hits("/voice.mp3") == 0
    assert _post(gallery_engine, post_id).status == PostStatus.APPROVED


def test_a_host_that_swaps_the_bytes_cannot_change_what_is_published(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    """The finding: approval downloaded again, so a second answer could differ."""
    make_user(gallery_engine, "mod", "moderator")
    seen, swapped = png_bytes(300, 200), png_bytes(301, 200)
    url = _swapping(fake_server, "/swap.png", seen, swapped)
    post_id = _add_post(gallery_engine, Media(kind="image", url=url, alt="Hands"))
    stage_all_waiting(engine=gallery_engine, settings=settings)
    with Session(gallery_engine) as session:
        [card] = load_cards(session, [session.get(Post, post_id)], viewer="mod")  # type: ignore[list-item]
    shown = card.copy_url(card.media[0])

    _decide(gallery_engine, settings, post_id, "approve")

    [item] = _media(gallery_engine, post_id)
    assert item.pinned_hash == hashlib.sha256(seen).hexdigest()
    assert shown is not None and item.pinned_hash in shown
    assert item.pinned_width == 300  # the picture the moderator was shown, not the swap
    assert fake_server.hits("/swap.png") == 1


def test_the_card_shows_the_full_file_that_is_published_not_the_platform_preview(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    """The finding: the queue showed a small preview, approval published the original."""
    preview = serve(fake_server, "/small.png", png_bytes(64, 64), "image/png")
    original = serve(fake_server, "/original.png", png_bytes(900, 600), "image/png")
    post_id = _add_post(
        gallery_engine, Media(kind="image", url=original, preview_url=preview, alt="Hands")
    )
    stage_all_waiting(engine=gallery_engine, settings=settings)

    [item] = _media(gallery_engine, post_id)
    assert item.pinned_width == 900 and fake_server.hits("/small.png") == 0
    with Session(gallery_engine) as session:
        [card] = load_cards(session, [session.get(Post, post_id)])  # type: ignore[list-item]
    assert card.copy_url(item) == f"/queue/media/{item.pinned_hash}-640.jpg"


def test_approval_is_refused_until_the_media_is_staged(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    make_user(gallery_engine, "mod", "moderator")
    url = serve(fake_server, "/later.png", png_bytes(50, 50), "image/png")
    post_id = _add_post(gallery_engine, Media(kind="image", url=url, alt="Hands"))

    with pytest.raises(UserError, match="has not been fetched for review yet"):
        _decide(gallery_engine, settings, post_id, "approve")

    assert fake_server.hits("/later.png") == 0  # a decision never downloads
    assert _post(gallery_engine, post_id).status == PostStatus.PENDING


def test_a_decision_on_a_page_from_before_staging_is_stale(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    make_user(gallery_engine, "mod", "moderator")
    url = serve(fake_server, "/p.png", png_bytes(50, 50), "image/png")
    post_id = _add_post(gallery_engine, Media(kind="image", url=url, alt="Hands"))
    version_seen = _post(gallery_engine, post_id).version  # the placeholder was on screen

    stage_all_waiting(engine=gallery_engine, settings=settings)

    with pytest.raises(StaleDecision):
        _decide(gallery_engine, settings, post_id, "approve", expected_version=version_seen)


def test_a_failed_download_is_shown_refuses_approval_and_can_be_retried(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    make_user(gallery_engine, "mod", "moderator")
    state = {"up": False}
    body = png_bytes(40, 40)
    fake_server.route(
        "GET",
        "/flaky.png",
        lambda _r: (
            Reply(200, body, {"Content-Type": "image/png"}) if state["up"] else Reply(503, b"down")
        ),
    )
    post_id = _add_post(
        gallery_engine, Media(kind="image", url=fake_server.url + "/flaky.png", alt="Hands")
    )
    stage_all_waiting(engine=gallery_engine, settings=settings)
    [item] = _media(gallery_engine, post_id)
    assert item.pin_error and "HTTP 503" in item.pin_error
    with pytest.raises(UserError, match="could not be fetched for review"):
        _decide(gallery_engine, settings, post_id, "approve")
    # The job does not hammer a broken link; a moderator's retry does fetch it.
    assert stage_all_waiting(engine=gallery_engine, settings=settings) == 0
    state["up"] = True
    assert stage_post(engine=gallery_engine, settings=settings, post_id=post_id, retry=True).stored
    _decide(gallery_engine, settings, post_id, "approve")
    assert _post(gallery_engine, post_id).status == PostStatus.APPROVED


def test_a_video_is_judged_by_its_thumbnail_and_needs_alt_text(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    """The finding: a video approved with no picture shown and no alt text required."""
    make_user(gallery_engine, "mod", "moderator")
    thumb = serve(fake_server, "/custom-thumb.png", png_bytes(320, 180), "image/png")
    no_thumb = _add_post(
        gallery_engine, Media(kind="video", url=fake_server.url + "/v.mp4", alt="A clip")
    )
    with_thumb = _add_post(
        gallery_engine, Media(kind="video", url=fake_server.url + "/w.mp4", preview_url=thumb)
    )
    stage_all_waiting(engine=gallery_engine, settings=settings)

    with pytest.raises(UserError, match="video 1 has no alt text"):
        _decide(gallery_engine, settings, with_thumb, "approve")
    with pytest.raises(UserError, match="gives no picture"):
        _decide(gallery_engine, settings, no_thumb, "approve")
    [video] = _media(gallery_engine, with_thumb)
    _decide(gallery_engine, settings, with_thumb, "approve", alt_texts={video.id: "Waving hands"})
    assert _post(gallery_engine, with_thumb).status == PostStatus.APPROVED
    assert fake_server.hits("/w.mp4") == 0


def test_hidden_media_must_be_revealed_by_that_moderator(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    """The finding: one key press approved a post whose media was still hidden."""
    make_user(gallery_engine, "mod", "moderator")
    make_user(gallery_engine, "other", "moderator")
    url = serve(fake_server, "/s.png", png_bytes(50, 50), "image/png")
    post_id = _add_post(gallery_engine, Media(kind="image", url=url, alt="Hands", sensitive=True))
    stage_all_waiting(engine=gallery_engine, settings=settings)

    with pytest.raises(UserError, match="its media is hidden"):
        _decide(gallery_engine, settings, post_id, "approve")
    # Another moderator's reveal is not this one's.
    with session_scope(gallery_engine) as session:
        record_reveal(session=session, post=session.get(Post, post_id), actor="other")  # type: ignore[arg-type]
    with Session(gallery_engine) as session:
        [card] = load_cards(session, [session.get(Post, post_id)], viewer="mod")  # type: ignore[list-item]
        assert card.blur_media
        [other_card] = load_cards(session, [session.get(Post, post_id)], viewer="other")  # type: ignore[list-item]
        assert not other_card.blur_media

    _decide(gallery_engine, settings, post_id, "approve", media_seen=True)

    with Session(gallery_engine) as session:
        approval = session.exec(select(AuditEvent).where(AuditEvent.action == "approve")).one()
    assert approval.detail == {"media_seen": True}


def test_every_flag_reason_must_be_acknowledged(gallery_engine: Engine, settings: Settings) -> None:
    """The finding: a post flagged for a phone number was published, its flag never read."""
    make_user(gallery_engine, "mod", "moderator")
    post_id = _add_post(gallery_engine)  # no media
    with session_scope(gallery_engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        post.flagged = True
        post.flag_reasons = ["Personal data: looks like a UK phone number", "Blocked term: x"]
        session.add(post)

    with pytest.raises(UserError, match="acknowledge each reason"):
        _decide(gallery_engine, settings, post_id, "approve")
    with pytest.raises(UserError, match="Blocked term"):
        _decide(
            gallery_engine,
            settings,
            post_id,
            "approve",
            acknowledged_flags=["Personal data: looks like a UK phone number"],
        )
    reasons = ["Personal data: looks like a UK phone number", "Blocked term: x"]
    _decide(gallery_engine, settings, post_id, "approve", acknowledged_flags=reasons)

    with Session(gallery_engine) as session:
        approval = session.exec(select(AuditEvent).where(AuditEvent.action == "approve")).one()
    assert approval.detail == {"acknowledged_flags": reasons}


def test_bulk_approval_leaves_out_posts_that_need_a_closer_look(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    make_user(gallery_engine, "mod", "moderator")
    url = serve(fake_server, "/b.png", png_bytes(50, 50), "image/png")
    clean = _add_post(gallery_engine)
    hidden = _add_post(gallery_engine, Media(kind="image", url=url, alt="A", sensitive=True))
    flagged = _add_post(gallery_engine)
    with session_scope(gallery_engine) as session:
        post = session.get(Post, flagged)
        assert post is not None
        post.flagged, post.flag_reasons = True, ["Personal data: an email address"]
        session.add(post)
    stage_all_waiting(engine=gallery_engine, settings=settings)
    versions = {pid: _post(gallery_engine, pid).version for pid in (clean, hidden, flagged)}

    with session_scope(gallery_engine) as session:
        outcome = decide_many(
            session=session, versions=versions, action="approve", actor="mod", settings=settings
        )

    assert [r.post_id for r in outcome.decided] == [clean]
    assert set(outcome.refused) == {hidden, flagged} and outcome.needs_a_closer_look == 2
    assert _post(gallery_engine, hidden).status == PostStatus.PENDING


def test_alt_text_and_the_stored_copy_survive_an_edit_that_keeps_the_image(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    """The finding: a moderator's alt text was thrown away by an edit of the text alone."""
    make_user(gallery_engine, "mod", "moderator")
    url = serve(fake_server, "/keep.png", png_bytes(60, 60), "image/png")
    original = make_post(media=(Media(kind="image", url=url, key="m1"),))
    with session_scope(gallery_engine) as session:
        [post_id] = record_posts(session=session, posts=[original]).new_ids
    stage_all_waiting(engine=gallery_engine, settings=settings)
    [item] = _media(gallery_engine, post_id)
    _decide(gallery_engine, settings, post_id, "approve", alt_texts={item.id: "Two hands"})

    with session_scope(gallery_engine) as session:
        record_posts(
            session=session, posts=[dataclasses.replace(original, text="Edited words #CEADAY21")]
        )

    [kept] = _media(gallery_engine, post_id)
    assert kept.alt == "Two hands" and kept.alt_edited
    assert kept.pinned_hash == item.pinned_hash
    assert _post(gallery_engine, post_id).status == PostStatus.PENDING
    assert posts_waiting(gallery_engine) == []  # nothing to download again
    assert fake_server.hits("/keep.png") == 1


def test_a_new_image_in_an_edit_is_staged_afresh(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    first = serve(fake_server, "/first.png", png_bytes(60, 60), "image/png")
    second = serve(fake_server, "/second.png", png_bytes(70, 70), "image/png")
    original = make_post(media=(Media(kind="image", url=first, key="m1", alt="A"),))
    with session_scope(gallery_engine) as session:
        [post_id] = record_posts(session=session, posts=[original]).new_ids
    stage_all_waiting(engine=gallery_engine, settings=settings)

    with session_scope(gallery_engine) as session:
        swapped = (Media(kind="image", url=second, key="m2", alt="A"),)
        record_posts(session=session, posts=[dataclasses.replace(original, media=swapped)])

    [item] = _media(gallery_engine, post_id)
    assert item.pinned_hash is None
    assert stage_all_waiting(engine=gallery_engine, settings=settings) == 1
    assert _media(gallery_engine, post_id)[0].pinned_width == 70


def test_stored_copies_follow_the_post_not_the_decision(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    """Copies are private until approval, kept while the post is held, erased when it goes."""
    make_user(gallery_engine, "mod", "moderator")
    url = serve(fake_server, "/c.png", png_bytes(500, 500), "image/png")
    post_id = _add_post(gallery_engine, Media(kind="image", url=url, alt="A"))
    stage_all_waiting(engine=gallery_engine, settings=settings)
    [item] = _media(gallery_engine, post_id)
    assert item.pinned_hash is not None
    old = time.time() - 3600
    for path in stored_files(settings.media_dir):
        os.utime(path, (old, old))

    with Session(gallery_engine) as session:
        assert not is_published_media(session, item.pinned_hash)
        assert erase_unreferenced_media(session, settings) == 0  # pending: kept for review
    _decide(gallery_engine, settings, post_id, "approve")
    with Session(gallery_engine) as session:
        assert is_published_media(session, item.pinned_hash)
    _decide(gallery_engine, settings, post_id, "reject")
    with Session(gallery_engine) as session:
        assert not is_published_media(session, item.pinned_hash)
        assert erase_unreferenced_media(session, settings) == 0  # rejected: kept until purged
    with session_scope(gallery_engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        post.status = PostStatus.REMOVED
        session.add(post)
    with Session(gallery_engine) as session:
        assert erase_unreferenced_media(session, settings) == 2  # 320 and 500
    assert stored_files(settings.media_dir) == []


def test_a_lost_copy_is_fetched_again_before_approval(
    gallery_engine: Engine, settings: Settings, fake_server: FakeServer
) -> None:
    make_user(gallery_engine, "mod", "moderator")
    url = serve(fake_server, "/lost.png", png_bytes(50, 50), "image/png")
    post_id = _add_post(gallery_engine, Media(kind="image", url=url, alt="A"))
    stage_all_waiting(engine=gallery_engine, settings=settings)
    version = _post(gallery_engine, post_id).version
    for path in stored_files(settings.media_dir):
        path.unlink()

    assert stage_post(engine=gallery_engine, settings=settings, post_id=post_id, retry=True).stored
    assert _post(gallery_engine, post_id).version == version + 1  # shown anew, looked at anew
    assert fake_server.hits("/lost.png") == 2


def test_images_per_post_are_capped_and_the_cap_is_flagged(gallery_engine: Engine) -> None:
    """The finding: images per post were not capped, and each is fetched and decoded."""
    many = tuple(Media(kind="image", url=f"https://files.example/{n}.jpg") for n in range(25))
    post_id = _add_post(gallery_engine, *many)
    assert len(_media(gallery_engine, post_id)) == 20
    post = _post(gallery_engine, post_id)
    assert post.flagged and any("Has 25 attachments" in r for r in post.flag_reasons or [])
