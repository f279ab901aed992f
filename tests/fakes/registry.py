"""One registry of the platform fakes, shared by the tests and the benchmarks: which fake
plays which built-in platform, and the settings that point that platform's adapter at it.

Add a platform here once and the all-platforms test, the adapter contract subjects and
``bench_adapters`` all use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from tests.fakes import bluesky, instagram, reddit, rss, x, youtube
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FakeServer


def _bluesky(fake: Any) -> dict[str, str]:
    return {
        "BLUESKY_API_BASE": fake.url,
        "BLUESKY_HANDLE": bluesky.HANDLE,
        "BLUESKY_APP_PASSWORD": bluesky.APP_PASSWORD,
    }


def _instagram(fake: Any) -> dict[str, str]:
    return {
        "INSTAGRAM_API_BASE": fake.url,
        "INSTAGRAM_ACCESS_TOKEN": instagram.TOKEN,
        "INSTAGRAM_USER_ID": instagram.USER_ID,
    }


#: Each built-in platform: the fake that plays it, and its adapter's settings for the fake.
FAKES: dict[str, tuple[Callable[[FakeServer], Any], Callable[[Any], dict[str, str]]]] = {
    "bluesky": (bluesky.FakeBluesky, _bluesky),
    "instagram": (instagram.FakeInstagram, _instagram),
    "mastodon": (FakeMastodon, lambda fake: {"MASTODON_INSTANCES": fake.url}),
    "reddit": (reddit.FakeReddit, lambda fake: fake.config()),
    # The feed is on 127.0.0.1, which the outbound guard refuses unless told otherwise.
    "rss": (rss.FakeFeed, lambda fake: {"RSS_FEEDS": fake.url, "OUTBOUND_ALLOW_PRIVATE": "true"}),
    "x": (x.FakeX, lambda fake: {"X_API_BASE": fake.url, "X_BEARER_TOKEN": x.TOKEN}),
    "youtube": (
        youtube.FakeYouTube,
        lambda fake: {"YOUTUBE_API_BASE": fake.url, "YOUTUBE_API_KEY": youtube.API_KEY},
    ),
}
PLATFORMS: tuple[str, ...] = tuple(FAKES)


def make_fake(name: str, server: FakeServer) -> Any:
    """The fake of platform ``name``, serving on ``server``."""
    return FAKES[name][0](server)


def fake_config(name: str, fake: Any) -> dict[str, str]:
    """The settings that point platform ``name``'s adapter at ``fake``."""
    return FAKES[name][1](fake)


def all_config(fakes: dict[str, Any]) -> dict[str, str]:
    """The settings for every fake in ``fakes`` at once (as one deployment would have)."""
    config: dict[str, str] = {}
    for name, fake in fakes.items():
        config |= fake_config(name, fake)
    return config


@contextmanager
def running_fakes(names: Sequence[str] = PLATFORMS) -> Iterator[dict[str, Any]]:
    """One local server per platform, each playing its platform; all stopped afterwards."""
    with ExitStack() as stack:
        fakes = {}
        for name in names:
            server = FakeServer().start()
            stack.callback(server.stop)
            fakes[name] = make_fake(name, server)
        yield fakes
