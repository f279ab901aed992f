"""refresh / normalise (every-platform issue).

* refresh: refreshing N known posts per platform through the real refresh job,
  against each platform's local fake: the minimum number of requests the
  platform's bulk endpoint allows, divided by the requests made (1.0 = no
  request wasted). RSS has no refresh endpoint and is left out.
* normalise: records normalised per second per adapter, against ``json.loads``
  of the same payloads (``xml.etree`` parsing for RSS, whose payload is XML).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import feedparser

from adapters import bluesky as bluesky_adapter
from adapters import instagram as instagram_adapter
from adapters import mastodon as mastodon_adapter
from adapters import reddit as reddit_adapter
from adapters import rss as rss_adapter
from adapters import x as x_adapter
from adapters import youtube as youtube_adapter
from benchmarks._harness import ScratchDatabase, emit
from monitor.config import load_settings
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from tests.fakes.registry import all_config, running_fakes

N = int(os.environ.get("BENCH_REFRESH_N", "1000"))
NORMALISE_ROUNDS = 20

#: Ids one bulk request may carry, per the platforms' documentation.
BULK_SIZES = {
    "bluesky": 25,
    "instagram": 50,
    "mastodon": 20,
    "reddit": 100,
    "x": 100,
    "youtube": 50,
}


def _environment(fakes: dict[str, Any]) -> dict[str, str]:
    return {
        "HASHTAGS": "CEADAY21",
        "POLL_MAX_PAGES": "1000",
        "YOUTUBE_DAILY_QUOTA": "1000000",
        **all_config(fakes),
    }


def bench_refresh(fakes: dict[str, Any]) -> None:
    for name in BULK_SIZES:
        for _ in range(N):
            fakes[name].add()
    os.environ.update(_environment(fakes))
    settings = load_settings()
    with ScratchDatabase() as engine:
        poll_all(engine=engine, settings=settings)
        for summary in refresh_all(engine=engine, settings=settings):
            if summary.platform not in BULK_SIZES:
                continue
            minimum = math.ceil(summary.checked / BULK_SIZES[summary.platform])
            made = max(summary.requests, 1)
            emit(
                "refresh",
                f"{summary.platform}_minimum_over_made",
                minimum,
                made,
                summary.checked,
                ok=summary.ok,
            )


def _rate(action: Callable[[], object], records: int) -> float:
    start = time.perf_counter()
    for _ in range(NORMALISE_ROUNDS):
        action()
    return records * NORMALISE_ROUNDS / (time.perf_counter() - start)


def bench_normalise(fakes: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    x_includes = {"users": list(fakes["x"].users.values())}
    cases: dict[str, tuple[list[Any], Callable[[Any], object]]] = {
        "mastodon": (
            list(fakes["mastodon"].statuses.values()),
            lambda s: mastodon_adapter.normalise_status("https://example.social", s),
        ),
        "bluesky": (list(fakes["bluesky"].posts.values()), bluesky_adapter.normalise_post),
        "x": (
            list(fakes["x"].tweets.values()),
            lambda t: x_adapter.normalise_tweet(t, x_includes),
        ),
        "instagram": (
            list(fakes["instagram"].media.values()),
            lambda m: instagram_adapter.normalise_media(m, now=now),
        ),
        "youtube": (list(fakes["youtube"].videos.values()), youtube_adapter.normalise_video),
        "reddit": (list(fakes["reddit"].posts.values()), reddit_adapter.normalise_post),
    }
    for name, (items, normalise) in cases.items():
        payload = json.dumps(items)

        def parse_only(payload: str = payload) -> object:
            return json.loads(payload)

        def parse_and_normalise(
            payload: str = payload, normalise: Callable[[Any], object] = normalise
        ) -> object:
            return [normalise(item) for item in json.loads(payload)]

        baseline = _rate(parse_only, len(items))
        emit(
            "normalise",
            f"{name}_records_per_s",
            _rate(parse_and_normalise, len(items)),
            baseline,
            len(items),
        )

    feed_bytes = fakes["rss"].render()
    entries = feedparser.parse(feed_bytes).entries
    url = fakes["rss"].url

    def rss_normalise() -> object:
        parsed = feedparser.parse(feed_bytes)
        now = datetime.now(UTC)
        return [
            rss_adapter.normalise_entry(url, parsed.feed, e, categories_are_hashtags=False, now=now)
            for e in parsed.entries
        ]

    emit(
        "normalise",
        "rss_records_per_s",
        _rate(rss_normalise, len(entries)),
        _rate(lambda: ElementTree.fromstring(feed_bytes), len(entries)),
        len(entries),
        baseline_kind="xml.etree",
    )


def main() -> None:
    with running_fakes() as fakes:
        for _ in range(200):
            fakes["rss"].add()
        bench_refresh(fakes)
        bench_normalise(fakes)


if __name__ == "__main__":
    sys.exit(main())
