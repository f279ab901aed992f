"""Bluesky: ``app.bsky.feed.searchPosts`` for each hashtag, through an app-password session.

API facts relied on (docs.bsky.app and the lexicons in bluesky-social/atproto):

* ``com.atproto.server.createSession`` (``identifier``, ``password``) answers
  ``accessJwt`` and ``refreshJwt``. It is limited to 30 calls per 5 minutes and
  300 a day per account (100 on the bsky.social entryway), so a session is kept
  for the whole process and renewed with ``com.atproto.server.refreshSession``
  (the refresh token as bearer), never created per poll.
* An expired access token is answered HTTP 400 ``{"error": "ExpiredToken"}`` by
  the PDS and 401 by the AppView; both mean "refresh and ask again".
* ``searchPosts``: ``q``, ``sort=latest`` (newest first by ``sortAt``, the
  earlier of ``createdAt`` and ``indexedAt``), ``since`` (inclusive) and
  ``until`` (exclusive) on ``sortAt``, ``limit`` up to 100, an opaque ``cursor``
  that "may not necessarily allow scrolling through the entire result set".
* ``getPosts`` takes up to 25 ``uris``; a uri missing from the answer is gone.
* Facet ``byteStart``/``byteEnd`` index the UTF-8 bytes of the text.
* ``RateLimit-Remaining`` and ``RateLimit-Reset`` (epoch seconds) on responses.

The polling cursor is our own JSON: ``newest`` (the newest ``sortAt`` stored)
and, while a walk is unfinished, the window ``[lower, upper)`` still to read.
Every page therefore carries a cursor that resumes exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import quote

import httpx
import pydantic

from adapters.base import (
    Adapter,
    AdapterError,
    AuthFailed,
    Author,
    Batch,
    CredentialCache,
    CursorTime,
    Engagement,
    FetchedPost,
    MalformedResponse,
    Media,
    MediaKind,
    RefreshResult,
    RequestRejected,
    Target,
    UnreadableRecord,
    WalkPage,
    WindowCursor,
    WindowedSearch,
    carrying,
    json_records,
    normalise_each,
    refresh_in_chunks,
    split_refs,
    walk_newest_first,
)
from adapters.http import HttpClient, decode_json, epoch_reset_reader, error_body, spent_until
from adapters.settings import AdapterSettings, BaseUrl
from adapters.text import (
    as_array,
    as_count,
    as_object,
    as_str,
    clean_text,
    extract_hashtags,
    http_url,
    parse_time,
    platform_tags,
    sanitise_html,
    unique,
)

DEFAULT_API_BASE = "https://bsky.social"
PAGE_LIMIT = 100
BULK_LIMIT = 25
#: Later polls re-read this much before the newest post stored: a post is
#: searchable only once indexed, and its ``sortAt`` can be a little earlier.
OVERLAP = timedelta(minutes=10)
#: ``until`` is exclusive: one millisecond past the oldest post re-reads its ties.
_TICK = timedelta(milliseconds=1)
_MAX_MEDIA = 20

#: Moderation label values (self-labels or labeller labels) that make a post sensitive.
SENSITIVE_LABELS = frozenset(
    {"porn", "sexual", "nudity", "graphic-media", "gore", "!warn", "!hide", "!takedown"}
)

_POST_URI = re.compile(
    r"at://(?P<repo>did:[a-z]+:[A-Za-z0-9._:%-]{1,240})"
    r"/app\.bsky\.feed\.post/(?P<rkey>[A-Za-z0-9._:~-]{1,100})"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
_HANDLE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")
# Bounded so an id, a handle or a uri always fits the storage columns.
_DID = re.compile(r"did:[a-z]+:[A-Za-z0-9._:%-]{1,240}")
_IDENTIFIER = re.compile(r"[^\s/]{1,253}")

_reset_reader = epoch_reset_reader("ratelimit-reset")


@dataclasses.dataclass(frozen=True, slots=True)
class _Session:
    access: str
    refresh: str


#: Sessions outlive adapter instances (one is built per polling cycle) because
#: createSession has a small daily budget; one login per account for the process.
_SESSIONS: CredentialCache[_Session] = CredentialCache()
#: Credentials the server refused, with when and why: not tried again for a while,
#: so a wrong password does not spend the daily login budget (new keys retry at once).
_REFUSED: dict[tuple[str, ...], tuple[datetime, str]] = {}
LOGIN_RETRY_AFTER = timedelta(minutes=30)
#: An access token is used until the server refuses it, then refreshed.
_UNTIL_REFUSED = math.inf


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: A page of a walk: the query's ``until`` bound and the API's cursor within that query.
_Position = tuple[datetime | None, str | None]
_Time = Annotated[CursorTime, pydantic.PlainSerializer(_iso, when_used="unless-none")]


class BlueskySettings(AdapterSettings):
    """The keys this adapter reads (see ``.env.example``)."""

    bluesky_handle: Annotated[str, pydantic.AfterValidator(lambda value: _checked_handle(value))]
    bluesky_app_password: pydantic.SecretStr
    bluesky_api_base: BaseUrl = DEFAULT_API_BASE


class BlueskyAdapter(WindowedSearch[datetime], Adapter[BlueskySettings]):
    """Searches Bluesky for each hashtag with ``app.bsky.feed.searchPosts``."""

    name: ClassVar[str] = "bluesky"

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        self.handle, self.base = self.settings.bluesky_handle, self.settings.bluesky_api_base
        self._password = self.settings.bluesky_app_password.get_secret_value()
        self._session_key = _SESSIONS.key(self.base, self.handle.casefold(), secret=self._password)

    # --- session -----------------------------------------------------------------

    def _create_session(self) -> tuple[_Session, float]:
        refused = _REFUSED.get(self._session_key)
        if refused is not None and datetime.now(UTC) - refused[0] < LOGIN_RETRY_AFTER:
            retry = refused[0] + LOGIN_RETRY_AFTER
            raise AuthFailed(f"{refused[1]} (not retried before {retry:%H:%M} UTC)")
        response = self.http.request(
            "POST",
            f"{self.base}/xrpc/com.atproto.server.createSession",
            json_body={"identifier": self.handle, "password": self._password},
            reset_reader=_reset_reader,
            ok_statuses=frozenset({400, 401, 403}),
        )
        if response.is_success:
            _REFUSED.pop(self._session_key, None)
            return _session_from(decode_json(response)), _UNTIL_REFUSED
        error, message = _xrpc_error(response)
        reason = (
            f"bluesky: login as {self.handle!r} refused"
            f" (HTTP {response.status_code} {error or ''}: {message}); {_login_advice(error)}"
        )
        _REFUSED[self._session_key] = (datetime.now(UTC), reason)
        raise AuthFailed(reason)

    def _refresh_session(self, session: _Session) -> tuple[_Session, float] | None:
        """Renew with the refresh token; None when that is refused too (log in again)."""
        response = self.http.request(
            "POST",
            f"{self.base}/xrpc/com.atproto.server.refreshSession",
            headers={"Authorization": f"Bearer {session.refresh}"},
            reset_reader=_reset_reader,
            ok_statuses=frozenset({400, 401, 403}),
        )
        if not response.is_success:
            return None
        return _session_from(decode_json(response)), _UNTIL_REFUSED

    def _xrpc(self, method: str, params: Any) -> tuple[Any, httpx.Response]:
        """GET an XRPC query with the session, renewing it once if it expired."""
        refusals: list[httpx.Response] = []

        def send(session: _Session) -> tuple[Any, httpx.Response] | None:
            response = self.http.request(
                "GET",
                f"{self.base}/xrpc/{method}",
                params=params,
                headers={"Authorization": f"Bearer {session.access}"},
                reset_reader=_reset_reader,
                ok_statuses=frozenset({400, 401, 403}),
            )
            if response.is_success:
                return decode_json(response), response
            error, message = _xrpc_error(response)
            if response.status_code == 401 or error in ("ExpiredToken", "InvalidToken"):
                refusals.append(response)
                return None  # expired: refresh and ask again
            raise _refusal(method, self.handle, response)

        return _SESSIONS.renewing_once(
            self._session_key,
            self._create_session,
            send,
            lambda: _refusal(method, self.handle, refusals[-1]),
            renew=self._refresh_session,
        )

    # --- polling: the window walk is WindowedSearch's ---------------------------------

    window_cursor = WindowCursor[_Time]
    spent = "bluesky: request budget"

    def start_after(self, newest: datetime) -> datetime:
        return newest - OVERLAP

    def newest_bound(
        self, newest: datetime | None, page: WalkPage[FetchedPost, Any]
    ) -> datetime | None:
        return max((t for t in (newest, page.batch.newest) if t is not None), default=None)

    def upper_bound(
        self, upper: datetime | None, page: WalkPage[FetchedPost, Any]
    ) -> datetime | None:
        oldest = page.batch.oldest
        return _bound_after(upper, oldest) if oldest is not None else None

    def settled(self, newest: datetime | None, lower: datetime, started: datetime) -> datetime:
        return max(newest, lower) if newest else lower

    def read_position(self, resume: str) -> datetime | None:
        return parse_time(resume)

    def write_position(self, upper: datetime) -> str:
        return _iso(upper)

    def walk_window(
        self, target: Target, lower: datetime, upper: datetime | None, max_pages: int
    ) -> Iterator[WalkPage[FetchedPost, _Position]]:
        """Newest to oldest through the search results in ``[lower, upper)``.

        Pages follow the API cursor with the query unchanged. When the API
        refuses its own cursor, or stops giving one after a full page (its scroll
        limit), the walk starts a new query bounded by ``until`` just past the
        oldest post read so far; the shared walk ends one that stops making progress.
        """
        query = " ".join(f"#{tag.lstrip('#')}" for tag in target.hashtags)
        reached = upper  # just past the oldest post read so far

        def fetch(position: _Position | None) -> Batch[FetchedPost, _Position]:
            nonlocal reached
            query_upper, api_cursor = position or (upper, None)
            try:
                body, response = self._search(query, lower, query_upper, api_cursor)
            except RequestRejected:
                if api_cursor is None or reached is None:
                    raise
                query_upper = reached
                body, response = self._search(query, lower, query_upper, None)
            views = _posts_of(body)
            posts, skipped = _normalise_all(views, target.hashtags)
            times = [t for t in (_sort_time(view) for view in views) if t is not None]
            reached = _bound_after(reached, min(times, default=None))
            return Batch(
                posts,
                skipped,
                tuple(view["uri"] for view in views if isinstance(view.get("uri"), str)),
                _next_position(body, query_upper, len(views), reached),
                oldest=min(times, default=None),
                newest=max(times, default=None),
                retry_at=spent_until(response, "ratelimit-remaining", _reset_reader, 60.0),
            )

        return walk_newest_first(fetch, until=lower, max_pages=max_pages)

    def _search(
        self, query: str, lower: datetime, upper: datetime | None, cursor: str | None
    ) -> tuple[Any, httpx.Response]:
        params: dict[str, Any] = {"q": query, "sort": "latest", "limit": PAGE_LIMIT}
        params["since"] = _iso(lower)
        if upper is not None:
            params["until"] = _iso(upper)
        if cursor:
            params["cursor"] = cursor
        return self._xrpc("app.bsky.feed.searchPosts", params)

    # --- refresh -----------------------------------------------------------------

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        valid, invalid = split_refs(
            refs, _POST_URI.fullmatch, lambda uri: f"ref {uri[:200]!r} is not an at:// post uri"
        )
        found = refresh_in_chunks(
            valid, BULK_LIMIT, self._get_posts, lambda views: _normalise_all(views, None)
        )
        return RefreshResult(skipped=invalid) + found

    def _get_posts(self, uris: list[str]) -> dict[str, dict[str, Any]]:
        """Post views by uri; a uri missing from the answer is gone."""
        body, _ = self._xrpc("app.bsky.feed.getPosts", [("uris", uri) for uri in uris])
        return {view["uri"]: view for view in _posts_of(body) if view.get("uri") in uris}

    # --- follower counts (potential reach) ------------------------------------------

    gives_follower_counts = True

    def follower_counts(
        self, handles: Sequence[str], profile_urls: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """``followersCount`` from ``app.bsky.actor.getProfiles``, 25 actors a call (by
        handle: the profile addresses are not needed)."""
        actors = {handle.removeprefix("@"): handle for handle in unique(handles)}
        counts: dict[str, int] = {}
        names = [actor for actor in actors if actor]
        for start in range(0, len(names), BULK_LIMIT):
            chunk = names[start : start + BULK_LIMIT]
            body, _ = self._xrpc("app.bsky.actor.getProfiles", [("actors", a) for a in chunk])
            profiles = as_array(as_object(body).get("profiles"))
            for profile in profiles:
                profile = as_object(profile)
                followers = as_count(profile.get("followersCount"))
                for key in (as_str(profile.get("handle")), as_str(profile.get("did"))):
                    if followers is not None and key in actors:
                        counts[actors[key]] = followers
        return counts


def _checked_handle(value: str) -> str:
    handle = value.lstrip("@")
    if not _IDENTIFIER.fullmatch(handle):
        raise ValueError("expected a handle such as name.bsky.social, without spaces")
    return handle


def _session_from(body: Any) -> _Session:
    if not isinstance(body, dict):
        raise MalformedResponse("bluesky: the session answer is not a JSON object")
    access, refresh = body.get("accessJwt"), body.get("refreshJwt")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise MalformedResponse("bluesky: the session answer has no accessJwt/refreshJwt")
    return _Session(access, refresh)


def _login_advice(error: str | None) -> str:
    """What to do about a refused login, by the XRPC error name."""
    if error == "AuthFactorTokenRequired":
        return "the account asks for an email code: use an app password instead"
    if error == "AccountTakedown":
        return "the account has been taken down; use another account"
    return (
        "check BLUESKY_HANDLE and create an app password under Settings > Privacy"
        " and security > App passwords for BLUESKY_APP_PASSWORD"
    )


def _refusal(method: str, handle: str, response: httpx.Response) -> AdapterError:
    """Our error for an XRPC query the server refused."""
    error, message = _xrpc_error(response)
    detail = f"HTTP {response.status_code} {error or ''}: {message}"
    expired = response.status_code == 401 or error in ("ExpiredToken", "InvalidToken")
    if expired or response.status_code == 403:
        return AuthFailed(
            f"bluesky: {method} refused the session of {handle!r} ({detail}); check"
            " BLUESKY_HANDLE and BLUESKY_APP_PASSWORD"
        )
    return RequestRejected(f"bluesky: {method} refused the request ({detail})")


def _xrpc_error(response: httpx.Response) -> tuple[str | None, str]:
    """The XRPC error name and message of a refusal (never the raw body)."""
    body = error_body(response)
    if not body:
        return None, "no detail"
    error = clean_text(body.get("error"), 100) or None
    return error, clean_text(body.get("message"), 200) or "no detail"


def _posts_of(body: Any) -> list[dict[str, Any]]:
    return json_records(body, "posts", "bluesky: expected a JSON object with a 'posts' list")


def _normalise_all(
    views: list[dict[str, Any]], hashtags: Sequence[str] | None
) -> tuple[tuple[FetchedPost, ...], tuple[str, ...]]:
    """Normalise post views, keeping those carrying one of ``hashtags`` (all when None)."""
    read, skipped = normalise_each(
        views, normalise_post, lambda view: f"post {as_str(view.get('uri'))[:200] or '?'}"
    )
    if hashtags is None:
        return tuple({post.external_id: post for post in read}.values()), skipped
    return carrying(read, hashtags), skipped


def _next_position(
    body: Any, query_upper: datetime | None, listed: int, reached: datetime | None
) -> _Position | None:
    """Where the next page is: the API cursor within the same query, or after a full page
    without one (the search's scroll limit) a new query up to just past the oldest post."""
    api_cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
    if api_cursor:
        return query_upper, api_cursor
    if listed >= PAGE_LIMIT and reached is not None:
        return reached, None
    return None


def _bound_after(upper: datetime | None, oldest: datetime | None) -> datetime | None:
    """An ``until`` bound just past ``oldest`` (never later than ``upper``)."""
    if oldest is None:
        return upper
    return oldest + _TICK if upper is None else min(upper, oldest + _TICK)


def _sort_time(view: Mapping[str, Any]) -> datetime | None:
    """The time search orders by: the earlier of ``createdAt`` and ``indexedAt``."""
    record = view.get("record")
    created = parse_time(record.get("createdAt")) if isinstance(record, dict) else None
    indexed = parse_time(view.get("indexedAt"))
    times = [t for t in (created, indexed) if t is not None]
    return min(times) if times else None


def normalise_post(view: Mapping[str, Any]) -> FetchedPost:
    """Map one ``app.bsky.feed.defs#postView`` to a :class:`FetchedPost` (or UnreadableRecord)."""
    uri = as_str(view.get("uri"))
    match = _POST_URI.fullmatch(uri)
    if match is None:
        raise UnreadableRecord("no at:// post uri")
    record = view.get("record")
    if not isinstance(record, dict):
        raise UnreadableRecord("no record")
    author = view.get("author")
    if not isinstance(author, dict):
        raise UnreadableRecord("no author")
    created_at = _sort_time(view)
    if created_at is None:
        raise UnreadableRecord("no readable createdAt or indexedAt")
    handle = as_str(author.get("handle"))
    handle = handle if _HANDLE.fullmatch(handle) and handle != "handle.invalid" else ""
    did = as_str(author.get("did"))
    profile = handle or (did if _DID.fullmatch(did) else match["repo"])
    raw_text = as_str(record.get("text"))
    body_html, facet_tags = _render(raw_text, record.get("facets"))
    text = clean_text(raw_text)
    extra_tags = as_array(record.get("tags"))
    hashtags = unique([*platform_tags(facet_tags + extra_tags), *extract_hashtags(text)])
    labels = _labels(view.get("labels"), record.get("labels"), author.get("labels"))
    sensitive = bool(labels)
    return FetchedPost(
        platform="bluesky",
        external_id=uri,
        url=f"https://bsky.app/profile/{profile}/post/{match['rkey']}",
        author=Author(
            handle=f"@{profile}",
            name=clean_text(author.get("displayName"), 300) or profile,
            url=f"https://bsky.app/profile/{profile}",
        ),
        text=text,
        html=body_html,
        created_at=created_at,
        hashtags=hashtags,
        media=tuple(_media(view.get("embed"), sensitive))[:_MAX_MEDIA],
        engagement=Engagement(
            likes=as_count(view.get("likeCount")),
            shares=as_count(view.get("repostCount")),
            replies=as_count(view.get("replyCount")),
            quotes=as_count(view.get("quoteCount")),
        ),
        sensitive=sensitive,
        content_warning=f"Labelled: {', '.join(labels)}" if labels else None,
        opt_out=_opt_out(view, record, author),
    )


#: The label an account or post carries when its owner asked that logged-out people,
#: and so any public page, not be shown their content.
NO_UNAUTHENTICATED = "!no-unauthenticated"


def _opt_out(
    view: Mapping[str, Any], record: Mapping[str, Any], author: Mapping[str, Any]
) -> str | None:
    """Why the author asked not to be shown publicly, from the ``!no-unauthenticated`` label."""
    on_author = NO_UNAUTHENTICATED in _applied_labels(author.get("labels"))
    on_post = NO_UNAUTHENTICATED in _applied_labels(view.get("labels"), record.get("labels"))
    if on_author:
        return "the Bluesky account asks not to be shown to logged-out people"
    if on_post:
        return "the Bluesky post asks not to be shown to logged-out people"
    return None


def _render(text: str, facets: Any) -> tuple[str, list[str]]:
    """Sanitised HTML of the text with its facets as links, and the facets' hashtags.

    Facets index UTF-8 bytes; a slice that is out of range, overlaps another or
    cuts a character is not linked (its hashtag still counts).
    """
    data = text.encode("utf-8")
    spans: list[tuple[int, int, str]] = []
    tags: list[str] = []
    for facet in as_array(facets):
        if not isinstance(facet, dict) or not isinstance(facet.get("features"), list):
            continue
        index = as_object(facet.get("index"))
        href = _facet_href(facet["features"], tags)
        start, end = as_count(index.get("byteStart")), as_count(index.get("byteEnd"))
        if href and start is not None and end is not None and start < end <= len(data):
            if _on_boundary(data, start) and _on_boundary(data, end):
                spans.append((start, end, href))
    return sanitise_html(_linked_paragraphs(data, spans)), tags


def _facet_href(features: list[Any], tags: list[str]) -> str | None:
    """Where a facet links to (its last usable feature); its hashtags go into ``tags``."""
    href = None
    for feature in features:
        if not isinstance(feature, dict):
            continue
        kind = feature.get("$type")
        if kind == "app.bsky.richtext.facet#tag" and isinstance(feature.get("tag"), str):
            tags.append(feature["tag"])
            href = f"https://bsky.app/hashtag/{quote(feature['tag'], safe='')}"
        elif kind == "app.bsky.richtext.facet#link":
            href = http_url(feature.get("uri")) or href
        elif kind == "app.bsky.richtext.facet#mention":
            did = feature.get("did")
            if isinstance(did, str) and _DID.fullmatch(did):
                href = f"https://bsky.app/profile/{did}"
    return href


def _linked_paragraphs(data: bytes, spans: list[tuple[int, int, str]]) -> str:
    """The text as paragraphs with each span linked; an overlapping span is left plain."""
    pieces: list[str] = []
    position = 0
    for start, end, href in sorted(spans):
        if start < position:
            continue  # overlapping facets: keep the first
        pieces.append(_escape(data[position:start]))
        pieces.append(f'<a href="{html.escape(href)}">{_escape(data[start:end])}</a>')
        position = end
    pieces.append(_escape(data[position:]))
    paragraphs = [p for p in re.split(r"\n{2,}", "".join(pieces).strip()) if p.strip()]
    return "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _on_boundary(data: bytes, offset: int) -> bool:
    """True when ``offset`` starts a UTF-8 character (or is the end of the text)."""
    return offset == len(data) or (data[offset] & 0xC0) != 0x80


def _escape(chunk: bytes) -> str:
    text = chunk.decode("utf-8", errors="replace")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return html.escape(text)


def _labels(*sources: Any) -> list[str]:
    """Sensitive label values applied and not negated, from view, record and author labels."""
    return sorted(_applied_labels(*sources) & SENSITIVE_LABELS)


def _applied_labels(*sources: Any) -> set[str]:
    """Label values applied and not negated, from label arrays or a record's selfLabels."""
    applied: set[str] = set()
    negated: set[str] = set()
    for source in sources:
        if isinstance(source, dict):  # a record's selfLabels object
            source = source.get("values")
        for label in as_array(source):
            if isinstance(label, dict) and isinstance(label.get("val"), str):
                (negated if label.get("neg") is True else applied).add(label["val"])
    return applied - negated


def _media(embed: Any, sensitive: bool) -> list[Media]:
    """Images, gallery items and videos of an embed view (also inside recordWithMedia)."""
    if not isinstance(embed, dict):
        return []
    kind = embed.get("$type")
    if kind == "app.bsky.embed.recordWithMedia#view":
        return _media(embed.get("media"), sensitive)
    if kind == "app.bsky.embed.video#view":
        shown: MediaKind = "gif" if embed.get("presentation") == "gif" else "video"
        video = _shown(shown, embed, "playlist", "thumbnail", sensitive)
        key = clean_text(embed.get("cid"), 200) or None
        return [dataclasses.replace(video, key=key)] if video else []
    if kind == "app.bsky.embed.images#view":
        items, thumb_key = embed.get("images"), "thumb"
    elif kind == "app.bsky.embed.gallery#view":
        items, thumb_key = embed.get("items"), "thumbnail"
    else:
        return []
    images = (
        _shown("image", as_object(item), "fullsize", thumb_key, sensitive)
        for item in as_array(items)
    )
    return [image for image in images if image is not None]


def _shown(
    kind: MediaKind, view: Mapping[str, Any], url_key: str, preview_key: str, sensitive: bool
) -> Media | None:
    """One image or video of an embed view: its URL, alt text, preview and aspect ratio."""
    url = http_url(view.get(url_key))
    if url is None:
        return None
    aspect = as_object(view.get("aspectRatio"))
    return Media(
        kind=kind,
        url=url,
        alt=clean_text(view.get("alt"), 1500) or None,
        preview_url=http_url(view.get(preview_key)),
        sensitive=sensitive,
        width=as_count(aspect.get("width")),
        height=as_count(aspect.get("height")),
    )
