"""The scheduler: a job per source, never overlapping, a slow source holding up no other."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.config import Settings
from monitor.models import Post
from monitor.scheduler import Monitor
from monitor.services.sources import list_sources
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon_stream import TOKEN, FakeMastodonStream
from tests.fakes.server import FakeServer
from tests.streaming import FAST


def _leader_jobs(engine: Engine, settings: Settings) -> list:
    """The jobs a freshly elected leader registers (leader election itself left out)."""

    async def scenario() -> list:
        monitor = Monitor(engine=engine, settings=settings)
        monitor.start()
        try:
            await monitor._elect()
            return [j for j in monitor.scheduler.get_jobs() if j.id != "leader-election"]
        finally:
            monitor.shutdown()

    return asyncio.run(scenario())


def test_jobs_are_one_per_source_never_overlapping(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21,HelpingHands")

    jobs = _leader_jobs(sqlite_engine, settings)
    assert sorted(job.id for job in jobs) == [
        "campaigns:replan",
        "digest",  # each campaign's digest is looked for every minute (a campaign sets its own)
        f"poll:mastodon:{mastodon.url}|CEADAY21",
        f"poll:mastodon:{mastodon.url}|HelpingHands",
        "refresh:mastodon",
        "retention",
        "stage-media",
    ]
    assert all(job.max_instances == 1 and job.coalesce for job in jobs)
    assert {job.trigger.interval.total_seconds() for job in jobs if job.id.startswith("poll")} == {
        300
    }


def test_a_hanging_source_does_not_delay_another(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    hanging = FakeServer().start()
    # The slow source answers nothing until the test has looked: a condition, not a race
    # between a hang's length and how fast a busy machine runs the other poll.
    released = threading.Event()
    hanging.on_request = lambda _request: released.wait(60)
    try:
        hanging_instance = FakeMastodon(hanging, domain="slow.social")
        hanging_instance.add_many(1)
        mastodon.add_many(2)
        settings = configure(
            MASTODON_INSTANCES=f"{hanging.url},{mastodon.url}",
            HASHTAGS="CEADAY21",
            HTTP_TIMEOUT_SECONDS="90",
        )

        async def scenario() -> tuple[bool, int]:
            monitor = Monitor(engine=sqlite_engine, settings=settings)
            monitor.start()
            try:
                await monitor._elect()
                [slow, fast] = [
                    job for job in monitor.scheduler.get_jobs() if job.id.startswith("poll")
                ]
                slow_task = asyncio.create_task(monitor._poll(*slow.args))
                await monitor._poll(*fast.args)
                slow_still_running = not slow_task.done()
                with Session(sqlite_engine) as session:
                    stored = len(list(session.exec(select(Post))))
                released.set()
                await slow_task
                return slow_still_running, stored
            finally:
                monitor.shutdown()

        slow_still_running, stored = asyncio.run(scenario())
    finally:
        released.set()
        hanging.stop()
    assert slow_still_running
    assert stored == 2


def test_only_one_monitor_leads_and_a_follower_takes_over(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")

    async def scenario() -> tuple[list[str], list[int], str]:
        monitors = [Monitor(engine=sqlite_engine, settings=settings) for _ in range(2)]
        for monitor in monitors:
            monitor.start()
        for monitor in monitors:
            await monitor._elect()
        states = [monitor.leader_state for monitor in monitors]
        work = [len(monitor._work_job_ids) for monitor in monitors]
        leader = monitors[states.index("leader")] if "leader" in states else monitors[0]
        follower = monitors[1] if leader is monitors[0] else monitors[0]
        leader.shutdown()  # the leader goes away
        await follower._elect()
        taken_over = follower.leader_state
        follower.shutdown()
        return states, work, taken_over

    states, work, taken_over = asyncio.run(scenario())
    assert sorted(states) == ["follower", "leader"]
    assert sorted(work)[0] == 0 and sorted(work)[1] > 0  # only the leader has work
    assert taken_over == "leader"


def test_shutdown_lets_the_polls_under_way_finish(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS="CEADAY21")
    mastodon.add_many(2)
    mastodon.server.fail("hang", seconds=0.5)  # the poll is slow, not failing

    async def scenario() -> bool:
        monitor = Monitor(engine=sqlite_engine, settings=settings)
        monitor.start()
        await monitor._elect()
        [job] = [j for j in monitor.scheduler.get_jobs() if j.id.startswith("poll")]
        polling = asyncio.create_task(monitor._poll(*job.args))
        # Drain once the poll is really under way (its request reached the server), not
        # after a guess at how long starting it takes on a busy machine.
        deadline = asyncio.get_running_loop().time() + 30
        while not mastodon.server.requests and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await monitor.drain(timeout=30)
        finished = polling.done()
        monitor.shutdown()
        return finished

    assert asyncio.run(scenario())
    with Session(sqlite_engine) as session:
        assert len(list(session.exec(select(Post)))) == 2
        [source] = list_sources(session)
    assert source.failures_in_row == 0 and source.last_error is None


def test_safeguarding_alerts_have_a_catch_up_job_when_configured(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    settings = configure(MASTODON_INSTANCES=mastodon.url, SAFEGUARDING_ALERT_TO="lead@x.example")

    (job,) = [j for j in _leader_jobs(sqlite_engine, settings) if j.id == "safeguarding-alerts"]
    assert job.trigger.interval.total_seconds() == 60 and job.max_instances == 1


def test_the_leader_runs_the_streams_and_stops_them_cleanly_on_drain(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    live = FakeMastodonStream(mastodon)
    settings = configure(
        MASTODON_INSTANCES=mastodon.url, MASTODON_ACCESS_TOKEN=TOKEN, HASHTAGS="CEADAY21"
    )

    async def scenario() -> tuple[bool, bool]:
        monitor = Monitor(engine=sqlite_engine, settings=settings)
        monitor.stream_tuning = FAST
        monitor.start()
        try:
            await monitor._elect()
            assert monitor.streams is not None
            deadline = asyncio.get_running_loop().time() + 15
            while live.connections < 1 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            status = live.post("Under the leader #CEADAY21")
            while asyncio.get_running_loop().time() < deadline:
                with Session(sqlite_engine) as session:
                    if session.exec(select(Post).where(Post.external_id == status["uri"])).first():
                        break
                await asyncio.sleep(0.02)
            runner = monitor.streams
            await monitor.drain(timeout=10)
            return runner.running, monitor.streams is None
        finally:
            monitor.shutdown()

    still_running, forgotten = asyncio.run(scenario())
    assert not still_running and forgotten
    with Session(sqlite_engine) as session:
        assert len(list(session.exec(select(Post)))) == 1
        [source] = list_sources(session)
    assert source.mode == "polling" and "stopped with the scheduler" in (source.mode_note or "")


def test_a_follower_runs_no_stream(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    live = FakeMastodonStream(mastodon)
    settings = configure(
        MASTODON_INSTANCES=mastodon.url, MASTODON_ACCESS_TOKEN=TOKEN, HASHTAGS="CEADAY21"
    )

    async def scenario() -> list[bool]:
        monitors = [Monitor(engine=sqlite_engine, settings=settings) for _ in range(2)]
        for monitor in monitors:
            monitor.stream_tuning = FAST
            monitor.start()
        try:
            for monitor in monitors:
                await monitor._elect()
            return [monitor.streams is not None for monitor in monitors]
        finally:
            for monitor in monitors:
                await monitor.drain(timeout=5)
                monitor.shutdown()

    assert sorted(asyncio.run(scenario())) == [False, True]
    assert live.connections <= 1
