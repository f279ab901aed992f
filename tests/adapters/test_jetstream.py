"""The Jetstream client and its filter against a local WebSocket server speaking the protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Iterator

import pytest

from adapters.jetstream import REWIND_US, Jetstream, JetstreamFilter, subscribe_url
from adapters.streams import (
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
from tests.fakes.bluesky import FakeBluesky
from tests.fakes.jetstream import FakeJetstream
from tests.fakes.server import FakeServer

Until = Callable[[list[StreamEvent]], bool]


@pytest.fixture
def bluesky(fake_server: FakeServer) -> FakeBluesky:
    return FakeBluesky(fake_server)


@pytest.fixture
def jetstream(bluesky: FakeBluesky) -> Iterator[FakeJetstream]:
    fake = FakeJetstream(bluesky).start()
    yield fake
    fake.stop()


def run(
    urls: list[str],
    until: Until,
    on_event: Callable[[StreamEvent, list[StreamEvent]], None],
    **options: object,
) -> list[StreamEvent]:
    """Read the stream, calling ``on_event`` for each, until ``until`` holds (10 s at most)."""

    async def main() -> list[StreamEvent]:
        seen: list[StreamEvent] = []
        client = Jetstream(
            urls=urls,
            hashtags=["CEADAY21", "HelpingHands"],
            backoff=Backoff(base=0.05, cap=0.2),
            **options,  # type: ignore[arg-type]
        )
        events: AsyncGenerator[StreamEvent, None] = client.events()
        async with asyncio.timeout(10):
            async for event in events:
                seen.append(event)
                on_event(event, seen)
                if until(seen):
                    break
        await events.aclose()
        return seen

    return asyncio.run(main())


def _count(kind: type, events: list[StreamEvent]) -> int:
    return sum(isinstance(event, kind) for event in events)


def _subscribed(jetstream: FakeJetstream, seen: list[StreamEvent]) -> None:
    """The client saw the handshake; wait until the server has it as a subscriber too."""
    assert jetstream.wait_connections(_count(Connected, seen))


def test_posts_with_a_campaign_tag_come_through_and_the_rest_does_not(
    jetstream: FakeJetstream, bluesky: FakeBluesky
) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            _subscribed(jetstream, seen)
            jetstream.noise(50)
            jetstream.post("Tagged by facet #CEADAY21")
            jetstream.post("No facet, but #helpinghands in the text", facets=[])
            tagged = bluesky.add("Tag in the record's tags only", facets=[])
            record = dict(tagged["record"], tags=["ceaday21"])
            jetstream.commit(tagged["uri"], "create", record=record)
            jetstream.post("Similar but not ours #CEADAY2100")
            jetstream.post("Last #CEADAY21")

    seen = run([jetstream.url], lambda seen: _count(Posted, seen) == 4, on_event)

    texts = [e.post.text for e in seen if isinstance(e, Posted)]
    assert texts == [
        "Tagged by facet #CEADAY21",
        "No facet, but #helpinghands in the text",
        "Tag in the record's tags only",
        "Last #CEADAY21",
    ]
    first = next(e for e in seen if isinstance(e, Posted))
    assert first.post.external_id.startswith("at://did:plc:")
    assert first.cursor is not None and first.cursor.isdigit()
    assert jetstream.cursors == [None]  # no stored cursor: live


def test_images_become_cdn_urls_and_the_author_is_the_did(
    jetstream: FakeJetstream, bluesky: FakeBluesky
) -> None:
    view = bluesky.add("With a picture #CEADAY21", images=1)
    record = dict(view["record"])
    record["embed"] = {
        "$type": "app.bsky.embed.images",
        "images": [{"alt": "A hand", "image": {"$type": "blob", "ref": {"$link": "bafkreiabc"}}}],
    }

    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            _subscribed(jetstream, seen)
            jetstream.commit(view["uri"], "create", record=record)

    seen = run([jetstream.url], lambda seen: _count(Posted, seen) == 1, on_event)

    post = next(e for e in seen if isinstance(e, Posted)).post
    did = view["uri"].split("/")[2]
    assert post.author.handle == f"@{did}"
    assert (
        post.media[0].url == f"https://cdn.bsky.app/img/feed_fullsize/plain/{did}/bafkreiabc@jpeg"
    )
    assert post.media[0].alt == "A hand"


def test_deletes_and_malformed_frames(jetstream: FakeJetstream) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            _subscribed(jetstream, seen)
            jetstream.send_raw(b"{not json #CEADAY21")
            jetstream.send_raw(json.dumps({"kind": "commit", "commit": "x #ceaday21"}).encode())
            bad = {"did": "nope", "time_us": 1, "kind": "commit", "commit": {
                "collection": "app.bsky.feed.post", "operation": "create", "rkey": "a",
                "record": {"text": "#CEADAY21"}}}  # fmt: skip
            jetstream.send_raw(json.dumps(bad).encode())
            jetstream.delete("at://did:plc:someone/app.bsky.feed.post/3abc")

    seen = run([jetstream.url], lambda seen: _count(Deleted, seen) == 1, on_event)

    assert _count(Skipped, seen) == 2  # the commit that is a string is simply not a post
    assert next(e for e in seen if isinstance(e, Deleted)).ref == (
        "at://did:plc:someone/app.bsky.feed.post/3abc"
    )


def test_an_oversized_frame_ends_the_connection_and_asks_for_a_search_of_the_gap(
    jetstream: FakeJetstream,
) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected) and _count(Connected, seen) == 1:
            _subscribed(jetstream, seen)
            jetstream.post("Before #CEADAY21")
            jetstream.send_raw(b'{"text": "' + b"x" * 50_000 + b'"}')
        elif isinstance(event, Connected):
            _subscribed(jetstream, seen)
            jetstream.post("After #CEADAY21")

    seen = run(
        [jetstream.url],
        lambda seen: _count(Posted, seen) == 2,
        on_event,
        max_frame_bytes=10_000,
    )

    assert any("over 10000 bytes" in e.reason for e in seen if isinstance(e, Skipped))
    assert _count(Gap, seen) == 1
    assert jetstream.cursors[1] is None  # not replayed into the same frame again


def test_reconnect_rewinds_a_few_seconds_from_the_cursor(jetstream: FakeJetstream) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected) and _count(Connected, seen) == 1:
            _subscribed(jetstream, seen)
            jetstream.post("One #CEADAY21")
        elif isinstance(event, Posted) and _count(Posted, seen) == 1:
            jetstream.drop_all()

    seen = run([jetstream.url], lambda seen: _count(Posted, seen) == 2, on_event)

    first = next(e for e in seen if isinstance(e, Posted))
    assert first.cursor is not None
    assert jetstream.cursors[1] == int(first.cursor) - REWIND_US
    # The replay delivers the same post again: the store upserts it away.
    assert [e.post.external_id for e in seen if isinstance(e, Posted)] == [
        first.post.external_id
    ] * 2


def test_a_cursor_older_than_the_history_is_a_gap(jetstream: FakeJetstream) -> None:
    old = jetstream.commit("at://did:plc:a/app.bsky.feed.post/1", "delete")
    jetstream.forget_before(old + 1)
    later = jetstream.commit(
        "at://did:plc:a/app.bsky.feed.post/2", "delete", time_us=old + 600_000_000
    )

    seen = run(
        [jetstream.url], lambda seen: _count(Deleted, seen) == 1, lambda e, s: None, cursor=str(old)
    )

    gap = next(e for e in seen if isinstance(e, Gap))
    assert gap.since is not None and gap.until is not None
    assert int(gap.until.timestamp() * 1_000_000) == pytest.approx(later, abs=1)
    assert "older than the instance's history" in gap.reason


def test_a_name_that_does_not_resolve_fails_over_to_the_next_instance(
    jetstream: FakeJetstream,
) -> None:
    urls = ["ws://jetstream.invalid/subscribe", jetstream.url]

    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            _subscribed(jetstream, seen)
            jetstream.post("Through the second instance #CEADAY21")

    seen = run(urls, lambda seen: _count(Posted, seen) == 1, on_event)

    drop = next(e for e in seen if isinstance(e, Disconnected))
    assert drop.reason.startswith("ws://jetstream.invalid/subscribe: ")
    connected = next(e for e in seen if isinstance(e, Connected))
    assert connected.url == jetstream.url
    assert _count(Disconnected, seen) == 1


def test_a_silent_connection_is_ended_and_replaced(jetstream: FakeJetstream) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected) and _count(Connected, seen) == 1:
            _subscribed(jetstream, seen)
            jetstream.stall()
        elif isinstance(event, Disconnected):
            jetstream.unstall()

    seen = run(
        [jetstream.url], lambda seen: _count(Connected, seen) == 2, on_event, idle_timeout=0.5
    )

    assert "no event for 0.5 s" in next(e for e in seen if isinstance(e, Disconnected)).reason


def test_unmatched_traffic_still_moves_the_position(jetstream: FakeJetstream) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            _subscribed(jetstream, seen)
            jetstream.noise(3)

    seen = run(
        [jetstream.url],
        lambda seen: _count(Position, seen) >= 1,
        on_event,
    )
    assert _count(Posted, seen) == 0


def test_the_filter_reads_a_tag_in_any_case_and_skips_unrelated_frames_unparsed() -> None:
    reader = JetstreamFilter(["CEADAY21"])
    frame = {
        "did": "did:plc:abc",
        "time_us": 1_733_000_000_000_000,
        "kind": "commit",
        "commit": {
            "operation": "create",
            "collection": "app.bsky.feed.post",
            "rkey": "3k",
            "record": {"text": "shouting #ceaDAY21", "createdAt": "2026-12-01T10:00:00Z"},
        },
    }
    assert isinstance(reader.read(json.dumps(frame).encode()), Posted)
    assert reader.time_us(json.dumps(frame).encode()) == 1_733_000_000_000_000
    assert reader.read(b"no tag here, and not even JSON") is None
    non_ascii = JetstreamFilter(["Açaí"])
    assert non_ascii.needles is None  # cannot pre-filter: every frame is parsed


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "wss://jetstream2.us-east.bsky.network",
            "wss://jetstream2.us-east.bsky.network/subscribe",
        ),
        ("ws://127.0.0.1:6008/subscribe", "ws://127.0.0.1:6008/subscribe"),
    ],
)
def test_subscribe_url(given: str, expected: str) -> None:
    assert subscribe_url(given) == expected
    with pytest.raises(ValueError, match="not a ws"):
        subscribe_url("https://jetstream.example")
