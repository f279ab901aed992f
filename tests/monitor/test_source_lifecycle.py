"""A source lives while the configuration asks for it, and a past day is judged by its own runs.

Reproduces two findings of the campaigns issue, tried as a new user would:
- after a trial poll, changing ``HASHTAGS`` or ``PLATFORMS`` left the old sources in
  ``status``, ``/metrics`` and every later digest ("INCOMPLETE: 5 source(s) not
  watched") for ever, and nothing removed them;
- a digest for a past day showed today's source health, not that day's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.models import PollRun, Source
from monitor.services.digest import compute_digest
from monitor.services.health import SourceState, health_report
from monitor.services.metrics import DatabaseCollector
from monitor.services.polling import poll_all
from tests.fakes.mastodon import FakeMastodon

DAY = date(2021, 3, 18)  # GMT: local hours are UTC hours
DAY_START = datetime(2021, 3, 18, tzinfo=UTC)


def _metrics(engine: Engine) -> str:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(engine))
    return generate_latest(registry).decode()


def _live_keys(engine: Engine, settings: Settings) -> set[str]:
    with Session(engine) as session:
        return {health.key for health in health_report(session, settings).sources}


def test_a_hashtag_dropped_from_the_settings_retires_its_sources_at_the_next_cycle(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    trial = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="TrialTag,CEADAY21")
    poll_all(engine=engine, settings=trial)
    trial_key = f"mastodon:{mastodon.url}|TrialTag"
    assert trial_key in _live_keys(engine, trial)

    campaign = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    summaries = poll_all(engine=engine, settings=campaign)

    assert all(summary.ok for summary in summaries)
    assert trial_key not in _live_keys(engine, campaign)
    assert trial_key not in _metrics(engine)
    with Session(engine) as session:
        retired = session.exec(select(Source).where(Source.key == trial_key)).one()
        # Kept for the history of the days it watched.
        assert retired.retired_at is not None
        assert session.exec(select(PollRun).where(PollRun.source_id == retired.id)).first()
        # The next day's digest no longer counts it as a source that was not watched.
        tomorrow = datetime.now(campaign.zone).date() + timedelta(days=1)
        digest = compute_digest(
            session, campaign, tomorrow, now=datetime.now(UTC) + timedelta(days=2)
        )
    assert trial_key not in {c.key for c in digest.coverage}


def test_a_platform_dropped_from_the_settings_leaves_status_and_metrics(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    trial = configure(MASTODON_INSTANCES=mastodon.url, PLATFORMS="mastodon,x")
    poll_all(engine=engine, settings=trial)  # x has no credential: disabled on record
    assert "x:*|" in _live_keys(engine, trial)

    mastodon_only = configure(MASTODON_INSTANCES=mastodon.url, PLATFORMS="mastodon")
    poll_all(engine=engine, settings=mastodon_only)

    assert {key.partition(":")[0] for key in _live_keys(engine, mastodon_only)} == {"mastodon"}
    assert 'source="x:*|"' not in _metrics(engine)
    with Session(engine) as session:
        assert health_report(session, mastodon_only).ok


def test_a_source_configured_again_comes_back(
    engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    both = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="TrialTag,CEADAY21")
    poll_all(engine=engine, settings=both)
    poll_all(
        engine=engine, settings=configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    )

    poll_all(engine=engine, settings=both)

    assert f"mastodon:{mastodon.url}|TrialTag" in _live_keys(engine, both)


def _source(
    session: Session,
    key: str,
    *,
    runs: list[tuple[int, bool]],
    created: datetime | None = None,
    retired: datetime | None = None,
    **now_state: object,
) -> None:
    """A source with poll runs at HH:10 on DAY; ``now_state`` is its health row today."""
    source = Source(key=key, platform="mastodon", created_at=created, retired_at=retired)
    for name, value in now_state.items():
        setattr(source, name, value)
    session.add(source)
    session.flush()
    for hour, ok in runs:
        started = DAY_START + timedelta(hours=hour, minutes=10)
        session.add(
            PollRun(
                source_id=source.id,
                started_at=started,
                finished_at=started,
                ok=ok,
                error=None if ok else "HTTP 503 from the server",
            )
        )
    session.commit()


def test_a_past_day_shows_that_days_health_not_todays(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(HASHTAGS="CEADAY21")
    today = datetime(2021, 3, 25, 12, tzinfo=UTC)
    with Session(engine) as session:
        # Failed all afternoon of the day, well again now.
        _source(
            session,
            "mastodon:a|ceaday21",
            runs=[(h, True) for h in range(12)] + [(h, False) for h in range(12, 24)],
            last_success_at=today,
        )
        # Watched the whole day, failing now (since long after the day).
        _source(
            session,
            "mastodon:b|ceaday21",
            runs=[(h, True) for h in range(24)],
            failures_in_row=4,
            failing_since=today - timedelta(hours=2),
            last_error="HTTP 500",
            last_success_at=today - timedelta(hours=3),
        )
        digest = compute_digest(session, settings, DAY, now=today)

    coverage = {c.key: c for c in digest.coverage}
    afternoon = coverage["mastodon:a|ceaday21"]
    assert afternoon.health.state is SourceState.FAILING
    assert afternoon.health.since == DAY_START + timedelta(hours=12, minutes=10)
    assert afternoon.health.last_error == "HTTP 503 from the server"
    assert not afternoon.complete
    watched = coverage["mastodon:b|ceaday21"]
    assert watched.health.state is SourceState.OK
    assert watched.complete
    assert digest.unwatched_sources == [afternoon]


def test_a_source_counts_only_for_the_hours_it_was_configured(
    engine: Engine, configure: Callable[..., Settings]
) -> None:
    settings = configure(HASHTAGS="CEADAY21")
    with Session(engine) as session:
        # Added at 18:30 and polled every hour since: the day is complete for it.
        _source(
            session,
            "mastodon:new|ceaday21",
            runs=[(h, True) for h in range(18, 24)],
            created=DAY_START + timedelta(hours=18, minutes=30),
        )
        # Retired at noon after polling every hour until then.
        _source(
            session,
            "mastodon:old|ceaday21",
            runs=[(h, True) for h in range(12)],
            retired=DAY_START + timedelta(hours=12),
        )
        # Retired the day before and created the day after: not part of the day at all.
        _source(session, "mastodon:gone|x", runs=[], retired=DAY_START - timedelta(hours=1))
        _source(session, "mastodon:later|y", runs=[], created=DAY_START + timedelta(days=1))
        digest = compute_digest(session, settings, DAY, now=DAY_START + timedelta(days=2))

    coverage = {c.key: c for c in digest.coverage}
    assert set(coverage) == {"mastodon:new|ceaday21", "mastodon:old|ceaday21"}
    assert coverage["mastodon:new|ceaday21"].hours_expected == 6
    assert coverage["mastodon:old|ceaday21"].hours_expected == 12
    assert not digest.incomplete
