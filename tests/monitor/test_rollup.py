"""The posts roll-up against the computation it replaced, on random data.

The reference below is the digest's former SQL over ``posts`` and ``post_hashtags``
(counts per bucket by ``created_at``, ``count(DISTINCT author_handle)`` per platform,
``SUM`` of the counts as last seen), kept here so that the roll-up is checked against
an independent computation, on days that include both of London's clock changes.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.base import Author, Engagement
from monitor.config import load_settings
from monitor.models import Post, PostHashtag, PostSlot, PostStatus
from monitor.services import rollup
from monitor.services.digest import compute_digest, local_midnight
from monitor.services.ingest import record_posts
from monitor.services.refresh import mark_removed
from monitor.services.retention import _delete_posts
from tests.factories import make_post

LONDON = ZoneInfo("Europe/London")
METRICS = ("likes", "shares", "replies", "quotes", "views")
SPRING, AUTUMN = date(2021, 3, 28), date(2021, 10, 31)
_POSTS = Post.__table__
_TAGS = PostHashtag.__table__


def reference(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Posts, authors per platform, tag counts and totals by reading every post."""
    in_range = sa.and_(_POSTS.c.created_at >= start, _POSTS.c.created_at < end)
    per_platform = {
        platform: (int(n), int(a))
        for platform, n, a in session.execute(
            sa.select(
                _POSTS.c.platform,
                sa.func.count(),
                sa.func.count(sa.distinct(_POSTS.c.author_handle)),
            )
            .where(in_range)
            .group_by(_POSTS.c.platform)
        )
    }
    tags = dict(
        session.execute(
            sa.select(_TAGS.c.tag, sa.func.count())
            .select_from(_POSTS.join(_TAGS, _TAGS.c.post_id == _POSTS.c.id))
            .where(in_range)
            .group_by(_TAGS.c.tag)
        ).all()
    )
    row = session.execute(sa.select(*[sa.func.sum(_POSTS.c[m]) for m in METRICS])).one()
    totals = {m: None if v is None else int(v) for m, v in zip(METRICS, row, strict=True)}
    approved = session.execute(
        sa.select(sa.func.count()).where(in_range, _POSTS.c.status == "approved")
    ).scalar_one()
    pending = session.execute(
        sa.select(sa.func.count()).where(_POSTS.c.status == "pending")
    ).scalar_one()
    return {
        "platforms": per_platform,
        "tags": tags,
        "totals": totals,
        "approved": approved,
        "pending": pending,
    }


def from_rollup(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    lo, hi = rollup.slot_bound(start), rollup.slot_bound(end)
    posts = rollup.post_counts(session, [lo, hi])
    authors = rollup.author_counts(session, lo, hi)
    per_platform = {p: (n, authors[p].authors) for (_, p), n in posts.items()}
    tags = {t: n for (_, t), n in rollup.tag_counts(session, [lo, hi]).items()}
    totals: dict[str, int | None] = dict.fromkeys(METRICS)
    for sums in rollup.totals(session).values():
        for m in METRICS:
            if sums[m] is not None:
                totals[m] = (totals[m] or 0) + int(sums[m] or 0)
    approved = rollup.approved_posts(session, lo, hi)[1]
    return {
        "platforms": per_platform,
        "tags": tags,
        "totals": totals,
        "approved": approved,
        "pending": rollup.pending_posts(session),
    }


def first_posts_by_hand(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """New authors: those whose first post held falls in the range, worked out in Python."""
    first: dict[tuple[str, str], datetime] = {}
    for platform, handle, created in session.execute(
        sa.select(_POSTS.c.platform, _POSTS.c.author_handle, _POSTS.c.created_at)
    ):
        key = (platform, handle)
        first[key] = min(first.get(key, created), created)
    counts: dict[str, int] = defaultdict(int)
    for (platform, _), created in first.items():
        if start <= created < end:
            counts[platform] += 1
    return dict(counts)


@dataclasses.dataclass(frozen=True)
class Spec:
    platform: str
    author: int
    quarter: int  # quarter-hours after the first day's local midnight, plus a few seconds
    tags: tuple[str, ...]
    likes: int | None
    views: int | None


spec = st.builds(
    Spec,
    platform=st.sampled_from(["mastodon", "bluesky", "x"]),
    author=st.integers(0, 4),
    quarter=st.integers(-8, 3 * 96 + 8),
    tags=st.lists(
        st.sampled_from(["ceaday21", "helpinghands", "other"]), max_size=2, unique=True
    ).map(tuple),
    likes=st.one_of(st.none(), st.integers(0, 1000)),
    views=st.one_of(st.none(), st.integers(0, 10**8)),
)


def fetched(spec: Spec, number: int, origin: datetime, *, likes: int | None = None) -> Any:
    return make_post(
        platform=spec.platform,
        external_id=f"{spec.platform}-{number}",
        author=Author(handle=f"@a{spec.author}", name="A"),
        created_at=origin + timedelta(minutes=15 * spec.quarter, seconds=number % 900),
        hashtags=spec.tags,
        media=(),
        engagement=Engagement(
            likes=spec.likes if likes is None else likes, shares=1, views=spec.views
        ),
    )


@pytest.mark.slow  # 15 random stores a backend: about 15 s each
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    change=st.sampled_from([SPRING, AUTUMN]),
    specs=st.lists(spec, min_size=1, max_size=25),
    updates=st.sets(st.integers(0, 24), max_size=6),
    deletions=st.sets(st.integers(0, 24), max_size=6),
    through_orm=st.sets(st.integers(0, 24), max_size=4),
    approvals=st.sets(st.integers(0, 24), max_size=8),
    removals=st.sets(st.integers(0, 24), max_size=4),
)
def test_rollup_matches_the_posts_on_random_data(
    engine: Engine,
    change: date,
    specs: list[Spec],
    updates: set[int],
    deletions: set[int],
    through_orm: set[int],
    approvals: set[int],
    removals: set[int],
) -> None:
    """Inserts through ingest and the ORM, count changes and re-tags on a re-poll,
    approvals (a moderator's, through the ORM) and removals at source (in bulk), purged
    posts, on the days around a clock change: every range agrees."""
    first_day = change - timedelta(days=1)
    origin = local_midnight(first_day, LONDON)
    with Session(engine) as session:
        session.execute(sa.delete(_POSTS))
        rollup.rebuild(session.connection())
        session.commit()
        posts = [fetched(s, i, origin) for i, s in enumerate(specs)]
        bulk = [p for i, p in enumerate(posts) if i not in through_orm]
        record_posts(session=session, posts=bulk, now=origin)
        for i in sorted(through_orm):
            if i < len(posts):
                p = posts[i]
                row = Post(
                    platform=p.platform,
                    external_id=p.external_id,
                    ref=p.external_id,
                    url=p.url,
                    author_handle=p.author.handle,
                    author_name="A",
                    text="t",
                    html="t",
                    content_hash="h",
                    created_at=p.created_at,
                    first_seen_at=origin,
                    last_seen_at=origin,
                    likes=p.engagement.likes,
                    shares=p.engagement.shares,
                    views=p.engagement.views,
                )
                session.add(row)
                session.flush()
                session.add_all(PostHashtag(post_id=row.id, tag=t) for t in p.hashtags)
                session.flush()
        session.commit()
        again = [
            dataclasses.replace(
                fetched(specs[i], i, origin, likes=(specs[i].likes or 0) + 7),
                hashtags=(*specs[i].tags, "later"),
            )
            for i in sorted(updates)
            if i < len(specs) and i not in through_orm
        ]
        record_posts(session=session, posts=again, now=origin + timedelta(hours=1))
        session.commit()

        def stored(i: int) -> int:
            return int(
                session.execute(
                    sa.select(_POSTS.c.id).where(_POSTS.c.external_id == posts[i].external_id)
                ).scalar_one()
            )

        for i in sorted(approvals):
            if i < len(posts):
                post = session.get(Post, stored(i))
                assert post is not None
                post.status = PostStatus.APPROVED
                session.flush()
        mark_removed(session, [stored(i) for i in sorted(removals) if i < len(posts)], origin)
        session.commit()
        doomed = [
            session.execute(
                sa.select(_POSTS.c.id).where(_POSTS.c.external_id == posts[i].external_id)
            ).scalar_one()
            for i in sorted(deletions)
            if i < len(posts)
        ]
        _delete_posts(session, doomed)
        session.commit()

        days = [first_day + timedelta(days=k) for k in range(3)]
        ranges = [(d, d) for d in days] + [(days[0], days[-1]), (days[1], days[2])]
        for first, last in ranges:
            start = local_midnight(first, LONDON)
            end = local_midnight(last + timedelta(days=1), LONDON)
            assert from_rollup(session, start, end) == reference(session, start, end)
            new = rollup.author_counts(session, rollup.slot_bound(start), rollup.slot_bound(end))
            assert {p: a.new for p, a in new.items() if a.new} == first_posts_by_hand(
                session, start, end
            )
        kept = from_rollup(session, origin - timedelta(days=1), origin + timedelta(days=5))
        rollup.rebuild(session.connection())
        assert from_rollup(session, origin - timedelta(days=1), origin + timedelta(days=5)) == kept


def test_the_digest_reads_the_rollup_not_the_posts(sqlite_engine: Engine) -> None:
    """Figures come from the roll-up: a post written past it (raw SQL) is not counted
    until the roll-up is rebuilt, and then it is."""
    settings_ = load_settings(hashtags=["CEADAY21"])
    day = date(2021, 3, 18)
    with Session(sqlite_engine) as session:
        record_posts(
            session=session,
            # On the day itself: the factory's default time moves on with every post made.
            posts=[make_post(created_at=datetime(2021, 3, 18, 11, tzinfo=UTC))],
            now=datetime(2021, 3, 18, 12, tzinfo=UTC),
        )
        session.commit()
        before = compute_digest(session, settings_, day, now=datetime(2021, 3, 19, tzinfo=UTC))
        session.execute(
            sa.insert(_POSTS).values(
                platform="x",
                external_id="raw",
                ref="raw",
                url="u",
                author_handle="@raw",
                author_name="r",
                text="t",
                html="t",
                content_hash="h",
                created_at=datetime(2021, 3, 18, 10, tzinfo=UTC),
                first_seen_at=datetime(2021, 3, 18, 10, tzinfo=UTC),
                last_seen_at=datetime(2021, 3, 18, 10, tzinfo=UTC),
                status="pending",
                flagged=False,
                sensitive=False,
                version=1,
                takedown_hold=False,
                escalated=False,
            )
        )
        same = compute_digest(session, settings_, day, now=datetime(2021, 3, 19, tzinfo=UTC))
        rollup.rebuild(session.connection())
        after = compute_digest(session, settings_, day, now=datetime(2021, 3, 19, tzinfo=UTC))
    assert before.posts.value == same.posts.value == 1
    assert after.posts.value == 2 and after.authors.value == 2


def test_the_back_fill_puts_a_post_just_before_a_slot_in_that_slot(engine: Engine) -> None:
    """SQLite's strftime rounds to the millisecond: a post 0.137 ms before a quarter-hour
    was rebuilt into the next slot, while the writers (slot_of) put it in its own."""
    created = datetime(2021, 3, 18, 6, 0, tzinfo=UTC) - timedelta(microseconds=137)
    with Session(engine) as session:
        session.execute(sa.delete(_POSTS))
        record_posts(session=session, posts=[make_post(created_at=created)], now=created)
        session.commit()
        written = rollup.post_counts(session, [0, 2**31 - 1])
        slots = session.execute(sa.select(PostSlot.__table__.c.slot)).scalars().all()
        rollup.rebuild(session.connection())
        assert session.execute(sa.select(PostSlot.__table__.c.slot)).scalars().all() == slots
        assert rollup.post_counts(session, [0, 2**31 - 1]) == written
    assert slots == [rollup.slot_of(created)]


def test_a_post_approved_in_the_session_then_removed_at_source_is_counted_once(
    engine: Engine,
) -> None:
    """Found by the random-data test: the removal's Core write was counted by its tracking
    block, and the post's loaded ORM copy, set to match by ``placements.settle``, was
    written again at the commit and counted a second time (approved: -1)."""
    with Session(engine) as session:
        [post_id] = record_posts(session=session, posts=[make_post(media=())]).new_ids
        session.commit()
        post = session.get_one(Post, post_id)
        post.status = PostStatus.APPROVED  # a decision held in this session
        session.flush()
        assert rollup.approved_posts(session, 0, 2**31 - 1) == (1, 1)
        mark_removed(session, [post_id], datetime.now(UTC))
        session.commit()
        assert post.status == PostStatus.REMOVED  # the loaded copy agrees
        assert rollup.approved_posts(session, 0, 2**31 - 1) == (1, 0)
