"""Mastodon's hashtag stream over server-sent events, reconnecting by itself.

API facts relied on (docs.joinmastodon.org, methods/streaming and methods/instance):

* ``GET /api/v1/streaming/hashtag?tag=NAME`` streams the public statuses carrying
  the hashtag as server-sent events: ``update`` (a Status), ``status.update`` (an
  edited Status) and ``delete`` (the deleted status's id, a string). Lines that
  begin with ``:`` are heartbeats, sent about every 15 s.
* Since Mastodon 4.2 the streaming API needs a user access token, sent as
  ``Authorization: Bearer``; a refused token is HTTP 401.
* The streaming server may run on another host: ``GET /api/v2/instance`` answers
  it as ``configuration.urls.streaming`` (a ``wss://`` URL; the SSE endpoints are
  the same host over https).
* Ids in the stream are the instance's own, as in the tag timeline, so the newest
  one streamed is a ``min_id`` cursor for the REST catch-up after a drop.

A stall (a connection that stays open but sends nothing, heartbeats included) is
ended by the read timeout and reconnected like a drop. Frames over
:data:`MAX_FRAME_BYTES` are dropped unread, never buffered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import httpx_sse

from adapters.base import AuthFailed, UnreadableRecord
from adapters.mastodon import normalise_status, status_id_order
from adapters.streams import (
    MAX_FRAME_BYTES,
    Backoff,
    Connected,
    Deleted,
    Disconnected,
    Posted,
    Skipped,
    StreamEvent,
)
from adapters.text import as_id, normalise_tag

#: Status ids as the adapter accepts them (decimal on Mastodon, base62 on its forks).
_STATUS_ID = re.compile(r"[0-9A-Za-z]{1,64}")
#: Mastodon sends a heartbeat about every 15 s: four missed ones mean the stream stalled.
HEARTBEAT_TIMEOUT = 60.0


def later_id(stored: str | None, candidate: str) -> str:
    """The newer of two status ids of one instance (the cursor never moves back)."""
    if stored is None or status_id_order(candidate) > status_id_order(stored):
        return candidate
    return stored


def streaming_base(instance: str, configured: Any) -> str:
    """The https base of the streaming API from ``configuration.urls.streaming``.

    Only the instance's own host or a subdomain of it is trusted (``streaming.example.social``
    for ``example.social``): the token must not be sent to an arbitrary host. Anything
    else falls back to the instance itself, which serves the streaming API too.
    """
    if not isinstance(configured, str):
        return instance
    try:
        url = httpx.URL(configured)
    except (httpx.InvalidURL, TypeError):
        return instance
    home = httpx.URL(instance)
    if url.scheme not in ("wss", "ws", "https", "http") or not url.host:
        return instance
    scheme = "https" if url.scheme in ("wss", "https") else "http"
    if home.scheme == "https" and scheme != "https":
        return instance  # never step down from TLS
    if url.host != home.host and not _under(url.host, home.host):
        return instance
    port = f":{url.port}" if url.port else ""
    return f"{scheme}://{url.host}{port}"


def _under(host: str, home: str) -> bool:
    """``host`` is a subdomain of ``home`` (``streaming.example.social``). Not a sibling:
    without the public suffix list, ``*.co.uk`` would pass for ``mastodon.co.uk``."""
    try:
        ipaddress.ip_address(home)
        return False  # an address has no subdomains
    except ValueError:
        return host.endswith(f".{home}")


class _CappedLines:
    """The response as ``httpx_sse`` reads it, with lines over the cap dropped unread.

    It also notes when bytes last arrived (heartbeats included), which the parser
    hides: that is how the consumer knows a quiet stream is still live.
    """

    def __init__(self, response: httpx.Response, cap: int, client: MastodonStream) -> None:
        self._response, self._cap, self._client = response, cap, client
        self.headers = response.headers

    async def aiter_text(self) -> AsyncIterator[str]:
        pending: list[str] = []
        size, dropping = 0, False
        async for chunk in self._response.aiter_text():
            self._client.last_heard = time.monotonic()
            out: list[str] = []
            # Only "\n" ends a line here; other breaks stay inside the (kept) text.
            for piece in chunk.splitlines(keepends=True):
                ends = piece.endswith("\n")
                if dropping:
                    if ends:
                        dropping = False
                        out.append("\n")  # ends the dropped line for the parser
                    continue
                pending.append(piece)
                size += len(piece)
                if size > self._cap:
                    self._client.pending.append(
                        Skipped(f"a frame over {self._cap} bytes was dropped")
                    )
                    pending, size, dropping = [], 0, not ends
                    if ends:
                        out.append("\n")
                elif ends:
                    out.extend(pending)
                    pending, size = [], 0
            if out:
                yield "".join(out)
        if pending:
            yield "".join(pending)


class MastodonStream:
    """One instance's stream of one hashtag: an async iterator of :data:`StreamEvent`.

    ``http`` is the caller's ``httpx.AsyncClient`` (tests point it at a local fake);
    ``cursor`` is the newest status id stored, so the events carry the cursor to store.
    """

    def __init__(
        self,
        *,
        instance: str,
        tag: str,
        token: str,
        http: httpx.AsyncClient,
        cursor: str | None = None,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        backoff: Backoff | None = None,
    ) -> None:
        if not token:
            raise AuthFailed("mastodon: streaming needs MASTODON_ACCESS_TOKEN (Mastodon 4.2+)")
        self.instance, self.tag = instance.rstrip("/"), tag.lstrip("#")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.http = http
        self.cursor = cursor
        self.heartbeat_timeout = heartbeat_timeout
        self.max_frame_bytes = max_frame_bytes
        self.backoff = backoff or Backoff()
        #: ``time.monotonic()`` when bytes last arrived; None while not connected.
        self.last_heard: float | None = None
        self.pending: list[StreamEvent] = []
        self._base: str | None = None

    async def _discover(self) -> str:
        """The streaming base from the instance's configuration (once per client)."""
        if self._base is None:
            base = self.instance
            try:
                response = await self.http.get(
                    f"{self.instance}/api/v2/instance", timeout=self.heartbeat_timeout
                )
                if response.status_code == 200 and len(response.content) < MAX_FRAME_BYTES:
                    body = response.json()
                    urls = body.get("configuration", {}).get("urls", {}) if body else {}
                    base = streaming_base(self.instance, urls.get("streaming"))
            except (httpx.HTTPError, ValueError, AttributeError):
                pass  # an old server or a blip: the instance serves streaming itself
            self._base = base
        return self._base

    async def events(self) -> AsyncGenerator[StreamEvent, None]:
        """Stream forever; every (re)connect is announced, every drop says why and how
        long until the next try. Raises :class:`AuthFailed` when the token is refused."""
        while True:
            started = time.monotonic()
            try:
                async for event in self._connection():
                    yield event
                reason = "the server closed the stream"
            except AuthFailed:
                raise
            except httpx.ReadTimeout:
                reason = f"no data or heartbeat for {self.heartbeat_timeout:g} s"
            except (httpx.HTTPError, httpx_sse.SSEError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.last_heard = None
            self.backoff.connected_for(time.monotonic() - started)
            delay = self.backoff.next_delay()
            yield Disconnected(reason, delay)
            await asyncio.sleep(delay)

    async def _connection(self) -> AsyncIterator[StreamEvent]:
        base = await self._discover()
        url = f"{base}/api/v1/streaming/hashtag"
        timeout = httpx.Timeout(self.heartbeat_timeout, connect=min(self.heartbeat_timeout, 20))
        async with httpx_sse.aconnect_sse(
            self.http, "GET", url, params={"tag": self.tag}, headers=self._headers, timeout=timeout
        ) as source:
            status = source.response.status_code
            if status in (401, 403):
                raise AuthFailed(
                    f"mastodon: {httpx.URL(url).host} refused the streaming token"
                    f" (HTTP {status}); check MASTODON_ACCESS_TOKEN (a user token, Mastodon 4.2+)",
                    status=status,
                )
            if status != 200:
                raise httpx.HTTPStatusError(
                    f"HTTP {status}", request=source.response.request, response=source.response
                )
            self.last_heard = time.monotonic()
            yield Connected(url, self.cursor)
            capped = _CappedLines(source.response, self.max_frame_bytes, self)
            async for sse in httpx_sse.EventSource(capped).aiter_sse():  # type: ignore[arg-type]
                while self.pending:
                    yield self.pending.pop(0)
                event = self._read(sse.event, sse.data)
                if event is not None:
                    yield event
            while self.pending:
                yield self.pending.pop(0)

    def _read(self, name: str, data: str) -> StreamEvent | None:
        """One SSE event as a stream event; unknown event names are not ours to read, and
        an event without data is not dispatched (as the SSE standard says)."""
        if not data:
            return None
        if name == "delete":
            status_id = data.strip().strip('"')
            if not _STATUS_ID.fullmatch(status_id):
                return Skipped(f"a delete event without a readable id: {data[:80]!r}")
            return Deleted(f"{self.instance}|{status_id}")
        if name not in ("update", "status.update"):
            return None
        try:
            status = json.loads(data)
        except ValueError:
            return Skipped(f"a {name} event that is not JSON: {data[:80]!r}")
        if not isinstance(status, dict):
            return Skipped(f"a {name} event that is not a status object")
        try:
            post = normalise_status(self.instance, status)
        except UnreadableRecord as exc:
            return Skipped(f"a {name} event with an unreadable status: {exc}")
        if normalise_tag(self.tag) not in post.hashtags:
            if name == "status.update":
                # The tag was edited out: what the post says now must still reach a
                # moderator (it may be approved and public), but it is no new sighting.
                return Posted(post, None, datetime.now(UTC), known_only=True)
            return Skipped(f"a {name} event for a status without #{self.tag}")
        cursor = None
        if name == "update" and (new_id := as_id(status.get("id"))):
            # Edits are of older statuses: only new ones move the catch-up cursor.
            self.cursor = cursor = later_id(self.cursor, new_id)
        return Posted(post, cursor, datetime.now(UTC))
