"""Latency, measured: the platform-to-stored and stored-to-queue figures read from the posts,
the day's quantiles and /metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import LatencySample, LatencyStage, Post, Source, UTCDateTime, utcnow
from monitor.services.ingest import record_posts
from monitor.services.latency import Sample, latency_metrics, record_latency, today_figures
from monitor.services.staging import mark_queued
from monitor.web.app import create_app
from tests.factories import make_post

LOOPBACK = ("127.0.0.1", 50000)


def _store(engine: Engine, *, age: timedelta, media: bool, now: datetime | None = None) -> int:
    now = now or utcnow()
    post = make_post(created_at=now - age)
    if not media:
        post = dataclasses.replace(post, media=())
    with session_scope(engine) as session:
        return record_posts(session=session, posts=[post], now=now).new_ids[0]


def _histograms(engine: Engine) -> dict[str, dict[str, float]]:
    with engine.connect() as connection:
        families = list(latency_metrics(connection))
    return {
        family.name: {
            sample.labels.get("le", sample.name): sample.value for sample in family.samples
        }
        for family in families
    }


def test_a_post_without_pictures_is_in_the_queue_when_stored(engine: Engine) -> None:
    post_id = _store(engine, age=timedelta(seconds=3), media=False)
    with Session(engine) as session:
        post = session.get_one(Post, post_id)
    assert post.queued_at == post.first_seen_at

    figures = _histograms(engine)
    ingest = figures["hashtag_monitor_ingest_latency_seconds"]
    assert ingest["2.0"] == 0 and ingest["5.0"] == 1 and ingest["+Inf"] == 1
    assert (
        figures["hashtag_monitor_ingest_latency_seconds"][
            "hashtag_monitor_ingest_latency_seconds_count"
        ]
        == 1
    )
    queue = figures["hashtag_monitor_queue_latency_seconds"]
    assert queue["0.5"] == 1


def test_a_post_with_pictures_reaches_the_queue_only_once_staged(engine: Engine) -> None:
    post_id = _store(engine, age=timedelta(minutes=11), media=True)
    with Session(engine) as session:
        assert session.get_one(Post, post_id).queued_at is None
    assert _histograms(engine)["hashtag_monitor_queue_latency_seconds"]["+Inf"] == 0

    with session_scope(engine) as session:
        # The attachment failed: the card shows it failed, so the post is in the queue.
        failed = sa.text("UPDATE media SET pin_error = 'gone' WHERE post_id = :p")
        session.execute(failed, {"p": post_id})
        mark_queued(session, [post_id], utcnow() + timedelta(seconds=4))
    with Session(engine) as session:
        post = session.get_one(Post, post_id)
    assert post.queued_at is not None and post.queued_at > post.first_seen_at
    queue = _histograms(engine)["hashtag_monitor_queue_latency_seconds"]
    assert queue["2.0"] == 0 and queue["5.0"] == 1
    ingest = _histograms(engine)["hashtag_monitor_ingest_latency_seconds"]
    assert ingest["300.0"] == 0 and ingest["600.0"] == 0 and ingest["1800.0"] == 1


def test_todays_quantiles(engine: Engine) -> None:
    # One moment for storing and for "today": the figures cannot straddle a midnight.
    now = utcnow()
    for seconds in (1, 2, 3, 4, 100):
        _store(engine, age=timedelta(seconds=seconds), media=False, now=now)
    with Session(engine) as session:
        day = today_figures(session, zone=ZoneInfo("Europe/London"), now=now)
    figures = {figure.stage: figure for figure in day.stages}
    ingest, queue = figures[LatencyStage.PLATFORM_TO_STORED], figures[LatencyStage.STORED_TO_QUEUE]
    assert ingest.count == 5
    assert ingest.p50 is not None and 2.5 < ingest.p50 < 3.5
    assert ingest.p95 is not None and ingest.p95 > 50
    assert queue.p95 is not None and queue.p95 < 1


def test_metrics_carry_the_latencies_and_each_sources_mode_and_lag(
    sqlite_engine: Engine, configure: Callable[..., Settings]
) -> None:
    _store(sqlite_engine, age=timedelta(seconds=1), media=False)
    with session_scope(sqlite_engine) as session:
        session.add(
            Source(
                key="mastodon:https://a.example|CEADAY21",
                platform="mastodon",
                mode="streaming",
                mode_note="live from https://a.example/api/v1/streaming/hashtag",
                stream_position_at=utcnow() - timedelta(seconds=2),
                last_success_at=utcnow(),
            )
        )
        session.add(Source(key="rss:https://feed.example|", platform="rss"))
    with TestClient(create_app(configure(), engine=sqlite_engine), client=LOOPBACK) as client:
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    modes = {
        (s.labels["source"].split(":")[0], s.labels["mode"]): s.value
        for s in families["hashtag_monitor_source_mode"].samples
    }
    assert modes[("mastodon", "streaming")] == 1 and modes[("mastodon", "polling")] == 0
    assert modes[("rss", "polling")] == 1
    [lag] = families["hashtag_monitor_source_lag_seconds"].samples
    assert 1 < lag.value < 60
    ingest = families["hashtag_monitor_ingest_latency_seconds"]
    count = next(s for s in ingest.samples if s.name.endswith("_count"))
    assert count.value == 1
    assert "hashtag_monitor_queue_latency_seconds" in families


def test_posts_from_before_the_queue_time_existed_are_left_out(sqlite_engine: Engine) -> None:
    _store(sqlite_engine, age=timedelta(seconds=1), media=False)
    with session_scope(sqlite_engine) as session:
        session.execute(sa.update(Post.__table__).values(queued_at=None))
    assert _histograms(sqlite_engine)["hashtag_monitor_queue_latency_seconds"]["+Inf"] == 0
    with Session(sqlite_engine) as session:
        assert len(list(session.exec(select(Post)))) == 1


def test_a_stage_is_stored_as_its_word_and_read_back_as_the_enum(engine: Engine) -> None:
    """The column kept its stored values when it was typed: rows written before read back."""
    now = utcnow()
    with session_scope(engine) as session:
        session.execute(
            sa.text(
                "INSERT INTO latency_samples (stage, post_id, version, at, seconds)"
                " VALUES ('takedown_to_gallery', 1, 1, :at, 2.0)"
            ).bindparams(sa.bindparam("at", type_=UTCDateTime)),
            {"at": now},
        )
        record_latency(session, [Sample(LatencyStage.APPROVAL_TO_GALLERY, 2, 1, now, 1.0)])
    with Session(engine) as session:
        stored = session.execute(sa.text("SELECT stage FROM latency_samples ORDER BY post_id"))
        assert [row.stage for row in stored] == ["takedown_to_gallery", "approval_to_gallery"]
        stages = session.exec(select(LatencySample.stage).order_by(LatencySample.post_id)).all()
    assert stages == [LatencyStage.TAKEDOWN_TO_GALLERY, LatencyStage.APPROVAL_TO_GALLERY]
    assert all(isinstance(stage, LatencyStage) for stage in stages)


def test_the_stages_read_from_the_posts_are_not_sampled(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(ValueError, match="posts' times"):
        record_latency(session, [Sample(LatencyStage.PLATFORM_TO_STORED, 1, 1, utcnow(), 1.0)])


def test_a_platform_clock_ahead_of_ours_counts_as_no_wait(engine: Engine) -> None:
    now = utcnow()
    _store(engine, age=timedelta(seconds=-3), media=False, now=now)
    ingest = _histograms(engine)["hashtag_monitor_ingest_latency_seconds"]
    assert ingest["0.25"] == 1 and ingest["hashtag_monitor_ingest_latency_seconds_sum"] == 0
    with Session(engine) as session:
        day = today_figures(session, zone=ZoneInfo("Europe/London"), now=now)
    [stored] = [figure for figure in day.stages if figure.stage == LatencyStage.PLATFORM_TO_STORED]
    assert (stored.count, stored.p50, stored.p95) == (1, 0.0, 0.0)
