"""Helpers for the live tests: read a server-sent event stream in a thread, and change the
public set the way another process would (its own engine, the real decision path)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.config import Settings
from monitor.db import create_db_engine, session_scope
from monitor.models import Post, PostStatus
from monitor.services.ingest import record_posts
from monitor.services.moderation import decide
from tests.factories import make_post

#: How long a test waits for an event it expects (a bound, not a pause).
EVENT_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Event:
    id: str | None
    kind: str
    data: dict[str, Any]


class EventReader:
    """The events of one stream, in order, as they arrive."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.raw: list[str] = []
        self._client = httpx.Client(timeout=httpx.Timeout(30.0, read=None))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self._open = threading.Event()

    def start(self) -> EventReader:
        self._thread.start()
        if not self._open.wait(EVENT_TIMEOUT_SECONDS):
            raise AssertionError(f"the stream {self.url} did not open")
        return self

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self.url) as response:
                self.status, self.headers = response.status_code, response.headers
                self._open.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    self.raw.append(line)
                    if line == "":
                        if "event" in fields:
                            data = json.loads(fields.get("data", "{}"))
                            self.events.put(Event(fields.get("id"), fields["event"], data))
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        fields[name] = value
        except httpx.HTTPError:
            pass
        finally:
            self._open.set()
            self.events.put(None)

    def next(self, kind: str | None = None) -> Event:
        """The next event (of ``kind``, skipping others); fails if the stream ends first."""
        while True:
            try:
                event = self.events.get(timeout=EVENT_TIMEOUT_SECONDS)
            except queue.Empty:
                raise AssertionError(f"no {kind or 'event'} within the timeout") from None
            if event is None:
                raise AssertionError(f"the stream ended before a {kind or 'event'}")
            if kind is None or event.kind == kind:
                return event

    def ended(self) -> bool:
        """Whether the server closed the stream (waits for it, within the timeout)."""
        self._thread.join(EVENT_TIMEOUT_SECONDS)
        return not self._thread.is_alive()

    def close(self) -> None:
        self._client.close()


@contextmanager
def reading(url: str) -> Iterator[EventReader]:
    reader = EventReader(url).start()
    try:
        yield reader
    finally:
        reader.close()


def pending_post(engine: Engine, **overrides: Any) -> int:
    """A post waiting in the queue, without media unless given (approval then needs nothing
    else; with media, stage it first)."""
    fields = {"media": (), **overrides}
    with session_scope(engine) as session:
        return record_posts(session=session, posts=[make_post(**fields)]).new_ids[0]


@contextmanager
def other_process(engine: Engine) -> Iterator[Engine]:
    """An engine of its own on the same database, as a replica or the CLI has."""
    other = create_db_engine(engine.url.render_as_string(hide_password=False))
    try:
        yield other
    finally:
        other.dispose()


def approve(engine: Engine, settings: Settings, post_id: int, actor: str = "mod") -> int:
    """Approve through the service the web queue and the CLI use; returns the new version."""
    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        decide(
            session=session,
            post=post,
            action="approve",
            actor=actor,
            settings=settings,
            expected_version=post.version,
        )
        return post.version


def set_status(engine: Engine, post_id: int, **values: Any) -> None:
    table = Post.__table__
    with session_scope(engine) as session:
        session.execute(sa.update(table).where(table.c.id == post_id).values(**values))


def ref_of(engine: Engine, post_id: int) -> str:
    with Session(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        return f"{post.platform}:{post.external_id}"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until true (a bound on the wait, never a fixed pause)."""
    import time

    deadline = time.monotonic() + EVENT_TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


__all__ = ["PostStatus"]
