"""The pipeline end to end: a local Mastodon, the real adapter, a real database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.models import Post, PostHashtag, Source
from monitor.services.polling import poll_all
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FOREVER


def _posts(engine: Engine) -> list[Post]:
    with Session(engine) as session:
        return list(session.exec(select(Post).order_by(Post.created_at)))


def _sources(engine: Engine) -> dict[str, Source]:
    with Session(engine) as session:
        return {s.key: s for s in session.exec(select(Source))}


@pytest.fixture
def settings(configure: Callable[..., Settings], mastodon: FakeMastodon) -> Settings:
    return configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21,HelpingHands")


def test_poll_stores_every_post_once_with_both_hashtags(
    engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    both = mastodon.add("Both tags #CEADAY21 #HelpingHands", tags=("CEADAY21", "HelpingHands"))
    mastodon.add_many(90)

    summaries = poll_all(engine=engine, settings=settings)

    assert all(s.ok for s in summaries), summaries
    posts = _posts(engine)
    assert len(posts) == 91
    with Session(engine) as session:
        tags = set(
            session.exec(select(PostHashtag.tag).join(Post).where(Post.external_id == both["uri"]))
        )
    assert tags == {"ceaday21", "helpinghands"}

    again = poll_all(engine=engine, settings=settings)
    assert sum(s.new for s in again) == 0
    assert len(_posts(engine)) == 91


def test_idle_cycle_makes_one_request_per_instance_and_tag(
    engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(3)
    poll_all(engine=engine, settings=settings)
    before = mastodon.server.hits()

    summaries = poll_all(engine=engine, settings=settings)

    assert mastodon.server.hits() - before == 2  # two hashtags, one instance
    assert sum(s.requests for s in summaries) == 2


def test_new_posts_after_cursor_are_paged_forward(
    engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(5)
    poll_all(engine=engine, settings=settings)
    mastodon.add_many(100)

    summaries = poll_all(engine=engine, settings=settings, tag="CEADAY21")

    assert summaries[0].new == 100
    assert summaries[0].pages == 3
    assert len(_posts(engine)) == 105
    cursor = _sources(engine)[summaries[0].source].cursor
    assert cursor == max(mastodon.statuses, key=int)


def test_federated_copies_are_stored_once(
    engine: Engine,
    configure: Callable[..., Settings],
    mastodon: FakeMastodon,
) -> None:
    from tests.fakes.server import FakeServer

    other_server = FakeServer().start()
    try:
        other = FakeMastodon(other_server, domain="other.social")
        original = mastodon.add("Shared #CEADAY21")
        other.add("Shared #CEADAY21", uri=original["uri"])
        settings = configure(MASTODON_INSTANCES=f"{mastodon.url},{other.url}", HASHTAGS="CEADAY21")
        summaries = poll_all(engine=engine, settings=settings)
    finally:
        other_server.stop()
    assert [s.ok for s in summaries] == [True, True]
    assert len(_posts(engine)) == 1


def test_failing_source_is_recorded_and_others_still_poll(
    engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(2, tags=("CEADAY21", "HelpingHands"))
    mastodon.server.fail("status", times=10, status=503, path="/api/v1/timelines/tag/CEADAY21")

    summaries = {s.source.rsplit("|", 1)[1]: s for s in poll_all(engine=engine, settings=settings)}

    assert not summaries["CEADAY21"].ok
    assert "503" in (summaries["CEADAY21"].error or "")
    assert summaries["HelpingHands"].ok and summaries["HelpingHands"].new == 2
    failing = _sources(engine)[summaries["CEADAY21"].source]
    assert failing.failures_in_row == 1 and failing.failing_since is not None
    assert failing.cursor is None
    assert "503" in (failing.last_error or "")


def test_crash_between_pages_loses_and_duplicates_nothing(
    engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(5)
    poll_all(engine=engine, settings=settings, tag="CEADAY21")
    mastodon.add_many(120)
    # The second forward page dies mid-walk (connection reset on every retry).
    path = "/api/v1/timelines/tag/CEADAY21"
    mastodon.server.fail("reset", path=path, after=1)
    mastodon.server.fail("reset", times=2, path=path)

    first = poll_all(engine=engine, settings=settings, tag="CEADAY21")[0]
    assert not first.ok and first.new == 40

    second = poll_all(engine=engine, settings=settings, tag="CEADAY21")[0]
    assert second.ok and second.new == 80
    with Session(engine) as session:
        count = session.execute(sa.select(sa.func.count()).select_from(Post)).scalar_one()
    assert count == 125


@pytest.mark.parametrize(
    ("fault", "options", "reason"),
    [
        ("status", {"status": 429, "headers": {"Retry-After": "3600"}}, "rate limited until"),
        ("status", {"status": 429}, "rate limited (HTTP 429)"),
        ("status", {"status": 500}, "HTTP 500"),
        ("hang", {"seconds": FOREVER}, "no answer within 1s"),
        ("truncate", {}, "not valid JSON"),
        ("garbage", {}, "not valid JSON"),
        ("reset", {}, "connection failed"),
    ],
)
def test_each_fault_marks_only_that_source_and_loses_nothing(
    sqlite_engine: Engine,
    settings: Settings,
    mastodon: FakeMastodon,
    fault: str,
    options: dict,
    reason: str,
) -> None:
    mastodon.add_many(3, tags=("CEADAY21", "HelpingHands"))
    poll_all(engine=sqlite_engine, settings=settings)
    mastodon.add_many(50, tags=("CEADAY21", "HelpingHands"))
    path = "/api/v1/timelines/tag/CEADAY21"
    mastodon.server.fail(fault, times=3, path=path, **options)
    cursor_before = {k: s.cursor for k, s in _sources(sqlite_engine).items()}

    summaries = {
        s.source.rsplit("|", 1)[1]: s for s in poll_all(engine=sqlite_engine, settings=settings)
    }

    failed, other = summaries["CEADAY21"], summaries["HelpingHands"]
    assert not failed.ok and reason in (failed.error or "")
    assert other.ok and other.new == 50
    sources = _sources(sqlite_engine)
    assert sources[failed.source].cursor == cursor_before[failed.source]
    assert sources[failed.source].failures_in_row == 1
    assert reason in (sources[failed.source].last_error or "")

    mastodon.server.faults.clear()
    with Session(sqlite_engine) as session:
        session.get_one(Source, sources[failed.source].id).retry_at = None
        session.commit()
    healed = poll_all(engine=sqlite_engine, settings=settings, tag="CEADAY21")[0]
    assert healed.ok, healed.error
    assert len(_posts(sqlite_engine)) == 53
    assert _sources(sqlite_engine)[failed.source].failures_in_row == 0


def test_a_rate_limited_source_waits_until_its_reset(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.server.fail("status", status=429, headers={"Retry-After": "3600"})
    first = poll_all(engine=sqlite_engine, settings=settings, tag="CEADAY21")[0]
    requests = mastodon.server.hits()
    second = poll_all(engine=sqlite_engine, settings=settings, tag="CEADAY21")[0]
    assert not first.ok and not second.ok
    assert second.error is not None and second.error.startswith("rate limited until")
    assert mastodon.server.hits() == requests  # no request while waiting


def test_a_clock_jumping_back_does_not_silence_a_source_for_days(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(2)
    [first] = poll_all(engine=sqlite_engine, settings=settings, tag="CEADAY21")
    with Session(sqlite_engine) as session:
        source = session.exec(select(Source).where(Source.key == first.source)).one()
        # Set while the clock was three days ahead, then the clock was corrected.
        source.retry_at = datetime.now(UTC) + timedelta(days=3)
        session.add(source)
        session.commit()
    mastodon.add_many(3)
    [again] = poll_all(engine=sqlite_engine, settings=settings, tag="CEADAY21")
    assert again.ok and again.new == 3
