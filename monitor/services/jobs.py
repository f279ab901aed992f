"""The image-analysis job queue on PostgreSQL: procrastinate, in our own database.

``run``'s scheduler leader gives the queue one job per stored copy waiting for its
check (:func:`enqueue_waiting`); any number of ``hashtag-monitor worker``
processes take jobs from it (:func:`run_worker`). procrastinate keeps the jobs in
PostgreSQL tables (created by migration 0010), so a job survives restarts, and
locks each one to one worker while it runs.

A worker killed mid-job leaves its job "doing" with a heartbeat that stops; the
other workers look for such stalled jobs every heartbeat and put them back to be
done again. What a job writes is applied at most once (the analysis row's status
is checked under the post's lock, :func:`monitor.services.analysis.record_outcome`),
so a job run twice is applied once. Our ``media_analyses`` rows say what the card,
approval and ``status`` need; the queue's own tables say what is running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from typing import Any

import procrastinate
import sqlalchemy as sa
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import Engine

from monitor.analysis.runner import Analyser
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import MediaAnalysis, MediaItem, utcnow
from monitor.services.analysis import (
    PENDING,
    Waiting,
    analyse_one,
    mark_queued,
    media_waiting,
)

log = logging.getLogger("monitor.jobs")

QUEUE = "image-analysis"
TASK = "monitor:analyse_media"
#: Seconds between a worker's heartbeats; silent for :data:`STALLED_BEATS` of them, it is
#: taken as dead and its job is given to another worker.
HEARTBEAT_SECONDS = 10.0
STALLED_BEATS = 3
#: Jobs given to the queue per run of the leader's job.
ENQUEUE_BATCH = 500
#: A copy queued this long ago and still pending is queued again (the queueing lock keeps
#: a job still waiting from being doubled): a lost job never blocks a post for ever.
REQUEUE_AFTER = timedelta(minutes=10)

blueprint = procrastinate.Blueprint()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerState:
    """What a worker's jobs need, handed to them through procrastinate's job context."""

    engine: Engine
    settings: Settings
    analyser: Analyser


@blueprint.task(name="analyse_media", queue=QUEUE, pass_context=True)
def analyse_media(context: procrastinate.JobContext, media_id: int, pinned_hash: str) -> None:
    """Check one stored copy (a job); nothing happens if it was replaced or already done."""
    state: WorkerState = context.additional_context["monitor"]
    item = _waiting(state.engine, media_id, pinned_hash)
    if item is not None:
        analyse_one(state.engine, state.settings, state.analyser, item)


def _waiting(engine: Engine, media_id: int, pinned_hash: str) -> Waiting | None:
    with session_scope(engine) as session:
        item = session.get(MediaItem, media_id)
    if item is None or item.pinned_hash != pinned_hash or not item.pinned_path:
        return None
    return Waiting(media_id, item.post_id, item.position + 1, pinned_hash, item.pinned_path)


def conninfo(engine: Engine) -> str:
    """The engine's database as a libpq URI (search path and all), for procrastinate."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def job_app(engine: Engine) -> procrastinate.App:
    """A procrastinate app on the engine's database with our task registered."""
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(engine), min_size=1, max_size=4)
    app = procrastinate.App(connector=connector)
    app.add_tasks_from(blueprint, namespace="monitor")
    return app


def enqueue_waiting(*, engine: Engine, settings: Settings, app: procrastinate.App) -> int:
    """Queue a job for every stored copy waiting for its check (``run``'s leader)."""
    waiting = media_waiting(engine, limit=ENQUEUE_BATCH, unqueued_only=True)
    waiting += _lost(engine)
    queued = 0
    with app.open():
        for item in waiting:
            task = app.configure_task(
                TASK,
                queue=QUEUE,
                # One job waiting per copy, and never two running for one attachment.
                queueing_lock=f"analyse:{item.media_id}:{item.pinned_hash[:16]}",
                lock=f"media:{item.media_id}",
            )
            try:
                task.defer(media_id=item.media_id, pinned_hash=item.pinned_hash)
                queued += 1
            except AlreadyEnqueued:
                pass
            mark_queued(engine, item)
    return queued


def _lost(engine: Engine) -> list[Waiting]:
    """Copies queued long ago and still pending: their job may be gone."""
    analyses, media = MediaAnalysis.__table__, MediaItem.__table__
    query = (
        sa.select(analyses.c.media_id, analyses.c.post_id, media.c.position, media.c.pinned_path)
        .join(media, media.c.id == analyses.c.media_id)
        .where(
            analyses.c.status == PENDING,
            analyses.c.pinned_hash == media.c.pinned_hash,
            analyses.c.queued_at < utcnow() - REQUEUE_AFTER,
        )
        .add_columns(analyses.c.pinned_hash)
        .limit(ENQUEUE_BATCH)
    )
    with session_scope(engine) as session:
        rows = session.execute(query).all()
    return [
        Waiting(row.media_id, row.post_id, row.position + 1, row.pinned_hash, row.pinned_path)
        for row in rows
        if row.pinned_path
    ]


def run_worker(
    *,
    engine: Engine,
    settings: Settings,
    analyser: Analyser,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    name: str | None = None,
) -> None:
    """Take analysis jobs until SIGINT or SIGTERM, one at a time (the work is CPU-bound:
    run one worker per core)."""
    app = job_app(engine)
    state = WorkerState(engine, settings, analyser)

    async def work() -> None:
        async with app.open_async():
            watcher = asyncio.create_task(_retry_stalled(app, heartbeat_seconds))
            try:
                await app.run_worker_async(
                    queues=[QUEUE],
                    name=name or "hashtag-monitor-worker",
                    concurrency=1,
                    additional_context={"monitor": state},
                    update_heartbeat_interval=heartbeat_seconds,
                    stalled_worker_timeout=heartbeat_seconds * STALLED_BEATS,
                    delete_jobs="successful",
                )
            finally:
                watcher.cancel()

    asyncio.run(work())


async def _retry_stalled(app: procrastinate.App, heartbeat_seconds: float) -> None:
    """Every heartbeat, give the jobs of workers that stopped beating to be done again."""
    while True:
        await asyncio.sleep(heartbeat_seconds)
        try:
            stalled: list[Any] = list(
                await app.job_manager.get_stalled_jobs(
                    queue=QUEUE, seconds_since_heartbeat=heartbeat_seconds * STALLED_BEATS
                )
            )
            for job in stalled:
                log.warning("job %s of a worker that stopped is being retried", job.id)
                await app.job_manager.retry_job(job)
        except Exception as exc:  # noqa: BLE001  the watcher must outlive a database blip
            log.warning("could not look for stalled analysis jobs: %s", exc)
