"""Escalations at the service level: evidence kept from retention until closed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import Escalation, Post, utcnow
from monitor.services.escalation import close_escalation, escalate
from monitor.services.ingest import record_posts
from monitor.services.moderation import StaleDecision, decide
from monitor.services.retention import purge
from tests.factories import make_post
from tests.web.auth_helpers import make_user


def test_an_open_escalation_keeps_the_post_from_retention_until_closed(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(RETENTION_REJECTED_DAYS="1", RETENTION_PENDING_DAYS="1")
    make_user(engine, "mo", "moderator")
    make_user(engine, "lead", "safeguarding")
    with session_scope(engine) as session:
        kept, other = record_posts(session=session, posts=[make_post(), make_post()]).new_ids
        long_ago = utcnow() - timedelta(days=30)
        session.execute(sa.update(Post.__table__).values(first_seen_at=long_ago))
        escalate(
            session=session,
            settings=settings,
            post=session.get_one(Post, kept),
            actor="mo",
            reason="disclosure",
        )

    with session_scope(engine) as session:
        assert purge(session=session, settings=settings) == {"pending": 1}
    with Session(engine) as session:
        assert session.get(Post, kept) is not None and session.get(Post, other) is None
        escalation_id = session.exec(sa.select(Escalation.id)).scalar_one()  # type: ignore[call-overload]

    with session_scope(engine) as session:
        close_escalation(
            session=session, escalation_id=escalation_id, actor="lead", outcome="Referred"
        )
    with session_scope(engine) as session:
        assert purge(session=session, settings=settings) == {"pending": 1}
    with Session(engine) as session:
        assert session.get(Post, kept) is None
        assert session.get_one(Escalation, escalation_id).outcome == "Referred"


def test_an_escalation_racing_an_approval_leaves_the_approval_stale(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure()
    make_user(engine, "mo", "moderator")
    make_user(engine, "al", "moderator")
    with session_scope(engine) as session:
        (post_id,) = record_posts(session=session, posts=[make_post(media=())]).new_ids
    with Session(engine) as session:
        seen = session.get_one(Post, post_id).version
    outcome: list[BaseException | str] = []

    def approve() -> None:
        """Another moderator approving what they saw; it waits on the escalation's lock."""
        try:
            with session_scope(engine) as other:
                post = other.get_one(Post, post_id)
                decide(
                    session=other,
                    post=post,
                    action="approve",
                    actor="al",
                    settings=settings,
                    expected_version=seen,
                )
            outcome.append("approved")
        except StaleDecision as exc:
            outcome.append(exc)

    with session_scope(engine) as session:
        escalate(
            session=session,
            settings=settings,
            post=session.get_one(Post, post_id),
            actor="mo",
            reason="disclosure",
        )
        racer = threading.Thread(target=approve)
        racer.start()  # blocked on the row (PostgreSQL) or the write lock (SQLite)
    racer.join(timeout=60)

    assert len(outcome) == 1 and isinstance(outcome[0], StaleDecision)
    with Session(engine) as session:
        post = session.get_one(Post, post_id)
        assert post.status == "pending" and post.escalated
