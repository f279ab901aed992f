"""The decisions roll-up against the computation it replaced, on random data.

The reference reads every decision of the period with its post (the audit trail's
outer join) and ranks the waits in Python with :func:`monitor.services.digest.percentile`:
the digest's counts, median and p95 must be the same, on days around a clock change,
with waits tied (a bucket read from its bounds) or spread (a bucket read in wait order),
and after posts are deleted (their decisions stay, without a wait).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import load_settings
from monitor.models import AuditEvent, DecisionSlot, Post
from monitor.services import decisions
from monitor.services.digest import _duration, compute_digest, local_midnight, percentile
from monitor.services.retention import _delete_posts

LONDON = ZoneInfo("Europe/London")
SPRING, AUTUMN = date(2021, 3, 28), date(2021, 10, 31)
_EVENTS = AuditEvent.__table__
_POSTS = Post.__table__


@dataclasses.dataclass(frozen=True)
class Decision:
    post: int  # index into the posts; past the end: an event without a post
    quarter: int  # quarter-hours after the first day's local midnight
    wait: int  # seconds after the post's arrival (a few shared, to tie)
    micro: int
    action: str


decision = st.builds(
    Decision,
    post=st.integers(0, 9),
    quarter=st.integers(-4, 3 * 96 + 4),
    wait=st.one_of(st.sampled_from([60, 600, 3600]), st.integers(0, 4 * 86_400)),
    micro=st.one_of(st.just(0), st.integers(0, 999_999)),
    action=st.sampled_from(["approve", "reject", "approve", "flag", "takedown_requested"]),
)


def reference(session: Session, start: datetime, end: datetime) -> tuple[object, ...]:
    """Counts and percentiles from every decision of [start, end) and its post."""
    rows = session.execute(
        sa.select(_EVENTS.c.to_status, _EVENTS.c.at, _POSTS.c.first_seen_at)
        .select_from(_EVENTS.outerjoin(_POSTS, _POSTS.c.id == _EVENTS.c.post_id))
        .where(
            _EVENTS.c.at >= start,
            _EVENTS.c.at < end,
            _EVENTS.c.action.in_(["approve", "reject"]),
            _EVENTS.c.to_status.in_(["approved", "rejected"]),
        )
    ).all()
    waits = sorted(
        decisions.micros(at - seen) / 1_000_000 for _, at, seen in rows if seen is not None
    )
    approved = sum(1 for status, *_ in rows if status == "approved")

    def ranked(fraction: float) -> timedelta | None:
        return _duration([percentile(waits, fraction)], 0.5) if waits else None

    return len(rows), approved, len(rows) - approved, ranked(0.5), ranked(0.95)


@pytest.mark.slow  # 15 random stores a backend
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    change=st.sampled_from([SPRING, AUTUMN]),
    made=st.lists(decision, min_size=1, max_size=40),
    deleted=st.sets(st.integers(0, 9), max_size=3),
    through_orm=st.booleans(),
)
def test_digest_moderation_matches_the_audit_trail_on_random_data(
    engine: Engine, change: date, made: list[Decision], deleted: set[int], through_orm: bool
) -> None:
    first_day = change - timedelta(days=1)
    origin = local_midnight(first_day, LONDON)
    settings_ = load_settings(hashtags=["CEADAY21"], timezone="Europe/London")
    with Session(engine) as session:
        session.execute(sa.delete(_EVENTS))
        session.execute(sa.delete(_POSTS))
        decisions.rebuild(session.connection())
        session.commit()
        posts = []
        for i in range(8):
            seen = origin - timedelta(hours=6, microseconds=137 * i)
            post = Post(
                platform="mastodon",
                external_id=f"d{i}",
                ref=f"mastodon:d{i}",
                url="u",
                author_handle=f"@a{i}",
                author_name="A",
                text="t",
                html="t",
                content_hash="h",
                created_at=seen,
                first_seen_at=seen,
                last_seen_at=seen,
            )
            session.add(post)
            session.flush()
            posts.append(post)
        for d in made:
            post = posts[d.post] if d.post < len(posts) else None
            at = origin + timedelta(minutes=15 * d.quarter)
            if post is not None:
                at = max(at, post.first_seen_at + timedelta(seconds=d.wait, microseconds=d.micro))
            to_status = {"approve": "approved", "reject": "rejected"}.get(d.action, "pending")
            session.add(
                AuditEvent(
                    post_id=post.id if post else None,
                    at=at,
                    actor="alice",
                    action=d.action,
                    from_status="pending",
                    to_status=to_status,
                )
            )
        session.commit()
        doomed = [posts[i] for i in sorted(deleted) if i < len(posts)]
        if through_orm:
            for post in doomed:
                session.delete(post)
        else:
            _delete_posts(session, [p.id for p in doomed if p.id is not None])
        session.commit()

        def figures(first: date, last: date) -> tuple[object, ...]:
            m = compute_digest(session, settings_, first, last, now=origin).moderation
            return (
                m.decisions,
                m.approved,
                m.rejected,
                m.median_decision_time,
                m.p95_decision_time,
            )

        days = [first_day + timedelta(days=k) for k in range(3)]
        ranges = [(d, d) for d in days] + [(days[0], days[-1]), (days[1], days[2])]
        for first, last in ranges:
            start = local_midnight(first, LONDON)
            end = local_midnight(last + timedelta(days=1), LONDON)
            assert figures(first, last) == reference(session, start, end)
        kept = [figures(first, last) for first, last in ranges]
        rows = session.execute(sa.select(DecisionSlot.__table__)).all()
        decisions.rebuild(session.connection())
        assert [figures(first, last) for first, last in ranges] == kept
        rebuilt = session.execute(sa.select(DecisionSlot.__table__)).all()
        # Deletions may leave a bucket's bounds loose, never its counts.
        counts = {r[:4] for r in rows}
        assert counts == {r[:4] for r in rebuilt}


def test_a_wait_is_exact_to_the_microsecond_on_both_databases(engine: Engine) -> None:
    """The back-fill's SQL wait is the written one (SQLite's julianday would be off)."""
    seen = datetime(2021, 3, 18, 9, 0, 0, 123_456, tzinfo=LONDON)
    with Session(engine) as session:
        post = Post(
            platform="x",
            external_id="w",
            ref="x:w",
            url="u",
            author_handle="@w",
            author_name="W",
            text="t",
            html="t",
            content_hash="h",
            created_at=seen,
            first_seen_at=seen,
            last_seen_at=seen,
        )
        session.add(post)
        session.flush()
        at = seen + timedelta(days=2, hours=3, microseconds=654_321)
        session.add(
            AuditEvent(post_id=post.id, at=at, actor="a", action="approve", to_status="approved")
        )
        session.commit()
        written = session.execute(sa.select(_EVENTS.c.wait_us)).scalar_one()
        decisions.rebuild(session.connection())
        rebuilt = session.execute(sa.select(_EVENTS.c.wait_us)).scalar_one()
    assert written == rebuilt == decisions.micros(at - seen)
