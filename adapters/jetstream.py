"""Bluesky's Jetstream over WebSocket: every new post on the network, filtered here.

Protocol facts relied on (github.com/bluesky-social/jetstream, README):

* ``GET /subscribe?wantedCollections=app.bsky.feed.post[&cursor=TIME_US]`` upgrades to
  a WebSocket of JSON text frames, one event each: ``{"did", "time_us", "kind"}`` and,
  for ``kind: "commit"``, ``commit: {"operation": "create"|"update"|"delete",
  "collection", "rkey", "record", "cid"}``. ``identity`` and ``account`` events come
  whatever the collections asked for; they carry nothing we store.
* ``time_us`` (Unix microseconds) is the cursor: given back, playback resumes there;
  absent or in the future, the stream is live. The README advises rewinding a few
  seconds on reconnect for gapless playback, duplicates being the client's to drop
  (ours are: the store upserts).
* An instance keeps a limited history: asked for an older cursor it starts from its
  oldest event instead, so a first event far past the cursor means a gap.

Only posts carrying a campaign hashtag are kept, by the rules the search uses (tag
facets, the record's ``tags`` and ``#tags`` in the text, matched after NFKC and
casefold, see :func:`adapters.bluesky.normalise_post`). The network sends hundreds
of events a second, so a cheap test on the raw frame comes first: a post whose
bytes do not contain an (ASCII) campaign tag, case aside, cannot carry it, and is
never parsed. Deletes are passed on by their at-uri (the consumer knows which posts
it holds).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import connect

from adapters.base import UnreadableRecord
from adapters.bluesky import normalise_post
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
from adapters.text import normalise_tag

#: The public instances run by Bluesky, in order of preference (``JETSTREAM_URLS``).
DEFAULT_URLS = (
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
)
COLLECTION = "app.bsky.feed.post"
#: How far before the stored cursor a reconnect resumes (duplicates are upserted away).
REWIND_US = 5_000_000
#: A first event this far past the cursor asked for: the instance's history did not
#: reach back that far, and the posts between are missing from the stream.
MAX_REPLAY_JUMP_US = 120_000_000
#: The network never goes quiet this long; a connection that does has stalled.
IDLE_TIMEOUT = 30.0
#: Unmatched events move the stored cursor at most this often (seconds).
POSITION_EVERY = 1.0

_TIME_US = re.compile(rb'"time_us"\s*:\s*(\d{1,19})')
_DELETE = re.compile(rb'"operation"\s*:\s*"delete"')
_DID = re.compile(r"did:[a-z]+:[A-Za-z0-9._:%-]{1,240}")
_RKEY = re.compile(r"[A-Za-z0-9._:~-]{1,100}")
_CID = re.compile(r"[A-Za-z0-9]{1,200}")


def subscribe_url(base: str) -> str:
    """``base`` as a subscribe endpoint: a bare host gets ``/subscribe``."""
    base = base.strip().rstrip("/")
    if not base.startswith(("ws://", "wss://")):
        raise ValueError(f"{base!r} is not a ws:// or wss:// URL")
    host_and_path = base.split("://", 1)[1]
    return base if "/" in host_and_path else f"{base}/subscribe"


def _time(time_us: int) -> datetime:
    return datetime.fromtimestamp(time_us / 1_000_000, UTC)


def _blob_cid(blob: Any) -> str | None:
    """The CID of a record's blob (``{"ref": {"$link": CID}}``, or the legacy ``cid``)."""
    if not isinstance(blob, dict):
        return None
    ref = blob.get("ref")
    cid = ref.get("$link") if isinstance(ref, dict) else blob.get("cid")
    return cid if isinstance(cid, str) and _CID.fullmatch(cid) else None


def _embed_view(did: str, embed: Any) -> dict[str, Any] | None:
    """A record's embed as the AppView would show it: blobs become CDN URLs."""
    if not isinstance(embed, dict):
        return None
    kind = embed.get("$type")
    if kind == "app.bsky.embed.recordWithMedia":
        media = _embed_view(did, embed.get("media"))
        return {"$type": f"{kind}#view", "media": media} if media else None
    if kind == "app.bsky.embed.images":
        images = []
        for image in embed.get("images") or []:
            cid = _blob_cid(image.get("image")) if isinstance(image, dict) else None
            if cid is None:
                continue
            images.append(
                {
                    "fullsize": f"https://cdn.bsky.app/img/feed_fullsize/plain/{did}/{cid}@jpeg",
                    "thumb": f"https://cdn.bsky.app/img/feed_thumbnail/plain/{did}/{cid}@jpeg",
                    "alt": image.get("alt"),
                    "aspectRatio": image.get("aspectRatio"),
                }
            )
        return {"$type": f"{kind}#view", "images": images}
    if kind == "app.bsky.embed.video":
        cid = _blob_cid(embed.get("video"))
        if cid is None:
            return None
        watch = f"https://video.bsky.app/watch/{did}/{cid}"
        return {
            "$type": f"{kind}#view",
            "cid": cid,
            "playlist": f"{watch}/playlist.m3u8",
            "thumbnail": f"{watch}/thumbnail.jpg",
            "alt": embed.get("alt"),
            "aspectRatio": embed.get("aspectRatio"),
        }
    return None


def record_view(did: str, rkey: str, record: dict[str, Any], time_us: int) -> dict[str, Any]:
    """A Jetstream post record shaped as a ``postView``, so one normaliser reads both.

    The record has no handle, display name or counts: the author is shown by DID
    until the post is looked up (the consumer asks ``getPosts`` for the full view).
    """
    view: dict[str, Any] = {
        "uri": f"at://{did}/{COLLECTION}/{rkey}",
        "author": {"did": did, "handle": ""},
        "record": record,
        "indexedAt": _time(time_us).isoformat().replace("+00:00", "Z"),
    }
    if (embed := _embed_view(did, record.get("embed"))) is not None:
        view["embed"] = embed
    return view


class JetstreamFilter:
    """Reads raw Jetstream frames and keeps what concerns the campaign's hashtags."""

    def __init__(self, hashtags: Sequence[str]) -> None:
        self.wanted = frozenset(normalise_tag(tag) for tag in hashtags)
        # bytes.lower() folds ASCII only: a tag with other letters cannot be pre-filtered.
        ascii_only = all(tag.isascii() for tag in self.wanted)
        self.needles = tuple(tag.encode() for tag in self.wanted) if ascii_only else None

    def time_us(self, raw: bytes) -> int | None:
        """The event's ``time_us`` without parsing the frame."""
        match = _TIME_US.search(raw, 0, 400) or _TIME_US.search(raw)
        return int(match.group(1)) if match else None

    def read(self, raw: bytes) -> Posted | Deleted | Skipped | None:
        """A post carrying a wanted tag, a delete, an unreadable frame, or None (not ours)."""
        is_delete = _DELETE.search(raw) is not None
        if not is_delete and self.needles is not None:
            lowered = raw.lower()
            if not any(needle in lowered for needle in self.needles):
                return None
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Skipped(f"a frame that is not JSON: {raw[:80]!r}")
        commit = _post_commit(event)
        if commit is None or isinstance(commit, Skipped):
            return commit
        did, rkey, time_us, body = commit
        cursor, at = str(time_us), _time(time_us)
        operation, record = body.get("operation"), body.get("record")
        if operation == "delete":
            return Deleted(f"at://{did}/{COLLECTION}/{rkey}", cursor, at)
        if operation not in ("create", "update") or not isinstance(record, dict):
            return Skipped(f"a post commit with operation {str(operation)[:20]!r} and no record")
        try:
            post = normalise_post(record_view(did, rkey, record, time_us))
        except UnreadableRecord as exc:
            return Skipped(f"post at://{did}/{COLLECTION}/{rkey}: {exc}")
        if not self.wanted.intersection(post.hashtags):
            return None
        return Posted(post, cursor, at)


def _post_commit(event: Any) -> tuple[str, str, int, dict[str, Any]] | Skipped | None:
    """(did, rkey, time_us, commit) of a post commit; None for other events."""
    if not isinstance(event, dict) or event.get("kind") != "commit":
        return None
    commit, did, time_us = event.get("commit"), event.get("did"), event.get("time_us")
    if not isinstance(commit, dict) or commit.get("collection") != COLLECTION:
        return None
    rkey = commit.get("rkey")
    readable = (
        isinstance(did, str)
        and _DID.fullmatch(did) is not None
        and isinstance(rkey, str)
        and _RKEY.fullmatch(rkey) is not None
        and isinstance(time_us, int)
        and time_us > 0
    )
    if not readable:
        return Skipped("a commit without a readable did, rkey or time_us")
    assert isinstance(did, str) and isinstance(rkey, str) and isinstance(time_us, int)
    return did, rkey, time_us, commit


class Jetstream:
    """The post stream from the first instance of ``urls`` that answers, failing over.

    ``cursor`` is the stored ``time_us`` (a string), or None to start live. Events carry
    the cursor to store with them; :class:`Position` moves it on when nothing matched.
    """

    def __init__(
        self,
        *,
        urls: Sequence[str],
        hashtags: Sequence[str],
        cursor: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        if not urls:
            raise ValueError("JETSTREAM_URLS: give at least one instance")
        self.urls = [subscribe_url(url) for url in urls]
        self.filter = JetstreamFilter(hashtags)
        self.cursor = int(cursor) if cursor and cursor.isdigit() else None
        self.idle_timeout = idle_timeout
        self.max_frame_bytes = max_frame_bytes
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self._index = 0
        #: Where the live connection is (for people: the Sources page names it).
        self.url: str | None = None

    def _subscribe(self) -> tuple[str, int | None]:
        asked = self.cursor - REWIND_US if self.cursor else None
        url = f"{self.urls[self._index]}?wantedCollections={COLLECTION}"
        return (f"{url}&cursor={asked}" if asked else url), asked

    async def events(self) -> AsyncGenerator[StreamEvent, None]:
        """Stream forever, from the cursor (rewound), reconnecting and failing over."""
        while True:
            started = time.monotonic()
            connected = False
            reason = "the server closed the stream"
            try:
                async for event in self._connection():
                    connected = connected or isinstance(event, Connected)
                    yield event
            except websockets.exceptions.ConnectionClosed as exc:
                if exc.sent is not None and exc.sent.code == 1009:
                    # The same frame would come again on replay: go live, search the gap.
                    since = _time(self.cursor) if self.cursor else None
                    yield Skipped(f"a frame over {self.max_frame_bytes} bytes was refused")
                    yield Gap(since, datetime.now(UTC), "an oversized frame could not be read")
                    self.cursor = None
                reason = f"connection closed ({exc})"
            except TimeoutError:
                reason = f"no event for {self.idle_timeout:g} s"
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.url = None
            self.backoff.connected_for(time.monotonic() - started)
            failed = self.urls[self._index]
            if not connected:
                # Never got through (DNS, refused, handshake): try the next instance.
                self._index = (self._index + 1) % len(self.urls)
            delay = self.backoff.next_delay()
            yield Disconnected(f"{failed}: {reason}", delay)
            await asyncio.sleep(delay)

    async def _connection(self) -> AsyncIterator[StreamEvent]:
        url, asked = self._subscribe()
        async with connect(
            url,
            max_size=self.max_frame_bytes,
            open_timeout=self.open_timeout,
            proxy=None,
            compression=None,
            close_timeout=2,
        ) as socket:
            self.url = self.urls[self._index]
            yield Connected(self.url, str(asked) if asked else None)
            checked = asked is None
            last_position = 0.0  # the first unmatched event moves the position at once
            while True:
                async with asyncio.timeout(self.idle_timeout):
                    raw = await socket.recv(decode=False)
                if isinstance(raw, str):  # not produced with decode=False; kept for types
                    raw = raw.encode()
                time_us = self.filter.time_us(raw)
                if not checked and time_us is not None and asked is not None:
                    checked = True
                    if time_us - asked > MAX_REPLAY_JUMP_US:
                        yield Gap(
                            _time(asked),
                            _time(time_us),
                            "the Jetstream cursor was older than the instance's history",
                        )
                event = self.filter.read(raw)
                if time_us is not None and (self.cursor is None or time_us > self.cursor):
                    self.cursor = time_us
                if event is not None:
                    yield event
                    last_position = time.monotonic()
                elif time_us is not None and time.monotonic() - last_position >= POSITION_EVERY:
                    last_position = time.monotonic()
                    yield Position(str(time_us), _time(time_us))
