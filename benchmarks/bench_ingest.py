"""ingest / repoll / idle_cycle (foundation issue).

* ingest: 100,000 new posts through the real ingest service, a page of 500 per
  transaction as the poller commits them; baseline: plain ``sqlite3``
  ``executemany`` of the same rows into the same tables, same page size.
* repoll: the same posts arriving again (all duplicates), same baseline.
* idle_cycle: requests one poll cycle with nothing new makes, per
  (instance, hashtag); the baseline is the minimum, one.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import Author, Engagement, FetchedPost, Media
from benchmarks._harness import ScratchDatabase, emit, seconds
from monitor.db import session_scope
from monitor.services.ingest import _post_row, record_posts

N = int(os.environ.get("BENCH_INGEST_N", "100000"))
PAGE = 500
START = datetime(2021, 3, 18, tzinfo=UTC)


def make_posts(count: int) -> list[FetchedPost]:
    return [
        FetchedPost(
            platform="mastodon",
            external_id=f"https://example.social/users/u{i % 5000}/statuses/{i}",
            url=f"https://example.social/@u{i % 5000}/{i}",
            author=Author(handle=f"@u{i % 5000}@example.social", name=f"User {i % 5000}"),
            text=f"Message {i} written on my hands #CEADAY21 #HelpingHands",
            html=f"<p>Message {i} written on my hands #CEADAY21 #HelpingHands</p>",
            created_at=START + timedelta(seconds=i),
            hashtags=("ceaday21", "helpinghands"),
            media=(Media(kind="image", url=f"https://files.example.social/{i}.jpg", alt="Hands"),),
            engagement=Engagement(likes=i % 7, shares=i % 3, replies=0),
            ref=f"https://example.social|{i}",
        )
        for i in range(count)
    ]


def ingest(posts: list[FetchedPost], engine: Any) -> None:
    for start in range(0, len(posts), PAGE):
        with session_scope(engine) as session:
            record_posts(session=session, posts=posts[start : start + PAGE])


def raw_executemany(posts: list[FetchedPost], path: str) -> None:
    """The floor: the same rows, written with no ORM, no lookups, no checks."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    columns = list(_post_row(posts[0], START)) + [
        "first_seen_at",
        "last_seen_at",
        "status",
        "version",
        "flagged",
    ]
    insert_post = (
        f"INSERT INTO posts ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    )
    for start in range(0, len(posts), PAGE):
        page = posts[start : start + PAGE]
        first_id = start + 1
        rows = []
        for post in page:
            row = _post_row(post, START)
            row["created_at"] = post.created_at.replace(tzinfo=None).isoformat(" ")
            rows.append([*row.values(), now, now, "pending", 1, False])
        with connection:
            connection.executemany(insert_post, rows)
            connection.executemany(
                "INSERT INTO post_hashtags (post_id, tag) VALUES (?, ?)",
                [(first_id + i, tag) for i, p in enumerate(page) for tag in p.hashtags],
            )
            connection.executemany(
                "INSERT INTO media (post_id, position, kind, url, alt, sensitive)"
                " VALUES (?, 0, 'image', ?, ?, 0)",
                [(first_id + i, p.media[0].url, p.media[0].alt) for i, p in enumerate(page)],
            )
            connection.executemany(
                "INSERT INTO engagement_snapshots (post_id, taken_at, likes, shares, replies)"
                " VALUES (?, ?, ?, ?, ?)",
                [(first_id + i, now, 1, 0, 0) for i in range(len(page))],
            )
    connection.close()


def idle_cycle() -> None:
    from monitor.config import load_settings
    from monitor.services.polling import poll_all
    from tests.fakes.registry import fake_config, running_fakes

    with running_fakes(["mastodon"]) as fakes:
        instance = fakes["mastodon"]
        server = instance.server
        instance.add_many(50, tags=("CEADAY21", "HelpingHands"))
        os.environ.update(fake_config("mastodon", instance), HASHTAGS="CEADAY21,HelpingHands")
        settings = load_settings()
        with ScratchDatabase() as engine:
            poll_all(engine=engine, settings=settings)
            before = server.hits()
            summaries = poll_all(engine=engine, settings=settings)
            made = server.hits() - before
        targets = len(summaries)
        emit("idle_cycle", "requests_per_target", made / targets, 1.0, targets, requests=made)


def main() -> None:
    posts = make_posts(N)
    with ScratchDatabase() as engine:
        ours = seconds(lambda: ingest(posts, engine))
        again = seconds(lambda: ingest(posts, engine))
    with ScratchDatabase() as engine:
        path = str(engine.url.database)
        floor = seconds(lambda: raw_executemany(posts, path))
    baseline = N / floor
    emit("ingest", "posts_per_s", N / ours, baseline, N)
    emit("repoll", "posts_per_s", N / again, baseline, N)
    idle_cycle()


if __name__ == "__main__":
    sys.exit(main())
