"""The adapter contract as tests any adapter can run against a local fake of its API.

A platform provides a :class:`Subject`: its adapter configured for the fake
(built with :func:`build`, as the registry builds it), the target to search,
the fake's server and a way to publish one matching post there. Every
``contract_*`` function here is one rule of the contract; :data:`CONTRACT_TESTS`
maps their names to them, so a test module parametrises over them
(``tests/adapters/test_contract.py`` does, for every built-in). Needs pytest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from adapters import get_adapter
from adapters.base import (
    Adapter,
    AdapterError,
    AuthFailed,
    Page,
    PlatformUnavailable,
    RateLimited,
    Target,
)
from adapters.http import HttpClient, RetryPolicy

TAG = "CEADAY21"
SINCE = datetime.now(UTC) - timedelta(days=3)


class FakeServer(Protocol):
    """What the contract needs of a fake: inject faults, count requests."""

    def fail(self, kind: str, times: int = 1, **options: object) -> None: ...

    def hits(self, path_prefix: str = "") -> int: ...


@dataclasses.dataclass
class Subject:
    """One adapter on its fake: what the contract tests drive."""

    adapter: Adapter
    target: Target
    server: FakeServer
    add: Callable[[], object]
    #: Posts that fill more than one page, or None for a platform without paging (RSS).
    page_overflow: int | None


def policy() -> RetryPolicy:
    """Retries fast enough for tests, with room for one retry after a 5xx or short 429."""
    return RetryPolicy(timeout=1, attempts=3, backoff=0.001, max_retry_after=1)


def build(name: str, config: dict[str, str]) -> Adapter:
    """The registered adapter ``name``, built as the registry builds it (own keys only)."""
    adapter_class = get_adapter(name)
    return adapter_class(adapter_class.own_config(config), HttpClient(policy()))


def first_poll(subject: Subject, *, max_pages: int = 50, cursor: str | None = None) -> list[Page]:
    """One search of the subject's target, every page read."""
    return list(subject.adapter.search(subject.target, cursor, since=SINCE, max_pages=max_pages))


def _ids(pages: list[Page]) -> list[str]:
    return [post.external_id for page in pages for post in page.posts]


def _stored_cursor(pages: list[Page], before: str | None = None) -> str | None:
    """The cursor monitor would store after committing every page (the last one set)."""
    for page in pages:
        before = page.cursor if page.cursor is not None else before
    return before


def contract_first_poll_yields_each_post_once_with_a_cursor(subject: Subject) -> None:
    for _ in range(3):
        subject.add()
    pages = first_poll(subject)
    assert len(_ids(pages)) == 3 == len(set(_ids(pages)))
    assert pages[-1].cursor is not None


def contract_cursor_round_trip_yields_what_is_new(subject: Subject) -> None:
    """From a stored cursor a poll yields the new post; an overlap may repeat seen ones."""
    subject.add()
    first = first_poll(subject)
    cursor = _stored_cursor(first)
    assert cursor is not None
    subject.add()
    again = first_poll(subject, cursor=cursor)
    new = set(_ids(again)) - set(_ids(first))
    assert len(new) == 1, _ids(again)
    assert _stored_cursor(again, cursor) is not None


def contract_an_unreadable_cursor_is_not_a_crash(subject: Subject) -> None:
    subject.add()
    pages = first_poll(subject, cursor='{"v": 999, garbage')
    assert len(_ids(pages)) == 1 and _stored_cursor(pages) is not None


def contract_the_page_budget_is_kept_and_says_so(subject: Subject) -> None:
    if subject.page_overflow is None:
        pytest.skip("the platform has no paging: one document per poll")
    for _ in range(subject.page_overflow):
        subject.add()
    pages = first_poll(subject, max_pages=1)
    assert len(pages) == 1
    # Either the walk says what it could not reach, or its cursor resumes the walk.
    assert pages[0].gap is not None or pages[0].cursor is not None
    budget_hits = subject.server.hits()
    assert budget_hits <= 3, "one page may cost a token or a lookup, never a second page"


def contract_a_5xx_is_retried(subject: Subject) -> None:
    subject.add()
    subject.server.fail("status", status=503)
    assert len(_ids(first_poll(subject))) == 1


def contract_a_persistent_5xx_is_unavailable_naming_the_status(subject: Subject) -> None:
    subject.add()
    subject.server.fail("status", times=20, status=502)
    with pytest.raises(PlatformUnavailable, match="HTTP 502"):
        first_poll(subject)


def contract_a_hanging_server_is_retried(subject: Subject) -> None:
    subject.add()
    subject.server.fail("hang", seconds=1.2)  # past the policy's one-second timeout
    assert len(_ids(first_poll(subject))) == 1


def contract_a_short_429_is_waited_for_and_a_long_one_raises(subject: Subject) -> None:
    subject.add()
    subject.server.fail("status", status=429, headers={"Retry-After": "0"})
    assert len(_ids(first_poll(subject))) == 1
    subject.server.fail("status", times=20, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimited) as caught:
        first_poll(subject)
    assert caught.value.retry_at is not None


def contract_refused_credentials_are_auth_failed(subject: Subject) -> None:
    subject.add()
    subject.server.fail("status", times=20, status=401)
    with pytest.raises(AuthFailed) as caught:
        first_poll(subject)
    assert "\n" not in str(caught.value)


def contract_errors_are_adapter_errors_with_one_line(subject: Subject) -> None:
    subject.server.fail("garbage", times=20)
    with pytest.raises(AdapterError) as caught:
        first_poll(subject)
    assert "\n" not in str(caught.value)


CONTRACT_TESTS: dict[str, Callable[[Subject], None]] = {
    name.removeprefix("contract_"): test
    for name, test in sorted(globals().items())
    if name.startswith("contract_") and callable(test)
}
