"""The live hub: one database reader per process feeding every open wall and screen.

:class:`LiveHub` polls the database (:mod:`monitor.services.live`) a few times a
second, turns what changed into server-sent events, renders each new card once,
and keeps the last few hundred events in a ring shared by all listeners. A
listener is a cursor into that ring and nothing more, so a thousand open walls
cost a thousand cursors, not a thousand queries; one that falls behind the ring
(a stalled reader) is told to ``reset`` (reload its list) instead of being
buffered for.

Event ids are ``<epoch>-<seq>``: after a restart the epoch differs, so a wall
that reconnects with an old id is told to ``reset`` rather than trusting a
sequence that no longer means anything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import anyio.from_thread
import uvicorn
from fastapi import FastAPI, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.db import read_only
from monitor.models import LatencyStage, utcnow
from monitor.services.gallery import GalleryQuery
from monitor.services.latency import Sample, record_latency
from monitor.services.live import (
    LONG_AGO,
    Change,
    PublicPost,
    Snapshot,
    diff,
    diff_posts,
    fingerprint,
    open_takedown_times,
    screen_view,
    snapshot,
)
from monitor.services.looks import Look

log = logging.getLogger(__name__)

#: How often the fingerprint is read: the kill switch blanks a screen within a second.
TICK_SECONDS = 0.5
#: A full snapshot at least this often, whatever the fingerprint says.
RECONCILE_SECONDS = 5.0
#: Events kept for listeners that reconnect or fall behind.
HISTORY = 512
#: A comment line this often keeps proxies from closing an idle stream.
HEARTBEAT_SECONDS = 15.0
#: Listeners one process serves before it answers 503 (each is a small task and a cursor).
MAX_LISTENERS = 10_000
#: Where a card goes: the gallery page, the embed, the event screen.
VARIANTS = ("page", "embed", "screen")
WALL_VARIANTS = ("page", "embed")

#: Renders the cards of the given posts for one variant: ``{post id: html}``.
Renderer = Callable[[Session, Collection[int], str], Mapping[int, str]]


@dataclasses.dataclass(frozen=True, slots=True)
class LiveEvent:
    seq: int
    kind: str
    #: The SSE frame per variant it goes to (absent: not for that variant).
    frames: Mapping[str, bytes]
    platform: str | None = None
    hashtags: frozenset[str] = frozenset()
    #: The campaigns whose walls show an approved post, or are redrawn (a campaign's
    #: pause or resume; empty: every wall).
    campaigns: frozenset[int] = frozenset()

    def frame_for(
        self, variant: str, tag: str | None, platform: str | None, campaign_id: int | None = None
    ) -> bytes | None:
        """The frame a listener gets: an approval only on the walls it belongs on (its
        campaign's, with the wall's filters); a removal everywhere (a wall that never had
        the card drops nothing); a redraw everywhere, or on its campaigns' walls."""
        frame = self.frames.get(variant)
        if frame is not None and self.kind in ("paused", "reset") and self.campaigns:
            # One campaign's redraw (its kill switch): its walls only.
            return frame if campaign_id is None or campaign_id in self.campaigns else None
        if frame is None or self.kind != "approved":
            return frame
        if platform and self.platform != platform:
            return None
        if tag and tag not in self.hashtags:
            return None
        if campaign_id is not None and campaign_id not in self.campaigns:
            return None
        return frame


def sse_frame(event_id: str | None, kind: str, data: Mapping[str, Any]) -> bytes:
    """One server-sent event; JSON keeps the data on one line whatever it contains."""
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


class LiveHub:
    """Follows the public set for one app; see the module docstring."""

    def __init__(self, *, engine: Engine, settings: Settings, render: Renderer) -> None:
        self.engine = engine
        self.settings = settings
        self.render = render
        self.tick_seconds = TICK_SECONDS
        self.reconcile_seconds = RECONCILE_SECONDS
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.events: deque[LiveEvent] = deque(maxlen=HISTORY)
        self.listeners = 0
        #: Looks taken at the database (one per tick, however many listen).
        self.steps = 0
        self.closing = False
        self.wall: Snapshot | None = None
        self.screen: dict[int, PublicPost] = {}
        self._next_due: datetime | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._last_full = 0.0
        self._bell = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Take the first snapshot (the baseline nothing is announced for) and follow."""
        async with self._lock:
            if self._task is not None or self.closing:
                return
            now = utcnow()
            self._fingerprint = await asyncio.to_thread(self._read_fingerprint)
            self.wall = await asyncio.to_thread(self._read_snapshot, None, now)
            self._last_full = time.monotonic()
            self.screen, self._next_due = self._screen_now(now)
            self._task = asyncio.create_task(self._run(), name="live-hub")

    def start_from_thread(self) -> None:
        """:meth:`start` from a sync route (it runs in one of anyio's worker threads)."""
        if self._task is None and not self.closing:
            anyio.from_thread.run(self.start)

    def close_streams(self) -> None:
        """End every open stream now (server shutdown: uvicorn waits for open responses)."""
        self.closing = True
        self._stop.set()
        self._ring()

    async def close(self) -> None:
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def position(self) -> str:
        """The id of the last event: a page rendered now passes it as ``since``."""
        return f"{self.epoch}-{self.seq}"

    def screen_ids(self, campaign_id: int | None = None) -> list[int]:
        """The posts the event screen shows now (of ``campaign_id``'s; None: every one)."""
        return [
            post_id
            for post_id, post in self.screen.items()
            if campaign_id is None or campaign_id in post.campaigns
        ]

    # -- the reader ----------------------------------------------------------------

    def _read_fingerprint(self) -> tuple[Any, ...]:
        with Session(read_only(self.engine)) as session:
            return fingerprint(session)

    def _read_snapshot(self, previous: Snapshot | None, now: datetime) -> Snapshot:
        with Session(read_only(self.engine)) as session:
            return snapshot(
                session,
                previous=previous,
                default_delay_seconds=self.settings.screen_delay_seconds,
                now=now,
            )

    def _screen_now(self, now: datetime) -> tuple[dict[int, PublicPost], datetime | None]:
        assert self.wall is not None
        return screen_view(self.wall.posts, delay=self.wall.screen_delay, now=now)

    async def _run(self) -> None:
        failing = False
        while not self.closing:
            try:
                await self.step()
                if failing:
                    log.info("live gallery: the database answers again")
                failing = False
            except Exception as exc:  # a database outage must not end the hub
                if not failing:
                    log.warning("live gallery: cannot read the database (%s); retrying", exc)
                failing = True
            try:
                await asyncio.wait_for(self._stop.wait(), self.tick_seconds)
            except TimeoutError:
                pass

    async def step(self) -> None:
        """One look at the database; public so tests can drive the hub without a clock."""
        now = utcnow()
        self.steps += 1
        found = await asyncio.to_thread(self._read_fingerprint)
        wall_changes: list[Change] = []
        full = found != self._fingerprint or (
            time.monotonic() - self._last_full >= self.reconcile_seconds
        )
        if full:
            fresh = await asyncio.to_thread(self._read_snapshot, self.wall, now)
            wall_changes = diff(self.wall, fresh)
            self.wall, self._fingerprint, self._last_full = fresh, found, time.monotonic()
        elif self._next_due is None or now < self._next_due:
            return
        redraw = [c for c in wall_changes if c.post is None]
        everywhere = [c for c in redraw if not c.campaigns]
        screen, self._next_due = self._screen_now(now)
        screen_changes = [] if everywhere else diff_posts(self.screen, screen)
        self.screen = screen
        if everywhere:
            kind = "paused" if everywhere[0].kind == "paused" else "reset"
            self._publish(LiveEvent(self.seq + 1, kind, self._frames(kind, VARIANTS, {})))
            return
        for change in redraw:  # one campaign's kill switch: only its walls redraw
            kind = "paused" if change.kind == "paused" else "reset"
            frames = self._frames(kind, VARIANTS, {})
            self._publish(LiveEvent(self.seq + 1, kind, frames, campaigns=change.campaigns))
        resumed = frozenset().union(*(c.campaigns for c in redraw if c.kind == "resumed"))
        await self._announce(wall_changes, screen_changes, now, resumed)

    async def _announce(
        self,
        wall: list[Change],
        screen: list[Change],
        now: datetime,
        resumed: frozenset[int] = frozenset(),
    ) -> None:
        """Publish the step's removals and approvals, and their latency; ``resumed``:
        campaigns back from a pause, whose posts come back without a new approval (no
        latency sample: the wait was the pause, not the service)."""
        approved_wall = [c.post for c in wall if c.kind == "approved" and c.post]
        approved_screen = [c.post for c in screen if c.kind == "approved" and c.post]
        cards = await asyncio.to_thread(
            self._render_cards, [p.id for p in approved_wall], [p.id for p in approved_screen]
        )
        samples: list[Sample] = []
        removed_wall = [c.post for c in wall if c.kind == "removed" and c.post]
        for post in removed_wall:
            self._publish_post("removed", post, WALL_VARIANTS, None)
        for change in screen:
            if change.kind == "removed" and change.post:
                self._publish_post("removed", change.post, ("screen",), None)
        for post in approved_wall:
            html = {v: cards[v][post.id] for v in WALL_VARIANTS if post.id in cards[v]}
            if html:
                self._publish_post("approved", post, WALL_VARIANTS, html)
                if post.since != LONG_AGO and not post.campaigns & resumed:
                    samples.append(_sample(LatencyStage.APPROVAL_TO_GALLERY, post, now, post.since))
        for post in approved_screen:
            if post.id in cards["screen"]:
                self._publish_post(
                    "approved", post, ("screen",), {"screen": cards["screen"][post.id]}
                )
                if post.since != LONG_AGO and not post.campaigns & resumed:
                    samples.append(_sample(LatencyStage.APPROVAL_TO_SCREEN, post, now, post.since))
        if removed_wall or samples:
            await asyncio.to_thread(self._record, removed_wall, samples, now)

    def _render_cards(
        self, wall_ids: list[int], screen_ids: list[int]
    ) -> dict[str, Mapping[int, str]]:
        cards: dict[str, Mapping[int, str]] = {v: {} for v in VARIANTS}
        if not wall_ids and not screen_ids:
            return cards
        with Session(read_only(self.engine)) as session:
            for variant in WALL_VARIANTS:
                cards[variant] = self.render(session, wall_ids, variant) if wall_ids else {}
            cards["screen"] = self.render(session, screen_ids, "screen") if screen_ids else {}
        return cards

    def _record(self, removed: list[PublicPost], samples: list[Sample], now: datetime) -> None:
        """Latency samples of this step (first process to write one wins)."""
        with Session(self.engine) as session:
            held = open_takedown_times(session, [post.id for post in removed])
            for post in removed:
                if post.id in held:
                    samples.append(
                        _sample(LatencyStage.TAKEDOWN_TO_GALLERY, post, now, held[post.id])
                    )
            record_latency(session, samples)
            session.commit()

    # -- publishing ----------------------------------------------------------------

    def _frames(
        self,
        kind: str,
        variants: Collection[str],
        data: Mapping[str, Any],
        html: Mapping[str, str] | None = None,
    ) -> dict[str, bytes]:
        event_id = f"{self.epoch}-{self.seq + 1}"
        frames = {}
        for variant in variants:
            payload = dict(data)
            if html is not None:
                payload["html"] = html[variant]
            frames[variant] = sse_frame(event_id, kind, payload)
        return frames

    def _publish_post(
        self, kind: str, post: PublicPost, variants: Collection[str], html: Mapping[str, str] | None
    ) -> None:
        targets = [v for v in variants if html is None or v in html]
        frames = self._frames(kind, targets, {"id": post.ref}, html)
        self._publish(
            LiveEvent(self.seq + 1, kind, frames, post.platform, post.hashtags, post.campaigns)
        )

    def _publish(self, event: LiveEvent) -> None:
        self.seq = event.seq
        self.events.append(event)
        self._ring()

    def _ring(self) -> None:
        bell, self._bell = self._bell, asyncio.Event()
        bell.set()

    # -- listeners -----------------------------------------------------------------

    def _resume_from(self, since: str | None) -> int | None:
        """The sequence to replay after, or None when ``since`` cannot be resumed from."""
        if since is None:
            return self.seq
        epoch, _, number = since.partition("-")
        if epoch != self.epoch or not number.isdigit() or len(number) > 18:
            return None
        seq = int(number)
        oldest = self.events[0].seq if self.events else self.seq + 1
        if seq > self.seq or seq < oldest - 1:
            return None
        return seq

    async def listen(
        self,
        *,
        variant: str,
        tag: str | None,
        platform: str | None,
        since: str | None,
        campaign_id: int | None = None,
    ) -> AsyncIterator[bytes]:
        """One listener's stream (of ``campaign_id``'s wall; None: the only campaign's):
        replay after ``since``, then follow; ``reset`` when the listener missed events it
        can no longer get."""
        self.listeners += 1
        try:
            cursor = self._resume_from(since)
            # The reconnect delay EventSource would use; our script backs off on its own.
            yield b"retry: 10000\n\n"
            if cursor is None:
                cursor = self.seq  # before the yield: events during it must not be skipped
                yield sse_frame(self.position(), "reset", {})
            while not self.closing:
                bell = self._bell
                oldest = self.events[0].seq if self.events else self.seq + 1
                if cursor < oldest - 1:
                    cursor = self.seq
                    yield sse_frame(self.position(), "reset", {})
                # The ring holds consecutive sequence numbers: what is new is its tail.
                first = self.events[0].seq if self.events else self.seq + 1
                pending = [self.events[i] for i in range(cursor + 1 - first, len(self.events))]
                if pending:
                    cursor = pending[-1].seq
                    frames = [
                        event.frame_for(variant, tag, platform, campaign_id) for event in pending
                    ]
                    # One write per wake-up, however many events it carries.
                    batch = b"".join(frame for frame in frames if frame is not None)
                    if batch:
                        yield batch
                    continue
                try:
                    await asyncio.wait_for(bell.wait(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            self.listeners -= 1


def live_hub(request: Request) -> LiveHub:
    hub: LiveHub = request.app.state.live_hub
    return hub


def live_url(query: GalleryQuery, *, embed: bool, base: str = "") -> str:
    """The events a wall showing ``query`` follows (its filters go along)."""
    params = {"variant": "embed" if embed else "page"}
    if query.hashtag:
        params["tag"] = query.hashtag
    if query.platform:
        params["platform"] = query.platform
    return f"{base}/gallery/events?{urlencode(params)}"


def theme_url(look: Look, base: str = "") -> str | None:
    """The admin's colours, None while they are the defaults (gallery.css has them); the
    version in the URL changes with them, so the file is cached for a year."""
    if look == Look():
        return None
    version = hashlib.sha256(repr(look).encode()).hexdigest()[:12]
    return f"{base}/gallery/theme.css?v={version}"


def _sample(stage: LatencyStage, post: PublicPost, now: datetime, start: datetime) -> Sample:
    return Sample(stage, post.id, post.version, now, (now - start).total_seconds())


class Server(uvicorn.Server):
    """uvicorn's server, which first ends the app's open event streams when it stops:
    uvicorn waits for every open response, and an event stream never ends by itself."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.live_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        hub: LiveHub | None = getattr(self.live_app.state, "live_hub", None)
        if hub is not None:
            hub.close_streams()
        await super().shutdown(sockets)
