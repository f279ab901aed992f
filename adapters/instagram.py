"""Instagram: public photos and videos carrying a hashtag, through the Graph API.

API facts relied on (developers.facebook.com, Instagram Platform, "Hashtag Search"
and the IG Hashtag / IG Hashtag Recent Media references):

* ``GET /ig_hashtag_search?user_id=&q=`` turns a hashtag into its node id. An
  account may query only 30 unique hashtags in a rolling 7 days (asking again
  for the same one does not count again); ids are static and global, so we keep
  the id in the source cursor and in memory and look it up only once.
* ``GET /{hashtag-id}/recent_media?user_id=&fields=`` returns media published
  in the last 24 hours only, at most 50 a page, "not always in chronological
  order", with an ``after`` cursor and no ``before``. ``username`` cannot be
  requested, so the author is unknown; ``like_count`` is omitted when hidden.
* ``GET /?ids=a,b&fields=`` reads up to 50 objects at once; an id that no
  longer exists fails the whole request, so we then ask one by one.
* Errors are ``{"error": {"message", "type", "code", "error_subcode"}}``:
  190 is a dead token, 10 and 200-299 a missing permission, 4/17/32/613 (and
  Instagram's 80002) throttling, with ``estimated_time_to_regain_access`` in
  minutes in the ``X-Business-Use-Case-Usage`` header.
* ``media_url`` is a signed CDN URL; its ``oe`` query parameter is the expiry
  time in hexadecimal Unix seconds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

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
    MediaKind,
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
    as_id,
    as_object,
    clean_text,
    extract_hashtags,
    http_url,
    minute_utc,
    normalise_tag,
    parse_time,
    text_to_html,
)

DEFAULT_API_BASE = "https://graph.facebook.com/v21.0"
PAGE_LIMIT = 50
BULK_LIMIT = 50
#: recent_media only ever holds media published in the last 24 hours.
RECENT_WINDOW = timedelta(hours=24)
#: Posts published this long before the last walk may still have appeared since
#: (indexing delay, clock skew), so a poll walks this far back past it.
OVERLAP = timedelta(minutes=30)
#: Lifetime assumed for a signed media URL that carries no readable ``oe`` expiry.
ASSUMED_URL_LIFETIME = timedelta(hours=24)
#: Throttling lasts a rolling hour when the headers do not say how long.
DEFAULT_THROTTLE = timedelta(hours=1)
#: ``thumbnail_url`` is only answered for videos, and only when asked for.
MEDIA_FIELDS = (
    "id,caption,media_type,media_url,thumbnail_url,permalink,timestamp,like_count,"
    "comments_count,children{media_url,media_type,thumbnail_url}"
)
#: Hashtag search does not disclose who posted (``username`` cannot be requested).
UNKNOWN_AUTHOR = Author(handle="instagram-user", name="Instagram user (not disclosed by the API)")

_AUTH_CODES = frozenset({102, 190})
_RATE_CODES = frozenset({4, 17, 32, 613, 80002})
#: "Object does not exist" (100, subcode 33) and "some of the aliases do not exist" (803).
_MISSING_CODES = frozenset({100, 803})
_ERROR_STATUSES = frozenset({400, 401, 403, 404})
_MEDIA_KINDS: dict[str, MediaKind] = {"IMAGE": "image", "VIDEO": "video"}
_MAX_TAG_CHARS = 100


class GraphRefused(RequestRejected):
    """The Graph API refused a request with an error code we have no special meaning for."""

    def __init__(self, message: str, *, code: int | None) -> None:
        super().__init__(message)
        self.code = code


def _usage(headers: httpx.Headers) -> tuple[float, float]:
    """Highest usage percentage and minutes until access returns, from the usage headers."""
    percent = minutes = 0.0
    entries: list[Any] = []
    for name in ("x-app-usage", "x-business-use-case-usage"):
        try:
            value = json.loads(headers.get(name) or "null")
        except ValueError:
            continue
        if isinstance(value, dict) and name == "x-app-usage":
            entries.append(value)
        elif isinstance(value, dict):
            entries.extend(e for group in value.values() if isinstance(group, list) for e in group)
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        for field in ("call_count", "total_cputime", "total_time"):
            percent = max(percent, _number(entry.get(field)))
        minutes = max(minutes, _number(entry.get("estimated_time_to_regain_access")))
    return percent, minutes


def _checked_user(value: str) -> str:
    if not (value.isascii() and value.isdigit()):
        raise ValueError(
            "must be the numeric id of the Instagram business or creator account (not its"
            " @username)"
        )
    return value


def _node_id(value: Any) -> str | None:
    """A Graph node id: decimal digits only, so it is safe in a URL path and an ids= list."""
    node = as_id(value)
    return node if node is not None and node.isdigit() and node.isascii() else None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return min(max(float(value), 0.0), 7 * 24 * 60.0)


def _reset_reader(headers: httpx.Headers) -> float | None:
    """Seconds to wait on HTTP 429, from ``estimated_time_to_regain_access`` (minutes)."""
    minutes = _usage(headers)[1]
    return minutes * 60 if minutes > 0 else None


def _since_2010(when: datetime | None) -> datetime | None:
    return when if when is not None and when.year >= 2010 else None


class _Cursor(JsonCursor):
    """What a source remembers: the hashtag's id and when the last full walk began.

    A source is one hashtag, so the cursor need not name it; it stays far below
    the 600 characters a source cursor may hold. ``after`` is a backfill's
    resume point inside recent_media.
    """

    v: int = 1
    hashtag_id: Annotated[str, pydantic.BeforeValidator(lambda value: _node_id(value))]
    covered: Annotated[CursorTime, pydantic.AfterValidator(_since_2010)] = None
    after: Annotated[
        str | None, pydantic.BeforeValidator(lambda v: v if isinstance(v, str) and v else None)
    ] = None


class _NoSuchHashtag(Exception):
    """Instagram knows no such hashtag (yet): there is nothing to read."""


@dataclasses.dataclass
class _Hashtag:
    """The hashtag a walk reads and its node id, which a refused stored id replaces."""

    name: str
    node: str
    #: The node came from a stored cursor or memory, so the server may refuse it.
    remembered: bool


class InstagramSettings(AdapterSettings):
    """The keys this adapter reads (see ``.env.example``)."""

    instagram_access_token: pydantic.SecretStr
    instagram_user_id: Annotated[str, pydantic.AfterValidator(lambda value: _checked_user(value))]
    instagram_api_base: BaseUrl = DEFAULT_API_BASE


class InstagramAdapter(Adapter[InstagramSettings]):
    """Reads ``/{hashtag-id}/recent_media`` for each hashtag, as a business account."""

    name: ClassVar[str] = "instagram"

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        self.base, self.user_id = self.settings.instagram_api_base, self.settings.instagram_user_id
        self._token = self.settings.instagram_access_token.get_secret_value()
        self._hashtag_ids: dict[str, str] = {}
        self._blocked_until: datetime | None = None
        #: The current time; tests replace it to reach the edges of the 24-hour window.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        stored = _Cursor.load(cursor)
        started = self.clock()
        covered = stored.covered if stored else None
        try:
            hashtag = self._hashtag(target, stored)
            walk = walk_newest_first(
                self._pages(hashtag, None),
                until=covered - OVERLAP if covered else since,
                max_pages=max_pages,
                last_cursor=lambda _: _Cursor(hashtag_id=hashtag.node, covered=started).dump(),
            )
            for page in walk:
                if not page.last:
                    # Nothing is covered until the walk ends: keep the old position, but
                    # remember the hashtag id at once so it is never looked up twice.
                    keep = _Cursor(hashtag_id=hashtag.node, covered=covered).dump()
                    yield Page(page.posts, keep, skipped=page.skipped)
                    continue
                window = _window_gap(covered, since, started - RECENT_WINDOW)
                gap = "; ".join(g for g in (page.gap, window) if g) or None
                yield Page(page.posts, page.cursor, gap=gap, skipped=page.skipped)
        except _NoSuchHashtag:
            yield Page(())

    def backfill(
        self, target: Target, *, since: datetime, resume: str | None, max_pages: int
    ) -> Iterator[Page]:
        """Walk recent_media to its end; the position is the hashtag id and ``after`` cursor."""
        position = _Cursor.load(resume)
        horizon = self.clock() - RECENT_WINDOW
        try:
            hashtag = self._hashtag(target, position)
            pages = self._pages(hashtag, position.after if position else None)
            for page in walk_newest_first(pages, until=since, max_pages=max_pages):
                if not page.finished:  # out of pages: this position lets the next run go on
                    resume_at = _Cursor(hashtag_id=hashtag.node, after=page.batch.next).dump()
                    yield Page(page.posts, resume_at, skipped=page.skipped)
                    continue
                gap = None
                if since < horizon:
                    gap = (
                        f"Instagram's recent media only reach 24 hours back (to"
                        f" {minute_utc(horizon)}); posts before that cannot be fetched"
                    )
                yield Page(page.posts, None, gap=gap, skipped=page.skipped)
        except _NoSuchHashtag:
            yield Page(())

    def _hashtag(self, target: Target, stored: _Cursor | None) -> _Hashtag:
        """The target's hashtag with its node id: stored, remembered, or looked up."""
        name = target.hashtags[0].lstrip("#＃")
        known = stored.hashtag_id if stored else self._hashtag_ids.get(normalise_tag(name))
        node = known or self._lookup_hashtag(name)
        if node is None:
            raise _NoSuchHashtag(name)
        return _Hashtag(name, node, remembered=known is not None)

    def _pages(
        self, hashtag: _Hashtag, after: str | None
    ) -> Callable[[str | None], Batch[FetchedPost, str]]:
        """Reads recent_media pages by ``after``; media repeated across pages are read once.

        recent_media is in no order: a page's newest time stands for how far it
        reached, so only a page wholly older than the walk's ``until`` ends it.
        """
        seen: set[str] = set()

        def fetch(position: str | None) -> Batch[FetchedPost, str]:
            body = self._recent_media(hashtag, position or after, first=position is None)
            items, next_after = _data_and_after(body)
            fresh: list[dict[str, Any]] = []
            for item in items:
                item_id = as_id(item.get("id"))
                if item_id is None or item_id not in seen:
                    fresh.append(item)
                seen.add(item_id or "")
            ids = tuple(item_id for item in items if (item_id := as_id(item.get("id"))))
            posts, skipped = normalise_all(fresh, now=self.clock())
            newest = max((p.created_at for p in posts), default=None)
            # Only media whose caption carries the hashtag (not ``#tagX``, not a comment).
            kept = carrying(posts, [hashtag.name])
            return Batch(kept, skipped, ids, next_after, oldest=newest, newest=newest)

        return fetch

    def _recent_media(self, hashtag: _Hashtag, after: str | None, *, first: bool) -> Any:
        """One recent_media page. A stored id or resume position the server no longer
        accepts is looked up again (free within the 7 days), starting from the top once."""
        params: dict[str, Any] = {
            "user_id": self.user_id,
            "fields": MEDIA_FIELDS,
            "limit": PAGE_LIMIT,
            "after": after,
        }
        try:
            return self._call(f"/{hashtag.node}/recent_media", params)
        except GraphRefused as exc:
            if not first or not hashtag.remembered or exc.code not in _MISSING_CODES:
                raise
        node = self._lookup_hashtag(hashtag.name, forget=True)
        if node is None:
            raise _NoSuchHashtag(hashtag.name)
        hashtag.node, hashtag.remembered = node, False
        return self._call(f"/{node}/recent_media", {**params, "after": None})

    def _lookup_hashtag(self, tag: str, *, forget: bool = False) -> str | None:
        """The hashtag's node id (one of the 30 weekly hashtag queries), or None if unknown."""
        key = normalise_tag(tag)
        if forget:
            self._hashtag_ids.pop(key, None)
        try:
            body = self._call("/ig_hashtag_search", {"user_id": self.user_id, "q": tag})
        except GraphRefused as exc:
            raise GraphRefused(
                f"{exc}; check that INSTAGRAM_USER_ID is the Instagram business account's id"
                f" (Meta also refuses hashtags it deems sensitive, such as #{tag})",
                code=exc.code,
            ) from None
        data = json_records(
            body, "data", "instagram: ig_hashtag_search answered without a data list"
        )
        found = next((_node_id(d.get("id")) for d in data), None)
        if found:
            self._hashtag_ids[key] = found
        return found

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        ids = [ref for ref in (_node_id(r) for r in refs) if ref]
        return refresh_in_chunks(
            ids,
            BULK_LIMIT,
            self._read_objects,
            lambda items: normalise_all(items, now=self.clock()),
        )

    def _read_objects(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Current media by id; an id missing from the answer is gone (deleted or private)."""
        try:
            body = self._call("/", {"ids": ",".join(ids), "fields": MEDIA_FIELDS})
        except GraphRefused as exc:
            if exc.code not in _MISSING_CODES:
                raise
            return self._read_one_by_one(ids)
        if not isinstance(body, dict):
            raise MalformedResponse("instagram: the ids= lookup answered without a JSON object")
        return {
            media_id: item
            for media_id, item in body.items()
            if media_id in ids and isinstance(item, dict) and as_id(item.get("id")) == media_id
        }

    def _read_one_by_one(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """``GET /{id}`` for each id, when the bulk call failed because one is gone."""
        found: dict[str, dict[str, Any]] = {}
        for media_id in ids:
            try:
                item = self._call(f"/{media_id}", {"fields": MEDIA_FIELDS})
            except GraphRefused as exc:
                if exc.code not in _MISSING_CODES:
                    raise
                continue
            if isinstance(item, dict) and as_id(item.get("id")) == media_id:
                found[media_id] = item
        return found

    def _call(self, path: str, params: Mapping[str, Any]) -> Any:
        """One Graph API GET: usage headers honoured, error bodies turned into our errors."""
        now = self.clock()
        if self._blocked_until is not None and self._blocked_until > now:
            raise RateLimited(
                f"instagram: waiting until {minute_utc(self._blocked_until)} for the Graph API"
                " usage limit to reset",
                retry_at=self._blocked_until,
            )
        query = {k: v for k, v in params.items() if v is not None}
        response = self.http.request(
            "GET",
            f"{self.base}{path}",
            params={**query, "access_token": self._token},
            reset_reader=_reset_reader,
            ok_statuses=_ERROR_STATUSES,
        )
        percent, minutes = _usage(response.headers)
        throttled_until = now + (timedelta(minutes=minutes) if minutes else DEFAULT_THROTTLE)
        if minutes > 0 or percent >= 100:
            self._blocked_until = throttled_until
        if 200 <= response.status_code < 300:
            body = decode_json(response)
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                return body
        else:
            error = _error_object(response)
        failure = _classify(error, response.status_code, throttled_until)
        if isinstance(failure, RateLimited):
            self._blocked_until = throttled_until
        raise failure


def _error_object(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of a failed call, or a stand-in when the body has none."""
    error = error_body(response).get("error")
    return error if isinstance(error, dict) else {"message": f"HTTP {response.status_code}"}


def _classify(error: dict[str, Any], status: int, throttled_until: datetime) -> AdapterError:
    """Our error for a Graph API error object: auth, permission, throttling or refusal."""
    code = as_count(error.get("code"))
    subcode = as_count(error.get("error_subcode"))
    message = clean_text(error.get("message"), 300) or "no message"
    detail = f"Graph API error {code if code is not None else '?'}"
    detail += f"/{subcode}" if subcode is not None else ""
    detail += f": {message}"
    if code in _AUTH_CODES or (code is None and status == 401):
        return AuthFailed(
            f"instagram: INSTAGRAM_ACCESS_TOKEN was refused ({detail}); it has expired or been"
            " revoked: generate a new long-lived user access token for the Facebook user who"
            " manages the Instagram business account"
        )
    if code == 10 or (code is not None and 200 <= code <= 299) or (code is None and status == 403):
        return AuthFailed(
            f"instagram: permission refused ({detail}); the app needs the instagram_basic"
            " permission and the Instagram Public Content Access feature (App Review)"
        )
    if code in _RATE_CODES:
        return RateLimited(
            f"instagram: rate limited until {minute_utc(throttled_until)} ({detail})",
            retry_at=throttled_until,
        )
    return GraphRefused(f"instagram: request refused ({detail})", code=code)


def _data_and_after(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The media of one page and the ``after`` cursor, if the page says there is more."""
    items = json_records(body, "data", "instagram: recent_media answered without a data list")
    paging = as_object(body.get("paging"))
    after = as_object(paging.get("cursors")).get("after")
    if not paging.get("next") or not isinstance(after, str) or not after or len(after) > 2000:
        return items, None
    return items, after


def _window_gap(covered: datetime | None, since: datetime, horizon: datetime) -> str | None:
    """What a poll could not read because recent_media reach back only 24 hours."""
    if covered is not None and covered < horizon:
        return (
            f"polling fell behind: last complete poll {minute_utc(covered)}, and"
            " Instagram's recent media only reach 24 hours back"
        )
    if covered is None and since < horizon:
        return (
            f"Instagram's recent media only reach 24 hours back (to {minute_utc(horizon)}),"
            f" not to {minute_utc(since)}"
        )
    return None


def normalise_all(
    items: list[dict[str, Any]], *, now: datetime
) -> tuple[tuple[FetchedPost, ...], tuple[str, ...]]:
    """Normalise every item; an unreadable one becomes a skipped reason, never an error."""
    return normalise_each(
        items,
        lambda item: normalise_media(item, now=now),
        lambda item: f"media {as_id(item.get('id')) or '?'}",
    )


def normalise_media(item: Mapping[str, Any], *, now: datetime) -> FetchedPost:
    """Map one IG Media object to a :class:`FetchedPost`; UnreadableRecord if it is unusable."""
    media_id = as_id(item.get("id"))
    if media_id is None:
        raise UnreadableRecord("no id")
    created_at = parse_time(item.get("timestamp"))
    if created_at is None:
        raise UnreadableRecord("no readable timestamp")
    permalink = http_url(item.get("permalink"))
    if permalink is None:
        raise UnreadableRecord("no permalink")
    caption = clean_text(item.get("caption"))
    return FetchedPost(
        platform="instagram",
        external_id=media_id,
        url=permalink,
        author=UNKNOWN_AUTHOR,
        text=caption,
        html=text_to_html(caption),
        created_at=created_at,
        hashtags=tuple(t for t in extract_hashtags(caption) if len(t) <= _MAX_TAG_CHARS),
        media=_attachments(media_id, item, now),
        engagement=Engagement(
            likes=as_count(item.get("like_count")),
            replies=as_count(item.get("comments_count")),
        ),
        ref=media_id,
    )


def _attachments(media_id: str, item: Mapping[str, Any], now: datetime) -> tuple[Media, ...]:
    """The image or video, or each child of a carousel; items without a URL are left out."""
    if item.get("media_type") == "CAROUSEL_ALBUM":
        children = item.get("children")
        data = children.get("data") if isinstance(children, dict) else None
        parts = [
            (as_id(child.get("id")) or f"{media_id}:{position}", child)
            for position, child in enumerate(data if isinstance(data, list) else [])
            if isinstance(child, dict)
        ]
    else:
        parts = [(media_id, dict(item))]
    media: list[Media] = []
    for key, part in parts:
        media_type = part.get("media_type")
        kind = _MEDIA_KINDS.get(media_type) if isinstance(media_type, str) else None
        url = http_url(part.get("media_url"))
        if kind is not None and url is not None:
            preview = http_url(part.get("thumbnail_url")) if kind == "video" else None
            media.append(
                Media(
                    kind=kind,
                    url=url,
                    preview_url=preview,
                    expires_at=_url_expiry(url, now),
                    key=key,
                )
            )
    return tuple(media)


def _url_expiry(url: str, now: datetime) -> datetime:
    """When a signed CDN URL stops working: its ``oe`` parameter, else an assumed day."""
    try:
        expiry = parse_qs(urlsplit(url).query).get("oe", [""])[0]
        when = datetime.fromtimestamp(int(expiry, 16), UTC)
    except (ValueError, OverflowError, OSError):
        return now + ASSUMED_URL_LIFETIME
    if abs(when - now) > timedelta(days=366):
        return now + ASSUMED_URL_LIFETIME
    return when
