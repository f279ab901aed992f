"""Cursors stored by earlier versions still resume where they stopped.

A source's cursor lives in the database across upgrades: each JSON below is the
exact shape an adapter wrote before its window walk moved to
:class:`adapters.paging.WindowedSearch`, and must still read as the same position.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters import bluesky as bluesky_module
from adapters.base import CredentialCache, Target
from adapters.bluesky import BlueskyAdapter
from adapters.http import HttpClient, RetryPolicy
from adapters.x import XAdapter
from tests.fakes.bluesky import APP_PASSWORD, HANDLE, FakeBluesky
from tests.fakes.server import FakeServer
from tests.fakes.x import TOKEN, FakeX, snowflake

TARGET = Target("", ("CEADAY21",))
X_SEARCH = "/2/tweets/search/recent"
BLUESKY_SEARCH = "/xrpc/app.bsky.feed.searchPosts"


def _iso(moment: datetime, spec: str = "seconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _read(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


@pytest.fixture
def x(fake_server: FakeServer) -> FakeX:
    return FakeX(fake_server)


@pytest.fixture
def x_adapter(x: FakeX) -> Iterator[XAdapter]:
    with HttpClient(RetryPolicy(timeout=1, attempts=2, backoff=0.001)) as http:
        yield XAdapter({"X_API_BASE": x.url, "X_BEARER_TOKEN": TOKEN}, http)


@pytest.fixture
def bluesky(fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeBluesky:
    monkeypatch.setattr(bluesky_module, "_SESSIONS", CredentialCache())
    monkeypatch.setattr(bluesky_module, "_REFUSED", {})
    return FakeBluesky(fake_server)


@pytest.fixture
def bluesky_adapter(bluesky: FakeBluesky) -> Iterator[BlueskyAdapter]:
    config = {
        "BLUESKY_API_BASE": bluesky.url,
        "BLUESKY_HANDLE": HANDLE,
        "BLUESKY_APP_PASSWORD": APP_PASSWORD,
    }
    with HttpClient(RetryPolicy(timeout=1, attempts=2, backoff=0.001)) as http:
        yield BlueskyAdapter(config, http)


def test_x_newest_id_cursor_asks_for_newer_ids(x_adapter: XAdapter, x: FakeX) -> None:
    newest = snowflake(datetime.now(UTC) - timedelta(hours=2), 1)
    pages = list(
        x_adapter.search(TARGET, f'{{"v":1,"newest":"{newest}"}}', since=_now(), max_pages=3)
    )
    assert x.server.requests[0].arg("since_id") == newest
    assert json.loads(pages[-1].cursor or "{}") == {"v": 1, "newest": newest}


def test_x_start_time_cursor_searches_from_that_time(x_adapter: XAdapter, x: FakeX) -> None:
    start = _iso(datetime.now(UTC) - timedelta(hours=3))
    list(x_adapter.search(TARGET, f'{{"v":1,"start":"{start}"}}', since=_now(), max_pages=3))
    assert x.server.requests[0].arg("start_time") == start
    assert x.server.requests[0].arg("since_id") is None


def test_x_unfinished_window_is_read_before_newer_posts(x_adapter: XAdapter, x: FakeX) -> None:
    newest = snowflake(datetime.now(UTC) - timedelta(hours=1), 1)
    lower = snowflake(datetime.now(UTC) - timedelta(hours=5), 1)
    until = snowflake(datetime.now(UTC) - timedelta(hours=3), 1)
    stored = {"v": 1, "newest": newest, "lower": lower, "until_id": until}

    list(x_adapter.search(TARGET, json.dumps(stored), since=_now(), max_pages=3))

    window, newer = x.server.requests[0], x.server.requests[1]
    assert (window.arg("since_id"), window.arg("until_id")) == (lower, until)
    assert (newer.arg("since_id"), newer.arg("until_id")) == (newest, None)


def test_x_unfinished_window_from_a_start_time(x_adapter: XAdapter, x: FakeX) -> None:
    start = _iso(datetime.now(UTC) - timedelta(hours=6))
    lower = _iso(datetime.now(UTC) - timedelta(hours=5))
    until = snowflake(datetime.now(UTC) - timedelta(hours=3), 1)
    stored = {"v": 1, "start": start, "lower": lower, "until_id": until}

    list(x_adapter.search(TARGET, json.dumps(stored), since=_now(), max_pages=3))

    window, newer = x.server.requests[0], x.server.requests[1]
    assert (window.arg("start_time"), window.arg("until_id")) == (lower, until)
    assert (newer.arg("start_time"), newer.arg("until_id")) == (start, None)


def test_x_backfill_position_is_the_oldest_id_read(x_adapter: XAdapter, x: FakeX) -> None:
    until = snowflake(datetime.now(UTC) - timedelta(hours=3), 1)
    since = datetime.now(UTC) - timedelta(days=1)
    list(x_adapter.backfill(TARGET, since=since, resume=until, max_pages=3))
    assert x.server.requests[0].arg("until_id") == until


def test_bluesky_newest_cursor_re_reads_the_overlap(
    bluesky_adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    cursor = f'{{"v":1,"newest":"{_iso(newest, "milliseconds")}"}}'
    list(bluesky_adapter.search(TARGET, cursor, since=_now(), max_pages=3))
    search = [r for r in bluesky.server.requests if r.path == BLUESKY_SEARCH]
    assert _read(search[0].arg("since") or "") == newest - bluesky_module.OVERLAP


def test_bluesky_unfinished_window_is_read_before_newer_posts(
    bluesky_adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    newest, lower, upper = (
        now - timedelta(hours=1),
        now - timedelta(hours=5),
        now - timedelta(hours=3),
    )
    stored = {
        "v": 1,
        "newest": _iso(newest, "milliseconds"),
        "lower": _iso(lower, "milliseconds"),
        "upper": _iso(upper, "milliseconds"),
    }

    list(bluesky_adapter.search(TARGET, json.dumps(stored), since=_now(), max_pages=3))

    window, newer = [r for r in bluesky.server.requests if r.path == BLUESKY_SEARCH][:2]
    assert (_read(window.arg("since") or ""), _read(window.arg("until") or "")) == (lower, upper)
    assert _read(newer.arg("since") or "") == newest - bluesky_module.OVERLAP
    assert newer.arg("until") is None


def test_bluesky_backfill_position_is_an_until_time(
    bluesky_adapter: BlueskyAdapter, bluesky: FakeBluesky
) -> None:
    upper = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    since = datetime.now(UTC) - timedelta(days=1)
    resume = _iso(upper, "milliseconds")
    list(bluesky_adapter.backfill(TARGET, since=since, resume=resume, max_pages=3))
    search = [r for r in bluesky.server.requests if r.path == BLUESKY_SEARCH]
    assert _read(search[0].arg("until") or "") == upper


def _now() -> datetime:
    return datetime.now(UTC) - timedelta(days=1)
