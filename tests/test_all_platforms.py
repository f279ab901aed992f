"""Every built-in adapter at once, each against its own local fake of the platform's API."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.models import EngagementSnapshot, Post
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from monitor.services.sources import list_sources
from tests.fakes import bluesky, instagram, reddit, x, youtube
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.rss import FakeFeed
from tests.fakes.server import FakeServer

PLATFORMS = ["bluesky", "instagram", "mastodon", "reddit", "rss", "x", "youtube"]


@pytest.fixture
def fakes() -> Iterator[dict[str, object]]:
    servers = [FakeServer().start() for _ in PLATFORMS]
    try:
        yield {
            "bluesky": bluesky.FakeBluesky(servers[0]),
            "instagram": instagram.FakeInstagram(servers[1]),
            "mastodon": FakeMastodon(servers[2]),
            "reddit": reddit.FakeReddit(servers[3]),
            "rss": FakeFeed(servers[4]),
            "x": x.FakeX(servers[5]),
            "youtube": youtube.FakeYouTube(servers[6]),
        }
    finally:
        for server in servers:
            server.stop()


def test_poll_collects_from_all_seven_and_refresh_snapshots_them(
    sqlite_engine: Engine, configure: Callable[..., Settings], fakes: dict
) -> None:
    for fake in fakes.values():
        for _ in range(2):
            fake.add()
    settings = configure(
        HASHTAGS="CEADAY21",
        BLUESKY_API_BASE=fakes["bluesky"].url,
        BLUESKY_HANDLE=bluesky.HANDLE,
        BLUESKY_APP_PASSWORD=bluesky.APP_PASSWORD,
        INSTAGRAM_API_BASE=fakes["instagram"].url,
        INSTAGRAM_ACCESS_TOKEN=instagram.TOKEN,
        INSTAGRAM_USER_ID=instagram.USER_ID,
        MASTODON_INSTANCES=fakes["mastodon"].url,
        RSS_FEEDS=fakes["rss"].url,
        OUTBOUND_ALLOW_PRIVATE="true",
        X_API_BASE=fakes["x"].url,
        X_BEARER_TOKEN=x.TOKEN,
        YOUTUBE_API_BASE=fakes["youtube"].url,
        YOUTUBE_API_KEY=youtube.API_KEY,
        **fakes["reddit"].config(),
    )
    assert set(PLATFORMS) <= set(settings.enabled_platforms)

    summaries = poll_all(engine=sqlite_engine, settings=settings)

    assert {s.platform for s in summaries} >= set(PLATFORMS)
    assert all(s.ok for s in summaries), [(s.source, s.error) for s in summaries if not s.ok]
    with Session(sqlite_engine) as session:
        platforms = [p.platform for p in session.exec(select(Post))]
        health = {s.platform: (s.failures_in_row, s.last_success_at) for s in list_sources(session)}
    assert {name: platforms.count(name) for name in PLATFORMS} == dict.fromkeys(PLATFORMS, 2)
    assert all(failures == 0 and success is not None for failures, success in health.values())

    refreshed = {r.platform: r for r in refresh_all(engine=sqlite_engine, settings=settings)}
    assert all(r.ok for r in refreshed.values()), {p: r.error for p, r in refreshed.items()}
    assert refreshed["rss"].checked == 2  # feeds cannot tell deletions, but are asked
    with Session(sqlite_engine) as session:
        assert len(list(session.exec(select(EngagementSnapshot)))) >= 14
