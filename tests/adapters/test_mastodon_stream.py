"""The Mastodon stream client against a local streaming server speaking the documented SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable

import httpx
import pytest

from adapters.base import AuthFailed
from adapters.mastodon_stream import MastodonStream, later_id, streaming_base
from adapters.streams import (
    Backoff,
    Connected,
    Deleted,
    Disconnected,
    Posted,
    Skipped,
    StreamEvent,
)
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon_stream import TOKEN, FakeMastodonStream
from tests.fakes.server import FakeServer

Until = Callable[[list[StreamEvent]], bool]


@pytest.fixture
def live(mastodon: FakeMastodon) -> FakeMastodonStream:
    return FakeMastodonStream(mastodon)


def _client(mastodon: FakeMastodon, http: httpx.AsyncClient, **options: object) -> MastodonStream:
    defaults: dict[str, object] = {
        "instance": mastodon.url,
        "tag": "CEADAY21",
        "token": TOKEN,
        "http": http,
        "heartbeat_timeout": 2.0,
        "backoff": Backoff(base=0.05, cap=0.2),
    }
    return MastodonStream(**{**defaults, **options})  # type: ignore[arg-type]


def run(
    mastodon: FakeMastodon,
    until: Until,
    on_event: Callable[[StreamEvent, list[StreamEvent]], None],
    **options: object,
) -> list[StreamEvent]:
    """Read the stream, calling ``on_event`` for each, until ``until`` holds (10 s at most)."""

    async def main() -> list[StreamEvent]:
        seen: list[StreamEvent] = []
        async with httpx.AsyncClient(trust_env=False) as http:
            events: AsyncGenerator[StreamEvent, None] = _client(mastodon, http, **options).events()
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


def test_update_edit_and_delete_arrive_with_the_discovered_host_and_the_token(
    mastodon: FakeMastodon, live: FakeMastodonStream, fake_server: FakeServer
) -> None:
    state: dict[str, str] = {}

    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            state["id"] = live.post("First on the stream #CEADAY21")["id"]
        elif isinstance(event, Posted) and _count(Posted, seen) == 1:
            live.edit(state["id"], "Edited on the stream #CEADAY21")
        elif isinstance(event, Posted) and _count(Posted, seen) == 2:
            live.delete(state["id"])

    seen = run(mastodon, lambda seen: _count(Deleted, seen) == 1, on_event)

    posted = [e for e in seen if isinstance(e, Posted)]
    assert posted[0].post.text == "First on the stream #CEADAY21"
    assert posted[0].cursor == state["id"]
    assert posted[1].post.text == "Edited on the stream #CEADAY21"
    assert posted[1].cursor is None  # an edit is of an older status: the cursor stays
    deleted = next(e for e in seen if isinstance(e, Deleted))
    assert deleted.ref == f"{mastodon.url}|{state['id']}"
    assert fake_server.hits("/api/v2/instance") == 1
    stream_requests = [r for r in fake_server.requests if r.path.endswith("/streaming/hashtag")]
    assert stream_requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in stream_requests[0].query  # never in a URL that gets logged


def test_a_boost_is_the_original_post_not_the_boosters_empty_status(
    mastodon: FakeMastodon, live: FakeMastodonStream
) -> None:
    original = mastodon.add("The original words #CEADAY21")
    boost = dict(original, id=str(int(original["id"]) + 7), content="", reblog=original)
    boost["uri"] = f"{original['uri']}/activity"

    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            live.send_event("ceaday21", "update", json.dumps(boost))

    seen = run(mastodon, lambda seen: _count(Posted, seen) == 1, on_event)

    post = next(e for e in seen if isinstance(e, Posted)).post
    assert post.external_id == original["uri"]
    assert post.text == "The original words #CEADAY21"


def test_malformed_and_oversized_frames_are_skipped_and_the_stream_goes_on(
    mastodon: FakeMastodon, live: FakeMastodonStream
) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            live.send_event("ceaday21", "update", "{not json")
            live.send_event("ceaday21", "update", json.dumps([1, 2]))
            live.send_event("ceaday21", "update", json.dumps({"id": "1"}))  # no account
            live.send_event("ceaday21", "delete", "not an id!")
            live.send_raw("ceaday21", b"event: update\ndata: " + b"x" * 300_000 + b"\n\n")
            live.send_event("ceaday21", "notification", "{}")  # not ours: ignored
            live.post("Still streaming #CEADAY21")

    seen = run(mastodon, lambda seen: _count(Posted, seen) == 1, on_event, max_frame_bytes=100_000)

    reasons = [e.reason for e in seen if isinstance(e, Skipped)]
    assert len(reasons) == 5, reasons
    assert any("over 100000 bytes" in reason for reason in reasons)
    assert next(e for e in seen if isinstance(e, Posted)).post.text == "Still streaming #CEADAY21"


def test_a_status_without_the_hashtag_is_not_taken(
    mastodon: FakeMastodon, live: FakeMastodonStream
) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            live.send_event("ceaday21", "update", json.dumps(mastodon.add("Off topic", tags=())))
            live.post("On topic #CEADAY21")

    seen = run(mastodon, lambda seen: _count(Posted, seen) == 1, on_event)

    assert [e.post.text for e in seen if isinstance(e, Posted)] == ["On topic #CEADAY21"]
    assert any("without #CEADAY21" in e.reason for e in seen if isinstance(e, Skipped))


def test_a_stall_without_closing_is_ended_by_the_heartbeat_timeout(
    mastodon: FakeMastodon, live: FakeMastodonStream
) -> None:
    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected) and _count(Connected, seen) == 1:
            live.stall()
        elif isinstance(event, Disconnected):
            live.unstall()

    seen = run(mastodon, lambda seen: _count(Connected, seen) == 2, on_event, heartbeat_timeout=0.5)

    drop = next(e for e in seen if isinstance(e, Disconnected))
    assert "no data or heartbeat for 0.5 s" in drop.reason


def test_a_dropped_stream_reconnects_with_backoff(
    mastodon: FakeMastodon, live: FakeMastodonStream
) -> None:
    live.drop_after = 1

    def on_event(event: StreamEvent, seen: list[StreamEvent]) -> None:
        if isinstance(event, Connected):
            live.post(f"Post {_count(Connected, seen)} #CEADAY21")

    seen = run(mastodon, lambda seen: _count(Posted, seen) == 3, on_event)

    drops = [e for e in seen if isinstance(e, Disconnected)]
    assert len(drops) >= 2
    assert all(0 < drop.retry_in <= 0.2 for drop in drops)
    assert _count(Connected, seen) >= 3


def test_a_refused_token_is_an_auth_failure_not_a_retry_loop(
    mastodon: FakeMastodon, live: FakeMastodonStream
) -> None:
    with pytest.raises(AuthFailed, match="refused the streaming token"):
        run(mastodon, lambda seen: False, lambda event, seen: None, token="wrong")
    with pytest.raises(AuthFailed, match="MASTODON_ACCESS_TOKEN"):
        MastodonStream(instance=mastodon.url, tag="x", token="", http=httpx.AsyncClient())


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("wss://streaming.example.social", "https://streaming.example.social"),
        ("wss://example.social", "https://example.social"),
        ("wss://streaming.evil.example", "https://example.social"),
        ("ws://streaming.example.social", "https://example.social"),  # no step down from TLS
        ("wss://127.0.0.1:8080", "https://example.social"),
        (None, "https://example.social"),
        ("not a url at all", "https://example.social"),
        (42, "https://example.social"),
    ],
)
def test_only_a_streaming_host_under_the_instances_domain_is_trusted(
    configured: object, expected: str
) -> None:
    assert streaming_base("https://example.social", configured) == expected


def test_an_instance_at_an_address_trusts_only_that_address() -> None:
    assert streaming_base("http://10.0.0.1:3000", "ws://5.0.0.1") == "http://10.0.0.1:3000"
    assert streaming_base("http://10.0.0.1:3000", "ws://10.0.0.1:4000") == "http://10.0.0.1:4000"
    # A sibling is not trusted: without the public suffix list it could be anyone's.
    assert streaming_base("https://mastodon.co.uk", "wss://x.co.uk") == "https://mastodon.co.uk"


def test_the_cursor_is_the_newest_id() -> None:
    assert later_id(None, "5") == "5"
    assert later_id("109", "99") == "109"
    assert later_id("99", "109") == "109"


def test_backoff_is_jittered_capped_and_reset_by_a_stable_connection() -> None:
    backoff = Backoff(base=1.0, cap=8.0, stable_after=30.0)
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0.1 <= delay <= 8.0 for delay in delays)
    assert len({round(delay, 6) for delay in delays}) > 40  # jittered, never in step
    backoff.connected_for(31.0)
    assert backoff.failures == 0
    first = [Backoff(base=1.0, cap=8.0).next_delay() for _ in range(200)]
    assert max(first) <= 1.0  # a first retry never waits long
