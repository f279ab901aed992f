"""The machinery every adapter shares, so a platform module holds only its own logic.

* :class:`UnreadableRecord` and :func:`normalise_each`: a record the platform
  sent that cannot be read is skipped with a reason; any other exception (a
  bug) still propagates instead of being counted as a skipped record.
* :class:`JsonCursor`: a stored cursor as a pydantic model, dumped compactly,
  shrunk (by a subclass's :meth:`JsonCursor.shrunk`) or refused when it would
  not fit the column, and ``None`` when a stored value cannot be read.
* :func:`walk_newest_first`: the walk from the newest result back to a time,
  with a page budget, loop detection and the wording of its gaps; the cursor
  is set on the last page only, on every page when the API can resume, or
  left to the platform, which reads each page's ``finished`` and ``batch``.
* :class:`WindowCursor`: the cursor of a search bounded on both sides (ids or
  times), which :class:`adapters.base.WindowedSearch` walks.
* :class:`CredentialCache`: a short-lived token or session kept for the process,
  renewed when it runs out, and renewed once when the platform answers 401.
* :func:`carrying`, :func:`normalise_one` and :func:`split_refs`: the filtering
  every platform applies to what it read (a search matches words, not tags; a
  ref that is not the platform's shape is reported, never sent).

``adapters.base`` re-exports all of these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Annotated, ClassVar, Generic, Protocol, Self, TypeVar

import pydantic

from adapters.text import normalise_tag, parse_time

R = TypeVar("R")
P = TypeVar("P")
T = TypeVar("T")
Post = TypeVar("Post")

#: Stored cursors live in a 600-character column.
CURSOR_MAX_CHARS = 600
#: The gap of a walk whose stored cursor could not be read and restarted from ``since``.
LOST_CURSOR = (
    "the stored cursor was unreadable, so the walk restarted from the look-back horizon;"
    " posts from before it since the last good poll may be missing"
)


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


def normalise_one(
    record: R, normalise: Callable[[R], Post], label: Callable[[R], str]
) -> tuple[Post | None, str | None]:
    """One record normalised, or ``(None, "<label>: <reason>")`` when it cannot be read."""
    posts, skipped = normalise_each([record], normalise, label)
    return (posts[0] if posts else None), (skipped[0] if skipped else None)


class Tagged(Protocol):
    """What :func:`carrying` reads of a post."""

    @property
    def external_id(self) -> str: ...

    @property
    def hashtags(self) -> tuple[str, ...]: ...


Carrier = TypeVar("Carrier", bound=Tagged)


def carrying(posts: Iterable[Carrier], hashtags: Iterable[str]) -> tuple[Carrier, ...]:
    """The posts that really carry one of ``hashtags``, once per external id, in order.

    Platform searches match words (and ``#tagX`` for ``#tag``), so what a
    search answers is filtered on the tags the post itself carries.
    """
    wanted = {normalise_tag(tag) for tag in hashtags}
    kept = {post.external_id: post for post in posts if wanted.intersection(post.hashtags)}
    return tuple(kept.values())


def split_refs(
    refs: Iterable[str], valid: Callable[[str], object], reason: Callable[[str], str]
) -> tuple[list[str], tuple[str, ...]]:
    """Refs of the platform's shape (each once), and a reason for every other one but ""."""
    wanted = [ref for ref in dict.fromkeys(refs) if ref]
    return [r for r in wanted if valid(r)], tuple(reason(r) for r in wanted if not valid(r))


def _time_or_none(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    return parse_time(value)


#: A time in a stored cursor (ISO 8601 with its zone); a value that is not one reads as
#: None, so a cursor can drop the part it cannot read instead of the whole cursor.
CursorTime = Annotated[datetime | None, pydantic.BeforeValidator(_time_or_none)]


class JsonCursor(pydantic.BaseModel):
    """Base of every adapter's cursor: compact JSON that must fit the cursor column."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    max_chars: ClassVar[int] = CURSOR_MAX_CHARS

    def shrunk(self) -> Self | None:
        """The same position holding less (the oldest remembered id dropped), or None.

        A cursor that remembers ids only to spare re-reading them overrides this,
        so a long list is trimmed to fit the column instead of failing.
        """
        return None

    def dump(self) -> str:
        """The stored form; a cursor that cannot fit the column is a bug, not data."""
        cursor = self
        while True:
            text = cursor.model_dump_json(exclude_none=True, by_alias=True)
            if len(text) <= self.max_chars:
                return text
            smaller = cursor.shrunk()
            if smaller is None:
                raise OverflowError(
                    f"{type(self).__name__} is {len(text)} characters; the column holds"
                    f" {self.max_chars}"
                )
            cursor = smaller

    @classmethod
    def load(cls, raw: str | None) -> Self | None:
        """The cursor stored as ``raw``, or None when it is missing or unreadable."""
        if not raw:
            return None
        try:
            return cls.model_validate_json(raw)
        except pydantic.ValidationError:
            return None


Bound = TypeVar("Bound")


class WindowCursor(JsonCursor, Generic[Bound]):
    """Where a windowed search stands: read up to ``newest``; ``[lower, upper)`` still to walk.

    ``newest`` is the bound a new walk starts from (the newest post stored, or
    before any, the time to search from): without it the cursor is unreadable. A
    half-stored or empty window is no window.
    """

    v: int = 1
    newest: Bound | None = None
    lower: Bound | None = None
    upper: Bound | None = None

    @pydantic.model_validator(mode="after")
    def _window_or_none(self) -> Self:
        if self.newest is None:
            raise ValueError("no newest bound")
        lower, upper = self.lower, self.upper
        empty = isinstance(lower, datetime) and isinstance(upper, datetime) and lower >= upper
        if lower is None or upper is None or empty:
            object.__setattr__(self, "lower", None)
            object.__setattr__(self, "upper", None)
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class Batch(Generic[Post, P]):
    """One page fetched by a walk: its posts, the ids it listed, and where to go next.

    ``ids`` are every record id on the page (readable or not), for loop
    detection and cursors; ``next`` is the position of the following (older)
    page, or None at the end. ``oldest`` is how far back in time the page shows
    the listing has been read (its oldest post; for a listing in no order, its
    newest), which ends the walk once older than ``until``; ``newest`` is its
    newest record time. ``note`` is what the fetch had to give up to carry on
    (a position the platform refused), for the page's gap; ``retry_at`` says
    the platform's request window is spent, so the walk ends after this page.
    """

    posts: tuple[Post, ...]
    skipped: tuple[str, ...]
    ids: tuple[str, ...]
    next: P | None
    oldest: datetime | None = None
    newest: datetime | None = None
    note: str | None = None
    retry_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WalkPage(Generic[Post, P]):
    """A page of a walk with the cursor and gap the walk decided for it.

    ``finished`` says the walk reached its end (the last result, ``until``, or a
    server repeating a page), not its page budget or a spent request window;
    ``last`` says no page follows.
    """

    batch: Batch[Post, P]
    cursor: str | None
    gap: str | None = None
    finished: bool = False
    last: bool = False

    @property
    def posts(self) -> tuple[Post, ...]:
        return self.batch.posts

    @property
    def skipped(self) -> tuple[str, ...]:
        return self.batch.skipped


def walk_newest_first(
    fetch: Callable[[P | None], Batch[Post, P]],
    *,
    until: datetime | None,
    max_pages: int,
    last_cursor: Callable[[Sequence[str]], str | None] | None = None,
    page_cursor: Callable[[Batch[Post, P]], str | None] | None = None,
) -> Iterator[WalkPage[Post, P]]:
    """Page from the newest result back to ``until``; ``fetch(None)`` reads the first page.

    The walk ends at the end of the results, at a page older than ``until``, at
    an empty page, at a page holding only ids already seen (a server looping on
    its pagination), after ``max_pages``, or after a page whose ``retry_at`` is
    set. With ``last_cursor`` the cursor is ``last_cursor(every id seen, newest
    page first)``, on the last page only (an earlier page's cursor would skip
    what the walk had not reached yet), and that page's gap says what a walk
    that cannot resume missed. With ``page_cursor`` every page carries its own
    resumable position instead; with neither, the cursor is the caller's to
    build. A page's gap starts with its batch's ``note``.
    """
    seen: dict[str, None] = {}
    position: P | None = None
    for number in range(1, max_pages + 1):
        batch = fetch(position)
        fresh = [record_id for record_id in batch.ids if record_id not in seen]
        seen.update(dict.fromkeys(batch.ids))
        reached = until is not None and batch.oldest is not None and batch.oldest < until
        finished = not fresh or batch.next is None or reached
        last = finished or number == max_pages or batch.retry_at is not None
        cursor = gap = None
        if page_cursor is not None:
            cursor = page_cursor(batch)
        elif last and last_cursor is not None:
            cursor = last_cursor(list(seen))
            looped = bool(batch.ids) and not fresh
            out_of_pages = not finished and number == max_pages
            gap = _walk_gap(looped, out_of_pages, until, max_pages)
        notes = [note for note in (batch.note, gap) if note]
        yield WalkPage(batch, cursor, "; ".join(notes) or None, finished, last)
        if last:
            return
        position = batch.next


def _walk_gap(
    looped: bool, out_of_pages: bool, until: datetime | None, max_pages: int
) -> str | None:
    """What the last page of a walk that cannot resume says it missed, if anything."""
    reaching = f" before reaching {until:%Y-%m-%d %H:%M} UTC" if until is not None else ""
    if looped:
        return f"the server answered a page already seen{reaching}; older posts may be missing"
    if out_of_pages:
        return f"stopped after {max_pages} pages{reaching}"
    return None


class CredentialCache(Generic[T]):
    """Short-lived credentials (tokens, sessions) by key, shared by every adapter instance.

    Adapters are rebuilt every polling cycle while a token lives for hours, so
    the cache belongs to the process. ``fetch`` returns the credential and how
    many seconds to use it for; ``clock`` is monotonic seconds (tests move it).
    The lock is held while fetching, so concurrent targets never log in twice.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[Hashable, tuple[T, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(*parts: str, secret: str) -> tuple[str, ...]:
        """A key naming whose credential it is: ``parts`` and a digest of ``secret``.

        A changed secret is a new key (it logs in at once); the secret itself is
        never kept in the key.
        """
        return (*parts, hashlib.sha256(secret.encode()).hexdigest())

    def get(self, key: Hashable, fetch: Callable[[], tuple[T, float]]) -> T:
        """The cached credential, fetched again once its time is up."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] > self._clock():
                return entry[0]
            value, lifetime = fetch()
            self._entries[key] = (value, self._clock() + lifetime)
            return value

    def replace(
        self,
        key: Hashable,
        stale: T,
        fetch: Callable[[], tuple[T, float]],
        renew: Callable[[T], tuple[T, float] | None] | None = None,
    ) -> T:
        """A credential in place of ``stale`` (refused): ``renew(stale)`` if given, else fetched.

        When another thread replaced ``stale`` meanwhile its credential is
        used; when ``renew`` raises (the platform is down) ``stale`` stays for
        the next try; when it answers None the credential is fetched anew.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] != stale and entry[1] > self._clock():
                return entry[0]
            renewed = renew(stale) if renew is not None else None
            if renewed is None:
                self._entries.pop(key, None)
                renewed = fetch()
            self._entries[key] = (renewed[0], self._clock() + renewed[1])
            return renewed[0]

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
        renew: Callable[[T], tuple[T, float] | None] | None = None,
    ) -> R:
        """``send(credential)``; when it answers None (a 401), renew once and send again.

        ``renew`` turns a refused credential into a new one without logging in
        again (a refresh token), answering None when it cannot; a second
        refusal of a freshly renewed credential raises ``refused()``.
        """
        credential = self.get(key, fetch)
        answer = send(credential)
        if answer is not None:
            return answer
        credential = self.replace(key, credential, fetch, renew)
        answer = send(credential)
        if answer is not None:
            return answer
        self.forget(key, credential)
        raise refused()
