"""Each built-in adapter on its local fake, as a contract subject (see adapters/contract.py)."""

from __future__ import annotations

from collections.abc import Callable

from adapters.base import Target
from adapters.contract import TAG, Subject, build
from tests.fakes import bluesky, instagram, reddit, x, youtube
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.rss import FakeFeed
from tests.fakes.server import FakeServer


def _mastodon(server: FakeServer) -> Subject:
    fake = FakeMastodon(server)
    adapter = build("mastodon", {"MASTODON_INSTANCES": fake.url})
    return Subject(adapter, Target(fake.url, (TAG,)), server, fake.add, 41)


def _bluesky(server: FakeServer) -> Subject:
    fake = bluesky.FakeBluesky(server)
    config = {
        "BLUESKY_API_BASE": fake.url,
        "BLUESKY_HANDLE": bluesky.HANDLE,
        "BLUESKY_APP_PASSWORD": bluesky.APP_PASSWORD,
    }
    return Subject(build("bluesky", config), Target("", (TAG,)), server, fake.add, 101)


def _instagram(server: FakeServer) -> Subject:
    fake = instagram.FakeInstagram(server)
    config = {
        "INSTAGRAM_API_BASE": fake.url,
        "INSTAGRAM_ACCESS_TOKEN": instagram.TOKEN,
        "INSTAGRAM_USER_ID": instagram.USER_ID,
    }
    return Subject(build("instagram", config), Target("", (TAG,)), server, fake.add, 51)


def _reddit(server: FakeServer) -> Subject:
    fake = reddit.FakeReddit(server)
    return Subject(build("reddit", fake.config()), Target("", (TAG,)), server, fake.add, 101)


def _rss(server: FakeServer) -> Subject:
    fake = FakeFeed(server)
    config = {"RSS_FEEDS": fake.url, "OUTBOUND_ALLOW_PRIVATE": "true"}
    return Subject(build("rss", config), Target(fake.url, (TAG,)), server, fake.add, None)


def _x(server: FakeServer) -> Subject:
    fake = x.FakeX(server)
    config = {"X_API_BASE": fake.url, "X_BEARER_TOKEN": x.TOKEN}
    return Subject(build("x", config), Target("", (TAG,)), server, fake.add, 101)


def _youtube(server: FakeServer) -> Subject:
    fake = youtube.FakeYouTube(server)
    config = {"YOUTUBE_API_BASE": fake.url, "YOUTUBE_API_KEY": youtube.API_KEY}
    return Subject(build("youtube", config), Target("", (TAG,)), server, fake.add, 51)


SUBJECTS: dict[str, Callable[[FakeServer], Subject]] = {
    "bluesky": _bluesky,
    "instagram": _instagram,
    "mastodon": _mastodon,
    "reddit": _reddit,
    "rss": _rss,
    "x": _x,
    "youtube": _youtube,
}
