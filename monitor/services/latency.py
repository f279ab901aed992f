"""How long a post takes at each step of its way: the one owner of "latency".

Each stage (:class:`~monitor.models.LatencyStage`) is measured where the step is
seen, and stored, so every replica reports the same and nothing resets when the
leader changes:

- ``platform_to_stored``: the post's time on the platform to it being stored,
  read from the posts table (``created_at`` to ``first_seen_at``).
- ``stored_to_queue``: stored to visible in the moderation queue, read from the
  posts table (``first_seen_at`` to ``queued_at``). ``queued_at`` is set by
  :func:`monitor.services.staging.mark_queued` once nothing is left to stage:
  at once for a post with no pictures, after staging and image analysis for one
  with pictures. Posts from before ``queued_at`` existed have none and are left out.
- ``approval_to_gallery``: approval to visible on the open walls (the live gallery
  and the embed), and ``approval_to_screen``: the same for the event screen, its
  delay included. Both are :class:`~monitor.models.LatencySample` rows the live hub
  (:mod:`monitor.web.live`) writes with :func:`record_latency` when it announces
  the post.
- ``takedown_to_gallery``: a takedown request that holds a post to the post being
  off the open walls, a sample the live hub writes when it announces the removal.

A measurement belongs to the moment its step ended (``first_seen_at``,
``queued_at``, a sample's ``at``). :func:`latency_metrics` gives ``/metrics`` a
histogram of every stage, counted in SQL over all time: the posts' two as
``hashtag_monitor_ingest_latency_seconds`` and
``hashtag_monitor_queue_latency_seconds``, the samples as
``hashtag_monitor_stage_latency_seconds{stage=...}``. :func:`today_figures` gives
the admin page each stage's count, median and 95th percentile for the local day.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from prometheus_client.core import HistogramMetricFamily, Metric
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from monitor.models import LatencySample, LatencyStage, Post

#: What each stage measures, in words (the admin page, the metrics' help), in the
#: order of a post's way.
STAGES: dict[LatencyStage, str] = {
    LatencyStage.PLATFORM_TO_STORED: "platform to stored",
    LatencyStage.STORED_TO_QUEUE: "stored to visible in the queue (after image analysis)",
    LatencyStage.APPROVAL_TO_GALLERY: "approval to visible on the gallery",
    LatencyStage.APPROVAL_TO_SCREEN: "approval to visible on the event screen (delay included)",
    LatencyStage.TAKEDOWN_TO_GALLERY: "takedown request to off the gallery",
}
#: Histogram bucket bounds, seconds: from "live" through "a poll interval" to a day-old
#: post found by a first poll.
BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 86400.0)


@dataclasses.dataclass(frozen=True, slots=True)
class _FromPosts:
    """A stage read from two of the posts' times, and the metric it has always had."""

    metric: str
    start: str
    end: str


_FROM_POSTS: dict[LatencyStage, _FromPosts] = {
    LatencyStage.PLATFORM_TO_STORED: _FromPosts(
        "hashtag_monitor_ingest_latency_seconds", "created_at", "first_seen_at"
    ),
    LatencyStage.STORED_TO_QUEUE: _FromPosts(
        "hashtag_monitor_queue_latency_seconds", "first_seen_at", "queued_at"
    ),
}
#: The stages stored as samples, one labelled histogram between them.
SAMPLED: tuple[LatencyStage, ...] = tuple(s for s in LatencyStage if s not in _FROM_POSTS)
_SAMPLED_METRIC = "hashtag_monitor_stage_latency_seconds"


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One step of one post version, as the process that saw it end measured it."""

    stage: LatencyStage
    post_id: int
    version: int
    at: datetime
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class StageFigures:
    """One stage's figures for the admin page (p50/p95 are None without samples)."""

    stage: LatencyStage
    label: str
    count: int
    p50: float | None
    p95: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class DayFigures:
    """Every stage's figures for one local day, which began at ``start``."""

    start: datetime
    stages: list[StageFigures]


@dataclasses.dataclass(frozen=True, slots=True)
class StageHistogram:
    """One stage's measurements over all time, as Prometheus counts them."""

    stage: LatencyStage
    #: Cumulative counts per bound of :data:`BUCKETS`.
    cumulative: tuple[int, ...]
    count: int
    total: float


def record_latency(session: Session, samples: Iterable[Sample]) -> None:
    """Store samples (the caller commits); one already stored for that post version and
    stage is left as it was, so the first process to see a step wins."""
    rows = []
    for sample in samples:
        if sample.stage in _FROM_POSTS:
            raise ValueError(f"{sample.stage} is read from the posts' times, not sampled")
        if math.isfinite(sample.seconds):
            rows.append(
                {
                    "stage": sample.stage,
                    "post_id": sample.post_id,
                    "version": sample.version,
                    "at": sample.at,
                    "seconds": max(0.0, sample.seconds),
                }
            )
    if not rows:
        return
    table = LatencySample.__table__
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    session.execute(insert.on_conflict_do_nothing(), rows)


def histograms(connection: sa.Connection) -> list[StageHistogram]:
    """Every stage measured at least once: cumulative bucket counts and sum, in one pass
    over the posts and one grouped query over the samples."""
    measured = [*_post_histograms(connection), *_sample_histograms(connection)]
    order = list(LatencyStage)
    return sorted((h for h in measured if h.count), key=lambda h: order.index(h.stage))


def latency_metrics(connection: sa.Connection) -> Iterator[Metric]:
    """The histograms for ``/metrics``: the posts' two always (zero counts included, as
    dashboards expect them), and the samples' one labelled by stage."""
    for histogram in _post_histograms(connection):
        yield HistogramMetricFamily(
            _FROM_POSTS[histogram.stage].metric,
            f"Seconds from {STAGES[histogram.stage]}, over every post that has both times.",
            buckets=_buckets(histogram),
            sum_value=histogram.total,
        )
    family = HistogramMetricFamily(
        _SAMPLED_METRIC,
        "Seconds each step of a post's way took: "
        + "; ".join(f"{stage} = {STAGES[stage]}" for stage in SAMPLED)
        + ".",
        labels=["stage"],
    )
    for histogram in _sample_histograms(connection):
        family.add_metric([histogram.stage], _buckets(histogram), sum_value=histogram.total)
    yield family


def today_figures(session: Session, *, zone: ZoneInfo, now: datetime) -> DayFigures:
    """Every stage's count, p50 and p95 over the local day of ``now``, in ``zone``."""
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    connection = session.connection()
    values: dict[LatencyStage, list[float]] = {stage: [] for stage in LatencyStage}
    posts = Post.__table__
    for stage, spec in _FROM_POSTS.items():
        ended = posts.c[spec.end]
        seconds = _at_least_zero(_seconds(connection, posts.c[spec.start], ended))
        query = sa.select(seconds).where(
            ended >= start, ended < end, posts.c[spec.start].is_not(None)
        )
        values[stage] = [float(seconds) for seconds in connection.scalars(query)]
    table = LatencySample.__table__
    query = sa.select(table.c.stage, table.c.seconds).where(table.c.at >= start, table.c.at < end)
    for stage, seconds in connection.execute(query):
        values[stage].append(float(seconds))
    return DayFigures(
        start,
        [
            StageFigures(
                stage, STAGES[stage], len(found), quantile(found, 0.5), quantile(found, 0.95)
            )
            for stage, found in values.items()
        ],
    )


def quantile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank quantile (a figure someone could find among the samples)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _seconds(connection: sa.Connection, earlier: Any, later: Any) -> Any:
    """SQL for ``later - earlier`` in seconds, NULL when either is; SQLite and PostgreSQL."""
    if connection.dialect.name == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def _at_least_zero(seconds: Any) -> Any:
    """A platform clock a little ahead of ours is not a negative latency (NULL stays NULL)."""
    return sa.case((seconds < 0, 0.0), else_=seconds)


def _post_histograms(connection: sa.Connection) -> Iterator[StageHistogram]:
    posts = Post.__table__
    columns: list[Any] = []
    for spec in _FROM_POSTS.values():
        seconds = _seconds(connection, posts.c[spec.start], posts.c[spec.end])
        # Every bound is above zero, so a negative duration falls in each bucket with or
        # without its clamp: only the sum needs it (SQLite works an expression out anew
        # each time an aggregate reads it, and this is the scrape's one pass over posts).
        columns += [
            sa.func.count(seconds),
            sa.func.coalesce(sa.func.sum(_at_least_zero(seconds)), 0.0),
        ]
        columns += [sa.func.sum(sa.case((seconds <= bound, 1), else_=0)) for bound in BUCKETS]
    row = list(connection.execute(sa.select(*columns)).one())
    width = 2 + len(BUCKETS)
    for index, stage in enumerate(_FROM_POSTS):
        count, total, *cumulative = row[index * width : (index + 1) * width]
        yield StageHistogram(
            stage, tuple(int(c or 0) for c in cumulative), int(count), float(total)
        )


def _sample_histograms(connection: sa.Connection) -> Iterator[StageHistogram]:
    table = LatencySample.__table__
    columns = [sa.func.sum(sa.case((table.c.seconds <= bound, 1), else_=0)) for bound in BUCKETS]
    query = sa.select(
        table.c.stage, *columns, sa.func.count(), sa.func.sum(table.c.seconds)
    ).group_by(table.c.stage)
    for stage, *counts, count, total in connection.execute(query).all():
        yield StageHistogram(stage, tuple(int(c or 0) for c in counts), int(count), float(total))


def _buckets(histogram: StageHistogram) -> list[tuple[str, float]]:
    pairs = zip(BUCKETS, histogram.cumulative, strict=True)
    return [*((str(bound), float(n)) for bound, n in pairs), ("+Inf", float(histogram.count))]
