"""No adapter leaves the platform it was configured for, nor repeats what a stranger said.

The attack: a hostile or broken Mastodon instance answers its tag timeline with
a ``Link: rel=next`` to another host (an internal address); the poller must not
go there, must not send the bearer token there, and nothing that host answers
may be shown to people. Error excerpts are the platform's own error fields,
never arbitrary bodies; feed URLs pass the same private-address guard as media.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from adapters.base import AuthFailed, MalformedResponse, RequestRejected, Target
from adapters.http import HttpClient, RetryPolicy, error_fields
from adapters.mastodon import MastodonAdapter
from adapters.netguard import AddressRefused
from adapters.rss import RssAdapter
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.rss import FEED_PATH, FakeFeed
from tests.fakes.server import FakeServer, Reply

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
TIMELINE = r"/api/v1/timelines/tag/.*"
INTERNAL_SECRET = "internal-metadata-credentials-AKIA1234"


@pytest.fixture
def internal() -> Iterator[FakeServer]:
    """A second server standing for an internal address the platform points us to."""
    server = FakeServer().start()
    server.route("GET", r"/.*", lambda _r: Reply(200, INTERNAL_SECRET.encode(), {}))
    yield server
    server.stop()


def _policy() -> RetryPolicy:
    return RetryPolicy(timeout=1, attempts=1, backoff=0.001)


def _mastodon(mastodon: FakeMastodon, token: str | None = None) -> MastodonAdapter:
    config = {"MASTODON_INSTANCES": mastodon.url}
    if token:
        config["MASTODON_ACCESS_TOKEN"] = token
    return MastodonAdapter(config, HttpClient(_policy()))


def _walk(adapter: MastodonAdapter, instance: str, cursor: str | None = None) -> list[object]:
    return list(
        adapter.search(Target(instance, ("CEADAY21",)), cursor, since=LONG_AGO, max_pages=5)
    )


def test_a_link_to_another_host_is_not_followed_and_gets_no_token(
    mastodon: FakeMastodon, internal: FakeServer
) -> None:
    statuses = mastodon.add_many(2)
    link = f'<{internal.url}/latest/meta-data?max_id=1>; rel="next"'
    page = Reply.json(list(reversed(statuses)), headers={"Link": link})
    mastodon.server.route("GET", TIMELINE, lambda _r: page, first=True)
    adapter = _mastodon(mastodon, "secret-token")

    with pytest.raises(MalformedResponse, match="another host") as caught:
        _walk(adapter, mastodon.url)

    assert internal.hits() == 0
    assert INTERNAL_SECRET not in str(caught.value)


def test_a_prev_link_to_another_host_is_not_followed_either(
    mastodon: FakeMastodon, internal: FakeServer
) -> None:
    statuses = mastodon.add_many(2)
    link = f'<{internal.url}/x?min_id=9>; rel="prev"'
    page = Reply.json(list(reversed(statuses)), headers={"Link": link})
    mastodon.server.route("GET", TIMELINE, lambda _r: page, first=True)
    adapter = _mastodon(mastodon)

    with pytest.raises(MalformedResponse, match="another host"):
        _walk(adapter, mastodon.url, cursor="1")
    assert internal.hits() == 0


def test_a_relative_link_on_the_same_host_is_followed(mastodon: FakeMastodon) -> None:
    statuses = mastodon.add_many(2)
    first = Reply.json(
        [statuses[1]], headers={"Link": '</api/v1/timelines/tag/CEADAY21?max_id=2>; rel="next"'}
    )
    mastodon.server.route(
        "GET",
        TIMELINE,
        lambda r: first if r.arg("max_id") is None else Reply.json([statuses[0]]),
        first=True,
    )
    adapter = _mastodon(mastodon)

    pages = _walk(adapter, mastodon.url)

    assert len(pages) == 2 and mastodon.server.hits() == 2


def test_an_html_error_body_never_reaches_the_message(mastodon: FakeMastodon) -> None:
    body = f"<html><body>proxy error {INTERNAL_SECRET}</body></html>".encode()
    mastodon.server.route("GET", TIMELINE, lambda _r: Reply(422, body, {}), first=True)
    adapter = _mastodon(mastodon)

    with pytest.raises(RequestRejected) as caught:
        _walk(adapter, mastodon.url)

    assert INTERNAL_SECRET not in str(caught.value)
    assert "HTTP 422" in str(caught.value)


def test_the_platforms_own_error_field_is_shown(mastodon: FakeMastodon) -> None:
    reply = Reply.json({"error": "Record not found", "debug": INTERNAL_SECRET}, status=422)
    mastodon.server.route("GET", TIMELINE, lambda _r: reply, first=True)
    adapter = _mastodon(mastodon)

    with pytest.raises(RequestRejected, match="Record not found") as caught:
        _walk(adapter, mastodon.url)
    assert INTERNAL_SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error": "invalid_token", "error_description": "The token expired"}',
            "invalid_token; The token expired",
        ),
        (b'{"errors": [{"message": "Rate limit"}], "title": "Too Many"}', "Too Many; Rate limit"),
        (b'["a list"]', ""),
        (b"<html>secret</html>", ""),
        (b'{"message": 42}', ""),
    ],
)
def test_error_fields_read_only_named_fields(body: bytes, expected: str) -> None:
    response = httpx.Response(400, content=body, request=httpx.Request("GET", "https://x.test/"))
    assert error_fields(response) == expected


def test_mastodon_401_without_a_token_says_to_set_one(mastodon: FakeMastodon) -> None:
    reply = Reply.json({"error": "This method requires an authenticated user"}, status=401)
    mastodon.server.route("GET", TIMELINE, lambda _r: reply, first=True)
    adapter = _mastodon(mastodon)

    with pytest.raises(AuthFailed) as caught:
        _walk(adapter, mastodon.url)
    assert "requires an access token for hashtag timelines; set MASTODON_ACCESS_TOKEN" in str(
        caught.value
    )


def test_mastodon_401_with_a_token_says_the_token_was_refused(mastodon: FakeMastodon) -> None:
    reply = Reply.json({"error": "The access token is invalid"}, status=401)
    mastodon.server.route("GET", TIMELINE, lambda _r: reply, first=True)
    adapter = _mastodon(mastodon, "tok-123456")

    with pytest.raises(AuthFailed, match="The access token is invalid") as caught:
        _walk(adapter, mastodon.url)
    assert "set MASTODON_ACCESS_TOKEN" not in str(caught.value)


def test_a_feed_on_a_loopback_address_is_refused_without_a_request(
    fake_server: FakeServer,
) -> None:
    feed = FakeFeed(fake_server)
    adapter = RssAdapter({"RSS_FEEDS": feed.url}, HttpClient(_policy()))

    with pytest.raises(AddressRefused, match="private, loopback"):
        list(adapter.search(Target(feed.url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=1))
    assert fake_server.hits() == 0


def test_a_feed_redirect_hop_is_checked_too(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first hop passes as if public; its redirect to a link-local address must not.
    from adapters import netguard

    monkeypatch.setattr(netguard, "is_public", lambda address: str(address) == "127.0.0.1")
    port = fake_server.url.rsplit(":", 1)[1]
    fake_server.route(
        "GET", "/moved", lambda _r: Reply(302, b"", {"Location": "http://169.254.169.254/"})
    )
    fake_server.route(
        "GET",
        "/hop",
        lambda _r: Reply(302, b"", {"Location": f"http://127.0.0.2:{port}{FEED_PATH}"}),
    )
    for path, address in (("/moved", r"169\.254\.169\.254"), ("/hop", r"127\.0\.0\.2")):
        url = fake_server.url + path
        adapter = RssAdapter({"RSS_FEEDS": url}, HttpClient(_policy()))
        with pytest.raises(AddressRefused, match=address):
            list(adapter.search(Target(url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=1))
    assert fake_server.hits() == 2


def test_outbound_allow_private_lets_a_local_feed_through(fake_server: FakeServer) -> None:
    feed = FakeFeed(fake_server)
    adapter = RssAdapter(
        {"RSS_FEEDS": feed.url, "OUTBOUND_ALLOW_PRIVATE": "true"}, HttpClient(_policy())
    )
    [page] = adapter.search(Target(feed.url, ("CEADAY21",)), None, since=LONG_AGO, max_pages=1)
    assert fake_server.hits() == 1 and page.cursor is not None
