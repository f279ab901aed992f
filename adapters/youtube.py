"""YouTube: videos whose title or description carries a hashtag (Data API v3).

API facts relied on (developers.google.com/youtube/v3, "search: list",
"videos: list", "Quota costs", "Errors"):

* ``search.list`` (``part=snippet&type=video&order=date&q=&publishedAfter=
  &publishedBefore=&maxResults<=50&pageToken=``) costs 100 units a call. Its
  snippet has a shortened description and no tags, so every page is followed
  by one ``videos.list``. ``publishedAfter`` / ``publishedBefore`` are RFC 3339
  and inclusive.
* ``videos.list`` (``id=`` up to 50, ``part=snippet,statistics,contentDetails``)
  costs 1 unit; an id missing from ``items`` is deleted or private.
* A project gets 10,000 units a day by default, reset at midnight Pacific time.
* Errors are ``{"error": {"code", "message", "errors": [{"reason", ...}],
  "details": [{"reason", ...}]}}``: 403 ``quotaExceeded`` /
  ``dailyLimitExceeded``; 400 ``keyInvalid`` (``API_KEY_INVALID`` in newer
  bodies); 403 ``forbidden`` / ``accessNotConfigured`` for a key or project
  that may not use the API.
* Statistics are decimal strings; ``likeCount`` is absent when the owner hides
  it, ``commentCount`` when comments are off.
* ``channels.list`` (``id=`` up to 50 channel ids, ``part=statistics``) costs 1
  unit; ``statistics.subscriberCount`` is a decimal string (rounded by YouTube to
  three significant figures), with ``hiddenSubscriberCount`` true when the owner
  hides it; an id missing from ``items`` is unknown. Potential reach takes it as
  the channel's follower count.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Self
from zoneinfo import ZoneInfo

import httpx
import pydantic

from adapters.base import (
    Adapter,
    AdapterError,
    AuthFailed,
    Author,
    Batch,
    CursorTime,
    Engagement,
    FetchedPost,
    JsonCursor,
    MalformedResponse,
    Media,
    Page,
    RateLimited,
    RefreshResult,
    RequestRejected,
    Target,
    UnreadableRecord,
    carrying,
    json_records,
    normalise_each,
    refresh_in_chunks,
    walk_newest_first,
)
from adapters.http import HttpClient, decode_json, error_body
from adapters.settings import AdapterSettings, BaseUrl
from adapters.text import (
    as_count,
    as_object,
    clean_text,
    extract_hashtags,
    http_url,
    iso_seconds,
    parse_time,
    text_to_html,
)

DEFAULT_API_BASE = "https://www.googleapis.com/youtube/v3"
DEFAULT_DAILY_QUOTA = 10_000
SEARCH_COST = 100
VIDEOS_COST = 1
CHANNELS_COST = 1
PAGE_LIMIT = 50
BULK_LIMIT = 50
#: Share of the daily quota searches leave for refresh (videos.list, 1 unit per 50 ids).
REFRESH_RESERVE_PERCENT = 10
#: The smallest quota that still allows one search after the refresh reserve.
MIN_DAILY_QUOTA = math.ceil(SEARCH_COST * 100 / (100 - REFRESH_RESERVE_PERCENT))
QUOTA_ZONE = ZoneInfo("America/Los_Angeles")
#: Search results appear some time after publication, so each poll searches this
#: far back before the newest video seen, skipping the ids it already knows.
OVERLAP = timedelta(hours=1)
_SHORT_RATE_LIMIT = timedelta(minutes=1)
_THUMBNAIL_SIZES = ("maxres", "standard", "high", "medium", "default")
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CHANNEL_URL = re.compile(r"https://www\.youtube\.com/channel/([A-Za-z0-9_-]{1,64})")
_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
_KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "API_KEY_INVALID", "API_KEY_EXPIRED"})
_ERROR_STATUSES = frozenset({400, 401, 403, 404})
_MAX_TAG_CHARS = 100
_MAX_DIMENSION = 100_000


class QuotaBudget:
    """Units spent today (a Pacific-time day), in memory and thread-safe.

    Google counts units per project and tells us nothing until it refuses, so we
    count ourselves and refuse first: a refused spend raises :class:`RateLimited`
    with the next reset. A process restart forgets the count.
    """

    def __init__(self, daily: int, clock: Callable[[], datetime]) -> None:
        self.daily = daily
        self._clock = clock
        self._lock = threading.Lock()
        self._day = self._today()
        self._spent = 0

    def _today(self) -> date:
        return self._clock().astimezone(QUOTA_ZONE).date()

    @property
    def spent(self) -> int:
        with self._lock:
            self._roll()
            return self._spent

    def next_reset(self) -> datetime:
        """The next midnight in America/Los_Angeles, in UTC."""
        tomorrow = self._clock().astimezone(QUOTA_ZONE).date() + timedelta(days=1)
        return datetime.combine(tomorrow, time(0), tzinfo=QUOTA_ZONE).astimezone(UTC)

    def spend(self, units: int, *, limit: int, what: str) -> None:
        with self._lock:
            self._roll()
            if self._spent + units > limit:
                reset = self.next_reset()
                raise RateLimited(
                    f"youtube: daily quota budget reached ({self._spent} of {self.daily} units"
                    f" used today, Pacific time); {what} waits for the reset at"
                    f" {reset:%Y-%m-%d %H:%M} UTC",
                    retry_at=reset,
                )
            self._spent += units

    def exhaust(self) -> None:
        """Google said the quota is gone: spend nothing more until the reset."""
        with self._lock:
            self._roll()
            self._spent = max(self._spent, self.daily)

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._spent = today, 0


def _strings(value: Any) -> tuple[str, ...]:
    """The strings of a stored list (anything else in it is dropped)."""
    if not isinstance(value, list | tuple):
        return ()
    return tuple(item for item in value if isinstance(item, str))


_Time = Annotated[CursorTime, pydantic.PlainSerializer(iso_seconds, when_used="unless-none")]


class _Cursor(JsonCursor):
    """The newest publication time seen, and the ids already read within OVERLAP of it.

    Every poll's search covers the whole overlap, so the ids are rebuilt from its
    results each time. They only spare ``videos.list`` calls: when more than fit
    in the cursor column, the oldest are dropped and merely read again.
    """

    v: int = 1
    newest: _Time
    recent: Annotated[tuple[str, ...], pydantic.BeforeValidator(_strings)] = ()

    @pydantic.model_validator(mode="after")
    def _readable(self) -> Self:
        # YouTube's first video is from 2005: anything older is junk.
        if self.newest is None or self.newest.year < 2005:
            raise ValueError("no usable newest time")
        return self

    def shrunk(self) -> Self | None:
        return self.model_copy(update={"recent": self.recent[:-1]}) if self.recent else None


class _Position(JsonCursor):
    """A backfill position: the oldest publication time reached."""

    before: _Time = None


def _units(value: object) -> int:
    """A daily quota: a whole number of units that leaves room for one search."""
    raw = str(value).strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) < MIN_DAILY_QUOTA:
        raise ValueError(
            f"must be a whole number of units, at least {MIN_DAILY_QUOTA} (one search costs"
            f" {SEARCH_COST}), not {raw!r}"
        )
    return int(raw)


class YouTubeSettings(AdapterSettings):
    """The keys this adapter reads (see ``.env.example``)."""

    youtube_api_key: pydantic.SecretStr
    youtube_api_base: BaseUrl = DEFAULT_API_BASE
    youtube_daily_quota: Annotated[int, pydantic.BeforeValidator(_units)] = DEFAULT_DAILY_QUOTA


class YouTubeAdapter(Adapter[YouTubeSettings]):
    """Searches ``#tag`` newest first and reads the videos' full snippet and statistics."""

    name: ClassVar[str] = "youtube"
    display_name: ClassVar[str] = "YouTube"

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        self.base, daily = self.settings.youtube_api_base, self.settings.youtube_daily_quota
        self.search_budget = daily * (100 - REFRESH_RESERVE_PERCENT) // 100
        self._key = self.settings.youtube_api_key.get_secret_value()
        #: The current time; tests move it to cross the Pacific-time quota day.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.quota = QuotaBudget(daily, lambda: self.clock())

    def poll_interval(self, configured_seconds: int, target_count: int) -> int:
        """Stretch the interval so every target's idle search fits the daily search budget."""
        if target_count <= 0:
            return configured_seconds
        searches_a_day = self.search_budget // SEARCH_COST
        return max(configured_seconds, math.ceil(86_400 * target_count / searches_a_day))

    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        tag = target.hashtags[0].lstrip("#＃")
        stored = _Cursor.load(cursor)
        started = self.clock()
        known = frozenset(stored.recent) if stored else frozenset()
        after = stored.newest - OVERLAP if stored and stored.newest else since
        listed: dict[str, datetime] = {}

        def last_cursor(_ids: Sequence[str]) -> str:
            times = [*listed.values(), *([stored.newest] if stored and stored.newest else [])]
            # A publication time in the future must not push the next search past now.
            newest = min(max(times, default=started), started)
            in_overlap = [(when, vid) for vid, when in listed.items() if when >= newest - OVERLAP]
            recent = tuple(vid for _, vid in sorted(in_overlap, reverse=True))
            return _Cursor(newest=newest, recent=recent).dump()

        walk = self._walk(tag, known, listed, after=after, before=None)
        for page in walk_newest_first(
            walk, until=after, max_pages=max_pages, last_cursor=last_cursor
        ):
            yield Page(page.posts, page.cursor, gap=page.gap, skipped=page.skipped)

    def backfill(
        self, target: Target, *, since: datetime, resume: str | None, max_pages: int
    ) -> Iterator[Page]:
        """Search back to ``since``; the position is the oldest publication time reached."""
        tag = target.hashtags[0].lstrip("#＃")
        stored = _Position.load(resume)
        before = stored.before if stored else None
        walk = self._walk(tag, frozenset(), {}, after=since, before=before)
        for page in walk_newest_first(
            walk,
            until=None,
            max_pages=max_pages,
            page_cursor=lambda b: _Position(before=b.oldest).dump() if b.oldest else None,
        ):
            yield Page(page.posts, page.cursor, skipped=page.skipped)

    def _walk(
        self,
        tag: str,
        known: frozenset[str],
        listed: dict[str, datetime],
        *,
        after: datetime,
        before: datetime | None,
    ) -> Callable[[str | None], Batch[FetchedPost, str]]:
        """Reads search.list pages by page token, each followed by videos.list for new ids.

        ``listed`` collects each video id the walk met with its publication time.
        """
        params: dict[str, Any] = {
            "part": "snippet",
            "type": "video",
            "order": "date",
            "q": f"#{tag}",
            "publishedAfter": iso_seconds(after),
            "maxResults": PAGE_LIMIT,
        }
        if before is not None:
            params["publishedBefore"] = iso_seconds(before)

        def fetch(page_token: str | None) -> Batch[FetchedPost, str]:
            query = {**params, "pageToken": page_token} if page_token else params
            body = self._call("search", query, SEARCH_COST, self.search_budget)
            page, skipped, next_token = _search_page(body)
            fresh = {vid: when for vid, when in page.items() if vid not in listed}
            listed.update(fresh)
            wanted = [vid for vid in fresh if vid not in known]
            posts: tuple[FetchedPost, ...] = ()
            if wanted:
                found = self._videos(wanted, limit=self.search_budget)
                normalised, bad = normalise_all(list(found.values()))
                posts = carrying(normalised, [tag])
                skipped += bad
            oldest = min(fresh.values(), default=None)
            return Batch(posts, skipped, tuple(page), next_token, oldest=oldest)

        return fetch

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        ids = [ref.strip() for ref in refs if _VIDEO_ID.fullmatch(ref.strip())]
        lookup = functools.partial(self._videos, limit=self.quota.daily)
        return refresh_in_chunks(ids, BULK_LIMIT, lookup, normalise_all)

    def _videos(self, ids: list[str], *, limit: int) -> dict[str, dict[str, Any]]:
        """videos.list for up to 50 ids: the items by id (missing ones are gone)."""
        params = {"part": "snippet,statistics,contentDetails", "id": ",".join(ids)}
        body = self._call("videos", {**params, "maxResults": BULK_LIMIT}, VIDEOS_COST, limit)
        items = json_records(body, "items", "youtube: videos.list answered without an items list")
        return {
            vid: item for item in items if isinstance(vid := item.get("id"), str) and vid in ids
        }

    # --- follower counts (potential reach) ------------------------------------------

    gives_follower_counts = True

    def follower_counts(
        self, handles: Sequence[str], profile_urls: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """``subscriberCount`` from ``channels.list``, 50 channels a unit.

        A channel is looked up by its id, which only its address names (the handle is its
        title): a handle without a channel address held is left out. Paid from the
        refresh reserve, as video lookups are, so it never takes a search's units; a
        hidden count is left out (unknown, not 0).
        """
        channels: dict[str, list[str]] = {}
        for handle in dict.fromkeys(handles):
            match = _CHANNEL_URL.fullmatch((profile_urls or {}).get(handle, ""))
            if match:
                channels.setdefault(match.group(1), []).append(handle)
        ids = list(channels)
        counts: dict[str, int] = {}
        for start in range(0, len(ids), BULK_LIMIT):
            chunk = ids[start : start + BULK_LIMIT]
            params = {"part": "statistics", "id": ",".join(chunk), "maxResults": BULK_LIMIT}
            body = self._call("channels", params, CHANNELS_COST, self.quota.daily)
            items = body.get("items", []) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise MalformedResponse("youtube: channels.list answered without an items list")
            for item in items:
                item = as_object(item)
                stats = as_object(item.get("statistics"))
                subscribers = as_count(stats.get("subscriberCount"))
                channel = item.get("id")
                if subscribers is None or stats.get("hiddenSubscriberCount") is True:
                    continue
                for handle in channels.get(channel, []) if isinstance(channel, str) else []:
                    counts[handle] = subscribers
        return counts

    def _call(self, method: str, params: Mapping[str, Any], cost: int, limit: int) -> Any:
        """One API call, paid from the budget first (Google charges even failed calls)."""
        self.quota.spend(cost, limit=limit, what=f"{method}.list")
        response = self.http.request(
            "GET",
            f"{self.base}/{method}",
            params={**params, "key": self._key},
            ok_statuses=_ERROR_STATUSES,
        )
        if 200 <= response.status_code < 300:
            return decode_json(response)
        raise self._failure(response)

    def _failure(self, response: httpx.Response) -> AdapterError:
        """Our error for a Google error body: quota, key, access or a refused request."""
        error = as_object(error_body(response).get("error"))
        reasons = [
            reason
            for field in ("errors", "details")
            if isinstance(error.get(field), list)
            for entry in error[field]
            if isinstance(entry, dict) and isinstance(reason := entry.get("reason"), str)
        ]
        status = response.status_code
        message = clean_text(error.get("message"), 300) or f"HTTP {status}"
        reason = clean_text(reasons[0], 100) if reasons else f"HTTP {status}"
        detail = f"{reason}: {message}"
        if _QUOTA_REASONS.intersection(reasons):
            self.quota.exhaust()
            reset = self.quota.next_reset()
            return RateLimited(
                f"youtube: the project's daily quota is used up ({detail}); it resets at"
                f" {reset:%Y-%m-%d %H:%M} UTC (midnight Pacific time)",
                retry_at=reset,
            )
        if _RATE_REASONS.intersection(reasons):
            retry_at = self.clock() + _SHORT_RATE_LIMIT
            return RateLimited(f"youtube: too many requests ({detail})", retry_at=retry_at)
        if _KEY_REASONS.intersection(reasons):
            return AuthFailed(
                f"youtube: YOUTUBE_API_KEY was refused ({detail}); create an API key under"
                " Google Cloud console > APIs & Services > Credentials"
            )
        if status in (401, 403):
            return AuthFailed(
                f"youtube: access refused ({detail}); YOUTUBE_API_KEY must belong to a project"
                " with the YouTube Data API v3 enabled, and its restrictions must allow this"
                " server"
            )
        return RequestRejected(f"youtube: request refused (HTTP {status}, {detail})")


def _search_page(body: Any) -> tuple[dict[str, datetime], tuple[str, ...], str | None]:
    """Video ids with their publication time, unreadable results, and the next page token."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise MalformedResponse("youtube: search.list answered without an items list")
    listed: dict[str, datetime] = {}
    skipped: list[str] = []
    for item in body["items"]:
        ident = item.get("id") if isinstance(item, dict) else None
        video_id = ident.get("videoId") if isinstance(ident, dict) else None
        snippet = item.get("snippet") if isinstance(item, dict) else None
        published = parse_time(snippet.get("publishedAt")) if isinstance(snippet, dict) else None
        if not isinstance(video_id, str) or not _VIDEO_ID.fullmatch(video_id):
            skipped.append("search result without a usable videoId")
        elif published is None:
            skipped.append(f"search result {video_id}: no readable publishedAt")
        else:
            listed.setdefault(video_id, published)
    token = body.get("nextPageToken")
    usable = isinstance(token, str) and 0 < len(token) <= 2000
    return listed, tuple(skipped), token if usable else None


def normalise_all(items: list[dict[str, Any]]) -> tuple[tuple[FetchedPost, ...], tuple[str, ...]]:
    """Normalise every video; an unreadable one becomes a skipped reason, never an error."""
    return normalise_each(items, normalise_video, _video_label)


def _video_label(item: Mapping[str, Any]) -> str:
    video_id = item.get("id")
    shown = video_id if isinstance(video_id, str) and _VIDEO_ID.fullmatch(video_id) else "?"
    return f"video {shown}"


def normalise_video(item: Mapping[str, Any]) -> FetchedPost:
    """Map one ``videos.list`` item to a :class:`FetchedPost` (or UnreadableRecord)."""
    video_id = item.get("id")
    if not isinstance(video_id, str) or not _VIDEO_ID.fullmatch(video_id):
        raise UnreadableRecord("no usable id")
    snippet = item.get("snippet")
    if not isinstance(snippet, dict):
        raise UnreadableRecord("no snippet")
    created_at = parse_time(snippet.get("publishedAt"))
    if created_at is None:
        raise UnreadableRecord("no readable publishedAt")
    title = clean_text(snippet.get("title"), 1000)
    description = clean_text(snippet.get("description"))
    text = f"{title}\n\n{description}" if title and description else title or description
    # Only title and description, as YouTube itself links them: snippet ``tags`` are
    # hidden search keywords, so a hashtag there is nowhere a viewer can see it.
    hashtags = extract_hashtags(text)
    rating = as_object(as_object(item.get("contentDetails")).get("contentRating"))
    sensitive = rating.get("ytRating") == "ytAgeRestricted"
    stats = as_object(item.get("statistics"))
    return FetchedPost(
        platform="youtube",
        external_id=video_id,
        url=f"https://www.youtube.com/watch?v={video_id}",
        author=_channel(snippet),
        text=text,
        html=text_to_html(text),
        created_at=created_at,
        hashtags=tuple(t for t in hashtags if len(t) <= _MAX_TAG_CHARS),
        media=_thumbnail(video_id, snippet, title, sensitive),
        engagement=Engagement(
            likes=as_count(stats.get("likeCount")),
            replies=as_count(stats.get("commentCount")),
            views=as_count(stats.get("viewCount")),
        ),
        sensitive=sensitive,
        ref=video_id,
    )


def _channel(snippet: Mapping[str, Any]) -> Author:
    channel_id = snippet.get("channelId")
    title = clean_text(snippet.get("channelTitle"), 300)
    if isinstance(channel_id, str) and _VIDEO_ID.fullmatch(channel_id):
        url = f"https://www.youtube.com/channel/{channel_id}"
        return Author(handle=title or channel_id, name=title or channel_id, url=url)
    return Author(handle=title or "youtube-channel", name=title or "Unknown channel")


def _thumbnail(
    video_id: str, snippet: Mapping[str, Any], title: str, sensitive: bool
) -> tuple[Media, ...]:
    """The largest thumbnail as an image (alt text: the title), the medium one as preview."""
    thumbnails = as_object(snippet.get("thumbnails"))
    sizes = {
        size: as_object(thumbnails.get(size))
        for size in _THUMBNAIL_SIZES
        if http_url(as_object(thumbnails.get(size)).get("url"))
    }
    if not sizes:
        return ()
    best = next(iter(sizes.values()))
    preview = sizes.get("medium") or sizes.get("default") or best
    return (
        Media(
            kind="image",
            url=http_url(best.get("url")) or "",
            alt=title or None,
            preview_url=http_url(preview.get("url")),
            sensitive=sensitive,
            width=_dimension(best.get("width")),
            height=_dimension(best.get("height")),
            key=f"{video_id}:thumbnail",
        ),
    )


def _dimension(value: Any) -> int | None:
    count = as_count(value)
    return count if count is not None and 0 < count <= _MAX_DIMENSION else None
