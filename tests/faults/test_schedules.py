"""Many seeded schedules of platform faults against the real pipeline (see schedule.py).

Each seed is one schedule: a first poll under transport faults, then steps of
new posts, faults and misbehaviour, and poll cycles; then the faults are
cleared, the sources polled back to health, and the stored posts compared
with the server's truth. Most seeds run on SQLite; a few on both backends.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from monitor.config import Settings
from tests.fakes.mastodon import FakeMastodon
from tests.faults.conftest import FaultFigures
from tests.faults.schedule import FIRST_POLL_MAX_POSTS, SCHEDULE_ENV, TAGS, Schedule

#: The suite is deterministic per seed; search wider with e.g. ``FAULT_SEED_OFFSET=1000``.
SEED_OFFSET = int(os.environ.get("FAULT_SEED_OFFSET", "0"))
SQLITE_SEEDS = range(SEED_OFFSET, SEED_OFFSET + 16)
BOTH_BACKENDS_SEEDS = (1001, 1002)
STEPS = (4, 7)
BURST = 5000


def _play(schedule: Schedule) -> None:
    """A first poll, 4 to 7 steps of posts, faults and polls, then the verdict."""
    rng = schedule.rng
    # The first poll walks back over what is there, under transport faults only: a
    # repeated page there cannot be told from a looping server (see test_platform_faults).
    schedule.add_posts(rng.randint(1, FIRST_POLL_MAX_POSTS - 1))
    schedule.mastodon.add("On both " + " ".join(f"#{t}" for t in TAGS), tags=TAGS)
    schedule.inject(rng.randint(0, 2), misbehaviour=False)
    schedule.cycle()
    schedule.settle()
    for _ in range(rng.randint(*STEPS)):
        schedule.add_posts(schedule.arrivals())
        schedule.inject(rng.choice([0, 1, 1, 2]))
        schedule.cycle()
        if rng.random() < 0.5:
            schedule.pass_rate_limit_windows()
    schedule.settle()
    schedule.check_truth()


@pytest.fixture
def schedule_settings(configure: Callable[..., Settings], mastodon: FakeMastodon) -> Settings:
    return configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS=",".join(TAGS), **SCHEDULE_ENV)


@pytest.mark.parametrize("seed", SQLITE_SEEDS)
def test_schedule_loses_nothing_and_health_tells(
    seed: int,
    sqlite_engine: Engine,
    schedule_settings: Settings,
    mastodon: FakeMastodon,
    fault_figures: FaultFigures,
) -> None:
    _play(
        Schedule(
            seed=seed,
            engine=sqlite_engine,
            settings=schedule_settings,
            mastodon=mastodon,
            figures=fault_figures,
        )
    )


@pytest.mark.parametrize("seed", BOTH_BACKENDS_SEEDS)
def test_schedule_on_each_backend(
    seed: int,
    engine: Engine,
    schedule_settings: Settings,
    mastodon: FakeMastodon,
    fault_figures: FaultFigures,
) -> None:
    _play(
        Schedule(
            seed=seed,
            engine=engine,
            settings=schedule_settings,
            mastodon=mastodon,
            figures=fault_figures,
        )
    )


def test_schedule_with_refresh_deletions_and_edits(
    sqlite_engine: Engine,
    schedule_settings: Settings,
    mastodon: FakeMastodon,
    fault_figures: FaultFigures,
) -> None:
    """Polls and refreshes under faults while authors delete and edit posts at source."""
    schedule = Schedule(
        seed=2024,
        engine=sqlite_engine,
        settings=schedule_settings,
        mastodon=mastodon,
        figures=fault_figures,
    )
    rng = schedule.rng
    schedule.add_posts(FIRST_POLL_MAX_POSTS - 1)
    schedule.mastodon.add("On both " + " ".join(f"#{t}" for t in TAGS), tags=TAGS)
    schedule.settle()
    for _ in range(8):
        schedule.add_posts(schedule.arrivals())
        schedule.delete_some(rng.randint(0, 4))
        schedule.edit_some(rng.randint(0, 4))
        schedule.inject(rng.choice([0, 1, 2]))
        schedule.cycle()
        schedule.inject_refresh_faults(rng.choice([0, 1, 2]))
        schedule.refresh_cycle()
        schedule.pass_rate_limit_windows()
    schedule.settle()
    schedule.settle_refresh()
    schedule.check_refreshed_truth()


def test_burst_of_5000_new_posts_amid_faults(
    sqlite_engine: Engine,
    configure: Callable[..., Settings],
    mastodon: FakeMastodon,
    fault_figures: FaultFigures,
) -> None:
    """A campaign goes viral between two polls: 5,000 posts, with the platform failing."""
    settings = configure(
        MASTODON_INSTANCES=mastodon.url,
        HASHTAGS=",".join(TAGS),
        **{**SCHEDULE_ENV, "POLL_MAX_PAGES": "50"},
    )
    schedule = Schedule(
        seed=5000, engine=sqlite_engine, settings=settings, mastodon=mastodon, figures=fault_figures
    )
    schedule.add_posts(20)
    schedule.mastodon.add("On both " + " ".join(f"#{t}" for t in TAGS), tags=TAGS)
    schedule.settle()
    schedule.add_posts(BURST, shared=False)  # each fetched once: the cost is per post
    for _ in range(4):
        schedule.inject(2)
        schedule.cycle()
        schedule.pass_rate_limit_windows()
    schedule.settle()
    schedule.check_truth()
    assert len(schedule.stored()) == BURST + 21
