"""The daily engagement roll-up against a plain reference over the stored snapshots.

The reference below is the digest's definition written out in Python (last snapshot
of the period minus the last one before it, ties broken by snapshot id, a metric
missing in the last snapshot unknown rather than zero), computed from the snapshot
rows themselves; the roll-up, its SQL rebuild and the snapshot computation the
digest falls back on must all agree with it, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from adapters.base import Engagement
from monitor.db import _alembic_config, create_db_engine, upgrade
from monitor.models import EngagementDay, EngagementSnapshot, GainBound, GainDay, Post
from monitor.services import engagement
from monitor.services.digest import METRICS, TOP_POSTS, Period, _gains, _gains_query, _rank
from monitor.services.engagement import append_snapshots, rebuild
from monitor.services.ingest import record_posts
from monitor.services.retention import _delete_posts
from tests.factories import make_post

LONDON = ZoneInfo("Europe/London")
#: The spring change (28 March 2021: 23 hours) and the autumn one (31 October: 25 hours).
CLOCK_CHANGES = (date(2021, 3, 28), date(2021, 10, 31))
PLATFORMS = ("mastodon", "bluesky", "x")
STATUSES = ("pending", "approved", "rejected", "removed")

Values = tuple[int | None, ...]


@dataclasses.dataclass(frozen=True)
class Stored:
    id: int
    post_id: int
    taken_at: datetime
    values: Values


def reference(
    snapshots: list[Stored], posts: dict[int, tuple[str, str]], start: datetime, end: datetime
) -> tuple[dict[str, dict[str, int | None]], list[tuple[int, int, str, Values]]]:
    """Sums per platform (None when no post gave the metric) and the top posts."""
    sums: dict[str, list[int | None]] = {}
    ranked: list[tuple[int, int, str, Values]] = []
    for post_id, (platform, status) in posts.items():
        own = [s for s in snapshots if s.post_id == post_id]
        if not any(start <= s.taken_at < end for s in own):
            continue

        def latest(moment: datetime, own: list[Stored] = own) -> Stored | None:
            earlier = [s for s in own if s.taken_at < moment]
            return max(earlier, key=lambda s: (s.taken_at, s.id), default=None)

        last, before = latest(end), latest(start)
        assert last is not None
        gains = tuple(
            None if value is None else value - ((before.values[i] if before else None) or 0)
            for i, value in enumerate(last.values)
        )
        platform_sums = sums.setdefault(platform, [None] * len(METRICS))
        for i, value in enumerate(gains):
            if value is not None:
                platform_sums[i] = (platform_sums[i] or 0) + value
        total = sum(v for v in gains[:4] if v is not None)
        if total > 0:
            ranked.append((total, post_id, status, gains))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    by_platform = {p: dict(zip(METRICS, sums[p], strict=True)) for p in sorted(sums)}
    return by_platform, ranked[:TOP_POSTS]


def computed(
    session: Session, period: Period, timezone: str = "Europe/London"
) -> tuple[dict[str, dict[str, int | None]], list[tuple[int, int, str, Values]]]:
    by_platform, top = _gains(session, period, timezone)
    return by_platform, [(g.interactions, g.post_id, g.status, g.values) for g in top]


def from_snapshots(
    session: Session, period: Period
) -> tuple[dict[str, dict[str, int | None]], list[tuple[int, int, str, Values]]]:
    """Today's computation over every snapshot, as the digest did before the roll-up."""
    by_platform, top = _rank(session.execute(_gains_query(period)))
    return by_platform, [(g.interactions, g.post_id, g.status, g.values) for g in top]


def stored_snapshots(session: Session) -> list[Stored]:
    table = EngagementSnapshot.__table__
    columns = [table.c.id, table.c.post_id, table.c.taken_at, *[table.c[m] for m in METRICS]]
    rows = session.execute(sa.select(*columns).order_by(table.c.id))
    return [Stored(i, p, t, tuple(v)) for i, p, t, *v in rows]


def add_post(session: Session, key: str, platform: str, status: str) -> int:
    created = datetime(2021, 3, 1, tzinfo=UTC)
    post = Post(
        platform=platform,
        external_id=key,
        ref=f"{platform}:{key}",
        url=f"https://{platform}.example/{key}",
        author_handle=f"@{key}",
        author_name=key,
        text=key,
        html=key,
        content_hash=key,
        created_at=created,
        first_seen_at=created,
        last_seen_at=created,
        status=status,
    )
    session.add(post)
    session.flush()
    assert post.id is not None
    return post.id


def day_rows(session: Session) -> list[tuple[object, ...]]:
    table = EngagementDay.__table__
    return sorted(tuple(row) for row in session.execute(sa.select(table)))


def check_every_day(
    session: Session, snapshots: list[Stored], posts: dict[int, tuple[str, str]], days: list[date]
) -> None:
    """Each single day, and the whole range, agree three ways."""
    periods = [Period.of(day, day, LONDON) for day in days] + [Period.of(days[0], days[-1], LONDON)]
    for period in periods:
        expected = reference(snapshots, posts, period.start, period.end)
        assert computed(session, period) == expected, period.label
        assert from_snapshots(session, period) == expected, period.label


value = st.one_of(st.none(), st.integers(0, 60))
snapshot_spec = st.tuples(
    st.integers(0, 3),  # which post
    # Quarter hours across four local days: same instants repeat, midnights are hit.
    st.integers(0, 4 * 24 * 4 + 4).map(lambda q: timedelta(minutes=15 * q)),
    st.tuples(value, value, value, value, value),
    st.booleans(),  # through the ORM (a Session flush) or the bulk writer
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    change=st.sampled_from(CLOCK_CHANGES),
    kinds=st.lists(
        st.tuples(st.sampled_from(PLATFORMS), st.sampled_from(STATUSES)), min_size=4, max_size=4
    ),
    specs=st.lists(snapshot_spec, min_size=1, max_size=14),
    cuts=st.sets(st.integers(1, 13), max_size=4),
)
def test_rollup_matches_the_reference_on_random_snapshots(
    engine: Engine,
    change: date,
    kinds: list[tuple[str, str]],
    specs: list[tuple[int, timedelta, Values, bool]],
    cuts: set[int],
) -> None:
    """Out of order, same instants, day boundaries across a clock change, posts with
    no earlier snapshot, written in several transactions, by both write paths."""
    first_day = change - timedelta(days=1)
    origin = datetime.combine(first_day, datetime.min.time(), tzinfo=LONDON) - timedelta(hours=1)
    with Session(engine) as session:
        # Written past the code that keeps the roll-ups (a raw delete), so they go too.
        session.execute(sa.delete(Post.__table__))
        session.execute(sa.delete(GainDay.__table__))
        session.commit()
        ids = [add_post(session, f"p{i}", *kind) for i, kind in enumerate(kinds)]
        session.commit()
        bounds = [0, *sorted(c for c in cuts if c < len(specs)), len(specs)]
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            for post, offset, values, through_orm in specs[lo:hi]:
                row = {"post_id": ids[post], "taken_at": origin + offset}
                row |= dict(zip(METRICS, values, strict=True))
                if through_orm:
                    session.add(EngagementSnapshot(**row))
                    session.flush()
                else:
                    append_snapshots(session, [row])
            session.commit()
        posts = dict(zip(ids, kinds, strict=True))
        snapshots = stored_snapshots(session)
        days = [first_day + timedelta(days=k) for k in range(4)]
        check_every_day(session, snapshots, posts, days)

        kept = day_rows(session)
        bounds = bound_rows(session)
        rebuild(session.connection(), LONDON)
        assert day_rows(session) == kept  # the back-fill writes what the writers wrote
        assert bound_rows(session) == bounds
        check_every_day(session, snapshots, posts, days)


def bound_rows(session: Session) -> list[tuple[object, ...]]:
    return sorted(tuple(row) for row in session.execute(sa.select(GainBound.__table__)))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    change=st.sampled_from(CLOCK_CHANGES),
    specs=st.lists(
        st.tuples(
            st.integers(0, 11),
            st.integers(0, 5 * 24 * 4).map(lambda q: timedelta(minutes=15 * q)),
            st.tuples(value, value, value, value, value),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_a_range_top_posts_walk_their_bounds_as_the_snapshots_rank_them(
    engine: Engine, change: date, specs: list[tuple[int, timedelta, Values]]
) -> None:
    """More posts than the top holds, counts up and down and missing: every range of
    days ranks its top posts (bound walk) as every snapshot does, the older first."""
    first_day = change - timedelta(days=2)
    origin = datetime.combine(first_day, datetime.min.time(), tzinfo=LONDON)
    with Session(engine) as session:
        session.execute(sa.delete(Post.__table__))
        session.execute(sa.delete(GainDay.__table__))
        session.commit()
        ids = [add_post(session, f"t{i}", PLATFORMS[i % 3], "approved") for i in range(12)]
        session.commit()
        for post, offset, values in specs:
            row = {"post_id": ids[post], "taken_at": origin + offset}
            append_snapshots(session, [row | dict(zip(METRICS, values, strict=True))])
        session.commit()
        days = [first_day + timedelta(days=k) for k in range(5)]
        for i, first in enumerate(days):
            for last in days[i + 1 :]:
                period = Period.of(first, last, LONDON)
                assert computed(session, period) == from_snapshots(session, period), period.label


def test_bulk_writes_fold_many_posts_and_snapshots_at_once(engine: Engine) -> None:
    """One batch holding two snapshots of a post at the same instant and an older one."""
    day = date(2021, 3, 18)
    noon = datetime(2021, 3, 18, 12, tzinfo=UTC)
    with Session(engine) as session:
        a = add_post(session, "a", "mastodon", "approved")
        b = add_post(session, "b", "x", "removed")
        append_snapshots(
            session,
            [
                {
                    "post_id": a,
                    "taken_at": noon,
                    "likes": 5,
                    "shares": 1,
                    "replies": 0,
                    "quotes": None,
                    "views": None,
                },
                {
                    "post_id": a,
                    "taken_at": noon,
                    "likes": 7,
                    "shares": 1,
                    "replies": 0,
                    "quotes": None,
                    "views": None,
                },
                {
                    "post_id": b,
                    "taken_at": noon,
                    "likes": 1,
                    "shares": 0,
                    "replies": 0,
                    "quotes": 2,
                    "views": 50,
                },
                {
                    "post_id": a,
                    "taken_at": noon - timedelta(days=1),
                    "likes": 2,
                    "shares": 0,
                    "replies": 0,
                    "quotes": None,
                    "views": None,
                },
            ],
        )
        session.commit()
        by_platform, top = computed(session, Period.of(day, day, LONDON))
    # a: 7 (the later of the two at noon) minus 2 the day before; b from nothing.
    assert by_platform == {
        "mastodon": {"likes": 5, "shares": 1, "replies": 0, "quotes": None, "views": None},
        "x": {"likes": 1, "shares": 0, "replies": 0, "quotes": 2, "views": 50},
    }
    assert [(n, pid, status) for n, pid, status, _ in top] == [
        (6, a, "approved"),
        (3, b, "removed"),
    ]


def test_ingest_and_refresh_keep_the_rollup(engine: Engine) -> None:
    """The real writers: a new post, then counts that changed at the next refresh."""
    post = make_post(engagement=Engagement(likes=3, shares=1, replies=0))
    first = datetime(2021, 3, 18, 23, 30, tzinfo=UTC)  # 18 March in London (GMT)
    with Session(engine) as session:
        record_posts(session=session, posts=[post], now=first)
        session.commit()
        again = dataclasses.replace(post, engagement=Engagement(likes=10, shares=1, replies=2))
        record_posts(session=session, posts=[again], now=first + timedelta(hours=1))
        session.commit()
        period = Period.of(date(2021, 3, 19), date(2021, 3, 19), LONDON)
        by_platform, top = computed(session, period)
        assert by_platform == {
            "mastodon": {"likes": 7, "shares": 0, "replies": 2, "quotes": None, "views": None}
        }
        assert [n for n, *_ in top] == [9]
        assert computed(session, period) == from_snapshots(session, period)


class Crash(RuntimeError):
    pass


def test_a_failure_between_snapshot_and_rollup_leaves_neither(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The roll-up is written by the snapshots' own transaction: if it fails, the
    snapshot goes too, so the two never disagree."""
    post = make_post(engagement=Engagement(likes=3, shares=1, replies=0))
    now = datetime(2021, 3, 18, 12, tzinfo=UTC)
    with Session(engine) as session:
        record_posts(session=session, posts=[post], now=now)
        session.commit()

    def crash(*args: object) -> None:
        raise Crash("disk full")

    monkeypatch.setattr(engagement, "fold_snapshots", crash)
    with Session(engine) as session, pytest.raises(Crash):
        bigger = dataclasses.replace(post, engagement=Engagement(likes=30, shares=1, replies=0))
        record_posts(session=session, posts=[bigger], now=now + timedelta(hours=1))
        session.commit()
    monkeypatch.undo()
    with Session(engine) as session:
        snapshots = stored_snapshots(session)
        assert [s.values[0] for s in snapshots] == [3]
        # The row ends (interactions, flips): the interactions of the one kept.
        assert [row[-2] for row in day_rows(session)] == [4]
        period = Period.of(date(2021, 3, 18), date(2021, 3, 18), LONDON)
        posts = {snapshots[0].post_id: ("mastodon", "pending")}
        assert computed(session, period) == reference(snapshots, posts, period.start, period.end)


CHILD = """
import os, sys
from datetime import UTC, datetime
from sqlmodel import Session
from monitor.db import create_db_engine
from monitor.services import engagement

def die(*args):
    os._exit(3)  # the process ends here, after the snapshot insert, before the roll-up

engagement.fold_snapshots = die
engine = create_db_engine(sys.argv[1])
with Session(engine) as session:
    engagement.append_snapshots(session, [{"post_id": int(sys.argv[2]),
        "taken_at": datetime(2021, 3, 18, 13, tzinfo=UTC), "likes": 99}])
    session.commit()
"""


def test_a_process_killed_between_snapshot_and_rollup_writes_neither(sqlite_url: str) -> None:
    engine = create_db_engine(sqlite_url)
    upgrade(engine)
    with Session(engine) as session:
        post_id = add_post(session, "a", "mastodon", "approved")
        append_snapshots(
            session,
            [{"post_id": post_id, "taken_at": datetime(2021, 3, 18, 12, tzinfo=UTC), "likes": 1}],
        )
        session.commit()
    child = subprocess.run([sys.executable, "-c", CHILD, sqlite_url, str(post_id)], check=False)
    assert child.returncode == 3
    with Session(engine) as session:
        assert [s.values[0] for s in stored_snapshots(session)] == [1]
        assert [row[-2] for row in day_rows(session)] == [1]  # (interactions, flips)
    engine.dispose()


def test_migration_back_fills_existing_snapshots_and_matches_the_models(db_url: str) -> None:
    """A store from before the roll-up gets it from its snapshots on upgrade."""
    engine = create_db_engine(db_url)
    command.upgrade(_alembic_config(engine), "0004")
    with Session(engine) as session:
        # Raw SQL with the columns a 0004 store had: the model has grown since.
        created = datetime(2021, 3, 1, tzinfo=UTC).replace(tzinfo=None)
        post_id = session.execute(
            sa.text(
                "INSERT INTO posts (platform, external_id, ref, url, author_handle, author_name,"
                " text, html, content_hash, created_at, first_seen_at, last_seen_at, status,"
                " sensitive, flagged, version) VALUES ('bluesky', 'a', 'bluesky:a',"
                " 'https://bluesky.example/a', '@a', 'a', 'a', 'a', 'a', :at, :at, :at,"
                " 'approved', false, false, 1) RETURNING id"
            ),
            {"at": created},
        ).scalar_one()
        table = EngagementSnapshot.__table__
        at = datetime(2021, 3, 27, 23, 30, tzinfo=UTC)  # just before the spring change
        session.execute(
            sa.insert(table),
            [
                {"post_id": post_id, "taken_at": at, "likes": 2, "quotes": 1},
                {
                    "post_id": post_id,
                    "taken_at": at + timedelta(hours=1),
                    "likes": 5,
                    "quotes": None,
                },
                {
                    "post_id": post_id,
                    "taken_at": at + timedelta(hours=1),
                    "likes": 6,
                    "quotes": None,
                },
            ],
        )
        session.commit()
    upgrade(engine)
    with Session(engine) as session:
        snapshots = stored_snapshots(session)
        posts = {post_id: ("bluesky", "approved")}
        check_every_day(session, snapshots, posts, [date(2021, 3, 27), date(2021, 3, 28)])
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    ours = {"engagement_days", "engagement_rollup"}
    assert [d for d in differences if any(name in str(d) for name in ours)] == []
    engine.dispose()


def test_another_zone_falls_back_to_snapshots_until_rebuilt(engine: Engine) -> None:
    """After TIMEZONE changes, the roll-up's days are the wrong ones: the digest computes
    from the snapshots instead, and reads the roll-up again once it is rebuilt."""
    new_york = ZoneInfo("America/New_York")
    with Session(engine) as session:
        post_id = add_post(session, "a", "x", "approved")
        late = datetime(2021, 3, 19, 2, tzinfo=UTC)  # 19 March in London, 18th in New York
        append_snapshots(
            session,
            [
                {"post_id": post_id, "taken_at": late - timedelta(hours=6), "likes": 1},
                {"post_id": post_id, "taken_at": late, "likes": 4},
            ],
        )
        session.commit()
        snapshots = stored_snapshots(session)
        posts = {post_id: ("x", "approved")}
        period = Period.of(date(2021, 3, 18), date(2021, 3, 18), new_york)
        expected = reference(snapshots, posts, period.start, period.end)
        assert expected[0]["x"]["likes"] == 4
        assert computed(session, period, "America/New_York") == expected
        rebuild(session.connection(), new_york)
        assert engagement.rollup_zone(session) == "America/New_York"
        assert computed(session, period, "America/New_York") == expected


def test_deleting_a_post_deletes_its_days(engine: Engine) -> None:
    """Retention and erasure delete posts; their roll-up rows go with the snapshots."""
    with Session(engine) as session:
        kept, gone = (add_post(session, key, "mastodon", "approved") for key in ("kept", "gone"))
        noon = datetime(2021, 3, 18, 12, tzinfo=UTC)
        append_snapshots(
            session,
            [{"post_id": pid, "taken_at": noon, "likes": 2} for pid in (kept, gone)],
        )
        session.commit()
        # The one delete retention and erasure share (it keeps the day sums too).
        _delete_posts(session, [gone])
        session.commit()
        assert [row[0] for row in day_rows(session)] == [kept]
        by_platform, _ = computed(session, Period.of(date(2021, 3, 18), date(2021, 3, 18), LONDON))
        assert by_platform["mastodon"]["likes"] == 2
