"""queue_page and bulk_approve: the moderation queue over a large store (queue issue).

The store holds ``BENCH_QUEUE_POSTS`` posts (default 100,000), one in ten
pending (1% of those flagged), every decided post with its audit row, one in
ten with an image. A real uvicorn server on 127.0.0.1 serves the app; a
logged-in moderator's client measures:

- ``queue_page``: p95 latency of the Pending tab (first page: flagged first,
  oldest first) against the p95 of ``/healthz`` from the same server, with
  the two requests interleaved so both see the same machine load;
- ``bulk_approve``: posts per second approved by one ``POST /queue/bulk`` of
  500 selected text posts, against raw ``sqlite3`` doing the least an approval
  must (update the status, insert the audit row) for another 500 posts.

Rows are written with plain ``sqlite3`` so that building the store does not
dominate the run.
"""

from __future__ import annotations

import os
import re
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx

from benchmarks._harness import (
    EVENT_SQL,
    ScratchDatabase,
    bulk_writer,
    emit,
    p95,
    read_rows,
    seconds,
    stamp,
)
from monitor.config import load_settings
from monitor.web.app import create_app
from tests.web.auth_helpers import DEFAULT_PASSWORD, make_user
from tests.web.live_server import live_server

POSTS = int(os.environ.get("BENCH_QUEUE_POSTS", "100000"))
PAGE_SAMPLES = int(os.environ.get("BENCH_QUEUE_SAMPLES", "200"))
BULK = 500
BULK_RUNS = 3
BATCH = 50_000
START = datetime(2021, 3, 1, tzinfo=UTC)


def fill(path: str, posts: int) -> None:
    """Write the store: posts, hashtags, an image on one in ten, audit rows for decisions."""
    with bulk_writer(path) as connection:
        for first in range(0, posts, BATCH):
            post_rows, tag_rows, media_rows, event_rows = [], [], [], []
            for i in range(first, min(first + BATCH, posts)):
                created = START + timedelta(seconds=30 * i)
                status = "pending" if i % 10 == 0 else ("approved", "rejected")[i % 2]
                flagged = status == "pending" and i % 1000 == 0
                post_rows.append(
                    (i + 1, "mastodon", f"id{i}", f"mastodon:id{i}", f"https://m.example/@u/{i}",
                     f"@u{i % 5000}@m.example", f"User {i % 5000}",
                     f"Post number {i} about #CEADAY21 and helping hands", f"<p>Post {i}</p>",
                     f"h{i}", stamp(created), stamp(created), stamp(created), status, flagged,
                     '["Personal data: looks like a UK phone number"]' if flagged else None,
                     i % 50, i % 7, i % 5)
                )  # fmt: skip
                tag_rows.append((i + 1, "ceaday21"))
                if i % 10 == 3 or i % 20 == 0:
                    media_rows.append(
                        (i + 1, 0, "image", f"https://files.example/{i}.jpg", "Hands", False)
                    )
                if status != "pending":
                    event_rows.append(
                        (i + 1, stamp(created + timedelta(hours=1)), "alice",
                         status[:-1] if status == "approved" else "reject", "pending", status)
                    )  # fmt: skip
            connection.executemany(
                "INSERT INTO posts (id, platform, external_id, ref, url, author_handle,"
                " author_name, text, html, content_hash, created_at, first_seen_at, last_seen_at,"
                " status, flagged, flag_reasons, likes, shares, replies, sensitive, version)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,1)",
                post_rows,
            )
            connection.executemany("INSERT INTO post_hashtags VALUES (?, ?)", tag_rows)
            connection.executemany(
                "INSERT INTO media (post_id, position, kind, url, alt, sensitive, decorative)"
                " VALUES (?,?,?,?,?,?,0)",
                media_rows,
            )
            connection.executemany(EVENT_SQL, event_rows)


def text_only_pending(path: str, count: int) -> list[tuple[int, int]]:
    """(id, version) of the newest pending posts without media (decided ones drop out)."""
    rows = read_rows(
        path,
        "SELECT id, version FROM posts WHERE status = 'pending' AND NOT flagged"
        " AND id NOT IN (SELECT post_id FROM media) ORDER BY id DESC LIMIT ?",
        count,
    )
    return [(int(str(row[0])), int(str(row[1]))) for row in rows]


def raw_approve(path: str, selection: list[tuple[int, int]]) -> float:
    """Seconds for plain sqlite3 to approve ``selection`` with an audit row each."""
    connection = sqlite3.connect(path)
    now = stamp(datetime.now(UTC))
    start = time.perf_counter()
    with connection:
        connection.executemany(
            "UPDATE posts SET status = 'approved', version = version + 1"
            " WHERE id = ? AND version = ?",
            selection,
        )
        connection.executemany(
            "INSERT INTO moderation_events (post_id, at, actor, action, from_status, to_status)"
            " VALUES (?, ?, 'alice', 'approve', 'pending', 'approved')",
            [(post_id, now) for post_id, _ in selection],
        )
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def log_in(client: httpx.Client) -> str:
    """Log the client in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = client.post(
        "/login", data={"name": "mo", "password": DEFAULT_PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 303, response.text
    csrf: str = client.get("/auth/session").json()["csrf_token"]
    return csrf


def main() -> None:
    scratch = ScratchDatabase()
    with scratch as engine:
        path = scratch.path
        fill(str(path), POSTS)
        make_user(engine, "mo", "moderator")
        settings = load_settings(
            data_dir=path.parent / "data", media_dir=path.parent / "media", log_level="WARNING"
        )
        with (
            live_server(create_app(settings, engine=engine)) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            csrf = log_in(client)
            for _ in range(10):  # warm caches and the connection pool
                client.get("/queue").raise_for_status()
                client.get("/healthz").raise_for_status()
            page_times, health_times = [], []
            for _ in range(PAGE_SAMPLES):
                page_times.append(seconds(lambda: client.get("/queue").raise_for_status()))
                health_times.append(seconds(lambda: client.get("/healthz").raise_for_status()))
            emit(
                "queue_page", "p95_ms", p95(page_times) * 1000, p95(health_times) * 1000, POSTS,
                pending=POSTS // 10, samples=PAGE_SAMPLES,
                median_ms=round(statistics.median(page_times) * 1000, 3),
                baseline_median_ms=round(statistics.median(health_times) * 1000, 3),
            )  # fmt: skip

            rates, baselines = [], []
            for _ in range(BULK_RUNS):
                selection = text_only_pending(str(path), BULK)
                fields = {
                    "csrf_token": csrf,
                    "action": "approve",
                    "selected": [f"{post_id}:{version}" for post_id, version in selection],
                }
                started = time.perf_counter()
                response = client.post(
                    "/queue/bulk", data=fields, headers={"accept": "application/json"}
                )
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.text
                assert len(response.json()["decided"]) == len(selection)
                rates.append(len(selection) / elapsed)
                reference = text_only_pending(str(path), BULK)
                baselines.append(len(reference) / raw_approve(str(path), reference))
            emit(
                "bulk_approve", "posts_per_s", statistics.median(rates),
                statistics.median(baselines), BULK, runs=BULK_RUNS,
            )  # fmt: skip


if __name__ == "__main__":
    main()
