"""The in-process scheduler (APScheduler 3, AsyncIO): a poll job per source, a refresh
job per platform.

Each poll runs in a worker thread, so a slow or hanging source never delays
another; ``max_instances=1`` keeps two runs of the same job apart and
``coalesce`` folds missed runs into one.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import ExitStack
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine

from adapters.base import Adapter, Target
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import utcnow
from monitor.services.mail import send_due_digest
from monitor.services.polling import poll_target
from monitor.services.refresh import refresh_platform
from monitor.services.retention import purge
from monitor.services.sources import configured_platforms, record_disabled, source_key

log = logging.getLogger("monitor.scheduler")


class Monitor:
    """Owns the scheduler and the adapters' HTTP clients for the life of ``run``."""

    def __init__(self, *, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.scheduler = AsyncIOScheduler(timezone=settings.zone)
        self._resources = ExitStack()

    def start(self) -> None:
        """Register a poll job per source and start; call from inside the event loop."""
        platforms = self._resources.enter_context(configured_platforms(self.settings))
        with session_scope(self.engine) as session:
            for configured in platforms:
                record_disabled(session, configured.name, configured.disabled_reason, utcnow())
                if configured.adapter is None:
                    log.warning("%s disabled: %s", configured.name, configured.disabled_reason)
        first_run = datetime.now(self.settings.zone)
        for configured in platforms:
            adapter = configured.adapter
            if adapter is None:
                continue
            targets = adapter.targets(self.settings.hashtags)
            interval = adapter.poll_interval(self.settings.poll_interval_seconds, len(targets))
            self._add_refresh_job(adapter, first_run)
            for offset, target in enumerate(targets):
                self.scheduler.add_job(
                    self._poll,
                    "interval",
                    seconds=interval,
                    jitter=min(30, interval // 10),
                    args=(adapter, target),
                    id=f"poll:{source_key(adapter.name, target)}",
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=interval,
                    # Spread the first polls a little so sources do not start in a burst.
                    next_run_time=first_run + timedelta(seconds=offset % 10),
                )
        if self.settings.digest_to:
            hour, minute = (int(part) for part in self.settings.digest_time.split(":"))
            self.scheduler.add_job(
                self._send_digest,
                "cron",
                hour=hour,
                minute=minute,
                id="digest",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )
            # On start, catch up a missed digest (a no-op when the due day is on record).
            self.scheduler.add_job(self._send_digest, id="digest:catch-up", max_instances=1)
        self.scheduler.add_job(
            self._purge,
            "cron",
            hour=3,
            minute=30,
            id="retention",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=6 * 3600,
        )
        self.scheduler.start()
        log.info("scheduler started with %d job(s)", len(self.scheduler.get_jobs()))

    def _add_refresh_job(self, adapter: Adapter, first_run: datetime) -> None:
        interval = self.settings.refresh_interval_seconds
        self.scheduler.add_job(
            self._refresh,
            "interval",
            seconds=interval,
            jitter=min(60, interval // 10),
            args=(adapter,),
            id=f"refresh:{adapter.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=interval,
            # After the first polls, so a fresh install refreshes what it just found.
            next_run_time=first_run + timedelta(seconds=min(interval, 120)),
        )

    async def _refresh(self, adapter: Adapter) -> None:
        await asyncio.to_thread(
            refresh_platform, engine=self.engine, adapter=adapter, settings=self.settings
        )

    async def _purge(self) -> None:
        await asyncio.to_thread(self._purge_now)

    def _purge_now(self) -> None:
        with session_scope(self.engine) as session:
            counts = purge(session=session, settings=self.settings)
        log.info("retention: deleted %s", counts or "nothing")

    async def _poll(self, adapter: Adapter, target: Target) -> None:
        await asyncio.to_thread(
            poll_target, engine=self.engine, adapter=adapter, target=target, settings=self.settings
        )

    async def _send_digest(self) -> None:
        await asyncio.to_thread(send_due_digest, engine=self.engine, settings=self.settings)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._resources.close()
