"""A Jetstream instance on 127.0.0.1 (a real WebSocket server), fed from a FakeBluesky.

``/subscribe?wantedCollections=...&cursor=TIME_US`` replays the kept events from the
cursor, then goes live, as Jetstream does; a cursor older than what is kept replays
from the oldest kept event (the client must notice the jump). Posts published here
are also put on the :class:`FakeBluesky`, so ``getPosts`` and search find them.

Faults: :meth:`drop_all` (close every connection), :meth:`forget_before` (the
history no longer reaches back: a stored cursor becomes too old), :meth:`stall`
(open, silent), :meth:`send_raw` (malformed or oversized frames), ``noise`` (events
of other people's posts, as the real network sends hundreds a second) and
``post(..., stream=False)`` (a post the stream never sends: only search finds it).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve

from tests.fakes.bluesky import FakeBluesky


class FakeJetstream:
    """Start with :meth:`start`; ``url`` is the subscribe endpoint."""

    def __init__(self, bluesky: FakeBluesky | None = None) -> None:
        self.bluesky = bluesky
        self.history: list[tuple[int, bytes]] = []
        self.connections = 0
        #: The ``cursor`` each connection asked for (None: live).
        self.cursors: list[int | None] = []
        self._clients: set[tuple[ServerConnection, asyncio.Queue[bytes | None]]] = set()
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self._stalled = False
        self._last_us = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/subscribe"

    def start(self) -> FakeJetstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self.drop_all()
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)

    # --- what happens on the network ----------------------------------------------------

    def now_us(self) -> int:
        with self._lock:
            self._last_us = max(self._last_us + 1, time.time_ns() // 1000)
            return self._last_us

    def post(
        self, text: str = "Jetstream hands #CEADAY21", *, stream: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        """A post on the FakeBluesky, and its commit event on the stream."""
        assert self.bluesky is not None
        view = self.bluesky.add(text, **kwargs)
        if stream:
            self.commit(view["uri"], "create", record=view["record"], cid=view["cid"])
        return view

    def delete(self, uri: str) -> None:
        if self.bluesky is not None and uri in self.bluesky.posts:
            self.bluesky.delete(uri)
        self.commit(uri, "delete")

    def commit(
        self,
        uri: str,
        operation: str,
        *,
        record: dict[str, Any] | None = None,
        cid: str | None = None,
        time_us: int | None = None,
    ) -> int:
        """A commit event for ``at://did/app.bsky.feed.post/rkey``; returns its time_us."""
        did, _, rkey = uri.removeprefix("at://").partition("/app.bsky.feed.post/")
        moment = time_us or self.now_us()
        with self._lock:  # time_us only grows on a real instance, whatever a test asks for
            self._last_us = max(self._last_us, moment)
        commit: dict[str, Any] = {
            "rev": f"rev{moment}",
            "operation": operation,
            "collection": "app.bsky.feed.post",
            "rkey": rkey,
        }
        if record is not None:
            commit.update(record={"$type": "app.bsky.feed.post", **record}, cid=cid or "bafy")
        event = {"did": did, "time_us": moment, "kind": "commit", "commit": commit}
        self.send_raw(json.dumps(event, ensure_ascii=False).encode(), time_us=moment)
        return moment

    def noise(self, count: int) -> None:
        """Other people's posts: the bulk of what the network sends."""
        for number in range(count):
            record = {"text": f"Lunch was good {number}", "createdAt": "2026-12-01T12:00:00Z"}
            uri = f"at://did:plc:noise{number:020d}/app.bsky.feed.post/3n{number}"
            self.commit(uri, "create", record=record)

    def send_raw(self, frame: bytes, *, time_us: int | None = None) -> None:
        """A frame as it is (kept for replay when it has a time)."""
        with self._lock:
            if time_us is not None:
                self.history.append((time_us, frame))
            clients = list(self._clients)
        for _, inbox in clients:
            self._loop.call_soon_threadsafe(inbox.put_nowait, frame)

    # --- faults ------------------------------------------------------------------------

    def drop_all(self) -> None:
        with self._lock:
            clients = list(self._clients)
        for _, inbox in clients:
            self._loop.call_soon_threadsafe(inbox.put_nowait, None)

    def forget_before(self, time_us: int) -> None:
        with self._lock:
            self.history = [(t, f) for t, f in self.history if t >= time_us]

    def stall(self) -> None:
        with self._lock:
            self._stalled = True

    def unstall(self) -> None:
        with self._lock:
            self._stalled = False

    def wait_connections(self, count: int, timeout: float = 10.0) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.connections >= count, timeout)

    # --- server --------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = self._loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
            self._port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop

    async def _handler(self, socket: ServerConnection) -> None:
        query = parse_qs(urlsplit(socket.request.path if socket.request else "").query)
        cursor = int(query["cursor"][0]) if query.get("cursor") else None
        inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        with self._condition:
            replay = [f for t, f in self.history if cursor is not None and t >= cursor]
            self._clients.add((socket, inbox))
            self.connections += 1
            self.cursors.append(cursor)
            self._condition.notify_all()
        try:
            for frame in replay:
                await socket.send(frame.decode())
            closed = asyncio.ensure_future(socket.wait_closed())
            while True:
                getter = asyncio.ensure_future(inbox.get())
                await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():  # the client went away
                    getter.cancel()
                    return
                frame = getter.result()
                if frame is None:
                    closed.cancel()
                    return
                with self._lock:
                    stalled = self._stalled
                if not stalled:
                    await socket.send(frame.decode(errors="replace"))
        except Exception:  # noqa: BLE001  a client gone mid-send ends its connection
            return
        finally:
            with self._lock:
                self._clients.discard((socket, inbox))
