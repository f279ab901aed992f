"""The misbehaving platform itself, and what each of its faults does to one poll.

The schedules draw from these faults at random; here each one is shown
alone: the fake does what it claims, and the pipeline answers it with a
readable error on the source or a clean stop, never a lost post.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.config import Settings
from monitor.models import Post, Source
from monitor.services.polling import PollSummary, poll_all
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import FOREVER
from tests.faults.schedule import SCHEDULE_ENV, TIMELINE

TAG = "CEADAY21"
PATH = TIMELINE + TAG
TIMED_OUT = f"no answer within {float(SCHEDULE_ENV['HTTP_TIMEOUT_SECONDS']):g}s"
#: Slower than the timeout: a hang's whole answer, or each byte of a drip (until the client
#: gives up, so a busy machine cannot let the fault end first).
PAST_TIMEOUT = FOREVER


@pytest.fixture
def settings(configure: Callable[..., Settings], mastodon: FakeMastodon) -> Settings:
    return configure(MASTODON_INSTANCES=mastodon.url, HASHTAGS=TAG, **SCHEDULE_ENV)


def _poll(engine: Engine, settings: Settings) -> PollSummary:
    [summary] = poll_all(engine=engine, settings=settings)
    return summary


def _stored(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.select(Post.__table__.c.external_id)).scalars())


def _source(engine: Engine) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.select(Source.__table__)).one()


def _uris(mastodon: FakeMastodon) -> set[str]:
    return {s["uri"] for s in mastodon.statuses.values()}


def _ids(answer: httpx.Response) -> list[str]:
    return [s["id"] for s in answer.json()]


def test_repeat_answers_the_previous_page_again(mastodon: FakeMastodon) -> None:
    mastodon.add_many(60)
    url = mastodon.url + PATH
    first = _ids(httpx.get(url, params={"limit": 40}))
    mastodon.misbehave("repeat", tag=TAG)
    second = _ids(httpx.get(url, params={"limit": 40, "max_id": first[-1]}))
    third = _ids(httpx.get(url, params={"limit": 40, "max_id": first[-1]}))
    assert second == first
    assert len(third) == 20 and not set(third) & set(first)
    assert [w.kind for w in mastodon.struck] == ["repeat"]


def test_backwards_ignores_min_id_and_answers_an_older_page(mastodon: FakeMastodon) -> None:
    statuses = mastodon.add_many(10)
    middle = statuses[5]["id"]
    mastodon.misbehave("backwards", tag=TAG)
    older = _ids(httpx.get(mastodon.url + PATH, params={"min_id": middle}))
    newer = _ids(httpx.get(mastodon.url + PATH, params={"min_id": middle}))
    assert older == [s["id"] for s in reversed(statuses[:6])]
    assert newer == [s["id"] for s in reversed(statuses[6:])]


def test_misbehaviour_waits_for_a_request_it_can_strike(mastodon: FakeMastodon) -> None:
    mastodon.add_many(3)
    mastodon.misbehave("backwards", tag=TAG, after=1)
    mastodon.misbehave("repeat", tag="HelpingHands")
    plain = _ids(httpx.get(mastodon.url + PATH))  # no min_id: nothing to send backwards
    assert len(plain) == 3 and not mastodon.struck
    with pytest.raises(ValueError, match="unknown misbehaviour"):
        mastodon.misbehave("sideways")


def test_the_server_records_every_fault_that_struck(mastodon: FakeMastodon) -> None:
    # Each queued fault counts its own ``after``: two faults after one request interleave.
    mastodon.server.fail("status", times=2, status=503, path=PATH, after=1)
    answers = [httpx.get(mastodon.url + PATH).status_code for _ in range(5)]
    assert answers == [200, 503, 200, 503, 200]
    assert [f.status for f in mastodon.server.struck] == [503, 503]


def test_edit_changes_the_text_and_says_when(mastodon: FakeMastodon) -> None:
    status = mastodon.add()
    mastodon.edit(status["id"], "Changed my mind #CEADAY21")
    answer = httpx.get(f"{mastodon.url}/api/v1/statuses/{status['id']}").json()
    assert answer["content"] == "<p>Changed my mind #CEADAY21</p>" and answer["edited_at"]


def test_a_repeated_page_going_forward_stops_the_walk_and_loses_nothing(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(3)
    _poll(sqlite_engine, settings)
    mastodon.add_many(70)
    mastodon.misbehave("repeat", tag=TAG, after=1)

    stopped = _poll(sqlite_engine, settings)
    assert stopped.ok and stopped.new == 40  # the repeat ended the walk after one page

    healed = _poll(sqlite_engine, settings)
    assert healed.ok and healed.new == 30
    assert _stored(sqlite_engine) == _uris(mastodon)


def test_a_cursor_sent_backwards_is_not_followed(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.add_many(30)
    _poll(sqlite_engine, settings)
    cursor = _source(sqlite_engine).cursor
    mastodon.add_many(10)
    mastodon.misbehave("backwards", tag=TAG)

    answered_old = _poll(sqlite_engine, settings)
    assert answered_old.ok and answered_old.new == 0
    assert _source(sqlite_engine).cursor == cursor  # never moved back, never past a post

    healed = _poll(sqlite_engine, settings)
    assert healed.new == 10 and _stored(sqlite_engine) == _uris(mastodon)


def test_a_repeated_page_on_the_first_walk_back_is_a_possible_gap(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    """Found by this suite: a server answering page 1 again for page 2 of the first poll
    ended the walk as if it were complete, older posts were never fetched and the
    source said nothing. Now the source records a possible gap."""
    mastodon.add_many(60)
    mastodon.misbehave("repeat", tag=TAG)  # strikes page 2, repeating page 1

    summary = _poll(sqlite_engine, settings)

    assert summary.gap and "already seen" in summary.gap
    assert "already seen" in (_source(sqlite_engine).possible_gap or "")
    assert len(_stored(sqlite_engine)) == 40


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_within_the_retries_is_absorbed_beyond_them_recorded(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon, status: int
) -> None:
    mastodon.add_many(5)
    mastodon.server.fail("status", times=2, status=status, path=PATH)
    assert _poll(sqlite_engine, settings).new == 5

    mastodon.add_many(5)
    mastodon.server.fail("status", times=3, status=status, path=PATH)
    failed = _poll(sqlite_engine, settings)
    assert not failed.ok and f"HTTP {status} (after 3 attempts)" in (failed.error or "")
    assert _source(sqlite_engine).last_error == failed.error


def test_429_with_a_reset_header_waits_until_that_time(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    reset = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    mastodon.server.fail(
        "status", status=429, path=PATH, headers={"X-RateLimit-Reset": reset.isoformat()}
    )

    failed = _poll(sqlite_engine, settings)

    assert not failed.ok and "rate limited until" in (failed.error or "")
    retry_at = _source(sqlite_engine).retry_at
    assert abs((retry_at - reset).total_seconds()) < 5
    assert mastodon.server.hits() == 1  # not retried: the reset is beyond what we wait


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "0"},
        {"X-RateLimit-Reset": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
        {},
    ],
    ids=["retry-after-0", "reset-already-past", "no-reset-header"],
)
def test_a_brief_429_is_retried_within_the_poll(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon, headers: dict[str, str]
) -> None:
    mastodon.add_many(4)
    mastodon.server.fail("status", times=2, status=429, path=PATH, headers=headers)
    summary = _poll(sqlite_engine, settings)
    assert summary.ok and summary.new == 4 and summary.requests == 4


def test_429_without_reset_header_past_the_retries_backs_off_a_minute(
    sqlite_engine: Engine, settings: Settings, mastodon: FakeMastodon
) -> None:
    mastodon.server.fail("status", times=3, status=429, path=PATH)
    before = datetime.now(UTC)
    failed = _poll(sqlite_engine, settings)
    assert not failed.ok and "rate limited (HTTP 429)" in (failed.error or "")
    retry_at = _source(sqlite_engine).retry_at
    assert retry_at is not None and retry_at >= before + timedelta(seconds=59)


@pytest.mark.parametrize(
    ("fault", "options", "attempts", "reason"),
    [
        ("hang", {"seconds": PAST_TIMEOUT}, 3, f"{TIMED_OUT} (after 3 attempts)"),
        ("drip", {"seconds": PAST_TIMEOUT}, 3, f"{TIMED_OUT} (after 3 attempts)"),
        ("reset", {}, 3, "connection failed (RemoteProtocolError) (after 3 attempts)"),
        # A body that is not JSON is not retried: the same server would answer it again.
        ("truncate", {}, 1, "not valid JSON"),
        ("garbage", {}, 1, "not valid JSON"),
    ],
)
def test_each_transport_fault_is_a_readable_error_and_loses_nothing(
    sqlite_engine: Engine,
    settings: Settings,
    mastodon: FakeMastodon,
    fault: str,
    options: dict[str, Any],
    attempts: int,
    reason: str,
) -> None:
    mastodon.add_many(3)
    _poll(sqlite_engine, settings)
    mastodon.add_many(50)
    # The second page fails on every attempt; the first one comes through.
    mastodon.server.fail(fault, path=PATH, after=1, **options)
    mastodon.server.fail(fault, times=attempts - 1, path=PATH, **options)

    failed = _poll(sqlite_engine, settings)
    assert not failed.ok and reason in (failed.error or "")
    assert failed.new == 40  # the first page was committed before the fault struck
    source = _source(sqlite_engine)
    assert source.failures_in_row == 1 and reason in (source.last_error or "")

    healed = _poll(sqlite_engine, settings)
    assert healed.ok and healed.new == 10
    assert _source(sqlite_engine).failures_in_row == 0
    assert _stored(sqlite_engine) == _uris(mastodon)


def test_a_drip_within_each_read_but_past_the_whole_deadline_is_cut_off(
    sqlite_engine: Engine, configure: Callable[..., Settings], mastodon: FakeMastodon
) -> None:
    """Each byte arrives within the read timeout, the whole body does not within 3x it."""
    settings = configure(
        MASTODON_INSTANCES=mastodon.url, HASHTAGS=TAG, **{**SCHEDULE_ENV, "HTTP_RETRIES": "0"}
    )
    mastodon.add_many(3)
    mastodon.server.fail("drip", path=PATH, seconds=0.05)
    failed = _poll(sqlite_engine, settings)
    assert not failed.ok and TIMED_OUT in (failed.error or "")
    assert _poll(sqlite_engine, settings).new == 3
