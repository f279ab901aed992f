"""Mastodon's streaming API on a :class:`FakeMastodon`, with faults to order.

``GET /api/v2/instance`` names the streaming host (``configuration.urls.streaming``,
here the same server over ``ws://``), and ``GET /api/v1/streaming/hashtag?tag=NAME``
answers server-sent events as documented: ``update``/``status.update`` with a Status,
``delete`` with an id, and ``:thump`` heartbeats. It needs ``Authorization: Bearer``
with :data:`TOKEN`.

Faults: :meth:`drop_all` (every open stream ends now), ``drop_after`` (each
connection ends after that many events), :meth:`stall` (open, silent, no
heartbeats), :meth:`send_raw` (malformed or oversized frames), and
``post(..., stream=False)`` (a status the stream never delivers: only the REST
catch-up can find it).
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FakeRequest, Reply

TOKEN = "user-token-for-streaming"


class FakeMastodonStream:
    """Streams what happens on ``mastodon`` to every connected client of its hashtag."""

    def __init__(self, mastodon: FakeMastodon, *, heartbeat_every: float = 0.2) -> None:
        self.mastodon = mastodon
        self.heartbeat_every = heartbeat_every
        self.drop_after: int | None = None
        self.connections = 0
        self._subscribers: list[tuple[str, queue.Queue[bytes | None]]] = []
        self._lock = threading.Lock()
        self._stalled = threading.Event()
        #: Set once a client connected: tests wait on it (with a deadline), never sleep.
        self.connected = threading.Condition()
        server = mastodon.server
        server.route("GET", r"/api/v2/instance", self._instance)
        server.route("GET", r"/api/v1/streaming/hashtag", self._hashtag)

    # --- what happens at source ------------------------------------------------------

    def post(
        self, text: str = "Streaming hands #CEADAY21", *, stream: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        status = self.mastodon.add(text, **kwargs)
        if stream:
            self._broadcast(status, "update", json.dumps(status))
        return status

    def edit(self, status_id: str, text: str) -> dict[str, Any]:
        status = self.mastodon.edit(status_id, text)
        self._broadcast(status, "status.update", json.dumps(status))
        return status

    def delete(self, status_id: str) -> None:
        status = self.mastodon.statuses[status_id]
        self.mastodon.delete(status_id)
        self._broadcast(status, "delete", status_id)

    def send_event(self, tag: str, event: str, data: str) -> None:
        """Any event to the tag's streams (an edit or delete of a status never posted)."""
        self._send(tag, f"event: {event}\ndata: {data}\n\n".encode())

    def send_raw(self, tag: str, raw: bytes) -> None:
        """Bytes as they are: a malformed or oversized frame."""
        self._send(tag, raw)

    # --- faults ------------------------------------------------------------------------

    def drop_all(self) -> None:
        with self._lock:
            for _, inbox in self._subscribers:
                inbox.put(None)

    def stall(self) -> None:
        """Every stream stays open and says nothing, heartbeats included."""
        self._stalled.set()

    def unstall(self) -> None:
        self._stalled.clear()

    def wait_connections(self, count: int, timeout: float = 10.0) -> bool:
        with self.connected:
            return self.connected.wait_for(lambda: self.connections >= count, timeout)

    # --- HTTP ----------------------------------------------------------------------------

    def _broadcast(self, status: dict[str, Any], event: str, data: str) -> None:
        for tag in status.get("tags") or []:
            self.send_event(tag["name"], event, data)

    def _send(self, tag: str, frame: bytes) -> None:
        with self._lock:
            for wanted, inbox in self._subscribers:
                if wanted == tag.lower():
                    inbox.put(frame)

    def _instance(self, request: FakeRequest) -> Reply:
        streaming = self.mastodon.url.replace("http://", "ws://")
        return Reply.json(
            {
                "domain": self.mastodon.domain,
                "version": "4.3.0",
                "configuration": {"urls": {"streaming": streaming}},
            }
        )

    def _hashtag(self, request: FakeRequest) -> Reply:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply.json({"error": "Error: Missing access token"}, 401)
        tag = (request.arg("tag") or "").lower()
        inbox: queue.Queue[bytes | None] = queue.Queue()
        # Subscribed before the answer's headers go out: what is posted once the client
        # sees the stream open is delivered (the client catches up on anything before).
        with self._lock:
            self._subscribers.append((tag, inbox))

        def stream(write: Any) -> None:
            with self.connected:
                self.connections += 1
                self.connected.notify_all()
            sent = 0
            try:
                write(b":)\n")
                while True:
                    try:
                        frame = inbox.get(timeout=self.heartbeat_every)
                    except queue.Empty:
                        if not self._stalled.is_set():
                            write(b":thump\n")
                        continue
                    if frame is None:
                        return
                    if self._stalled.is_set():
                        continue
                    write(frame)
                    sent += 1
                    if self.drop_after is not None and sent >= self.drop_after:
                        return
            finally:
                with self._lock:
                    self._subscribers.remove((tag, inbox))

        return Reply(200, headers={"Content-Type": "text/event-stream"}, stream=stream)
