"""The shared machinery of adapters/paging.py: what every platform's walk relies on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import (
    Author,
    Batch,
    CredentialCache,
    CursorTime,
    FetchedPost,
    JsonCursor,
    MalformedResponse,
    RateLimited,
    UnreadableRecord,
    WindowCursor,
    carrying,
    json_records,
    normalise_each,
    normalise_one,
    split_refs,
    stop_if_spent,
    walk_newest_first,
)

NOW = datetime(2021, 3, 18, 12, tzinfo=UTC)


def _read(record: dict[str, str]) -> str:
    if "id" not in record:
        raise UnreadableRecord("no id")
    return record["id"]


def test_normalise_each_skips_unreadable_records_with_a_reason() -> None:
    posts, skipped = normalise_each(
        [{"id": "1"}, {}, {"id": "3"}], _read, lambda r: f"record {r.get('id', '?')}"
    )
    assert posts == ("1", "3") and skipped == ("record ?: no id",)


def test_a_bug_raising_value_error_is_not_counted_as_a_skipped_record() -> None:
    def buggy(record: dict[str, str]) -> str:
        return str(int(record["id"]))

    with pytest.raises(ValueError):
        normalise_each([{"id": "x"}], buggy, lambda r: "record")


class _Cursor(JsonCursor):
    newest: str
    seen: tuple[str, ...] = ()


def test_cursor_round_trip_and_unreadable_values() -> None:
    cursor = _Cursor(newest="42", seen=("a", "b"))
    assert _Cursor.load(cursor.dump()) == cursor
    for raw in (None, "", "not json", "[]", '{"seen": []}', '{"newest": {"x": 1}}'):
        assert _Cursor.load(raw) is None


def test_a_cursor_too_large_for_its_column_is_refused() -> None:
    with pytest.raises(OverflowError, match="the column holds 600"):
        _Cursor(newest="1", seen=tuple(str(n) for n in range(200))).dump()


class _Window(WindowCursor[CursorTime]):
    pass


def test_a_window_cursor_needs_its_newest_bound_and_a_whole_non_empty_window() -> None:
    hour = timedelta(hours=1)
    window = _Window(newest=NOW, lower=NOW - 2 * hour, upper=NOW - hour)
    assert _Window.load(window.dump()) == window
    assert _Window.load('{"lower": "2021-03-18T10:00:00Z"}') is None  # no newest: unreadable
    half = _Window(newest=NOW, lower=NOW - hour)
    empty = _Window(newest=NOW, lower=NOW - hour, upper=NOW - hour)
    assert (half.lower, half.upper) == (empty.lower, empty.upper) == (None, None)


def _pages(*batches: Batch[str, int]) -> list[Batch[str, int]]:
    return list(batches)


def _fetcher(
    batches: list[Batch[str, int]], asked: list[int | None]
) -> Callable[[int | None], Batch[str, int]]:
    def fetch(position: int | None) -> Batch[str, int]:
        asked.append(position)
        return batches[position or 0]

    return fetch


def _batch(ids: tuple[str, ...], nxt: int | None, hours_ago: float = 1) -> Batch[str, int]:
    return Batch(ids, (), ids, nxt, NOW - timedelta(hours=hours_ago))


def _newest(ids: Sequence[str]) -> str | None:
    return max(ids, key=int, default=None)


def test_the_cursor_lands_on_the_last_page_only() -> None:
    asked: list[int | None] = []
    batches = _pages(_batch(("9", "8"), 1), _batch(("7", "6"), 2), _batch(("5",), None))
    pages = list(
        walk_newest_first(
            _fetcher(batches, asked),
            until=NOW - timedelta(days=1),
            max_pages=10,
            last_cursor=_newest,
        )
    )
    assert [p.cursor for p in pages] == [None, None, "9"]
    assert [p.gap for p in pages] == [None, None, None] and asked == [None, 1, 2]


def test_the_walk_stops_at_the_time_and_at_the_budget() -> None:
    old = _pages(_batch(("9",), 1), _batch(("8",), 2, hours_ago=48), _batch(("7",), None))
    assert (
        len(
            list(
                walk_newest_first(
                    _fetcher(old, []),
                    until=NOW - timedelta(days=1),
                    max_pages=10,
                    last_cursor=_newest,
                )
            )
        )
        == 2
    )
    endless = _pages(*(_batch((str(100 - n),), n + 1) for n in range(5)))
    pages = list(
        walk_newest_first(
            _fetcher(endless, []), until=NOW - timedelta(days=1), max_pages=2, last_cursor=_newest
        )
    )
    assert [p.cursor for p in pages] == [None, "100"]
    assert pages[-1].gap and "stopped after 2 pages" in pages[-1].gap


def test_a_looping_server_ends_the_walk_with_a_gap() -> None:
    looping = _pages(_batch(("9", "8"), 1), _batch(("9", "8"), 1))
    pages = list(
        walk_newest_first(
            _fetcher(looping, []), until=NOW - timedelta(days=1), max_pages=50, last_cursor=_newest
        )
    )
    assert len(pages) == 2 and pages[-1].cursor == "9"
    assert pages[-1].gap and "already seen" in pages[-1].gap


def test_a_resumable_walk_puts_a_position_on_every_page() -> None:
    batches = _pages(_batch(("9", "8"), 1), _batch(("7",), None))
    pages = list(
        walk_newest_first(
            _fetcher(batches, []),
            until=NOW - timedelta(days=1),
            max_pages=5,
            last_cursor=_newest,
            page_cursor=lambda b: min(b.ids, key=int),
        )
    )
    assert [p.cursor for p in pages] == ["8", "7"]


def test_a_credential_is_cached_renewed_when_due_and_once_on_401() -> None:
    clock = [0.0]
    issued: list[str] = []

    def fetch() -> tuple[str, float]:
        issued.append(f"token-{len(issued)}")
        return issued[-1], 100.0

    cache: CredentialCache[str] = CredentialCache(clock=lambda: clock[0])
    assert cache.get("k", fetch) == cache.get("k", fetch) == "token-0"
    clock[0] = 101
    assert cache.get("k", fetch) == "token-1"

    answers = iter([None, "ok"])
    assert cache.renewing_once("k", fetch, lambda _t: next(answers), lambda: RuntimeError()) == "ok"
    assert issued == ["token-0", "token-1", "token-2"]

    with pytest.raises(PermissionError, match="refused twice"):
        cache.renewing_once("k", fetch, lambda _t: None, lambda: PermissionError("refused twice"))
    assert issued[-1] == "token-3"  # the cached one, then one fresh one, then give up


def test_a_refused_credential_is_renewed_before_it_is_fetched_again() -> None:
    """A refresh token renews a session without a new login; a refused refresh logs in."""
    logins: list[str] = []
    renewals: list[str] = []

    def login() -> tuple[str, float]:
        logins.append(f"login-{len(logins)}")
        return logins[-1], float("inf")

    def refresh(stale: str) -> tuple[str, float] | None:
        renewals.append(stale)
        return (f"{stale}+renewed", float("inf")) if len(renewals) == 1 else None

    cache: CredentialCache[str] = CredentialCache()
    sent: list[str] = []

    def send(credential: str) -> str | None:
        sent.append(credential)
        return None if len(sent) in (1, 3) else credential

    assert cache.renewing_once("k", login, send, RuntimeError, renew=refresh) == "login-0+renewed"
    assert cache.renewing_once("k", login, send, RuntimeError, renew=refresh) == "login-1"
    assert logins == ["login-0", "login-1"] and renewals == ["login-0", "login-0+renewed"]


def test_a_renewal_that_fails_keeps_the_stale_credential_for_the_next_try() -> None:
    cache: CredentialCache[str] = CredentialCache()
    assert cache.get("k", lambda: ("old", 100.0)) == "old"

    def down(_stale: str) -> tuple[str, float] | None:
        raise ConnectionError("the platform is down")

    with pytest.raises(ConnectionError):
        cache.replace("k", "old", lambda: ("new", 100.0), down)
    assert cache.get("k", lambda: ("unused", 100.0)) == "old"
    # Another thread already replaced the refused one: its credential is used, none fetched.
    assert cache.replace("k", "older", lambda: ("unused", 100.0)) == "old"


class _Trimmed(JsonCursor):
    newest: str
    seen: tuple[str, ...] = ()

    def shrunk(self) -> _Trimmed | None:
        return self.model_copy(update={"seen": self.seen[:-1]}) if self.seen else None


def test_a_cursor_that_can_shrink_drops_its_oldest_ids_to_fit() -> None:
    seen = tuple(f"{n:04d}" for n in range(200))
    text = _Trimmed(newest="1", seen=seen).dump()
    loaded = _Trimmed.load(text)
    assert len(text) <= 600 and loaded is not None
    assert loaded.seen == seen[: len(loaded.seen)] and 80 < len(loaded.seen) < 200


class _Timed(JsonCursor):
    newest: CursorTime
    window: CursorTime = None


def test_a_cursor_time_that_cannot_be_read_is_none_not_a_lost_cursor() -> None:
    loaded = _Timed.load('{"newest": "2021-03-18T12:00:00Z", "window": "yesterday"}')
    assert loaded == _Timed(newest=NOW, window=None)
    assert _Timed.load('{"newest": "2021-03-18T12:00:00"}') == _Timed(newest=NOW)  # UTC


def test_a_page_carries_its_fetch_note_and_a_spent_window_ends_the_walk() -> None:
    spent = NOW + timedelta(minutes=15)
    batches = _pages(
        Batch(("9",), (), ("9",), 1, note="the server refused its own cursor"),
        Batch(("8",), (), ("8",), 2, retry_at=spent),
        _batch(("7",), None),
    )
    pages = list(walk_newest_first(_fetcher(batches, []), until=None, max_pages=10))
    assert [p.gap for p in pages] == ["the server refused its own cursor", None]
    assert [p.cursor for p in pages] == [None, None]  # neither callable: the caller's to build
    assert [(p.finished, p.last) for p in pages] == [(False, False), (False, True)]
    assert pages[-1].batch.retry_at == spent


def test_a_spent_window_raises_after_its_page_unless_the_walk_had_finished() -> None:
    spent = NOW + timedelta(minutes=15)
    [open_page] = walk_newest_first(
        _fetcher([Batch(("9",), (), ("9",), 1, retry_at=spent)], []), until=None, max_pages=5
    )
    with pytest.raises(RateLimited, match="x: search requests spent until 12:15:00 UTC; later"):
        stop_if_spent(open_page, "x: search requests", "later")
    assert open_page.batch.retry_at == spent and open_page.last
    [done] = walk_newest_first(
        _fetcher([Batch(("9",), (), ("9",), None, retry_at=spent)], []), until=None, max_pages=5
    )
    stop_if_spent(done, "x: search requests", "later")  # nothing left to read: no error


# --- what every platform applies to what it read ---------------------------------


def _tagged(external_id: str, *hashtags: str) -> FetchedPost:
    return FetchedPost(
        platform="toy",
        external_id=external_id,
        url=f"https://toy.example/{external_id}",
        author=Author(handle="@toy", name="Toy"),
        text="",
        html="",
        created_at=NOW,
        hashtags=hashtags,
    )


def test_carrying_keeps_posts_with_the_tag_itself_once_each() -> None:
    posts = [_tagged("1", "ceaday21x"), _tagged("2", "ceaday21"), _tagged("2", "ceaday21")]
    kept = carrying(posts, ["#CEADAY21"])
    assert [post.external_id for post in kept] == ["2"]


def test_split_refs_reports_each_ref_of_the_wrong_shape_once() -> None:
    valid, skipped = split_refs(["1", "x", "1", "", "x"], str.isdigit, lambda r: f"{r!r} no")
    assert valid == ["1"] and skipped == ("'x' no",)


def test_normalise_one_answers_the_post_or_the_reason() -> None:
    assert normalise_one({"id": "1"}, _read, lambda r: "record") == ("1", None)
    assert normalise_one({}, _read, lambda r: "record") == (None, "record: no id")


def test_json_records_drops_non_objects_and_refuses_a_missing_list() -> None:
    assert json_records({"data": [{"id": 1}, 2, "x"]}, "data", "no list") == [{"id": 1}]
    for body in ({"data": {}}, [], None):
        with pytest.raises(MalformedResponse, match="^no list$"):
            json_records(body, "data", "no list")


def test_a_credential_key_holds_a_digest_never_the_secret() -> None:
    key = CredentialCache.key("https://api.example", "me", secret="hunter22")
    assert key[:2] == ("https://api.example", "me") and "hunter22" not in "".join(key)
    assert key != CredentialCache.key("https://api.example", "me", secret="changed")
