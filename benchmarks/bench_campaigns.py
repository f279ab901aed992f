"""queue_page_campaigns and poll_cycle_campaigns: many campaigns in one install (issue 14).

- ``queue_page_campaigns``: the Pending tab of one campaign among 50, over a store of
  ``BENCH_CAMPAIGN_POSTS`` posts (default 100,000, so ``make bench`` stays within its
  five minutes; the issue's 1,000,000 is ``BENCH_CAMPAIGN_POSTS=1000000``, about a
  quarter of an hour to build on two cores) placed round the campaigns (one
  in ten of them also in a second campaign), one in ten pending; p95 latency for a
  moderator of that campaign only, against ``/healthz`` p95 from the same server,
  interleaved so both see the same load. Target ratio <= 5.
- ``poll_cycle_campaigns``: requests one idle polling cycle makes with 50 campaigns
  sharing 20 hashtags on one Mastodon instance, against the 20 distinct
  (instance, tag) pairs; target ratio 1 (one request per pair, not per campaign).

Rows are written with plain ``sqlite3`` so that building the store does not dominate.
"""

from __future__ import annotations

import os
import statistics
from datetime import UTC, datetime, timedelta

import httpx

from benchmarks._harness import ScratchDatabase, bulk_writer, emit, p95, seconds, stamp
from benchmarks.bench_queue import log_in
from monitor.config import load_settings
from monitor.db import session_scope
from monitor.models import Role
from monitor.services.campaigns import NewCampaign, add_campaign, grant_role
from monitor.services.polling import poll_all
from monitor.web.app import create_app
from tests.fakes.registry import all_config, running_fakes
from tests.web.auth_helpers import make_user
from tests.web.live_server import live_server

POSTS = int(os.environ.get("BENCH_CAMPAIGN_POSTS", "100000"))
SAMPLES = int(os.environ.get("BENCH_CAMPAIGN_SAMPLES", "200"))
CAMPAIGNS = 50
TAGS = 20
BATCH = 50_000
START = datetime(2021, 3, 1, tzinfo=UTC)
#: The campaign whose moderator is measured (not the default one).
MEASURED = "force-7"


def _campaigns(engine: object, settings: object) -> dict[str, int]:
    """Fifty campaigns beside the default, each with three of twenty tags; slug -> id."""
    ids: dict[str, int] = {}
    with session_scope(engine) as session:  # type: ignore[arg-type]
        for number in range(CAMPAIGNS):
            tags = [f"Tag{(number + offset) % TAGS}" for offset in range(3)]
            new = NewCampaign(f"force-{number}", f"Force {number}", tags)
            campaign = add_campaign(session, settings, new, actor="bench")  # type: ignore[arg-type]
            ids[campaign.slug] = campaign.id or 0
    return ids


def fill(path: str, posts: int, campaign_ids: list[int]) -> None:
    """Posts, their tags and their placements; decided ones with an audit row."""
    with bulk_writer(path) as connection:
        for first in range(0, posts, BATCH):
            post_rows, tag_rows, placed_rows = [], [], []
            for i in range(first, min(first + BATCH, posts)):
                created = START + timedelta(seconds=3 * i)
                status = "pending" if i % 10 == 0 else ("approved", "rejected")[i % 2]
                flagged = status == "pending" and i % 1000 == 0
                post_rows.append(
                    (i + 1, "mastodon", f"id{i}", f"mastodon:id{i}", f"https://m.example/@u/{i}",
                     f"@u{i % 5000}@m.example", f"User {i % 5000}", f"Post {i} #Tag{i % TAGS}",
                     f"<p>Post {i}</p>", f"h{i}", stamp(created), stamp(created), stamp(created),
                     status, flagged, '["Personal data"]' if flagged else None)
                )  # fmt: skip
                tag_rows.append((i + 1, f"tag{i % TAGS}"))
                homes = {campaign_ids[i % len(campaign_ids)]}
                if i % 10 == 5:
                    homes.add(campaign_ids[(i // 10) % len(campaign_ids)])
                placed_rows.extend((campaign, i + 1, status, stamp(created)) for campaign in homes)
            connection.executemany(
                "INSERT INTO posts (id, platform, external_id, ref, url, author_handle,"
                " author_name, text, html, content_hash, created_at, first_seen_at, last_seen_at,"
                " status, flagged, flag_reasons, sensitive, version)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,1)",
                post_rows,
            )
            connection.executemany("INSERT INTO post_hashtags VALUES (?, ?)", tag_rows)
            connection.executemany(
                "INSERT INTO campaign_posts (campaign_id, post_id, status, created_at)"
                " VALUES (?, ?, ?, ?)",
                placed_rows,
            )


def bench_queue_page() -> None:
    scratch = ScratchDatabase()
    with scratch as engine:
        settings = load_settings(
            data_dir=scratch.path.parent / "data",
            media_dir=scratch.path.parent / "media",
            log_level="WARNING",
            hashtags=["CEADAY21"],
        )
        ids = _campaigns(engine, settings)
        fill(str(scratch.path), POSTS, list(ids.values()))
        make_user(engine, "mo", "none")
        with session_scope(engine) as session:
            grant_role(session, settings, name="mo", slug=MEASURED, role=Role.MODERATOR, actor="b")
        with (
            live_server(create_app(settings, engine=engine)) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            log_in(client)
            for _ in range(10):
                client.get("/queue").raise_for_status()
                client.get("/healthz").raise_for_status()
            page_times, health_times = [], []
            for _ in range(SAMPLES):
                page_times.append(seconds(lambda: client.get("/queue").raise_for_status()))
                health_times.append(seconds(lambda: client.get("/healthz").raise_for_status()))
            emit(
                "queue_page_campaigns", "p95_ms", p95(page_times) * 1000,
                p95(health_times) * 1000, POSTS, campaigns=CAMPAIGNS, samples=SAMPLES,
                median_ms=round(statistics.median(page_times) * 1000, 3),
            )  # fmt: skip


def bench_poll_cycle() -> None:
    with running_fakes(["mastodon"]) as fakes:
        os.environ.update({"HASHTAGS": "Tag0", "PLATFORMS": "mastodon", **all_config(fakes)})
        settings = load_settings()
        with ScratchDatabase() as engine:
            _campaigns(engine, settings)
            poll_all(engine=engine, settings=settings)  # the first cycle pages back; then idle
            server = fakes["mastodon"].server
            before = server.hits("/api/v1/timelines/tag/")
            poll_all(engine=engine, settings=settings)
            made = server.hits("/api/v1/timelines/tag/") - before
    emit("poll_cycle_campaigns", "requests", made, TAGS, CAMPAIGNS, distinct_tags=TAGS)


def main() -> None:
    bench_poll_cycle()
    bench_queue_page()


if __name__ == "__main__":
    main()
