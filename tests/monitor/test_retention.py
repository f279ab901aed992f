"""Retention and erasure: only what we may keep, decisions kept without the content."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Author
from monitor.config import Settings
from monitor.models import AuditEvent, EngagementSnapshot, Post, PostStatus
from monitor.services.escalation import escalate
from monitor.services.ingest import ERASED_AUTHOR_REASON, record_posts
from monitor.services.placements import set_status
from monitor.services.retention import erase_author, kept_for_escalation, purge, purge_candidates
from tests.factories import make_post
from tests.web.auth_helpers import make_user

NOW = datetime(2021, 6, 1, 12, tzinfo=UTC)


def _store(session: Session, status: str, age_days: int, **overrides: object) -> Post:
    post = make_post(**overrides)
    seen = NOW - timedelta(days=age_days)
    record_posts(session=session, posts=[post], now=seen)
    row = session.exec(select(Post).where(Post.external_id == post.external_id)).one()
    row.status = status
    # As the app changes a status: in every campaign the post is in (retention reads those).
    set_status(session, [row.id or 0], PostStatus(status))
    if status == PostStatus.REMOVED:
        row.deleted_at = seen
    if status == PostStatus.REJECTED:
        session.add(
            AuditEvent(
                post_id=row.id,
                at=seen,
                actor="alice",
                action="reject",
                from_status="pending",
                to_status="rejected",
                reason="off topic",
            )
        )
    session.add(row)
    return row


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path) -> Settings:
    return configure(MEDIA_DIR=str(tmp_path / "media"))


def test_purge_deletes_by_state_and_age_and_keeps_decisions(
    engine: Engine, settings: Settings
) -> None:
    with Session(engine) as session:
        old_rejected = _store(session, "rejected", 31)
        _store(session, "rejected", 29)
        _store(session, "removed", 0)
        old_pending = _store(session, "pending", 91)
        _store(session, "pending", 89)
        _store(session, "approved", 400)
        session.add(
            AuditEvent(
                post_id=old_rejected.id,
                at=NOW,
                actor="system",
                action="edited_at_source",
                detail={"old_text": "my phone 07700 900123", "new_text": "x"},
            )
        )
        session.commit()
        old_pending_id = old_pending.id
        planned = purge_candidates(session, settings, NOW)
        assert sorted(c.status for c in planned) == ["pending", "rejected", "removed"]

        counts = purge(session=session, settings=settings, now=NOW)
        session.commit()
        assert counts == {"pending": 1, "rejected": 1, "removed": 1}
        remaining = sorted(p.status for p in session.exec(select(Post)))
        assert remaining == ["approved", "pending", "rejected"]
        assert old_pending_id not in {p.id for p in session.exec(select(Post))}
        kept = list(session.exec(select(AuditEvent).where(AuditEvent.action == "reject")))
        assert len(kept) == 2 and {e.reason for e in kept} == {"off topic"}
        edit = session.exec(select(AuditEvent).where(AuditEvent.action == "edited_at_source")).one()
        assert edit.post_id is None and edit.detail is None
        snapshots = session.execute(
            sa.select(sa.func.count()).select_from(EngagementSnapshot)
        ).scalar_one()
        assert snapshots == 3
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "retention_purge")).one()
        assert audit.detail == {"deleted": counts}


def test_erased_author_is_gone_and_comes_back_flagged_only(
    engine: Engine, settings: Settings
) -> None:
    author = Author(handle="@kid@example.social", name="Kid")
    with Session(engine) as session:
        for _ in range(3):
            _store(session, "approved", 1, author=author)
        _store(session, "pending", 1)
        session.commit()
        erased = erase_author(
            session=session,
            settings=settings,
            platform="mastodon",
            handle="kid@example.social",
            actor="dpo",
        )
        session.commit()
        assert erased == 3
        assert [p.author_handle for p in session.exec(select(Post))] != []
        assert all(p.author_handle != author.handle for p in session.exec(select(Post)))
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "author_erased")).one()
        assert "kid" not in str(event.detail) and event.actor == "dpo"

        record_posts(session=session, posts=[make_post(author=author)])
        session.commit()
        back = session.exec(select(Post).where(Post.author_handle == author.handle)).one()
    assert back.status == PostStatus.PENDING and back.flagged
    assert back.flag_reasons == [ERASED_AUTHOR_REASON]


def test_erasure_keeps_a_post_under_an_open_escalation_as_evidence(
    engine: Engine, settings: Settings
) -> None:
    make_user(engine, "mo", "moderator")
    author = Author(handle="@teen@example.social", name="Teen")
    with Session(engine) as session:
        disclosure = _store(session, "pending", 1, author=author)
        _store(session, "approved", 1, author=author)
        session.commit()
        escalate(session=session, settings=settings, post=disclosure, actor="mo", reason="at risk")
        session.commit()
        erased = erase_author(
            session=session, settings=settings, platform="mastodon", handle="teen@example.social",
            actor="dpo",
        )  # fmt: skip
        session.commit()
        kept = kept_for_escalation(
            session=session, platform="mastodon", handle="teen@example.social"
        )
        left = [p.id for p in session.exec(select(Post).where(Post.author_handle == author.handle))]
    assert (erased, kept) == (1, 1) and left == [disclosure.id]
