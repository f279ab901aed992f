"""The adapter contract: what every platform module implements and returns.

An adapter turns one platform's API into normalised records. It never touches
the database, the scheduler or the CLI: ``monitor`` owns storage, cursors and
scheduling, and decides what a page means for the source's health.

Errors an adapter raises (all are ``AdapterError``)::

    AdapterError
    ├── ConfigError          credentials or settings missing / malformed
    ├── AuthFailed           the platform refused the credentials
    ├── RateLimited          429 or quota exhausted; carries ``retry_at``
    ├── PlatformUnavailable  5xx, timeouts, connection errors after retries
    ├── RequestRejected      another 4xx, e.g. a cursor the server no longer accepts
    └── MalformedResponse    a body that is not the JSON the API documents
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast

import httpx
import typing_extensions

from adapters.paging import (
    LOST_CURSOR,
    Batch,
    CredentialCache,
    CursorTime,
    JsonCursor,
    UnreadableRecord,
    WalkPage,
    WindowCursor,
    carrying,
    normalise_each,
    normalise_one,
    split_refs,
    walk_newest_first,
)

__all__ = [
    "LOST_CURSOR",
    "Batch",
    "CredentialCache",
    "CursorTime",
    "JsonCursor",
    "UnreadableRecord",
    "WalkPage",
    "carrying",
    "WindowCursor",
    "WindowedSearch",
    "normalise_each",
    "normalise_one",
    "split_refs",
    "stop_if_spent",
    "walk_newest_first",
]

if TYPE_CHECKING:
    from adapters.http import HttpClient
    from adapters.settings import AdapterSettings

MediaKind = Literal["image", "video", "gif", "audio"]
R = TypeVar("R")
#: An adapter's declared settings; a bare ``Adapter`` declares none it can name.
S = typing_extensions.TypeVar(
    "S", bound="AdapterSettings | None", default="AdapterSettings | None", covariant=True
)


class AdapterError(Exception):
    """Base of every error an adapter may raise; the message is shown to people."""


class ConfigError(AdapterError):
    """The adapter's configuration is missing or malformed; the source stays disabled."""


class AuthFailed(AdapterError):
    """The platform refused our credentials (401/403); ``status`` says which, if known."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(AdapterError):
    """The platform asked us to slow down for longer than we are willing to wait."""

    def __init__(self, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class PlatformUnavailable(AdapterError):
    """The platform kept failing (5xx, timeouts, resets) after our retries."""


class RequestRejected(AdapterError):
    """The platform refused the request itself (a 4xx other than 401, 403 and 429)."""


class MalformedResponse(AdapterError):
    """The platform answered with something that is not the documented JSON."""


def json_records(body: Any, field: str, malformed: str) -> list[dict[str, Any]]:
    """The objects listed in ``body[field]`` (anything else in the list is dropped).

    A body that is not an object holding that list is MalformedResponse(``malformed``):
    the platform answered something other than what its API documents.
    """
    listed = body.get(field) if isinstance(body, dict) else None
    if not isinstance(listed, list):
        raise MalformedResponse(malformed)
    return [item for item in listed if isinstance(item, dict)]


def stop_if_spent(page: WalkPage[Any, Any], spent: str, advice: str) -> None:
    """End a walk whose request window is spent, once its page was handed over.

    ``spent`` names what ran out ("x: search requests"); ``advice`` says what
    happens next. A walk that had finished anyway ends quietly.
    """
    retry_at = page.batch.retry_at
    if retry_at is not None and not page.finished:
        raise RateLimited(
            f"{spent} spent until {retry_at:%H:%M:%S} UTC; {advice}", retry_at=retry_at
        )


def http_base(value: str) -> str:
    """``value`` without a trailing slash; ValueError unless it is http(s) with a host."""
    url = httpx.URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an http(s) base URL")
    return value.rstrip("/")


def checked_base_url(key: str, value: str) -> str:
    """``value`` without a trailing slash, or ConfigError naming ``key`` if not http(s)."""
    try:
        return http_base(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Author:
    handle: str
    name: str
    url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Media:
    kind: MediaKind
    url: str
    alt: str | None = None
    preview_url: str | None = None
    sensitive: bool = False
    width: int | None = None
    height: int | None = None
    #: Platforms such as Instagram sign media URLs that stop working after a while.
    expires_at: datetime | None = None
    #: Stable identity of the attachment when its URL is not stable (signed CDN URLs).
    key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Engagement:
    """Counts as the platform reports them; ``None`` means the platform does not say."""

    likes: int | None = None
    shares: int | None = None
    replies: int | None = None
    quotes: int | None = None
    views: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FetchedPost:
    """One post, normalised. Times are timezone-aware UTC; text is plain, html is sanitised."""

    platform: str
    external_id: str
    url: str
    author: Author
    text: str
    html: str
    created_at: datetime
    hashtags: tuple[str, ...]
    media: tuple[Media, ...] = ()
    engagement: Engagement = Engagement()
    sensitive: bool = False
    content_warning: str | None = None
    edited_at: datetime | None = None
    #: Opaque handle the adapter needs to refresh this post later (defaults to external_id).
    ref: str | None = None
    #: The source gave no date: ``created_at`` is when we first saw the post, not when it
    #: was written (an undated RSS item).
    created_at_is_first_seen: bool = False
    #: The author asked not to be shown publicly (an account or post setting), in words;
    #: such a post is published only with consent on record.
    opt_out: str | None = None
    #: How many follow the author (or subscribe to the subreddit it was posted in), where
    #: the payload already says; None where it does not (see ``Adapter.follower_counts``).
    author_followers: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One thing a source watches: a scope (instance, feed URL, or "") and its hashtags."""

    scope: str
    hashtags: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.scope}|{','.join(self.hashtags)}"


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """One API page of results.

    ``cursor`` is the value to store once ``posts`` are committed, or ``None`` to
    keep the stored cursor (an intermediate page of a walk backwards). ``gap`` says
    the walk stopped before reaching the old cursor or the look-back horizon, so
    some posts may never be seen. ``skipped`` lists records that could not be
    normalised, with a readable reason each.
    """

    posts: tuple[FetchedPost, ...]
    cursor: str | None = None
    gap: str | None = None
    skipped: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh learnt: current versions of live posts and ids gone at source."""

    posts: tuple[FetchedPost, ...] = ()
    deleted: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    def __add__(self, other: RefreshResult) -> RefreshResult:
        return RefreshResult(
            self.posts + other.posts, self.deleted + other.deleted, self.skipped + other.skipped
        )


def refresh_in_chunks(
    ids: Iterable[str],
    size: int,
    lookup: Callable[[list[str]], Mapping[str, R]],
    normalise: Callable[[list[R]], tuple[tuple[FetchedPost, ...], tuple[str, ...]]],
) -> RefreshResult:
    """Known posts looked up ``size`` ids a request, each id once.

    ``lookup`` answers the records it found by id; an id missing from its
    answer is gone at source (deleted, or no longer public). ``normalise`` is
    the platform's :func:`normalise_each` over the records found.
    """
    wanted = list(dict.fromkeys(ids))
    result = RefreshResult()
    for start in range(0, len(wanted), size):
        chunk = wanted[start : start + size]
        found = lookup(chunk)
        posts, skipped = normalise(list(found.values()))
        result += RefreshResult(posts, tuple(i for i in chunk if i not in found), skipped)
    return result


B = TypeVar("B")


class WindowedSearch(ABC, Generic[B]):
    """``search`` and ``backfill`` for an API whose query takes a lower and an upper bound.

    Mixed into an :class:`Adapter` (``class XAdapter(WindowedSearch[str],
    Adapter[XSettings])``) whose upper bounds are ``B``, post ids or times; a lower
    bound, and the newest bound read, may also be a time (before any post was read).
    The polling cursor is :attr:`window_cursor`: a poll first reads to its end the
    window an earlier poll left unfinished (so a long backlog is never skipped),
    then walks from the newest bound read (:meth:`start_after`) up to now. Every
    page's cursor resumes right after it: the newest bound and, while unfinished,
    the window still to walk. A backfill walks back to ``since`` from ``resume``;
    its position is the upper bound after the oldest post read. The platform walks
    between two bounds and says how a page moves them.
    """

    window_cursor: ClassVar[type[WindowCursor[Any]]]
    #: What a spent request window is called in the error ("x: search requests").
    spent: ClassVar[str]

    @abstractmethod
    def walk_window(
        self, target: Target, lower: B | datetime, upper: B | None, max_pages: int
    ) -> Iterator[WalkPage[FetchedPost, Any]]:
        """Newest to oldest through the matches between ``lower`` and ``upper`` (or now)."""

    @abstractmethod
    def newest_bound(
        self, newest: B | datetime | None, page: WalkPage[FetchedPost, Any]
    ) -> B | datetime | None:
        """The newest bound read once ``page`` is read, ``newest`` being the one before."""

    @abstractmethod
    def upper_bound(self, upper: B | None, page: WalkPage[FetchedPost, Any]) -> B | None:
        """The upper bound that resumes right after ``page``; None when the page cannot tell."""

    @abstractmethod
    def read_position(self, resume: str) -> B | None:
        """A backfill position as stored (see :meth:`write_position`), or None if unreadable."""

    @abstractmethod
    def write_position(self, upper: B) -> str:
        """The stored form of a backfill position, an upper bound."""

    def start_after(self, newest: B | datetime) -> B | datetime:
        """Where a new walk starts: just after ``newest``, less the platform's overlap."""
        return newest

    def settled(
        self, newest: B | datetime | None, lower: B | datetime, started: datetime
    ) -> B | datetime:
        """The newest bound a finished walk from ``lower`` (begun at ``started``) stores."""
        return newest if newest is not None else lower

    def clamped(self, lower: B | datetime, now: datetime) -> tuple[B | datetime, str | None]:
        """A lower bound the API accepts (a search reaching back days), and what it gave up."""
        return lower, None

    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        stored = self.window_cursor.load(cursor)
        notes = [LOST_CURSOR] if cursor and stored is None else []
        newest = stored.newest if stored is not None else None
        budget = max_pages
        if stored is not None and stored.lower is not None and stored.upper is not None:
            done = False
            window = self._window(target, stored.lower, stored.upper, newest, notes, budget)
            for page, finished in window:
                budget, done = budget - 1, finished
                yield page
            if not done or budget <= 0:
                return
        lower = self.start_after(newest) if newest is not None else since
        for page, _ in self._window(target, lower, None, newest, notes, budget):
            yield page

    def _window(
        self,
        target: Target,
        lower: B | datetime,
        upper: B | None,
        newest: B | datetime | None,
        notes: list[str],
        budget: int,
    ) -> Iterator[tuple[Page, bool]]:
        """Walk one window; each page's cursor resumes right after it, and says when done."""
        started = datetime.now(UTC)
        lower, clamped = self.clamped(lower, started)
        notes.extend([clamped] if clamped else [])
        for page in self.walk_window(target, lower, upper, budget):
            newest = self.newest_bound(newest, page)
            cursor = None  # nothing on this page tells where it ended: keep the stored cursor
            if page.finished:
                settled = self.settled(newest, lower, started)
                cursor = self.window_cursor(newest=settled).dump()
            elif (bound := self.upper_bound(upper, page)) is not None:
                upper = bound
                cursor = self.window_cursor(newest=newest, lower=lower, upper=upper).dump()
            gap = "; ".join([*notes, *([page.gap] if page.gap else [])]) or None
            notes.clear()
            yield Page(page.posts, cursor, gap=gap, skipped=page.skipped), page.finished
            stop_if_spent(page, self.spent, "the walk resumes from the stored cursor")

    def backfill(
        self, target: Target, *, since: datetime, resume: str | None, max_pages: int
    ) -> Iterator[Page]:
        upper = self.read_position(resume) if resume else None
        lower, clamped = self.clamped(since, datetime.now(UTC))
        for page in self.walk_window(target, lower, upper, max_pages):
            upper = self.upper_bound(upper, page) or upper
            position = self.write_position(upper) if upper is not None else None
            gap = clamped if page.finished else None
            yield Page(page.posts, position, gap=gap, skipped=page.skipped)
            stop_if_spent(page, self.spent, "run backfill again then to carry on")


class Adapter(ABC, Generic[S]):
    """Base class of every platform adapter.

    Subclasses set ``name``, declare their keys as an
    :class:`adapters.settings.AdapterSettings` (``class XAdapter(Adapter[XSettings])``,
    or ``settings_model = XSettings``), and implement :meth:`search` and
    :meth:`refresh`. They receive only their own keys (see :meth:`own_config`),
    parsed and typed as ``self.settings``, and a shared :class:`adapters.http.HttpClient`.
    """

    name: ClassVar[str]
    #: The platform's name as people write it (staff pages, alerts); defaults to ``name``
    #: capitalised, so set it where that is wrong ("YouTube", "X").
    display_name: ClassVar[str] = ""
    #: The name the public gallery shows, where it should differ from ``display_name``
    #: (the public knows a news feed, not "RSS"); defaults to ``display_name``.
    public_name: ClassVar[str] = ""
    #: The adapter's declared settings; the three key lists below derive from it.
    settings_model: ClassVar[type[AdapterSettings] | None] = None
    #: Configuration keys that must be set for the adapter to be enabled by default.
    required_keys: ClassVar[tuple[str, ...]] = ()
    #: Every configuration key the adapter reads, for ``.env.example`` and docs.
    config_keys: ClassVar[tuple[str, ...]] = ()
    #: Keys whose values are secrets (shown nowhere, blanked out of logs).
    secret_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            cls.display_name = cls.__dict__.get("display_name") or name.capitalize()
            cls.public_name = cls.__dict__.get("public_name") or cls.display_name
        model = cls.__dict__.get("settings_model") or _declared_settings(cls)
        if model is not None:
            cls.settings_model = model
            cls.config_keys = model.keys()
            cls.required_keys = model.required_keys()
            cls.secret_keys = model.secret_keys()

    @classmethod
    def own_config(cls, raw: Mapping[str, str]) -> dict[str, str]:
        """Only the keys this adapter declares: no plugin sees another's secrets."""
        return {key: raw[key] for key in cls.config_keys if key in raw}

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        missing = [key for key in self.required_keys if not config.get(key, "").strip()]
        if missing:
            raise ConfigError(f"{self.name}: missing {', '.join(missing)}")
        #: The typed values of ``settings_model``; a malformed value is one "KEY: message"
        #: ConfigError.
        parsed = self.settings_model.parse(config) if self.settings_model else None
        self.settings = cast(S, parsed)
        self.config = config
        self.http = http

    def base_url(self, key: str, default: str) -> str:
        """An API base URL from configuration (or the documented default), validated."""
        return checked_base_url(key, self.config.get(key, "").strip() or default)

    @classmethod
    def is_configured(cls, config: Mapping[str, str]) -> bool:
        """True when the adapter should be on by default: it needs keys and all are set.

        An adapter that needs no credential but has something else to be told
        (RSS needs its feeds) overrides this.
        """
        return bool(cls.required_keys) and all(
            config.get(key, "").strip() for key in cls.required_keys
        )

    def targets(self, hashtags: Sequence[str]) -> list[Target]:
        """What to poll: by default one target per hashtag with no scope."""
        return [Target("", (tag,)) for tag in hashtags]

    @abstractmethod
    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        """Yield pages of posts carrying the target's hashtags, newer than ``cursor``.

        With ``cursor=None`` (first poll) page back until posts are older than
        ``since``. Otherwise page until every post newer than ``cursor`` was
        yielded. Each page's ``cursor`` must be safe to store once that page and
        all pages before it are committed: a walk newest-to-oldest yields
        ``None`` until its last page. Stop after ``max_pages`` pages and set
        ``gap`` on the last page if the walk could not finish and the API cannot
        resume it from the stored cursor. Raise an :class:`AdapterError` on
        failure; records that cannot be read go into ``Page.skipped``.
        """

    @abstractmethod
    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        """Fetch the current state of known posts by their ``ref`` (bulk where possible)."""

    def backfill(
        self, target: Target, *, since: datetime, resume: str | None, max_pages: int
    ) -> Iterator[Page]:
        """Page back from the newest post to ``since``, for ``hashtag-monitor backfill``.

        Each page's ``cursor`` is a backfill position (stored apart from the
        polling cursor): given back as ``resume``, the walk continues after that
        page, so an interrupted backfill neither repeats nor skips. When the API
        cannot reach ``since`` (a search window of days), the last page says how
        far it got in ``gap``. The default restarts a first-poll walk, which is
        safe (posts are upserted) but repeats pages; adapters with resumable
        paging override it.
        """
        for page in self.search(target, None, since=since, max_pages=max_pages):
            yield dataclasses.replace(page, cursor=None)

    #: Whether :meth:`follower_counts` can say anything (for coverage: "not available").
    gives_follower_counts: ClassVar[bool] = False

    def follower_counts(
        self, handles: Sequence[str], profile_urls: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """Follower counts of these authors (``Author.handle``), for potential reach.

        For platforms whose posts do not carry the count: a batched profile lookup,
        called after ingest, never inside a search walk. ``profile_urls`` holds each
        handle's profile address as stored (``Author.url``), for a platform that looks
        accounts up by an id only that address names (a YouTube channel id). Handles the
        platform does not know are left out. The default: the platform does not give it.
        """
        return {}

    def poll_interval(self, configured_seconds: int, target_count: int) -> int:
        """Seconds between polls of each target; quota-bound platforms stretch it."""
        return configured_seconds


def _declared_settings(cls: type) -> type[AdapterSettings] | None:
    """The settings model named by ``Adapter[Model]`` among the class's bases, if any."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        if typing.get_origin(base) is Adapter:
            (model,) = typing.get_args(base)
            return model if isinstance(model, type) else None
    return None
