"""Every built-in adapter at once, each against its own local fake of the platform's API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.models import EngagementSnapshot, Post
from monitor.services.polling import poll_all
from monitor.services.refresh import refresh_all
from monitor.services.sources import list_sources
from tests.fakes.registry import PLATFORMS, all_config, running_fakes


@pytest.fixture
def fakes() -> Iterator[dict[str, Any]]:
    with running_fakes() as fakes:
        yield fakes


def test_poll_collects_from_all_seven_and_refresh_snapshots_them(
    sqlite_engine: Engine, configure: Callable[..., Settings], fakes: dict
) -> None:
    for fake in fakes.values():
        for _ in range(2):
            fake.add()
    settings = configure(HASHTAGS="CEADAY21", **all_config(fakes))
    assert set(PLATFORMS) <= set(settings.enabled_platforms)

    summaries = poll_all(engine=sqlite_engine, settings=settings)

    assert {s.platform for s in summaries} >= set(PLATFORMS)
    assert all(s.ok for s in summaries), [(s.source, s.error) for s in summaries if not s.ok]
    with Session(sqlite_engine) as session:
        platforms = [p.platform for p in session.exec(select(Post))]
        health = {s.platform: (s.failures_in_row, s.last_success_at) for s in list_sources(session)}
    assert {name: platforms.count(name) for name in PLATFORMS} == dict.fromkeys(PLATFORMS, 2)
    assert all(failures == 0 and success is not None for failures, success in health.values())

    refreshed = {r.platform: r for r in refresh_all(engine=sqlite_engine, settings=settings)}
    assert all(r.ok for r in refreshed.values()), {p: r.error for p, r in refreshed.items()}
    assert refreshed["rss"].checked == 2  # feeds cannot tell deletions, but are asked
    with Session(sqlite_engine) as session:
        assert len(list(session.exec(select(EngagementSnapshot)))) >= 14


def test_the_registry_of_fakes_plays_every_built_in_platform() -> None:
    """Tests and benchmarks find a platform's fake in one place; a new adapter needs one."""
    from adapters import BUILTIN_ADAPTERS

    assert set(PLATFORMS) == set(BUILTIN_ADAPTERS)
