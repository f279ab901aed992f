"""Prometheus metrics, read from the database at scrape time.

Figures come from the tables rather than from in-process counters, so every
replica reports the same truth and nothing resets when the leader changes.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import timedelta

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from monitor.models import AuditEvent, DigestSend, PollRun, Post, PostStatus, Source, utcnow
from monitor.services.audit import DECISIONS
from monitor.services.health import SourceHealth, SourceMode
from monitor.services.latency import latency_metrics
from monitor.services.sources import live_sources

#: Decisions considered for the latency figure.
LATENCY_WINDOW = timedelta(days=1)


class DatabaseCollector(Collector):
    """Collects every metric in one short read-only transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        with self.engine.connect() as connection:
            yield from _posts(connection)
            yield from _sources(connection)
            yield from _polls(connection)
            yield from _decision_latency(connection)
            yield from _digests(connection)
            # Every step of a post's way (see monitor.services.latency).
            yield from latency_metrics(connection)


def _posts(connection: sa.Connection) -> Iterator[Metric]:
    posts = Post.__table__
    family = GaugeMetricFamily(
        "hashtag_monitor_posts",
        "Posts stored, by platform and state.",
        labels=["platform", "status"],
    )
    query = sa.select(posts.c.platform, posts.c.status, sa.func.count()).group_by(
        posts.c.platform, posts.c.status
    )
    pending = 0
    for platform, status, count in connection.execute(query):
        family.add_metric([platform, status], count)
        pending += count if status == PostStatus.PENDING else 0
    yield family
    yield GaugeMetricFamily(
        "hashtag_monitor_queue_pending", "Posts waiting for a moderator.", value=pending
    )


def _sources(connection: sa.Connection) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "hashtag_monitor_source_up",
        "0 when the source is failing or disabled, else 1.",
        labels=["source", "platform"],
    )
    failures = GaugeMetricFamily(
        "hashtag_monitor_source_failures_in_row", "Consecutive failed polls.", labels=["source"]
    )
    last_success = GaugeMetricFamily(
        "hashtag_monitor_source_last_success_timestamp_seconds",
        "Unix time of the source's last successful poll.",
        labels=["source"],
    )
    mode = GaugeMetricFamily(
        "hashtag_monitor_source_mode",
        "1 for how the source's posts arrive now (streaming, catching_up or polling).",
        labels=["source", "mode"],
    )
    lag = GaugeMetricFamily(
        "hashtag_monitor_source_lag_seconds",
        "How far behind the platform the source may be: since the moment its stream had"
        " delivered everything, or since its last successful poll.",
        labels=["source"],
    )
    # A retired source is history: it is neither up nor down any more.
    for source in connection.execute(sa.select(Source.__table__).where(live_sources())):
        health = SourceHealth.of(source)
        up.add_metric([source.key, source.platform], 0 if health.alarming else 1)
        failures.add_metric([source.key], source.failures_in_row)
        if source.last_success_at is not None:
            last_success.add_metric([source.key], source.last_success_at.timestamp())
        for each in SourceMode:
            mode.add_metric([source.key, each.value], 1 if health.mode is each else 0)
        if health.lag_seconds is not None:
            lag.add_metric([source.key], health.lag_seconds)
    yield from (up, failures, last_success, mode, lag)


def _polls(connection: sa.Connection) -> Iterator[Metric]:
    runs, sources = PollRun.__table__, Source.__table__
    polls = CounterMetricFamily(
        "hashtag_monitor_polls", "Finished polls by source and result.", labels=["source", "result"]
    )
    new_posts = CounterMetricFamily(
        "hashtag_monitor_posts_collected", "New posts stored by polls.", labels=["source"]
    )
    query = (
        sa.select(sources.c.key, runs.c.ok, sa.func.count(), sa.func.sum(runs.c.new))
        .join(sources, sources.c.id == runs.c.source_id)
        .where(runs.c.finished_at.is_not(None), live_sources())
        .group_by(sources.c.key, runs.c.ok)
    )
    collected: dict[str, int] = {}
    for key, ok, count, new in connection.execute(query):
        polls.add_metric([key, "ok" if ok else "error"], count)
        collected[key] = collected.get(key, 0) + int(new or 0)
    for key, total in collected.items():
        new_posts.add_metric([key], total)
    yield from (polls, new_posts)


def _decision_latency(connection: sa.Connection) -> Iterator[Metric]:
    events, posts = AuditEvent.__table__, Post.__table__
    query = (
        sa.select(events.c.at, posts.c.first_seen_at)
        .join(posts, posts.c.id == events.c.post_id)
        .where(events.c.action.in_(DECISIONS), events.c.at >= utcnow() - LATENCY_WINDOW)
    )
    waits = [(at - seen).total_seconds() for at, seen in connection.execute(query)]
    family = GaugeMetricFamily(
        "hashtag_monitor_decision_latency_seconds",
        "Time from arrival to decision over the last day.",
        labels=["quantile"],
    )
    if waits:
        family.add_metric(["0.5"], statistics.median(waits))
        family.add_metric(["1"], max(waits))
    yield family


def _digests(connection: sa.Connection) -> Iterator[Metric]:
    sends = DigestSend.__table__
    family = CounterMetricFamily(
        "hashtag_monitor_digest_sends", "Digest send attempts by outcome.", labels=["status"]
    )
    for status, count in connection.execute(
        sa.select(sends.c.status, sa.func.count()).group_by(sends.c.status)
    ):
        family.add_metric([status], count)
    yield family
