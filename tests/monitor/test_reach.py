"""Potential reach and contributors, against figures worked out by hand, and the faults
the issue names: counts that stop half-way, a 50-million jump, an author on two
platforms, a platform that gives none, and the Bluesky profile lookup."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters.base import Author
from adapters.bluesky import BlueskyAdapter
from adapters.http import HttpClient, RetryPolicy
from adapters.mastodon import normalise_status
from adapters.reddit import normalise_post as normalise_reddit
from adapters.x import normalise_tweet
from monitor.services.ingest import record_posts
from monitor.services.reach import compute_reach, describe, look_up_followers
from tests.factories import make_post
from tests.fakes.bluesky import APP_PASSWORD, HANDLE, FakeBluesky
from tests.fakes.server import FakeServer

NOON = datetime(2021, 3, 18, 12, tzinfo=UTC)
DAY_START, DAY_END = datetime(2021, 3, 18, tzinfo=UTC), datetime(2021, 3, 19, tzinfo=UTC)


def post(platform: str, handle: str, followers: int | None, minutes: int = 0) -> object:
    return make_post(
        platform=platform,
        author=Author(handle=handle, name=handle),
        created_at=NOON + timedelta(minutes=minutes),
        author_followers=followers,
        media=(),
    )


def ingest(engine: Engine, posts: list[object], now: datetime = NOON) -> None:
    with Session(engine) as session:
        record_posts(session=session, posts=posts, now=now)  # type: ignore[arg-type]
        session.commit()


def test_reach_sums_distinct_authors_per_platform_with_its_coverage(engine: Engine) -> None:
    ingest(
        engine,
        [
            post("mastodon", "@a@m.example", 1_000_000),
            post("mastodon", "@a@m.example", 1_000_000, 5),  # the same author again: once
            post("mastodon", "@b@m.example", 150_000),
            post("x", "@a", 50_000),
            post("instagram", "instagram-user", None),
        ],
    )
    with Session(engine) as session:
        reach = compute_reach(session, DAY_START, DAY_END)
    by_platform = {p.platform: p for p in reach.platforms}
    assert by_platform["mastodon"].reach == 1_150_000 and by_platform["mastodon"].authors == 2
    assert by_platform["x"].reach == 50_000
    assert by_platform["instagram"].reach is None
    assert "Instagram does not give" in (by_platform["instagram"].why_not or "")
    assert reach.total == 1_200_000 and reach.authors == 4
    # Instagram's author is unknown, so the figure is a floor, and says why.
    assert describe(reach) == "≥ 1.2 M (Mastodon, X; Instagram not available)"


def test_counts_that_stop_half_way_make_the_figure_a_floor(engine: Engine) -> None:
    ingest(engine, [post("mastodon", f"@u{i}@m.example", 100) for i in range(3)])
    later = [post("mastodon", f"@v{i}@m.example", None, 60) for i in range(2)]
    ingest(engine, later, NOON + timedelta(hours=1))
    with Session(engine) as session:
        reach = compute_reach(session, DAY_START, DAY_END)
    (mastodon,) = reach.platforms
    assert (mastodon.authors, mastodon.counted, mastodon.reach) == (5, 3, 300)
    assert describe(reach) == "≥ 300 (Mastodon)"


def test_a_jump_to_50_million_is_shown_uncapped_and_called_out(engine: Engine) -> None:
    ingest(engine, [post("x", "@star", 2_000)], NOON - timedelta(days=2))
    ingest(engine, [post("x", "@star", 50_000_000)])
    with Session(engine) as session:
        reach = compute_reach(session, DAY_START, DAY_END)
    assert reach.total == 50_000_000
    (top,) = reach.top
    assert (top.followers, top.jumped_from) == (50_000_000, 2_000)
    assert describe(reach) == "50 M (X)"


def test_an_author_on_two_platforms_is_counted_on_each(engine: Engine) -> None:
    ingest(engine, [post("mastodon", "@same", 10), post("x", "@same", 20)])
    with Session(engine) as session:
        reach = compute_reach(session, DAY_START, DAY_END)
    assert reach.authors == 2 and reach.total == 30


def test_the_count_used_is_the_one_held_at_the_end_of_the_period(engine: Engine) -> None:
    ingest(engine, [post("mastodon", "@a@m.example", 100)])
    # Seen again two days later with more followers: the day's reach keeps the old count.
    again = dataclasses.replace(post("mastodon", "@a@m.example", 900), external_id="other")
    ingest(engine, [again], NOON + timedelta(days=2))
    with Session(engine) as session:
        assert compute_reach(session, DAY_START, DAY_END).total == 100


def test_top_contributors_are_named_only_after_an_approval(engine: Engine) -> None:
    ingest(engine, [post("mastodon", "@a@m.example", 100)])
    with Session(engine) as session:
        (top,) = compute_reach(session, DAY_START, DAY_END).top
    assert not top.named and "@a@m.example" not in top.label


def test_payloads_carry_follower_counts_where_the_api_gives_them() -> None:
    status = {
        "id": "1",
        "created_at": "2021-03-18T09:00:00Z",
        "uri": "https://m.example/users/a/statuses/1",
        "content": "<p>#CEADAY21</p>",
        "account": {"acct": "a", "display_name": "A", "followers_count": 1234},
    }
    assert normalise_status("https://m.example", status).author_followers == 1234
    tweet = {"id": "1364000000000000000", "text": "#CEADAY21", "author_id": "9"}
    tweet |= {"created_at": "2021-03-18T09:00:00.000Z"}
    users = {"users": [{"id": "9", "username": "a", "public_metrics": {"followers_count": 77}}]}
    assert normalise_tweet(tweet, users).author_followers == 77
    reddit = {"id": "abc12", "created_utc": 1616058000, "author": "a", "title": "#CEADAY21"}
    assert normalise_reddit(reddit | {"subreddit_subscribers": 5000}).author_followers == 5000
    assert normalise_reddit(reddit).author_followers is None


def test_bluesky_counts_come_from_a_profile_lookup_after_the_poll(
    engine: Engine, fake_server: FakeServer
) -> None:
    bluesky = FakeBluesky(fake_server)
    handles = [f"user{i}.bsky.social" for i in range(30)]  # two getProfiles calls
    bluesky.followers = dict.fromkeys(handles[:29], 10)  # one account not found
    now = datetime.now(UTC)
    recent = [
        dataclasses.replace(post("bluesky", f"@{h}", None), created_at=now - timedelta(hours=1))
        for h in handles
    ]
    ingest(engine, recent, now)
    config = {
        "BLUESKY_HANDLE": HANDLE,
        "BLUESKY_APP_PASSWORD": APP_PASSWORD,
        "BLUESKY_API_BASE": bluesky.url,
    }
    with HttpClient(RetryPolicy(timeout=1, attempts=2, backoff=0.001)) as http:
        assert look_up_followers(engine, BlueskyAdapter(config, http)) == 29
    with Session(engine) as session:
        (platform,) = compute_reach(
            session, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(hours=1)
        ).platforms
    assert (platform.authors, platform.counted, platform.reach) == (30, 29, 290)
