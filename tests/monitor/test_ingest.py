"""Upserting posts: no duplicates, engagement history, edits back to the queue."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Engagement, Media
from monitor.models import (
    AuditEvent,
    EngagementSnapshot,
    MediaItem,
    Post,
    PostHashtag,
    PostStatus,
)
from monitor.services.ingest import record_posts
from tests.factories import make_post


def _count(session: Session, model: type) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_new_posts_are_stored_with_tags_media_and_a_first_snapshot(engine: Engine) -> None:
    posts = [make_post() for _ in range(3)]
    with Session(engine) as session:
        result = record_posts(session=session, posts=posts)
        session.commit()
        assert (result.new, result.updated, result.edited) == (3, 0, 0)
        assert _count(session, Post) == 3
        assert _count(session, PostHashtag) == 3
        assert _count(session, MediaItem) == 3
        assert _count(session, EngagementSnapshot) == 3
        stored = session.exec(select(Post).where(Post.external_id == posts[0].external_id)).one()
    assert stored.status == PostStatus.PENDING
    assert stored.created_at == posts[0].created_at
    assert stored.likes == 1 and stored.views is None


def test_seen_again_is_not_stored_twice_and_gains_hashtags(engine: Engine) -> None:
    post = make_post()
    other_tag = dataclasses.replace(post, hashtags=("helpinghands",))
    with Session(engine) as session:
        record_posts(session=session, posts=[post])
        again = record_posts(session=session, posts=[post, other_tag])
        session.commit()
        assert again.new == 0 and again.edited == 0
        assert _count(session, Post) == 1
        tags = set(session.exec(select(PostHashtag.tag)))
    assert tags == {"ceaday21", "helpinghands"}


def test_engagement_changes_become_snapshots_and_unknown_stays_unknown(engine: Engine) -> None:
    post = make_post()
    with Session(engine) as session:
        record_posts(session=session, posts=[post])
        record_posts(session=session, posts=[post])
        record_posts(
            session=session,
            posts=[dataclasses.replace(post, engagement=Engagement(likes=9, shares=2, replies=1))],
        )
        session.commit()
        snapshots = list(session.exec(select(EngagementSnapshot).order_by(EngagementSnapshot.id)))
    assert [(s.likes, s.shares, s.views) for s in snapshots] == [(1, 0, None), (9, 2, None)]


def test_edit_of_an_approved_post_sends_it_back_to_the_queue(engine: Engine) -> None:
    post = make_post()
    with Session(engine) as session:
        record_posts(session=session, posts=[post])
        stored = session.exec(select(Post)).one()
        stored.status = PostStatus.APPROVED
        session.add(stored)
        session.commit()
        edited = dataclasses.replace(
            post,
            text="Now with my school's name #CEADAY21",
            media=(Media(kind="image", url="https://files.example.social/new.jpg"),),
        )
        result = record_posts(session=session, posts=[edited])
        session.commit()
        session.refresh(stored)
        event = session.exec(select(AuditEvent)).one()
        media = list(session.exec(select(MediaItem)))
    assert result.edited == 1
    assert stored.status == PostStatus.PENDING and stored.version == 2
    assert stored.edited_at is not None and "school" in stored.text
    assert (event.action, event.from_status, event.to_status) == (
        "edited_at_source",
        "approved",
        "pending",
    )
    assert event.detail == {"old_text": post.text, "new_text": edited.text}
    assert [m.url for m in media] == ["https://files.example.social/new.jpg"]


def test_a_new_signed_url_for_the_same_attachment_is_not_an_edit(engine: Engine) -> None:
    post = make_post(media=(Media(kind="image", url="https://cdn/a?sig=1", key="m1"),))
    with Session(engine) as session:
        record_posts(session=session, posts=[post])
        resigned = dataclasses.replace(
            post, media=(Media(kind="image", url="https://cdn/a?sig=2", key="m1"),)
        )
        assert record_posts(session=session, posts=[resigned]).edited == 0


def test_duplicates_inside_one_page_are_merged(engine: Engine) -> None:
    post = make_post()
    with Session(engine) as session:
        result = record_posts(session=session, posts=[post, post, post])
        session.commit()
        assert result.new == 1 and _count(session, Post) == 1


def test_large_batches_are_chunked(engine: Engine) -> None:
    posts = [make_post() for _ in range(1200)]
    with Session(engine) as session:
        assert record_posts(session=session, posts=posts).new == 1200
        assert record_posts(session=session, posts=posts).new == 0
        session.commit()
        assert _count(session, Post) == 1200


def test_a_fresh_signed_url_replaces_the_expired_one_without_an_edit(engine: Engine) -> None:
    soon = datetime(2021, 3, 19, tzinfo=UTC)
    post = make_post(
        media=(Media(kind="image", url="https://cdn/a?sig=1", key="m1", expires_at=soon),)
    )
    later = soon + timedelta(days=1)
    resigned = dataclasses.replace(
        post, media=(Media(kind="image", url="https://cdn/a?sig=2", key="m1", expires_at=later),)
    )
    with Session(engine) as session:
        record_posts(session=session, posts=[post])
        assert record_posts(session=session, posts=[resigned]).edited == 0
        session.commit()
        media = session.exec(select(MediaItem)).one()
    assert (media.url, media.expires_at) == ("https://cdn/a?sig=2", later)


def test_absurd_tags_and_dimensions_do_not_fail_the_page(engine: Engine) -> None:
    post = make_post(
        hashtags=("ceaday21", "x" * 5000),
        media=(Media(kind="image", url="https://cdn/b", width=10**12, height=-5),),
    )
    with Session(engine) as session:
        assert record_posts(session=session, posts=[post]).new == 1
        record_posts(session=session, posts=[dataclasses.replace(post, hashtags=("y" * 300,))])
        session.commit()
        assert list(session.exec(select(PostHashtag.tag))) == ["ceaday21"]
        media = session.exec(select(MediaItem)).one()
    assert (media.width, media.height) == (None, None)
