"""The training sample as a platform, through the real polling, ingest and refresh.

Time is moved by setting ``DEMO_STARTED_AT`` further in the past, as if the
demo had been running that long.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import ConfigError, Target
from adapters.http import HttpClient
from adapters.text import extract_hashtags
from monitor.config import Settings
from monitor.demo.adapter import DemoAdapter
from monitor.demo.sample import Case, build_sample
from monitor.models import AuditEvent, Post, PostStatus
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all

WINDOW = 100
SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def _started(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


@pytest.fixture
def demo_settings(
    configure: Callable[..., Settings], training_mode: None
) -> Callable[[float], Settings]:
    """Settings for the sample platform as if the demo started ``seconds_ago``."""

    def at(seconds_ago: float) -> Settings:
        return configure(
            PLATFORMS="demo",
            HASHTAGS="CEADAY21,HelpingHands",
            DEMO_SAMPLE="on",
            DEMO_STARTED_AT=_started(seconds_ago),
            DEMO_RELEASE_SECONDS=str(WINDOW),
            DEMO_MEDIA_BASE="http://127.0.0.1:9",
        )

    return at


def _adapter(**config: str) -> DemoAdapter:
    return DemoAdapter({"DEMO_SAMPLE": "on", **config}, HttpClient())


def _posts(engine: Engine) -> dict[str, Post]:
    with Session(engine) as session:
        return {post.external_id: post for post in session.exec(select(Post))}


def test_off_unless_the_demo_turns_it_on(configure: Callable[..., Settings]) -> None:
    assert not DemoAdapter.is_configured({})
    assert DemoAdapter.is_configured({"DEMO_SAMPLE": "on"})
    assert "demo" not in configure().enabled_platforms
    with pytest.raises(ConfigError, match="DEMO_SAMPLE"):
        DemoAdapter({}, HttpClient())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"DEMO_STARTED_AT": "yesterday-ish"}, "not an ISO 8601 time"),
        ({"DEMO_RELEASE_SECONDS": "-5"}, "whole number"),
        ({"DEMO_RELEASE_SECONDS": "9" * 40}, "whole number"),
        ({"DEMO_MEDIA_BASE": "javascript:alert(1)"}, "http"),
    ],
)
def test_bad_configuration_is_refused_with_a_clear_message(
    config: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _adapter(**config)


def test_posts_arrive_over_the_release_window() -> None:
    target = Target("", ("HelpingHands",))
    at_start = _adapter(DEMO_STARTED_AT=_started(0), DEMO_RELEASE_SECONDS=str(WINDOW))
    later = _adapter(DEMO_STARTED_AT=_started(WINDOW * 0.5), DEMO_RELEASE_SECONDS=str(WINDOW))
    first = [
        p for page in at_start.search(target, None, since=SINCE, max_pages=50) for p in page.posts
    ]
    middle = [
        p for page in later.search(target, None, since=SINCE, max_pages=50) for p in page.posts
    ]
    assert 40 < len(first) < len(middle)
    assert all("helpinghands" in post.hashtags for post in middle)
    assert all(post.created_at <= datetime.now(UTC) for post in middle)


def test_cursor_resumes_after_the_last_post_and_survives_a_garbage_cursor() -> None:
    adapter = _adapter(DEMO_STARTED_AT=_started(WINDOW * 2), DEMO_RELEASE_SECONDS=str(WINDOW))
    target = Target("", ("CEADAY21",))
    pages = list(adapter.search(target, None, since=SINCE, max_pages=2))
    assert len(pages) == 2 and all(len(page.posts) == 40 for page in pages)
    rest = list(adapter.search(target, pages[-1].cursor, since=SINCE, max_pages=50))
    seen = [p.external_id for page in pages + rest for p in page.posts]
    assert len(seen) == len(set(seen))
    assert list(adapter.search(target, rest[-1].cursor, since=SINCE, max_pages=50)) == []
    for garbage in ("'; DROP TABLE posts;--", "99999", "-1", ""):
        restarted = list(adapter.search(target, garbage, since=SINCE, max_pages=50))
        assert sum(len(page.posts) for page in restarted) == len(seen), garbage
        assert all(page.posts for page in restarted[:-1])


def test_polls_store_each_post_once_and_refresh_sees_growth_edit_and_deletion(
    sqlite_engine: Engine, demo_settings: Callable[[float], Settings]
) -> None:
    sample = {post.sid: post for post in build_sample()}
    edited = next(p for p in sample.values() if p.case is Case.EDITED_AT_SOURCE)
    deleted = next(p for p in sample.values() if p.case is Case.DELETED_AT_SOURCE)

    # The first minute: the backlog is there, the hijack burst is not yet.
    summaries = poll_all(engine=sqlite_engine, settings=demo_settings(1))
    assert all(s.ok for s in summaries), summaries
    early = _posts(sqlite_engine)
    assert not any(sample[sid].case is Case.HIJACK for sid in early)
    with Session(sqlite_engine) as session:
        session.get_one(Post, early[edited.sid].id).status = PostStatus.APPROVED.value
        session.commit()

    # Later: everything has arrived; polling twice adds nothing twice.
    settings = demo_settings(WINDOW * 3)
    poll_all(engine=sqlite_engine, settings=settings)
    poll_all(engine=sqlite_engine, settings=settings)
    stored = _posts(sqlite_engine)
    campaign = {"ceaday21", "helpinghands"}
    tagged = {sid for sid, p in sample.items() if campaign & set(extract_hashtags(p.text))}
    assert set(stored) == tagged
    assert any(sample[sid].case is Case.HIJACK for sid in stored)

    [summary] = refresh_all(engine=sqlite_engine, settings=settings)
    assert summary.ok and summary.removed == 1 and summary.edited == 1
    assert summary.updated > 50  # engagement grew with the minutes since arrival
    after = _posts(sqlite_engine)
    assert after[deleted.sid].status == PostStatus.REMOVED
    assert after[edited.sid].status == PostStatus.PENDING  # approved, edited: back to the queue
    assert after[edited.sid].text == edited.edit_text
    assert (after[edited.sid].likes or 0) > (early[edited.sid].likes or 0)
    with Session(sqlite_engine) as session:
        actions = set(session.execute(sa.select(AuditEvent.action)).scalars())
    assert {"edited_at_source", "deleted_at_source"} <= actions


def test_metrics_a_network_does_not_give_are_none_not_zero() -> None:
    adapter = _adapter(DEMO_STARTED_AT=_started(WINDOW * 2), DEMO_RELEASE_SECONDS=str(WINDOW))
    by_network = {post.network: post.sid for post in build_sample()}
    result = adapter.refresh(list(by_network.values()) + ["s999", "not-a-sample-id"])
    engagement = {post.external_id: post.engagement for post in result.posts}
    assert engagement[by_network["mastodon"]].views is None
    assert engagement[by_network["x"]].views is not None
    assert engagement[by_network["rss"]].likes is None
    assert set(result.deleted) >= {"s999", "not-a-sample-id"}


def test_media_point_at_the_demo_server_with_a_relative_preview() -> None:
    adapter = _adapter(DEMO_STARTED_AT=_started(0), DEMO_MEDIA_BASE="http://127.0.0.1:8123/")
    target = Target("", ("CEADAY21",))
    media = [
        m
        for page in adapter.search(target, None, since=SINCE, max_pages=50)
        for p in page.posts
        for m in p.media
    ]
    assert media and all(m.url.startswith("http://127.0.0.1:8123/demo/media/s") for m in media)
    assert all(m.preview_url and m.preview_url.startswith("/demo/media/") for m in media)
