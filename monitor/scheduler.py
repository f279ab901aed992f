"""The in-process scheduler (APScheduler 3, AsyncIO): a poll job per source, a refresh
job per platform, the digest and retention, run by the elected leader only, and beside
them the streams (:mod:`monitor.streaming`), started and stopped with the leadership.

Each poll runs in a worker thread, so a slow or hanging source never delays
another; ``max_instances=1`` keeps two runs of the same job apart and
``coalesce`` folds missed runs into one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from adapters.base import Adapter, Target
from adapters.http import HttpClient
from monitor.config import Settings
from monitor.db import session_scope
from monitor.leader import LeaderLock
from monitor.models import utcnow
from monitor.services.alerts import send_pending_alerts
from monitor.services.campaigns import REPLAN_EVERY, Watch, current_watch
from monitor.services.credentials import build_account, current_accounts
from monitor.services.mail import DIGEST_CHECK_EVERY, send_due_digest
from monitor.services.polling import poll_target, record_configuration
from monitor.services.refresh import refresh_platform
from monitor.services.retention import purge
from monitor.services.sources import (
    ConfiguredPlatform,
    Owner,
    configured_platforms,
    record_disabled,
    retry_policy,
    source_key,
)
from monitor.services.staging import STAGE_INTERVAL_SECONDS, stage_waiting
from monitor.streaming import STREAMED_PLATFORMS, StreamRunner, StreamTuning

if TYPE_CHECKING:
    from monitor.analysis.runner import Analyser

log = logging.getLogger("monitor.scheduler")


def _streamed(watch: Watch) -> dict[str, tuple[str, ...]]:
    """The part of what is watched that the streams read (the platforms that stream)."""
    return {platform: watch.tags_for(platform) for platform in STREAMED_PLATFORMS}


class Monitor:
    """Owns the scheduler and the adapters' HTTP clients for the life of ``run``."""

    def __init__(
        self, *, engine: Engine, settings: Settings, analyser: Analyser | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        #: SQLite: this process checks the images (PostgreSQL: ``worker`` processes do).
        self.analyser = analyser
        self.scheduler = AsyncIOScheduler(timezone=settings.zone)
        self.leader = LeaderLock(engine)
        self._resources = ExitStack()
        #: The install's platforms (built once: its credentials are the environment's).
        self._platforms: list[ConfiguredPlatform] = []
        #: Campaigns' own accounts, by (platform, campaign id): the credentials' version
        #: and the adapter built from them, made again when a key is set or cleared.
        self._owned: dict[tuple[str, int], tuple[object, ConfiguredPlatform]] = {}
        self._owned_lock = threading.Lock()
        self._work_job_ids: list[str] = []
        #: The poll jobs (by id) and the platform (install's or a campaign's) they poll
        #: with: made again as the campaigns and their credentials change.
        self._poll_jobs: dict[str, ConfiguredPlatform] = {}
        self._in_flight: set[asyncio.Future[object]] = set()
        self._job_app: Any = None
        #: The streams (Mastodon, Jetstream), run by the leader beside the poll jobs.
        self.streams: StreamRunner | None = None
        self.stream_tuning: StreamTuning | None = None

    @property
    def leader_state(self) -> str:
        """``leader``, ``follower`` (another process leads) or ``unknown``, for /readyz."""
        if self.leader.held:
            return "leader"
        try:
            return "follower" if self.leader.other_leader_exists() else "unknown"
        except (OSError, SQLAlchemyError):
            return "unknown"

    def start(self) -> None:
        """Start the scheduler; call from inside the event loop.

        Only the elected leader registers the work (polls, refreshes, digest,
        retention); every process checks leadership a few times per poll
        interval, so a follower takes over soon after a leader dies.
        """
        self._platforms = self._resources.enter_context(configured_platforms(self.settings))
        with session_scope(self.engine) as session:
            for configured in self._platforms:
                record_disabled(session, configured.name, configured.disabled_reason, utcnow())
                if configured.adapter is None:
                    log.warning("%s disabled: %s", configured.name, configured.disabled_reason)
        check_every = max(1, min(self.settings.poll_interval_seconds // 4, 15))
        self.scheduler.add_job(
            self._elect,
            "interval",
            seconds=check_every,
            id="leader-election",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(self.settings.zone),
        )
        self.scheduler.start()

    async def _elect(self) -> None:
        leading = await asyncio.to_thread(self._check_leadership)
        if leading and not self._work_job_ids:
            self._add_work_jobs()  # before any await: a second election run sees them
            watch, owned = await asyncio.to_thread(self._record_configuration)
            if self._work_job_ids:  # still leading (a lost election clears them)
                self._plan_polls(watch, owned)
                self._start_streams(watch)
        elif not leading and self._work_job_ids:
            log.warning("lost the scheduler leadership; stopping scheduled work")
            for job_id in self._work_job_ids + list(self._poll_jobs):
                self.scheduler.remove_job(job_id)
            self._work_job_ids, self._poll_jobs = [], {}
            await self._stop_streams()

    def _check_leadership(self) -> bool:
        try:
            if self.leader.held and not self.leader.still_held():
                self.leader.release()
            return self.leader.try_acquire()
        except (OSError, SQLAlchemyError) as exc:
            log.warning("leader election failed: %s", exc)
            return False

    def _add_work_jobs(self) -> None:
        """Register a poll job per source, a refresh job per platform, media staging, digest
        and retention."""
        first_run = datetime.now(self.settings.zone)
        for configured in self._platforms:
            if configured.adapter is not None:
                self._add_refresh_job(configured.adapter, first_run)
        # What the campaigns watch changes with their dates and commands: look again.
        self._add(
            self._replan,
            "interval",
            seconds=REPLAN_EVERY.total_seconds(),
            id="campaigns:replan",
            next_run_time=first_run + REPLAN_EVERY,
        )
        # Each campaign's digest at its own time (set and changed at runtime): looked at
        # every minute, a no-op once the (campaign, day) is on record. On start, at once:
        # a digest missed while the service was down goes out.
        self._add(
            self._send_digest,
            "interval",
            seconds=DIGEST_CHECK_EVERY.total_seconds(),
            id="digest",
            next_run_time=first_run,
        )
        self._add(
            self._purge, "cron", hour=3, minute=30, id="retention", misfire_grace_time=6 * 3600
        )
        self._add(
            self._stage,
            "interval",
            seconds=STAGE_INTERVAL_SECONDS,
            id="stage-media",
            misfire_grace_time=STAGE_INTERVAL_SECONDS,
            next_run_time=first_run,
        )
        if self.settings.image_analysis:
            from monitor.services.analysis import ANALYSE_INTERVAL_SECONDS

            self._add(
                self._analyse,
                "interval",
                seconds=ANALYSE_INTERVAL_SECONDS,
                id="analyse-media",
                misfire_grace_time=ANALYSE_INTERVAL_SECONDS,
                next_run_time=first_run,
            )
        if self.settings.safeguarding_alert_to:
            # Catch-up for alerts a request's own thread did not send (a restart, a failure).
            self._add(self._send_alerts, "interval", seconds=60, id="safeguarding-alerts")
        log.info("scheduler leader: %d job(s) registered", len(self._work_job_ids))

    def _record_configuration(self) -> tuple[Watch, list[ConfiguredPlatform]]:
        """What the running campaigns watch now and the campaigns' own accounts it polls
        with; retire what none wants (in a thread)."""
        watch = current_watch(self.engine, self.settings)
        owned = self._follow_accounts(watch)
        record_configuration(self.engine, self.settings, self._platforms + owned)
        return watch, owned

    def _follow_accounts(self, watch: Watch) -> list[ConfiguredPlatform]:
        """The adapters of the campaigns' own credentials ``watch`` polls with: kept while
        their credentials are unchanged, built again when a key is set or cleared.

        A replaced adapter's HTTP client is closed only at shutdown: a poll may still be
        using it (credentials change rarely, so few are kept).
        """
        found = current_accounts(self.engine, self.settings, watch)
        with self._owned_lock:
            current: dict[tuple[str, int], tuple[object, ConfiguredPlatform]] = {}
            for account in found:
                key, version = (account.platform, account.owner.campaign_id), account.version
                kept = self._owned.get(key)
                if kept is not None and kept[0] == version:
                    current[key] = kept
                    continue
                client = HttpClient(retry_policy(self.settings))
                self._resources.callback(client.close)
                current[key] = (version, build_account(account, client))
                log.info(
                    "%s: campaign %s's credentials loaded", account.platform, account.owner.slug
                )
            self._owned = current
            return [configured for _, configured in current.values()]

    def _plan_polls(self, watch: Watch, owned: list[ConfiguredPlatform]) -> None:
        """A poll job per target the running campaigns watch, with the credentials each
        is polled with; none for what they do not.

        A platform (or campaign account) whose targets changed has all its jobs made
        again: its interval may depend on how many targets share its quota.
        """
        first_run = datetime.now(self.settings.zone)
        platforms = [c for c in self._platforms + owned if c.adapter is not None]
        # An account gone or replaced (new credentials) first: its job ids come back below.
        for job_id, configured in list(self._poll_jobs.items()):
            if configured not in platforms:
                self.scheduler.remove_job(job_id)
                del self._poll_jobs[job_id]
        for configured in platforms:
            adapter = configured.adapter
            assert adapter is not None
            owner = configured.owner
            targets = adapter.targets(watch.tags_for(adapter.name, configured.campaign_id))
            wanted: dict[str, Target | None] = {
                f"poll:{source_key(adapter.name, t, owner)}": t for t in targets
            }
            if owner is not None and targets:
                # What a campaign's own account found, it also re-checks at source.
                wanted[f"refresh:{adapter.name}@campaign:{owner.slug}"] = None
            have = {job_id for job_id, c in self._poll_jobs.items() if c is configured}
            if set(wanted) == have:
                continue
            for job_id in have:
                self.scheduler.remove_job(job_id)
                del self._poll_jobs[job_id]
            interval = adapter.poll_interval(self.settings.poll_interval_seconds, len(targets))
            for offset, (job_id, target) in enumerate(wanted.items()):
                if target is None:
                    self._poll_jobs[job_id] = configured
                    self._add_refresh_job(adapter, first_run, owner=owner, job_id=job_id)
                    continue
                self.scheduler.add_job(
                    self._poll,
                    "interval",
                    seconds=interval,
                    jitter=min(30, interval // 10),
                    args=(adapter, target, owner),
                    id=job_id,
                    misfire_grace_time=interval,
                    max_instances=1,
                    coalesce=True,
                    # Spread the first polls a little so sources do not start in a burst.
                    next_run_time=first_run + timedelta(seconds=offset % 10),
                )
                self._poll_jobs[job_id] = configured
            whose = f" with campaign {owner.slug}'s credentials" if owner else ""
            log.info("%s: polling %d target(s)%s", adapter.name, len(targets), whose)

    async def _replan(self) -> None:
        """Follow the campaigns: a campaign added, ended, starting or finishing today."""
        watch, owned = await asyncio.to_thread(self._record_configuration)
        self._plan_polls(watch, owned)
        if self.streams is not None and _streamed(self.streams.watch) != _streamed(watch):
            log.info("the campaigns' streamed hashtags changed: restarting the streams")
            await self._stop_streams()
            self._start_streams(watch)

    def _start_streams(self, watch: Watch) -> None:
        """The streams, beside the poll jobs; inside the event loop (``_elect`` runs there)."""
        self.streams = StreamRunner(
            engine=self.engine,
            settings=self.settings,
            platforms=self._platforms,
            catch_up=self._poll,
            watch=watch,
            tuning=self.stream_tuning,
        )
        self.streams.start()

    async def _stop_streams(self) -> None:
        if self.streams is not None:
            streams, self.streams = self.streams, None
            await streams.stop()

    def _add(self, func: Callable[..., Awaitable[None]], *args: Any, **options: Any) -> None:
        """Add one job of the leader's work: never two runs at once, missed runs folded."""
        job = self.scheduler.add_job(func, *args, max_instances=1, coalesce=True, **options)
        self._work_job_ids.append(job.id)

    def _add_refresh_job(
        self,
        adapter: Adapter,
        first_run: datetime,
        *,
        owner: Owner | None = None,
        job_id: str | None = None,
    ) -> None:
        """The platform's refresh job (``owner``: a campaign account's, planned with its
        poll jobs, whose ``job_id`` they track)."""
        interval = self.settings.refresh_interval_seconds
        options: dict[str, Any] = {
            "seconds": interval,
            "jitter": min(60, interval // 10),
            "args": (adapter, owner),
            "misfire_grace_time": interval,
            # After the first polls, so a fresh install refreshes what it just found.
            "next_run_time": first_run + timedelta(seconds=min(interval, 120)),
        }
        if owner is None:
            self._add(self._refresh, "interval", id=f"refresh:{adapter.name}", **options)
        else:
            self.scheduler.add_job(
                self._refresh, "interval", id=job_id, max_instances=1, coalesce=True, **options
            )

    async def _in_thread(self, func: Callable[..., object], **kwargs: Any) -> None:
        """Run blocking work in a worker thread, tracked so shutdown can let it finish."""
        work = asyncio.ensure_future(asyncio.to_thread(func, **kwargs))
        self._in_flight.add(work)
        work.add_done_callback(self._in_flight.discard)
        await work

    async def _refresh(self, adapter: Adapter, owner: Owner | None = None) -> None:
        await self._in_thread(
            refresh_platform,
            engine=self.engine,
            adapter=adapter,
            settings=self.settings,
            owner=owner,
        )

    async def _stage(self) -> None:
        """Fetch media of new and edited posts for review, outside every poll's transaction."""
        await self._in_thread(stage_waiting, engine=self.engine, settings=self.settings)

    async def _analyse(self) -> None:
        """Check stored images: here on SQLite, by queueing jobs for workers on PostgreSQL."""
        await self._in_thread(self._analyse_now)

    def _analyse_now(self) -> None:
        from monitor.services.analysis import analyse_waiting

        if self.engine.dialect.name == "postgresql":
            from monitor.services.jobs import enqueue_waiting, job_app

            if self._job_app is None:
                self._job_app = job_app(self.engine)
            enqueue_waiting(engine=self.engine, settings=self.settings, app=self._job_app)
        else:
            if self.analyser is None:
                # Not started by `run` (training mode, tests): started at its first image.
                from monitor.analysis.detectors import available_detectors
                from monitor.analysis.runner import Analyser

                self.analyser = Analyser(targets=available_detectors())
            analyse_waiting(engine=self.engine, settings=self.settings, analyser=self.analyser)

    async def _purge(self) -> None:
        await self._in_thread(self._purge_now)

    def _purge_now(self) -> None:
        with session_scope(self.engine) as session:
            counts = purge(session=session, settings=self.settings)
        log.info("retention: deleted %s", counts or "nothing")

    async def _poll(self, adapter: Adapter, target: Target, owner: Owner | None = None) -> None:
        await self._in_thread(
            poll_target,
            engine=self.engine,
            adapter=adapter,
            target=target,
            settings=self.settings,
            owner=owner,
        )

    async def _send_alerts(self) -> None:
        await self._in_thread(
            send_pending_alerts, engine=self.engine, settings=self.settings, retry_failed=True
        )

    async def _send_digest(self) -> None:
        await self._in_thread(send_due_digest, engine=self.engine, settings=self.settings)

    async def drain(self, timeout: float) -> None:
        """Start no new work and give the work under way ``timeout`` seconds to finish,
        so a restart does not cut a poll off mid-request and record a false failure."""
        if self.scheduler.running:
            self.scheduler.pause()
        await self._stop_streams()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.leader.release()
        self._resources.close()
        if self.analyser is not None:
            self.analyser.stop()
