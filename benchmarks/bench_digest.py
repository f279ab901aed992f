"""digest_compute, stats_year and report_pdf over a large store (digest and reach issues).

* ``digest_compute``: one day's digest against ``SELECT count(*)`` of that day's
  snapshots (target ratio 10).
* ``stats_year``: ``/stats``' figures for a 365-day range ending on the same day
  (the whole store and more) against the one-day figures (target ratio 3).
* ``report_pdf``: the PDF campaign report of 30 days, in seconds, with its page count
  (the baseline is the 30-day figures alone).


The store holds ``BENCH_DIGEST_POSTS`` posts (default 150,000) spread over
60 days, five engagement snapshots each (the first at arrival, then 1 h, 6 h,
1 day and 3 days later), their hashtags, three sources polled every five
minutes, and a decision for most posts. The value is the time of
``compute_digest`` for one day in the middle; the baseline is one
``SELECT count(*)`` over that day's snapshots in the same run, i.e. the least
any day-figure over snapshots has to read. Rows are written with plain
``sqlite3`` so that building the store does not dominate the run; the daily
engagement roll-up is then built from them by the migration's back-fill
(:func:`monitor.services.engagement.rebuild`), as for a store upgraded in place.

The issue's scale (1,000,000 posts, 5,000,000 snapshots) takes several minutes
just to build on a shared machine, past the time ``make bench`` allows, so the
default is smaller; set ``BENCH_DIGEST_POSTS=1000000`` to run it in full.
``BENCH_DIGEST_STORE=PATH`` keeps the store built there and reuses it on the next run
of the same size (migrated first, so a newer schema's back-fills run on it), so that
only the first run pays for building it.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pypdf import PdfReader
from sqlalchemy.engine import Engine
from sqlmodel import Session

from benchmarks._harness import EVENT_SQL, ScratchDatabase, bulk_writer, emit, seconds, stamp
from monitor.config import Settings, load_settings
from monitor.db import create_db_engine, upgrade
from monitor.services import decisions, rollup
from monitor.services.digest import compute_digest, local_midnight
from monitor.services.engagement import rebuild
from monitor.services.report import build_report, render_pdf

POSTS = int(os.environ.get("BENCH_DIGEST_POSTS", "150000"))
STORE = os.environ.get("BENCH_DIGEST_STORE")
SNAPSHOT_OFFSETS = (timedelta(0), timedelta(hours=1), timedelta(hours=6), timedelta(days=1))
SNAPSHOT_OFFSETS += (timedelta(days=3),)
DAYS = 60
FIRST_DAY = date(2021, 2, 1)
DAY = FIRST_DAY + timedelta(days=DAYS // 2)
BATCH = 50_000
RUNS = 3


PLATFORMS = ("mastodon", "bluesky", "x")
ACTIONS = {"approved": "approve", "rejected": "reject"}
POST_SQL = (
    "INSERT INTO posts (id, platform, external_id, ref, url, author_handle, author_name, text,"
    " html, content_hash, created_at, first_seen_at, last_seen_at, status, flagged, likes,"
    " shares, replies, quotes, views, sensitive, version)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,1)"
)
SNAPSHOT_SQL = (
    "INSERT INTO engagement_snapshots (post_id, taken_at, likes, shares, replies, quotes, views)"
    " VALUES (?,?,?,?,?,?,?)"
)


def _rows(i: int, created: datetime) -> tuple[tuple[object, ...], list[tuple[object, ...]]]:
    """Post ``i`` and its snapshots: mastodon gives no quotes or views; counts grow."""
    platform = PLATFORMS[i % 3]
    seen = created + timedelta(minutes=3)
    status = "pending" if i % 20 == 0 else ("approved", "rejected")[i % 2]
    no_extras = platform == "mastodon"
    likes, shares, replies = i % 50, i % 7, i % 5
    quotes = None if no_extras else i % 3
    views = None if no_extras else 40 * (i % 100)
    author = f"@u{i % 20000}"
    post = (
        *(i + 1, platform, f"id{i}", f"{platform}:id{i}", f"https://{platform}.example/{i}"),
        *(author, author, f"Post {i} #CEADAY21", f"<p>Post {i}</p>", f"h{i}", stamp(created)),
        *(
            stamp(seen),
            stamp(seen),
            status,
            i % 97 == 0,
            likes,
            shares,
            replies,
            quotes,
            views,
        ),
    )
    snapshots = [
        (
            *(i + 1, stamp(seen + offset), likes * (k + 1) // 5, shares * (k + 1) // 5),
            *(replies * (k + 1) // 5, quotes, None if views is None else views * (k + 1) // 5),
        )
        for k, offset in enumerate(SNAPSHOT_OFFSETS)
    ]
    return post, snapshots


def fill(path: str, posts: int) -> int:
    """Write the store; returns how many snapshots it holds."""
    start = datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=UTC)
    step = timedelta(days=DAYS) / posts
    snapshots = 0
    with bulk_writer(path, analyse=False) as connection:
        for first in range(0, posts, BATCH):
            post_rows, tag_rows, snap_rows, event_rows = [], [], [], []
            for i in range(first, min(first + BATCH, posts)):
                created = start + step * i
                post, post_snapshots = _rows(i, created)
                post_rows.append(post)
                snap_rows += post_snapshots
                tag_rows.append((i + 1, "ceaday21"))
                if i % 4 == 0:
                    tag_rows.append((i + 1, "helpinghands"))
                status = str(post[13])
                if status in ACTIONS:
                    decided = stamp(created + timedelta(hours=2))
                    event_rows.append((i + 1, decided, "alice", ACTIONS[status], "pending", status))
            connection.executemany(POST_SQL, post_rows)
            connection.executemany("INSERT INTO post_hashtags VALUES (?, ?)", tag_rows)
            connection.executemany(SNAPSHOT_SQL, snap_rows)
            connection.executemany(EVENT_SQL, event_rows)
            snapshots += len(snap_rows)
        for source_id, platform in enumerate(PLATFORMS, start=1):
            connection.execute(
                "INSERT INTO sources (id, key, platform, scope, hashtags, failures_in_row,"
                " last_success_at) VALUES (?, ?, ?, '', 'ceaday21,helpinghands', 0, ?)",
                (source_id, f"{platform}:*", platform, stamp(start + timedelta(days=DAYS))),
            )
            connection.executemany(
                "INSERT INTO poll_runs (source_id, kind, started_at, ok, pages, requests,"
                " fetched, new, updated, skipped) VALUES (?, 'poll', ?, 1, 1, 1, 0, 0, 0, 0)",
                [
                    (source_id, stamp(start + timedelta(minutes=5 * m)))
                    for m in range(DAYS * 24 * 12)
                ],
            )
    return snapshots


def build(engine: Engine, settings: Settings) -> None:
    """Fill a fresh, migrated store and its roll-ups."""
    engine.dispose()
    fill(str(engine.url.database), POSTS)
    # The rows were written raw, past the code that keeps the roll-up: build it as
    # the migration does for an existing store.
    with engine.begin() as connection:
        rebuild(connection, settings.zone)
        rollup.rebuild(connection)
        decisions.rebuild(connection)
        connection.exec_driver_sql("ANALYZE")


@contextmanager
def store(settings: Settings) -> Iterator[Engine]:
    """The benchmark's store: a scratch one, or the one kept at ``BENCH_DIGEST_STORE``
    (built there the first time; rebuilt when it holds another number of posts)."""
    if STORE is None:
        with ScratchDatabase() as engine:
            build(engine, settings)
            yield engine
        return
    path = Path(STORE)
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        if path.exists():
            upgrade(engine)
            with engine.connect() as connection:
                held = connection.exec_driver_sql("SELECT count(*) FROM posts").scalar_one()
            if held != POSTS:
                engine.dispose()
                for stale in path.parent.glob(path.name + "*"):
                    stale.unlink()
        if not path.exists():
            upgrade(engine)
            build(engine, settings)
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
        yield engine
    finally:
        engine.dispose()


def main() -> None:
    settings = load_settings(hashtags=["CEADAY21", "HelpingHands"])
    with store(settings) as engine:
        with engine.connect() as connection:
            snapshots = int(
                connection.exec_driver_sql("SELECT count(*) FROM engagement_snapshots").scalar_one()
            )
        zone = settings.zone
        start, end = local_midnight(DAY, zone), local_midnight(DAY + timedelta(days=1), zone)
        now = end + timedelta(hours=8)

        def count_day_snapshots() -> int:
            with engine.connect() as connection:
                return int(
                    connection.exec_driver_sql(
                        "SELECT count(*) FROM engagement_snapshots"
                        " WHERE taken_at >= ? AND taken_at < ?",
                        (stamp(start), stamp(end)),
                    ).scalar_one()
                )

        def digest() -> None:
            with Session(engine) as session:
                result = compute_digest(session, settings, DAY, now=now)
            assert result.posts.value > 0 and not result.incomplete

        def year() -> None:
            with Session(engine) as session:
                first = DAY - timedelta(days=364)
                result = compute_digest(session, settings, first, DAY, now=now)
            assert result.posts.value > 0

        def month_figures() -> None:
            with Session(engine) as session:
                compute_digest(session, settings, DAY - timedelta(days=29), DAY, now=now)

        pages: list[int] = []

        def report() -> None:
            with Session(engine) as session:
                built = build_report(session, settings, DAY - timedelta(days=29), DAY)
            pages.append(len(PdfReader(io.BytesIO(render_pdf(built, settings))).pages))

        day_snapshots = count_day_snapshots()
        digest()  # warm the page cache for both sides alike
        value = statistics.median(seconds(digest) for _ in range(RUNS))
        baseline = statistics.median(seconds(count_day_snapshots) for _ in range(RUNS))
        year()
        year_value = statistics.median(seconds(year) for _ in range(RUNS))
        report_value = seconds(report)
        month_value = seconds(month_figures)
    emit("stats_year", "seconds", year_value, value, POSTS, days=365)
    emit("report_pdf", "seconds", report_value, month_value, POSTS, pages=pages[0], days=30)
    emit(
        "digest_compute",
        "seconds",
        value,
        baseline,
        POSTS,
        snapshots=snapshots,
        day_snapshots=day_snapshots,
    )


if __name__ == "__main__":
    sys.exit(main())
