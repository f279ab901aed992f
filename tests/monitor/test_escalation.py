"""Escalations at the service level: evidence kept from retention until closed."""

from __future__ import annotations

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
