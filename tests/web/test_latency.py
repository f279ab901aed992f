"""The four latencies of issue 15, from known measurements to the admin page and /metrics.

Posts are stored (and reach the queue) through the real services at chosen times,
and samples are recorded as the live hub records them; the page is read at a fixed
moment in British summer time, so "today" is the Europe/London day and not UTC's.
No duration sits on a bucket bound: SQLite's julianday arithmetic is a few
microseconds off, and a figure must not depend on which side of a bound it lands.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import LatencyStage
from monitor.services.ingest import record_posts
from monitor.services.latency import Sample, record_latency
from monitor.services.staging import mark_queued
from monitor.web.app import create_app
from tests.factories import make_post
from tests.web.auth_helpers import TestClient, make_user

#: The admin page's "now": 12:00 in London on 1 July (11:00 UTC).
NOW = datetime(2026, 7, 1, 11, 0, tzinfo=UTC)
#: 00:30 on 1 July in London: today, though still 30 June in UTC.
EARLY_TODAY = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
#: 23:30 on 30 June in London: yesterday.
YESTERDAY = datetime(2026, 6, 30, 22, 30, tzinfo=UTC)
LOOPBACK = ("127.0.0.1", 50000)
QUEUE = "Stored to visible in the queue (after image analysis)"
SCREEN = "Approval to visible on the event screen (delay included)"


@pytest.fixture
def app(engine: Engine, settings: Settings) -> FastAPI:
    """The staff app on both backends (the conftest's runs on SQLite only)."""
    make_user(engine, "ad", "admin")
    return create_app(settings, engine=engine)


@pytest.fixture
def at_noon(monkeypatch: pytest.MonkeyPatch) -> None:
    """The admin page reads the clock once, for the day it reports: make it :data:`NOW`."""
    monkeypatch.setattr("monitor.web.routes.admin.utcnow", lambda: NOW)


def _post(engine: Engine, *, stored: datetime, age: float, queued_after: float) -> None:
    """A post ``age`` seconds old when stored, in the queue ``queued_after`` seconds later
    (its picture failed to download: the card shows that, so it is ready for a moderator)."""
    post = make_post(created_at=stored - timedelta(seconds=age))
    with session_scope(engine) as session:
        [post_id] = record_posts(session=session, posts=[post], now=stored).new_ids
        failed = sa.text("UPDATE media SET pin_error = 'gone' WHERE post_id = :p")
        session.execute(failed, {"p": post_id})
        mark_queued(session, [post_id], stored + timedelta(seconds=queued_after))


def _known_measurements(engine: Engine) -> None:
    for age, queued_after in ((3, 1.5), (4, 3), (7, 4), (8, 7), (100, 8)):
        _post(
            engine, stored=EARLY_TODAY + timedelta(minutes=age), age=age, queued_after=queued_after
        )
    # Stored yesterday (London), in the queue today: only its stored-to-queue is today's.
    _post(engine, stored=YESTERDAY, age=45, queued_after=4200)
    gallery = [
        Sample(LatencyStage.APPROVAL_TO_GALLERY, n, 1, NOW - timedelta(minutes=n), n / 10)
        for n in range(1, 21)
    ]
    gallery.append(Sample(LatencyStage.APPROVAL_TO_GALLERY, 99, 1, YESTERDAY, 999.0))
    takedown = [
        Sample(LatencyStage.TAKEDOWN_TO_GALLERY, n, 1, EARLY_TODAY, seconds)
        for n, seconds in ((1, 2.5), (2, 4.0), (3, 40.0))
    ]
    with session_scope(engine) as session:
        record_latency(session, gallery + takedown)


def _row(page: str, label: str) -> list[str]:
    """The cells after a step's name in the latency table."""
    found = re.search(rf"<tr><td>{re.escape(label)}</td>(.*?)</tr>", page, re.DOTALL)
    assert found, f"no row for {label!r}"
    return re.findall(r"<td[^>]*>(.*?)</td>", found.group(1))


def _some(histogram: dict[str, float], wanted: dict[str, int]) -> dict[str, float]:
    return {key: histogram[key] for key in wanted}


def test_the_admin_page_shows_todays_p50_and_p95_of_every_stage(
    admin: TestClient, engine: Engine, at_noon: None
) -> None:
    _known_measurements(engine)
    page = admin.get("/admin").text
    assert "Since Wednesday 01 July 2026, 00:00 BST" in page
    assert _row(page, "Platform to stored") == ["5", "7.0 s", "100.0 s"]
    assert _row(page, QUEUE) == ["6", "4.0 s", "4200.0 s"]
    assert _row(page, "Approval to visible on the gallery") == ["20", "1.0 s", "1.9 s"]
    assert _row(page, "Takedown request to off the gallery") == ["3", "4.0 s", "40.0 s"]
    assert _row(page, SCREEN) == ["0", "No samples today"]


def test_the_admin_page_says_when_no_step_was_measured_today(
    admin: TestClient, at_noon: None
) -> None:
    page = admin.get("/admin").text
    for label in (
        "Platform to stored",
        QUEUE,
        "Approval to visible on the gallery",
        "Takedown request to off the gallery",
    ):
        assert _row(page, label) == ["0", "No samples today"]


def test_metrics_carry_a_histogram_of_every_stage_over_all_days(
    app: FastAPI, engine: Engine
) -> None:
    _known_measurements(engine)
    with TestClient(app, client=LOOPBACK) as client:
        text = client.get("/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}

    def histogram(name: str, stage: str | None = None) -> dict[str, float]:
        return {
            sample.labels.get("le", sample.name.rsplit("_", 1)[-1]): sample.value
            for sample in families[name].samples
            if stage is None or sample.labels.get("stage") == stage
        }

    ingest = {"2.0": 0, "5.0": 2, "10.0": 4, "30.0": 4, "60.0": 5, "120.0": 6, "count": 6}
    found = histogram("hashtag_monitor_ingest_latency_seconds")
    assert _some(found, ingest) == ingest and found["sum"] == pytest.approx(167, abs=0.01)
    queue = {"1.0": 0, "2.0": 1, "5.0": 3, "10.0": 5, "3600.0": 5, "86400.0": 6, "count": 6}
    found = histogram("hashtag_monitor_queue_latency_seconds")
    assert _some(found, queue) == queue and found["sum"] == pytest.approx(4223.5, abs=0.01)
    stages = "hashtag_monitor_stage_latency_seconds"
    gallery = {"0.5": 5, "1.0": 10, "2.0": 20, "600.0": 20, "1800.0": 21, "count": 21}
    found = histogram(stages, "approval_to_gallery")
    assert _some(found, gallery) == gallery and found["sum"] == pytest.approx(1020.0)
    takedown = {"2.0": 0, "5.0": 2, "30.0": 2, "60.0": 3, "count": 3}
    found = histogram(stages, "takedown_to_gallery")
    assert _some(found, takedown) == takedown and found["sum"] == pytest.approx(46.5)
    assert histogram(stages, "approval_to_screen") == {}
