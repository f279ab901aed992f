"""How long a post takes from the platform to our database, and from there to the queue.

Both figures come from the posts table (``created_at`` → ``first_seen_at`` →
``queued_at``), so every replica reports the same and nothing resets when the
leader changes. ``/metrics`` exposes them as Prometheus histograms, counted in
SQL over every post that has the times (a scrape reads two aggregate rows, not
the posts); :func:`latency_quantiles` gives the day's p50 and p95 for people.

``queued_at`` is set by the last step before a moderator can see the post
(:func:`monitor.services.staging.mark_queued`): at once for a post with no
pictures, after staging for one with pictures.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import HistogramMetricFamily, Metric

from monitor.models import Post

#: Upper bounds in seconds: sub-second streaming to a day-old post found by a first poll.
BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 86400.0)


def seconds_between(connection: sa.Connection, later: Any, earlier: Any) -> Any:
    """SQL for ``later - earlier`` in seconds, on SQLite (text times) and PostgreSQL."""
    if connection.dialect.name == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _histogram(
    connection: sa.Connection, name: str, doc: str, later: Any, earlier: Any
) -> HistogramMetricFamily:
    # A platform clock a little ahead of ours is not a negative latency.
    clamp = sa.func.greatest if connection.dialect.name == "postgresql" else sa.func.max
    duration = clamp(seconds_between(connection, later, earlier), 0.0)
    counts = [sa.func.sum(sa.case((duration <= bound, 1), else_=0)) for bound in BUCKETS]
    query = sa.select(sa.func.count(), sa.func.sum(duration), *counts).where(
        later.is_not(None), earlier.is_not(None)
    )
    total, total_seconds, *cumulative = connection.execute(query).one()
    buckets = [(str(bound), int(n or 0)) for bound, n in zip(BUCKETS, cumulative, strict=True)]
    buckets.append(("+Inf", int(total or 0)))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=float(total_seconds or 0))


def latency_metrics(connection: sa.Connection) -> Iterator[Metric]:
    """The two histograms for ``/metrics``."""
    posts = Post.__table__
    yield _histogram(
        connection,
        "hashtag_monitor_ingest_latency_seconds",
        "From a post's time on the platform to it being stored.",
        posts.c.first_seen_at,
        posts.c.created_at,
    )
    yield _histogram(
        connection,
        "hashtag_monitor_queue_latency_seconds",
        "From a post being stored to it being visible in the moderation queue.",
        posts.c.queued_at,
        posts.c.first_seen_at,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class LatencySummary:
    """p50 and p95 in seconds of the posts stored since a moment; None when there were none."""

    posts: int
    ingest_p50: float | None
    ingest_p95: float | None
    queue_p50: float | None
    queue_p95: float | None


def _quantiles(samples: list[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    if len(samples) == 1:
        return samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


def latency_quantiles(connection: sa.Connection, since: datetime) -> LatencySummary:
    """Today's figures for the admin page: posts first seen since ``since``."""
    posts = Post.__table__
    rows = connection.execute(
        sa.select(posts.c.created_at, posts.c.first_seen_at, posts.c.queued_at).where(
            posts.c.first_seen_at >= since
        )
    ).all()
    ingest = [max(0.0, (row.first_seen_at - row.created_at).total_seconds()) for row in rows]
    queue = [
        max(0.0, (row.queued_at - row.first_seen_at).total_seconds())
        for row in rows
        if row.queued_at is not None
    ]
    return LatencySummary(len(rows), *_quantiles(ingest), *_quantiles(queue))
