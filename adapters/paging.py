"""The machinery every adapter shares, so a platform module holds only its own logic.

* :class:`UnreadableRecord` and :func:`normalise_each`: a record the platform
  sent that cannot be read is skipped with a reason; any other exception (a
  bug) still propagates instead of being counted as a skipped record.
* :class:`JsonCursor`: a stored cursor as a pydantic model, dumped compactly,
  checked against the column size, and ``None`` when a stored value cannot be read.
* :func:`walk_newest_first`: the walk from the newest result back to a time,
  with a page budget, loop detection and the wording of its gaps; the cursor
  is set on the last page only (or on every page when the API can resume).
* :class:`CredentialCache`: a short-lived token or session kept for the process,
  renewed when it runs out, and renewed once when the platform answers 401.

``adapters.base`` re-exports all of these.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import ClassVar, Generic, Self, TypeVar

import pydantic

R = TypeVar("R")
P = TypeVar("P")
T = TypeVar("T")
Post = TypeVar("Post")

#: Stored cursors live in a 600-character column.
CURSOR_MAX_CHARS = 600


class UnreadableRecord(Exception):
    """One record cannot be normalised (no id, no date...); the message says why."""


def normalise_each(
    records: Iterable[R], normalise: Callable[[R], Post], label: Callable[[R], str]
) -> tuple[tuple[Post, ...], tuple[str, ...]]:
    """Every readable record normalised, and ``"<label>: <reason>"`` for each other one."""
    posts: list[Post] = []
    skipped: list[str] = []
    for record in records:
        try:
            posts.append(normalise(record))
        except UnreadableRecord as exc:
            skipped.append(f"{label(record)}: {exc}")
    return tuple(posts), tuple(skipped)


class JsonCursor(pydantic.BaseModel):
    """Base of every adapter's cursor: compact JSON that must fit the cursor column."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    max_chars: ClassVar[int] = CURSOR_MAX_CHARS

    def dump(self) -> str:
        """The stored form; a cursor that cannot fit the column is a bug, not data."""
        text = self.model_dump_json(exclude_none=True)
        if len(text) > self.max_chars:
            raise OverflowError(
                f"{type(self).__name__} is {len(text)} characters; the column holds"
                f" {self.max_chars}"
            )
        return text

    @classmethod
    def load(cls, raw: str | None) -> Self | None:
        """The cursor stored as ``raw``, or None when it is missing or unreadable."""
        if not raw:
            return None
        try:
            return cls.model_validate_json(raw)
        except pydantic.ValidationError:
            return None


@dataclasses.dataclass(frozen=True, slots=True)
class Batch(Generic[Post, P]):
    """One page fetched by a walk: its posts, the ids it listed, and where to go next.

    ``ids`` are every record id on the page (readable or not), for loop
    detection and cursors; ``next`` is the position of the following (older)
    page, or None at the end; ``oldest`` is the oldest post time on the page.
    """

    posts: tuple[Post, ...]
    skipped: tuple[str, ...]
    ids: tuple[str, ...]
    next: P | None
    oldest: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WalkPage(Generic[Post]):
    """A page of a walk with the cursor and gap the walk decided for it."""

    posts: tuple[Post, ...]
    skipped: tuple[str, ...]
    cursor: str | None
    gap: str | None = None


def walk_newest_first(
    fetch: Callable[[P | None], Batch[Post, P]],
    *,
    until: datetime,
    max_pages: int,
    last_cursor: Callable[[Sequence[str]], str | None],
    page_cursor: Callable[[Batch[Post, P]], str | None] | None = None,
) -> Iterator[WalkPage[Post]]:
    """Page from the newest result back to ``until``; ``fetch(None)`` reads the first page.

    The walk ends at the end of the results, at a page older than ``until``, at
    an empty page, or at a page holding only ids already seen (a server looping
    on its pagination, said in the gap). Without ``page_cursor`` the cursor is
    ``last_cursor(every id seen, newest page first)``, on the last page only: an
    earlier page's cursor would skip what the walk had not reached yet. With
    ``page_cursor`` every page carries its own resumable position instead.
    After ``max_pages`` a walk that could not finish says so in its gap.
    """
    seen: dict[str, None] = {}
    position: P | None = None
    for number in range(1, max_pages + 1):
        batch = fetch(position)
        fresh = [record_id for record_id in batch.ids if record_id not in seen]
        seen.update(dict.fromkeys(batch.ids))
        looped = bool(batch.ids) and not fresh
        reached = batch.oldest is not None and batch.oldest < until
        finished = not fresh or batch.next is None or reached
        last = finished or number == max_pages
        if page_cursor is not None:
            yield WalkPage(batch.posts, batch.skipped, page_cursor(batch))
        elif not last:
            yield WalkPage(batch.posts, batch.skipped, None)
        else:
            gap = None
            if looped:
                gap = (
                    "the server answered a page already seen before reaching"
                    f" {until:%Y-%m-%d %H:%M} UTC; older posts may be missing"
                )
            elif not finished:
                gap = f"stopped after {max_pages} pages before reaching {until:%Y-%m-%d %H:%M} UTC"
            yield WalkPage(batch.posts, batch.skipped, last_cursor(list(seen)), gap)
        if last:
            return
        position = batch.next


class CredentialCache(Generic[T]):
    """Short-lived credentials (tokens, sessions) by key, shared by every adapter instance.

    Adapters are rebuilt every polling cycle while a token lives for hours, so
    the cache belongs to the process. ``fetch`` returns the credential and how
    many seconds to use it for; ``clock`` is monotonic seconds (tests move it).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[Hashable, tuple[T, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, fetch: Callable[[], tuple[T, float]]) -> T:
        """The cached credential, fetched again once its time is up."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] > self._clock():
                return entry[0]
            value, lifetime = fetch()
            self._entries[key] = (value, self._clock() + lifetime)
            return value

    def forget(self, key: Hashable, value: T) -> None:
        """Drop ``value`` (refused by the platform), unless another thread replaced it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == value:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def renewing_once(
        self,
        key: Hashable,
        fetch: Callable[[], tuple[T, float]],
        send: Callable[[T], R | None],
        refused: Callable[[], Exception],
    ) -> R:
        """``send(credential)``; when it answers None (a 401), renew once and send again.

        A second refusal of a freshly fetched credential raises ``refused()``.
        """
        for _ in range(2):
            credential = self.get(key, fetch)
            answer = send(credential)
            if answer is not None:
                return answer
            self.forget(key, credential)
        raise refused()
