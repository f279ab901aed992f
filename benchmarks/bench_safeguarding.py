"""takedown_to_queue: a removal request reaches the moderators and leaves the public side
(safeguarding issue).

The store holds ``BENCH_TAKEDOWN_POSTS`` posts (default 20,000; one in ten pending, the
rest approved or rejected) served by a real uvicorn server on 127.0.0.1. For each
sample a member of the public opens the report form of an approved post and sends a
request in a safeguarding category ("It shows me or my child").

The request is handled synchronously: once its answer arrives, the post is in the
*Takedown requests* tab and off ``/gallery.json`` (each sample checks both, untimed,
so a regression to anything asynchronous fails the run rather than looking fast). So
the time from the POST to the post showing in the tab is the POST's round trip,
reported as p95 against the p95 of a ``/healthz`` round trip interleaved with it on the
same server. ``with_checks_p95_ms`` adds the moderator's tab and the public feed
requests, for reference.

Between samples the benchmark forgets the earlier requests' rows, so the form's rate
limit (a few requests per address an hour) does not refuse the next sample.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time

import httpx

from benchmarks._harness import ScratchDatabase, emit, p95, read_rows
from benchmarks.bench_queue import fill, log_in
from monitor.config import load_settings
from monitor.web.app import create_app
from tests.web.auth_helpers import make_user
from tests.web.live_server import live_server

POSTS = int(os.environ.get("BENCH_TAKEDOWN_POSTS", "20000"))
SAMPLES = int(os.environ.get("BENCH_TAKEDOWN_SAMPLES", "40"))
CATEGORY = "shows_me_or_my_child"


def _newest_approved(path: str, count: int) -> list[tuple[int, str]]:
    """(row id, public id) of the newest approved posts: the first page of the gallery."""
    rows = read_rows(
        path,
        "SELECT id, platform || ':' || external_id FROM posts WHERE status = 'approved'"
        " ORDER BY created_at DESC LIMIT ?",
        count,
    )
    return [(int(str(row[0])), str(row[1])) for row in rows]


def _forget_requests(path: str) -> None:
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("DELETE FROM takedown_requests")
    connection.close()


def _sample(
    public: httpx.Client, moderator: httpx.Client, post_id: int, public_id: str
) -> tuple[float, float, float]:
    """Seconds of a ``/healthz`` round trip, of one takedown POST, and of the checks that
    the post is in the moderators' tab and off the public feed."""
    form = public.get(f"/gallery/report/{post_id}")
    form.raise_for_status()
    token = re.search(r'name="token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    fields = {"token": token.group(1), "category": CATEGORY, "details": "bench"}
    started = time.perf_counter()
    public.get("/healthz").raise_for_status()
    health = time.perf_counter() - started
    started = time.perf_counter()
    public.post(f"/gallery/report/{post_id}", data=fields).raise_for_status()
    request = time.perf_counter() - started
    started = time.perf_counter()
    tab = moderator.get("/queue", params={"tab": "takedowns"})
    assert f'id="post-{post_id}"' in tab.text, "the request is not in the Takedown tab"
    feed = public.get("/gallery.json").json()["posts"]
    assert feed and all(p["id"] != public_id for p in feed), "the post is still public"
    return health, request, time.perf_counter() - started


def main() -> None:
    scratch = ScratchDatabase()
    with scratch as engine:
        path = str(scratch.path)
        fill(path, POSTS)
        make_user(engine, "mo", "moderator")
        settings = load_settings(
            data_dir=scratch.path.parent / "data",
            media_dir=scratch.path.parent / "media",
            log_level="WARNING",
        )
        with (
            live_server(create_app(settings, engine=engine)) as server,
            httpx.Client(base_url=server.url, timeout=60) as moderator,
            httpx.Client(base_url=server.url, timeout=60) as public,
        ):
            log_in(moderator)
            for _ in range(10):  # warm caches and the connection pools
                public.get("/gallery.json").raise_for_status()
                public.get("/healthz").raise_for_status()
            post_times, check_times, health_times = [], [], []
            for post_id, public_id in _newest_approved(path, SAMPLES):
                health, request, checks = _sample(public, moderator, post_id, public_id)
                health_times.append(health)
                post_times.append(request)
                check_times.append(checks)
                _forget_requests(path)
            emit(
                "takedown_to_queue", "p95_ms", p95(post_times) * 1000,
                p95(health_times) * 1000, POSTS, samples=len(post_times),
                with_checks_p95_ms=round(
                    p95([a + b for a, b in zip(post_times, check_times, strict=True)]) * 1000, 3
                ),
            )  # fmt: skip


if __name__ == "__main__":
    main()
