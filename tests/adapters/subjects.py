"""Each built-in adapter on its local fake, as a contract subject (see adapters/contract.py)."""

from __future__ import annotations

from collections.abc import Callable

from adapters.base import Target
from adapters.contract import TAG, Subject, build
from tests.fakes.registry import fake_config, make_fake
from tests.fakes.server import FakeServer

#: Whether each platform's target is scoped to the fake (an instance, a feed) rather than
#: the whole platform, and how many posts fill more than one page (None: RSS has no pages).
_STARTS: dict[str, tuple[bool, int | None]] = {
    "bluesky": (False, 101),
    "instagram": (False, 51),
    "mastodon": (True, 41),
    "reddit": (False, 101),
    "rss": (True, None),
    "x": (False, 101),
    "youtube": (False, 51),
}


def _subject(name: str) -> Callable[[FakeServer], Subject]:
    scoped, page = _STARTS[name]

    def make(server: FakeServer) -> Subject:
        fake = make_fake(name, server)
        target = Target(fake.url if scoped else "", (TAG,))
        return Subject(build(name, fake_config(name, fake)), target, server, fake.add, page)

    return make


SUBJECTS: dict[str, Callable[[FakeServer], Subject]] = {name: _subject(name) for name in _STARTS}
