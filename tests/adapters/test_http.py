"""The shared HTTP policy against a real local server misbehaving on purpose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from adapters.base import (
    AuthFailed,
    MalformedResponse,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from adapters.http import HttpClient, RetryPolicy, epoch_reset_reader, retry_after_seconds
from tests.fakes.server import FOREVER, FakeServer, Reply


@pytest.fixture
def server(fake_server: FakeServer) -> FakeServer:
    fake_server.route("GET", "/ok", lambda request: Reply.json({"hello": "world"}))
    fake_server.route("GET", "/big", lambda request: Reply.json({"blob": "x" * 200_000}))
    return fake_server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> HttpClient:
    policy = RetryPolicy(
        timeout=0.5, attempts=3, backoff=0.001, max_retry_after=5, max_body_bytes=100_000
    )
    with HttpClient(policy, sleep=sleeps.append) as http:
        yield http


def test_retries_5xx_then_succeeds(server: FakeServer, client: HttpClient) -> None:
    server.fail("status", times=2, status=502)
    body, _ = client.get_json(f"{server.url}/ok")
    assert body == {"hello": "world"}
    assert client.requests == 3


def test_persistent_5xx_is_platform_unavailable(server: FakeServer, client: HttpClient) -> None:
    server.fail("status", times=5, status=503)
    with pytest.raises(PlatformUnavailable, match=r"HTTP 503 \(after 3 attempts\)"):
        client.get_json(f"{server.url}/ok")


def test_short_retry_after_is_waited_for(
    server: FakeServer, client: HttpClient, sleeps: list[float]
) -> None:
    server.fail("status", status=429, headers={"Retry-After": "2"})
    body, _ = client.get_json(f"{server.url}/ok")
    assert body == {"hello": "world"}
    assert sleeps == [2.0]


def test_long_retry_after_raises_rate_limited_with_time(
    server: FakeServer, client: HttpClient, sleeps: list[float]
) -> None:
    server.fail("status", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimited) as caught:
        client.get_json(f"{server.url}/ok")
    assert caught.value.retry_at is not None
    assert caught.value.retry_at > datetime.now(UTC) + timedelta(minutes=59)
    assert sleeps == []


def test_429_without_retry_after_uses_platform_reset_header(
    server: FakeServer, client: HttpClient, sleeps: list[float]
) -> None:
    reset = datetime.now(UTC).timestamp() + 7200
    server.fail("status", status=429, headers={"x-rate-limit-reset": str(int(reset))})
    with pytest.raises(RateLimited, match="rate limited until"):
        client.get_json(f"{server.url}/ok", reset_reader=epoch_reset_reader("x-rate-limit-reset"))


def test_429_without_any_hint_backs_off_and_retries(
    server: FakeServer, client: HttpClient, sleeps: list[float]
) -> None:
    server.fail("status", status=429)
    client.get_json(f"{server.url}/ok")
    assert len(sleeps) == 1 and sleeps[0] < 0.01


def test_retry_after_as_http_date() -> None:
    now = datetime(2021, 3, 18, 9, 0, tzinfo=UTC)
    headers = httpx.Headers({"Retry-After": format_datetime(now + timedelta(seconds=90), True)})
    assert retry_after_seconds(headers, now) == 90
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), now) is None


def test_hang_past_timeout_is_platform_unavailable(server: FakeServer, client: HttpClient) -> None:
    server.fail("hang", times=3, seconds=FOREVER)
    with pytest.raises(PlatformUnavailable, match="no answer within 0.5s"):
        client.get_json(f"{server.url}/ok")


def test_connection_reset_is_retried(server: FakeServer, client: HttpClient) -> None:
    server.fail("reset")
    body, _ = client.get_json(f"{server.url}/ok")
    assert body == {"hello": "world"}


def test_truncated_json_is_malformed_not_retried(server: FakeServer, client: HttpClient) -> None:
    server.fail("truncate")
    with pytest.raises(MalformedResponse, match="not valid JSON"):
        client.get_json(f"{server.url}/ok")
    assert client.requests == 1


def test_html_error_page_is_malformed(server: FakeServer, client: HttpClient) -> None:
    server.fail("garbage")
    with pytest.raises(MalformedResponse):
        client.get_json(f"{server.url}/ok")


def test_giant_body_is_refused(server: FakeServer, client: HttpClient) -> None:
    with pytest.raises(MalformedResponse, match="larger than"):
        client.get_json(f"{server.url}/big")


def test_slow_drip_is_a_timeout(server: FakeServer, client: HttpClient) -> None:
    server.fail("drip", times=3, seconds=FOREVER)
    with pytest.raises(PlatformUnavailable):
        client.get_json(f"{server.url}/ok")


def test_credentials_refused_and_other_4xx(server: FakeServer, client: HttpClient) -> None:
    server.fail("status", status=401)
    with pytest.raises(AuthFailed, match="HTTP 401"):
        client.get_json(f"{server.url}/ok")
    server.fail("status", status=422)
    with pytest.raises(RequestRejected, match="HTTP 422"):
        client.get_json(f"{server.url}/ok")


def test_user_agent_describes_us(server: FakeServer, client: HttpClient) -> None:
    client.get_json(f"{server.url}/ok")
    assert server.requests[-1].headers["user-agent"].startswith("hashtag-monitor/")
