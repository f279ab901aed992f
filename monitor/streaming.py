"""Running the streams under the scheduler's leader: connect, store, catch up, show the mode.

One task per stream (a Mastodon instance and hashtag with a token; one Jetstream
connection for every Bluesky hashtag) reads events from its client in
``adapters/`` and hands them to a pump that commits them in batches through
:mod:`monitor.services.streams`: one event when the stream is quiet (the lowest
latency), up to :data:`BATCH_MAX` under a flood (the fewest transactions), with
the queue between them bounded so a flood slows the socket rather than filling
memory.

Every (re)connect starts a catch-up through the same poll a source's poll job
runs (REST ``min_id`` from the stored cursor on Mastodon, search on Bluesky), so
posts made while the stream was down are found; the poll jobs also go on at
their interval, as the safety net. New posts' media is staged straight after
their commit, so a streamed post is in the queue within seconds, not at the next
staging run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from adapters.base import Adapter, AdapterError, AuthFailed, FetchedPost, Target
from adapters.bluesky import BlueskyAdapter
from adapters.http import USER_AGENT
from adapters.jetstream import IDLE_TIMEOUT, Jetstream
from adapters.mastodon import MastodonAdapter
from adapters.mastodon_stream import HEARTBEAT_TIMEOUT, MastodonStream, later_id
from adapters.streams import (
    MAX_FRAME_BYTES,
    Backoff,
    Connected,
    Deleted,
    Disconnected,
    Gap,
    Position,
    Posted,
    Skipped,
    StreamEvent,
)
from monitor.config import Settings
from monitor.db import describe_db_error
from monitor.services.campaigns import Watch
from monitor.services.health import SourceMode
from monitor.services.sources import ConfiguredPlatform
from monitor.services.staging import posts_waiting, stage_post
from monitor.services.streams import (
    StoredBatch,
    StreamBatch,
    note_position,
    note_unstored,
    set_mode,
    store_batch,
    stream_sources,
)

log = logging.getLogger("monitor.streams")

#: The platforms read by a stream (the others are only polled).
STREAMED_PLATFORMS = ("mastodon", "bluesky")
#: Tries at the final "polling" write when the streams stop (a busy database).
STOP_WRITE_ATTEMPTS = 5
#: Events committed in one transaction at most; a quiet stream commits each at once.
BATCH_MAX = 1000
#: Events waiting for the database at most; past it the stream's socket waits instead.
QUEUE_MAX = 20_000
#: A failed Jetstream post lookup (getPosts) is not tried again for this long.
HYDRATE_RETRY = timedelta(minutes=5)

CatchUp = Callable[[Adapter, Target], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class StreamTuning:
    """Timeouts and back-off; tests shrink them, production keeps the defaults."""

    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    #: How often a quiet, live Mastodon stream notes that it is still caught up.
    health_every: float = 5.0
    max_frame_bytes: int = MAX_FRAME_BYTES

    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, cap=self.backoff_cap)


def _later_time_us(stored: str | None, candidate: str) -> str:
    if stored is None or not stored.isdigit() or int(candidate) > int(stored):
        return candidate
    return stored


class _Pump:
    """Commits one stream's events in batches, in order, never losing one on a DB error."""

    def __init__(
        self,
        runner: StreamRunner,
        *,
        platform: str,
        source_ids: list[int],
        cursor_column: str,
        later: Callable[[str | None, str], str],
        hydrate: Callable[[list[FetchedPost]], list[FetchedPost]] | None = None,
    ) -> None:
        self.runner = runner
        self.platform, self.source_ids = platform, source_ids
        self.cursor_column, self.later, self.hydrate = cursor_column, later, hydrate
        self.queue: asyncio.Queue[Posted | Deleted | Position] = asyncio.Queue(QUEUE_MAX)

    def batch(self, events: Sequence[Posted | Deleted | Position]) -> StreamBatch:
        batch = StreamBatch()
        for event in events:
            if isinstance(event, Posted):
                (batch.edits_of_known if event.known_only else batch.posts).append(event.post)
            elif isinstance(event, Deleted):
                batch.deleted.append(event.ref)
            if event.cursor is not None:
                batch.cursor = self.later(batch.cursor, event.cursor)
            if event.position_at is not None:
                batch.position_at = max(batch.position_at or event.position_at, event.position_at)
        return batch

    async def run(self) -> None:
        backoff = self.runner.tuning.backoff()
        while True:
            events = [await self.queue.get()]
            while len(events) < BATCH_MAX:
                try:
                    events.append(self.queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            batch = self.batch(events)
            stored = await self._store_or_give_up(batch, backoff)
            if stored is not None:
                self.runner.stage(stored.new_ids + stored.edited_ids)
            for _ in events:
                self.queue.task_done()

    async def _store_or_give_up(self, batch: StreamBatch, backoff: Backoff) -> StoredBatch | None:
        """Commit, retrying a database failure for as long as it lasts (the events wait in
        memory); a batch that fails for another reason (a bug) is tried three times, then
        left to the next poll, which re-reads it from the cursor it did not move."""
        attempts = 0
        while True:
            try:
                return await asyncio.to_thread(self._store, batch)
            except SQLAlchemyError as exc:
                reason = describe_db_error(exc)
                log.error("stream %s: not stored yet: %s", self.platform, reason)
            except Exception as exc:
                attempts += 1
                log.exception("stream %s: a batch could not be stored", self.platform)
                if attempts >= 3:
                    gap = (
                        f"{len(batch.posts)} streamed post(s) could not be stored"
                        f" ({type(exc).__name__}: {exc}); the next poll reads them again"
                    )
                    with contextlib.suppress(SQLAlchemyError):
                        await asyncio.to_thread(
                            note_unstored, self.runner.engine, self.source_ids, gap
                        )
                    return None
            await asyncio.sleep(backoff.next_delay())

    def _store(self, batch: StreamBatch) -> StoredBatch:
        if self.hydrate is not None and batch.posts:
            batch.posts = self.hydrate(batch.posts)
        return store_batch(
            engine=self.runner.engine,
            settings=self.runner.settings,
            platform=self.platform,
            source_ids=self.source_ids,
            batch=batch,
            cursor_column=self.cursor_column,
            later=self.later,
        )


class StreamRunner:
    """Every stream the configuration allows, started by the leader, stopped cleanly."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        platforms: Sequence[ConfiguredPlatform],
        catch_up: CatchUp,
        watch: Watch,
        tuning: StreamTuning | None = None,
    ) -> None:
        self.engine, self.settings = engine, settings
        #: What the running campaigns watch (the leader restarts the runner when it changes).
        self.watch = watch
        self.platforms = list(platforms)
        self.catch_up = catch_up
        self.tuning = tuning or StreamTuning()
        self.http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._helpers: set[asyncio.Task[None]] = set()
        self._to_stage: asyncio.Queue[list[int]] = asyncio.Queue()
        self._source_ids: list[int] = []
        #: Frames skipped per stream, with the last reason: for logs and tests.
        self.skipped: dict[str, int] = {}
        self._hydrate_after = 0.0
        self._mode_lock = threading.Lock()
        self._stopping = False

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def start(self) -> None:
        """Start every stream; call from inside the event loop."""
        self.http = httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, trust_env=False)
        self._spawn(self._stage_loop(), helper=True)
        interval = self.settings.poll_interval_seconds
        for configured in self.platforms:
            adapter = configured.adapter
            hashtags = self.watch.tags_for(configured.name)
            if not hashtags:
                continue
            if isinstance(adapter, MastodonAdapter):
                for target in adapter.targets(hashtags):
                    self._spawn(self._mastodon(adapter, target, interval))
            elif isinstance(adapter, BlueskyAdapter):
                self._spawn(self._bluesky(adapter, adapter.targets(hashtags)))

    def _spawn(self, work: Awaitable[None], *, helper: bool = False) -> None:
        task = asyncio.ensure_future(work)
        (self._helpers if helper else self._tasks).add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._helpers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a stream stopped on an error", exc_info=task.exception())

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, commit what was read (within ``timeout``), say so on every source."""
        self._stopping = True  # no stream may say what it does from here on (see _say)
        pending = set(self._tasks)
        deadline = asyncio.get_running_loop().time() + timeout + 5
        # A stream finishing its last commit may ignore one cancellation; never two for long.
        while pending and asyncio.get_running_loop().time() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in list(self._helpers):
            task.cancel()
        if self._helpers:
            await asyncio.wait(list(self._helpers), timeout=1)
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        await asyncio.to_thread(self._say_stopped)

    async def _say(
        self,
        ids: list[int],
        mode: SourceMode,
        note: str,
        *,
        position_at: datetime | None = None,
    ) -> None:
        """Record a stream's mode, unless the runner is stopping.

        A cancelled ``to_thread`` call does not stop its thread: a "catching up"
        write begun just before :meth:`stop` could land after the final "polling"
        one and leave a stopped stream looking live. Every write therefore takes
        one lock, and none is made once stopping has begun except the last.
        """

        def write() -> None:
            with self._mode_lock:
                if not self._stopping:
                    set_mode(self.engine, ids, mode, note, position_at=position_at)

        await asyncio.to_thread(write)

    def _say_stopped(self) -> None:
        """The last word on every streamed source: polling now (retried: it must land)."""
        note = "the stream stopped with the scheduler (a restart, or another process leads)"
        with self._mode_lock:  # waits for a write already under way
            self._stopping = True
            for attempt in range(STOP_WRITE_ATTEMPTS):
                try:
                    set_mode(self.engine, self._source_ids, SourceMode.POLLING, note)
                    return
                except SQLAlchemyError as exc:
                    log.warning(
                        "stream stop: could not say polling (attempt %d): %s",
                        attempt + 1,
                        describe_db_error(exc),
                    )
                    time.sleep(0.2 * (attempt + 1))

    def stage(self, post_ids: list[int]) -> None:
        """Fetch new posts' pictures now, so they reach the queue in seconds."""
        if post_ids:
            self._to_stage.put_nowait(post_ids)

    async def _stage_loop(self) -> None:
        while True:
            ids = await self._to_stage.get()
            while not self._to_stage.empty():
                ids += self._to_stage.get_nowait()
            try:
                waiting = await asyncio.to_thread(posts_waiting, self.engine, among=ids)
                for post_id in waiting:
                    await asyncio.to_thread(
                        stage_post, engine=self.engine, settings=self.settings, post_id=post_id
                    )
            except SQLAlchemyError as exc:  # the staging job picks them up later
                log.warning("stream staging: %s", describe_db_error(exc))

    # --- Mastodon ------------------------------------------------------------------

    async def _mastodon(self, adapter: MastodonAdapter, target: Target, interval: int) -> None:
        sources = await asyncio.to_thread(stream_sources, self.engine, adapter.name, [target])
        ids = [source.id for source in sources if source.id is not None]
        token = adapter.config.get("MASTODON_ACCESS_TOKEN", "").strip()
        if not self.settings.streaming or not token:
            why = (
                "STREAMING=false"
                if not self.settings.streaming
                else "no MASTODON_ACCESS_TOKEN (Mastodon's stream needs a user token since 4.2)"
            )
            await self._say(ids, SourceMode.POLLING, f"{why}: polling every {interval} s")
            return
        assert self.http is not None
        stream = MastodonStream(
            instance=target.scope,
            tag=target.hashtags[0],
            token=token,
            http=self.http,
            cursor=sources[0].cursor,
            heartbeat_timeout=self.tuning.heartbeat_timeout,
            max_frame_bytes=self.tuning.max_frame_bytes,
            backoff=self.tuning.backoff(),
        )
        pump = _Pump(
            self, platform=adapter.name, source_ids=ids, cursor_column="cursor", later=later_id
        )
        key = f"mastodon:{target.key}"
        keeper = asyncio.ensure_future(self._keep_position(ids, lambda: stream.last_heard))
        try:
            await self._consume(
                key, stream.events(), pump, ids, lambda: self.catch_up(adapter, target), interval
            )
        except AuthFailed as exc:
            log.warning("stream %s refused: %s", key, exc)
            note = f"{exc}; polling every {interval} s"
            await self._say(ids, SourceMode.POLLING, note)
        finally:
            keeper.cancel()

    async def _keep_position(self, ids: list[int], heard: Callable[[], float | None]) -> None:
        """A quiet stream whose heartbeats arrive is caught up: its lag stays small."""
        while True:
            await asyncio.sleep(self.tuning.health_every)
            last = heard()
            if last is None:
                continue
            at = datetime.now(UTC) - timedelta(seconds=time.monotonic() - last)
            with contextlib.suppress(SQLAlchemyError):
                await asyncio.to_thread(note_position, self.engine, ids, at)

    # --- Bluesky -------------------------------------------------------------------

    async def _bluesky(self, adapter: BlueskyAdapter, targets: list[Target]) -> None:
        interval = self.settings.poll_interval_seconds
        sources = await asyncio.to_thread(stream_sources, self.engine, adapter.name, targets)
        ids = [source.id for source in sources if source.id is not None]
        if not self.settings.streaming:
            note = f"STREAMING=false: polling every {interval} s"
            await self._say(ids, SourceMode.POLLING, note)
            return
        stored = [s.stream_cursor for s in sources if s.stream_cursor and s.stream_cursor.isdigit()]
        # Every source shares the one connection: resume from the one furthest behind.
        cursor = min(stored, key=int) if len(stored) == len(sources) else None
        hashtags = [tag for target in targets for tag in target.hashtags]
        stream = Jetstream(
            urls=self.settings.jetstream_urls,
            hashtags=hashtags,
            cursor=cursor,
            idle_timeout=self.tuning.idle_timeout,
            max_frame_bytes=self.tuning.max_frame_bytes,
            backoff=self.tuning.backoff(),
        )
        pump = _Pump(
            self,
            platform=adapter.name,
            source_ids=ids,
            cursor_column="stream_cursor",
            later=_later_time_us,
            hydrate=lambda posts: self._hydrate(adapter, posts),
        )

        async def search_all() -> None:
            for target in targets:
                await self.catch_up(adapter, target)

        await self._consume("bluesky:jetstream", stream.events(), pump, ids, search_all, interval)

    def _hydrate(self, adapter: BlueskyAdapter, posts: list[FetchedPost]) -> list[FetchedPost]:
        """Jetstream gives the record, not the author's handle or counts: ask getPosts for
        the full views. A post not indexed yet, or a failure, keeps the record's version."""
        if time.monotonic() < self._hydrate_after:
            return posts
        try:
            found = {
                post.external_id: post
                for post in adapter.refresh([p.external_id for p in posts]).posts
            }
        except AdapterError as exc:
            log.warning("jetstream: posts stored without their full views: %s", exc)
            self._hydrate_after = time.monotonic() + HYDRATE_RETRY.total_seconds()
            return posts
        return [found.get(post.external_id, post) for post in posts]

    # --- shared --------------------------------------------------------------------

    async def _consume(
        self,
        key: str,
        events: AsyncGenerator[StreamEvent, None],
        pump: _Pump,
        ids: list[int],
        catch_up: Callable[[], Awaitable[None]],
        interval: int,
    ) -> None:
        """Feed the pump; on every (re)connect or gap, catch up and then say "streaming"."""
        pumping = asyncio.ensure_future(pump.run())
        self._source_ids += ids  # streamed: said to have stopped when the runner stops
        generation = 0
        catching: asyncio.Task[None] | None = None

        async def catch_up_then_stream(number: int, url: str) -> None:
            note = f"connected to {url}; catching up on what the stream missed"
            await self._say(ids, SourceMode.CATCHING_UP, note)
            await catch_up()
            if number == generation:  # not cancelled, and no newer (re)connect meanwhile
                await self._say(
                    ids,
                    SourceMode.STREAMING,
                    f"live from {url}",
                    position_at=datetime.now(UTC),
                )

        try:
            async for event in events:
                if isinstance(event, Posted | Deleted | Position):
                    await pump.queue.put(event)
                elif isinstance(event, Connected | Gap):
                    generation += 1
                    url = event.url if isinstance(event, Connected) else "the stream"
                    if isinstance(event, Gap):
                        log.warning("stream %s: %s; searching the gap", key, event.reason)
                    needs = (
                        isinstance(event, Gap) or key.startswith("mastodon:") or not event.cursor
                    )
                    if needs:
                        catching = asyncio.ensure_future(catch_up_then_stream(generation, url))
                    else:  # a replay from the cursor covers the drop
                        note = f"live from {url}, replaying from the stored position"
                        await self._say(ids, SourceMode.STREAMING, note)
                elif isinstance(event, Disconnected):
                    generation += 1
                    log.warning("stream %s dropped: %s", key, event.reason)
                    note = (
                        f"stream dropped ({event.reason}); reconnecting in {event.retry_in:.0f} s,"
                        f" polling every {interval} s meanwhile"
                    )
                    await self._say(ids, SourceMode.POLLING, note)
                elif isinstance(event, Skipped):
                    count = self.skipped[key] = self.skipped.get(key, 0) + 1
                    if count == 1 or count % 1000 == 0:
                        log.warning("stream %s: skipped %d frame(s): %s", key, count, event.reason)
        finally:
            # Commit what was read before stopping (bounded: a dead database must not hang us).
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(pump.queue.join(), timeout=5)
            pumping.cancel()
            with contextlib.suppress(Exception):
                await events.aclose()  # ends the connection now, not at garbage collection
            if catching is not None:
                catching.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await catching
