"""Streaming: how fast Jetstream events are filtered, and how soon a streamed post is queued.

``jetstream_filter``: Jetstream-shaped events (a campaign-day mix: other people's
posts, deletes, likes of nothing to us, 1 % carrying a campaign tag) read by our
filter on one core, against ``json.loads`` of every one of the same frames. The
target is at least 10,000 events/s (the network's historic peak is about 1,500).

``stream_to_queue``: p95 seconds from a post appearing on a local fake Mastodon
stream to it being visible in the queue (stored and its picture staged; image
analysis off), through the real consumer and a SQLite database; the baseline is
the same post's delivery to a bare SSE reader (transport alone). Target < 2 s;
polling today takes up to ``POLL_INTERVAL_SECONDS`` (300 s).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
from typing import Any

import httpx
import httpx_sse
import sqlalchemy as sa

from adapters.jetstream import JetstreamFilter
from benchmarks._harness import ScratchDatabase, emit, p95

EVENTS = 60_000
POSTS = 120
TAGS = ["CEADAY21", "HelpingHands"]


def jetstream_frames(count: int, seed: int = 7) -> list[bytes]:
    """Frames shaped like Jetstream's, with text, facets, embeds and deletes."""
    rng = random.Random(seed)
    words = "the and a we our hands message today school safe call help park bus".split()
    frames = []
    for number in range(count):
        did = f"did:plc:{number:024d}"
        time_us = 1_733_000_000_000_000 + number * 700
        roll = rng.random()
        if roll < 0.1:
            commit: dict[str, Any] = {
                "rev": f"3l{number}",
                "operation": "delete",
                "collection": "app.bsky.feed.post",
                "rkey": f"3k{number}",
            }
        else:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
            facets = []
            if roll > 0.99:
                tag = rng.choice(TAGS)
                start = len(text.encode()) + 1
                text += f" #{tag}"
                facets.append(
                    {
                        "index": {"byteStart": start, "byteEnd": start + len(tag) + 1},
                        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
                    }
                )
            record: dict[str, Any] = {
                "$type": "app.bsky.feed.post",
                "text": text,
                "createdAt": "2026-12-01T09:00:00.000Z",
                "langs": ["en"],
                "facets": facets,
            }
            if rng.random() < 0.2:
                record["embed"] = {
                    "$type": "app.bsky.embed.images",
                    "images": [
                        {
                            "alt": "",
                            "image": {"$type": "blob", "ref": {"$link": f"bafkrei{number}"}},
                            "aspectRatio": {"width": 1000, "height": 750},
                        }
                    ],
                }
            commit = {
                "rev": f"3l{number}",
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": f"3k{number}",
                "record": record,
                "cid": f"bafyrei{number}",
            }
        event = {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}
        frames.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())
    return frames


def jetstream_filter() -> None:
    frames = jetstream_frames(EVENTS)
    reader = JetstreamFilter(TAGS)

    def ours() -> int:
        kept = 0
        for frame in frames:
            reader.time_us(frame)
            if reader.read(frame) is not None:
                kept += 1
        return kept

    def parse_all() -> None:
        for frame in frames:
            json.loads(frame)

    ours()  # warm up (regexes, normaliser imports)
    best = min(_timed(ours) for _ in range(3))
    floor = min(_timed(parse_all) for _ in range(3))
    emit("jetstream_filter", "events_per_s", EVENTS / best, EVENTS / floor, EVENTS, target=10_000)


def _timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 120, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def stream_to_queue() -> None:
    from monitor.config import load_settings
    from monitor.models import MediaItem, Post
    from tests.fakes.mastodon import FakeMastodon
    from tests.fakes.mastodon_stream import TOKEN, FakeMastodonStream
    from tests.fakes.server import FakeServer, Reply
    from tests.streaming import RunningStreams, wait_for

    server = FakeServer().start()
    picture = _jpeg()
    jpeg = Reply(200, picture, {"Content-Type": "image/jpeg"})
    server.route("GET", r"/media/.+\.jpg", lambda request: jpeg)
    media_dir = tempfile.TemporaryDirectory(prefix="hm-bench-media-")
    try:
        instance = FakeMastodon(server)
        live = FakeMastodonStream(instance)
        os.environ.update(
            PLATFORMS="mastodon",
            MASTODON_INSTANCES=server.url,
            MASTODON_ACCESS_TOKEN=TOKEN,
            HASHTAGS="CEADAY21",
            OUTBOUND_ALLOW_PRIVATE="true",
            MEDIA_DIR=media_dir.name,
        )
        settings = load_settings()
        baseline = _bare_delivery(live, server.url)
        with ScratchDatabase() as engine, RunningStreams(engine, settings):
            wait_for(lambda: live.connections >= 2, what="the stream")
            posts = Post.__table__
            waits = []
            for number in range(POSTS):
                media = []
                if number % 4 == 0:  # one post in four has a picture to stage
                    media = [_attachment(server.url, number)]
                started = time.perf_counter()
                status = live.post(f"Benchmark {number} #CEADAY21", media_attachments=media)
                query = sa.select(posts.c.queued_at).where(posts.c.external_id == status["uri"])

                def queued(query: Any = query) -> bool:
                    with engine.connect() as connection:
                        return connection.execute(query).scalar() is not None

                wait_for(queued, timeout=30, what="the post in the queue")
                waits.append(time.perf_counter() - started)
            with engine.connect() as connection:
                media = MediaItem.__table__
                staged = connection.execute(
                    sa.select(sa.func.count()).where(media.c.pinned_hash.is_not(None))
                ).scalar_one()
        emit(
            "stream_to_queue",
            "p95_seconds",
            p95(waits),
            baseline,
            POSTS,
            target=2.0,
            pictures_staged=staged,
        )
    finally:
        server.stop()
        media_dir.cleanup()


def _attachment(base: str, number: int) -> dict[str, Any]:
    return {
        "id": str(900_000 + number),
        "type": "image",
        "url": f"{base}/media/{number}.jpg",
        "preview_url": f"{base}/media/{number}.jpg",
        "description": "A hand with a message",
        "meta": {"original": {"width": 800, "height": 600}},
    }


def _bare_delivery(live: Any, base: str) -> float:
    """p95 of a post's delivery to a bare SSE reader: the transport's own latency."""
    from tests.fakes.mastodon_stream import TOKEN

    waits: list[float] = []
    ready = threading.Event()

    async def read() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            async with httpx_sse.aconnect_sse(
                http,
                "GET",
                f"{base}/api/v1/streaming/hashtag",
                params={"tag": "CEADAY21"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as source:
                ready.set()
                async for event in source.aiter_sse():
                    if event.event == "update":
                        content = json.loads(event.data)["content"]
                        sent = float(content.split("sent ", 1)[1].split(" ", 1)[0])
                        waits.append(time.perf_counter() - sent)
                        if len(waits) == 50:
                            return

    reader = threading.Thread(target=asyncio.run, args=(read(),), daemon=True)
    reader.start()
    ready.wait(10)
    live.wait_connections(1)
    for _ in range(50):
        live.post(f"sent {time.perf_counter()!r} #CEADAY21")
        time.sleep(0.005)
    reader.join(30)
    live.drop_all()
    return p95(waits)


def main() -> None:
    jetstream_filter()
    stream_to_queue()


if __name__ == "__main__":
    sys.exit(main())
