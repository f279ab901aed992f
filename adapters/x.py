"""X: API v2 recent search for each hashtag, with an app-only bearer token.

API facts relied on (docs.x.com, X API v2):

* ``GET /2/tweets/search/recent`` covers the last 7 days only. ``query`` (here
  ``#tag -is:retweet``), ``max_results`` 10-100, ``next_token`` pages from the
  newest to the oldest match; ``since_id`` and ``until_id`` are exclusive
  bounds, ``start_time`` must lie within the 7 days. Polling with ``since_id``
  set to the newest id already seen is the documented way to ask for new posts.
* ``GET /2/tweets?ids=`` takes up to 100 ids. Ids that are gone answer in
  ``errors`` (``resource-not-found``, or ``not-authorized-for-resource`` when the
  author went protected); both mean the post is no longer public.
* An edit creates a new post id; ``edit_history_tweet_ids`` lists the chain,
  oldest first. Search returns the latest version; deleting any version deletes
  the chain. The chain's first id is our external id, so an edit updates the
  stored post; the version's id is its ``ref``.
* Post ids are snowflakes: ``(id >> 22) + 1288834974657`` is the creation time
  in Unix milliseconds, which tells whether an id is still inside the window.
* ``x-rate-limit-remaining`` / ``x-rate-limit-reset`` (Unix seconds) on every
  answer; a 403 ``client-not-enrolled`` means the app's package lacks search.

The polling cursor is our own JSON: the newest id stored (or, before any post
was seen, the time to search from) and, while a walk is unfinished, the window
still to read (its lower bound and, as ``upper``, the exclusive ``until_id``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

import httpx
import pydantic

from adapters.base import (
    Adapter,
    AuthFailed,
    Author,
    Batch,
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
    iso_seconds,
    parse_time,
    platform_tags,
    sanitise_html,
    text_to_html,
    unique,
)

DEFAULT_API_BASE = "https://api.x.com"
PAGE_LIMIT = 100
BULK_LIMIT = 100
SEARCH_WINDOW = timedelta(days=7)
#: ``start_time`` must still be inside the window when X receives the request.
_WINDOW_MARGIN = timedelta(minutes=5)
#: After a search that found nothing, later polls start this long before it:
#: a post becomes searchable a moment after it is created.
_INDEX_LAG = timedelta(minutes=5)
_TWITTER_EPOCH_MS = 1288834974657
_MAX_MEDIA = 20

TWEET_FIELDS = (
    "created_at,public_metrics,possibly_sensitive,edit_history_tweet_ids,entities,"
    "attachments,author_id,note_tweet"
)
EXPANSIONS = "author_id,attachments.media_keys"
USER_FIELDS = "username,name,public_metrics"
MEDIA_FIELDS = "url,preview_image_url,alt_text,width,height,type,variants"

#: Problems that mean a post is no longer public (deleted, or its author went protected).
GONE_PROBLEMS = frozenset(
    {
        "https://api.x.com/2/problems/resource-not-found",
        "https://api.twitter.com/2/problems/resource-not-found",
        "https://api.x.com/2/problems/not-authorized-for-resource",
        "https://api.twitter.com/2/problems/not-authorized-for-resource",
    }
)
_MEDIA_KINDS: dict[str, MediaKind] = {"photo": "image", "video": "video", "animated_gif": "gif"}
_ID = re.compile(r"[0-9]{1,19}")
_USERNAME = re.compile(r"[A-Za-z0-9_]{1,50}")
_TIER_ADVICE = (
    "recent search needs the app to be on the pay-per-use package (or a legacy Basic/Pro"
    " subscription, or Enterprise) in the Production environment; in console.x.com move the"
    " app to Pay-per-use and add credits, then copy its Bearer Token into X_BEARER_TOKEN"
)

_reset_reader = epoch_reset_reader("x-rate-limit-reset")

#: A lower bound of a search: a post id (``since_id``) or a time (``start_time``).
Bound = str | datetime


def snowflake_time(post_id: str) -> datetime | None:
    """When a post id was minted, or None for ids older than snowflakes."""
    millis = (int(post_id) >> 22) + _TWITTER_EPOCH_MS
    return datetime.fromtimestamp(millis / 1000, UTC) if int(post_id) >> 22 else None


def _lower_or_none(value: Any) -> Bound | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    return _valid_id(value) or parse_time(value)


def _dump_lower(lower: Bound) -> str:
    return lower if isinstance(lower, str) else iso_seconds(lower)


_Bound = Annotated[
    Bound | None,
    pydantic.BeforeValidator(_lower_or_none),
    pydantic.PlainSerializer(_dump_lower, when_used="unless-none"),
]


class _Cursor(WindowCursor[_Bound]):
    """The polling cursor (see the module docstring); ``upper`` is a post id (``until_id``)."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _earlier_shape(cls, data: Any) -> Any:
        """Cursors stored before the shared window walk named the time to search from,
        before any post was seen, ``start``, and the upper bound ``until_id``."""
        if not isinstance(data, dict):
            return data
        newest = data.get("newest") if _lower_or_none(data.get("newest")) else data.get("start")
        upper = _valid_id(data.get("upper", data.get("until_id")))
        return {**data, "newest": newest, "upper": upper}


class XSettings(AdapterSettings):
    """The keys this adapter reads (see ``.env.example``)."""

    x_bearer_token: pydantic.SecretStr
    x_api_base: BaseUrl = DEFAULT_API_BASE

    @pydantic.field_validator("x_bearer_token")
    @classmethod
    def _one_line(cls, token: pydantic.SecretStr) -> pydantic.SecretStr:
        value = token.get_secret_value()
        if any(ch.isspace() for ch in value) or not value.isprintable():
            raise ValueError("the token must be one line without spaces")
        return token


class XAdapter(WindowedSearch[str], Adapter[XSettings]):
    """Searches X for each hashtag with ``GET /2/tweets/search/recent``."""

    name: ClassVar[str] = "x"
    display_name: ClassVar[str] = "X"

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        self.base = self.settings.x_api_base

    # --- polling: the window walk is WindowedSearch's ---------------------------------

    window_cursor = _Cursor
    spent = "x: search requests"

    def newest_bound(self, newest: Bound | None, page: WalkPage[FetchedPost, Any]) -> Bound | None:
        ids = [*page.batch.ids, *([newest] if isinstance(newest, str) else [])]
        return max(ids, key=int) if ids else newest

    def upper_bound(self, upper: str | None, page: WalkPage[FetchedPost, Any]) -> str | None:
        return min(page.batch.ids, key=int, default=None)

    def settled(self, newest: Bound | None, lower: Bound, started: datetime) -> Bound:
        """The newest id read, or before any, a start that stays close behind the clock."""
        if isinstance(newest, str):
            return newest
        return max(lower if isinstance(lower, datetime) else started, started - _INDEX_LAG)

    def clamped(self, lower: Bound, now: datetime) -> tuple[Bound, str | None]:
        """Keep a lower bound inside the 7-day search window, saying what falls outside."""
        horizon = now - SEARCH_WINDOW + _WINDOW_MARGIN
        when = snowflake_time(lower) if isinstance(lower, str) else lower
        if when is not None and when >= horizon:
            return lower, None
        since = f"from {when:%Y-%m-%d %H:%M} " if when is not None else ""
        return horizon, (
            f"X recent search reaches back only 7 days: posts {since}before"
            f" {horizon:%Y-%m-%d %H:%M} UTC could not be read"
        )

    def read_position(self, resume: str) -> str | None:
        return _valid_id(resume)

    def write_position(self, upper: str) -> str:
        return upper

    def walk_window(
        self, target: Target, lower: Bound, until_id: str | None, max_pages: int
    ) -> Iterator[WalkPage[FetchedPost, str]]:
        """Newest to oldest through the matches between ``lower`` and ``until_id``.

        Pages follow ``next_token`` with the query unchanged; if X refuses its
        own token the walk starts again from ``until_id`` at the oldest id read.
        If X refuses the stored ``since_id`` (outside its window by its clock,
        not ours), the walk reads the whole window instead and says so.
        """
        params = _search_params(target, lower, until_id)
        reached = until_id  # the oldest id read so far

        def fetch(next_token: str | None) -> Batch[FetchedPost, str]:
            nonlocal reached
            body, response, note = self._search_page(params, next_token, reached)
            ids = tuple(tid for tid in (_valid_id(t.get("id")) for t in _tweets_of(body)) if tid)
            reached = min([i for i in (*ids, reached) if i], key=int, default=None)
            posts, skipped = _normalise_page(body, target.hashtags)
            token = as_object(body.get("meta")).get("next_token")
            return Batch(
                posts,
                skipped,
                ids,
                token if isinstance(token, str) and token else None,
                note=note,
                retry_at=spent_until(response, "x-rate-limit-remaining", _reset_reader, 900.0),
            )

        return walk_newest_first(fetch, until=None, max_pages=max_pages)

    def _search_page(
        self, params: dict[str, Any], next_token: str | None, reached: str | None
    ) -> tuple[Any, httpx.Response, str | None]:
        """One search page, and a gap note when X refused our position and we read around it.

        X refusing its own ``next_token`` restarts from ``until_id`` at the oldest
        id read; X refusing the stored ``since_id`` on the first page reads the
        whole window instead (``params`` is updated so later pages follow suit).
        """
        request = dict(params, next_token=next_token) if next_token else params
        try:
            body, response = self._get("/2/tweets/search/recent", request)
            return body, response, None
        except RequestRejected as exc:
            note = None
            if next_token is not None and reached is not None:
                params["until_id"] = reached
            elif next_token is None and "since_id" in params:
                # Well inside the window, whatever X's clock says.
                horizon = datetime.now(UTC) - SEARCH_WINDOW + timedelta(hours=1)
                params["start_time"] = iso_seconds(horizon)
                del params["since_id"]
                note = (
                    f"X refused the stored since_id ({exc}), so the walk read from"
                    f" {horizon:%Y-%m-%d %H:%M} UTC; older posts may be missing"
                )
            else:
                raise
        body, response = self._get("/2/tweets/search/recent", params)
        return body, response, note

    # --- refresh -----------------------------------------------------------------

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        valid, unusable = split_refs(
            refs, _ID.fullmatch, lambda r: f"ref {r[:100]!r} is not a post id"
        )
        skipped = list(unusable)
        posts: list[FetchedPost] = []
        deleted: list[str] = []
        for start in range(0, len(valid), BULK_LIMIT):
            chunk = valid[start : start + BULK_LIMIT]
            found, gone, unknown = self._lookup(chunk)
            skipped.extend(unknown)
            deleted.extend(ref for ref in chunk if ref in gone)
            # A version that is not the chain's last was edited: read the latest.
            latest = {
                ref: chain[-1]
                for ref, (tweet, _) in found.items()
                if (chain := _history(tweet))[-1] != ref
            }
            newer, newer_gone, newer_unknown = self._lookup(list(unique(latest.values())))
            skipped.extend(newer_unknown)
            current: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
            for ref, (tweet, includes) in found.items():
                if ref in latest and latest[ref] in newer_gone:
                    deleted.append(ref)  # deleting any version deletes the whole chain
                    continue
                current.append((ref, *newer.get(latest.get(ref, ""), (tweet, includes))))
            live, unreadable = normalise_each(
                current, lambda item: normalise_tweet(item[1], item[2]), lambda i: f"post {i[0]}"
            )
            posts.extend(live)
            skipped.extend(unreadable)
        return RefreshResult(tuple(posts), tuple(deleted), tuple(skipped))

    def _lookup(
        self, ids: list[str]
    ) -> tuple[dict[str, tuple[dict[str, Any], dict[str, Any]]], set[str], list[str]]:
        """Posts by id (with the includes), ids gone, and reasons for ids left in doubt."""
        if not ids:
            return {}, set(), []
        body, _ = self._get(
            "/2/tweets",
            {
                "ids": ",".join(ids),
                "tweet.fields": TWEET_FIELDS,
                "expansions": EXPANSIONS,
                "user.fields": USER_FIELDS,
                "media.fields": MEDIA_FIELDS,
            },
        )
        includes = _includes(body)
        found = {
            tid: (tweet, includes)
            for tweet in _tweets_of(body)
            if (tid := _valid_id(tweet.get("id"))) in ids
        }
        in_doubt: dict[str, str] = {}
        errors = as_array(body.get("errors"))
        for problem in errors:
            if not isinstance(problem, dict):
                continue
            resource = _valid_id(problem.get("resource_id")) or _valid_id(problem.get("value"))
            if (
                resource in ids
                and resource not in found
                and problem.get("type") not in GONE_PROBLEMS
            ):
                detail = clean_text(problem.get("detail"), 200) or clean_text(problem.get("title"))
                in_doubt[resource] = (
                    f"post {resource}: not refreshed ({detail or 'unknown problem'})"
                )
        # Not found, protected, or simply missing from the answer: no longer public.
        gone = {tid for tid in ids if tid not in found and tid not in in_doubt}
        return found, gone, list(in_doubt.values())

    def _get(self, path: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], httpx.Response]:
        response = self.http.request(
            "GET",
            f"{self.base}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.settings.x_bearer_token.get_secret_value()}"},
            reset_reader=_reset_reader,
            ok_statuses=frozenset({400, 401, 403}),
        )
        if response.is_success:
            body = decode_json(response)
            if not isinstance(body, dict):
                raise MalformedResponse(f"x: {path} answered something other than a JSON object")
            return body, response
        problem = _problem(response)
        if response.status_code == 401:
            raise AuthFailed(
                f"x: X_BEARER_TOKEN was refused (HTTP 401: {problem}); the token is wrong or was"
                " regenerated: copy the app's current Bearer Token from console.x.com"
            )
        if response.status_code == 403:
            if (
                b"client-not-enrolled" in response.content
                or b"client-forbidden" in response.content
            ):
                raise AuthFailed(
                    f"x: {path} is not available to this app ({problem}); {_TIER_ADVICE}"
                )
            raise AuthFailed(f"x: {path} refused X_BEARER_TOKEN (HTTP 403: {problem})")
        raise RequestRejected(
            f"x: {path} refused the request (HTTP {response.status_code}: {problem})"
        )


def _query(hashtags: Sequence[str]) -> str:
    tags = [f"#{tag.lstrip('#')}" for tag in hashtags]
    joined = tags[0] if len(tags) == 1 else f"({' OR '.join(tags)})"
    return f"{joined} -is:retweet"


def _search_params(target: Target, lower: Bound, until_id: str | None) -> dict[str, Any]:
    """The recent-search query for a walk between ``lower`` (an id or a time) and ``until_id``."""
    params: dict[str, Any] = {
        "query": _query(target.hashtags),
        "max_results": PAGE_LIMIT,
        "sort_order": "recency",
        "tweet.fields": TWEET_FIELDS,
        "expansions": EXPANSIONS,
        "user.fields": USER_FIELDS,
        "media.fields": MEDIA_FIELDS,
    }
    if isinstance(lower, str):
        params["since_id"] = lower
    else:
        params["start_time"] = iso_seconds(lower)
    if until_id:
        params["until_id"] = until_id
    return params


def _problem(response: httpx.Response) -> str:
    """A short readable summary of an X problem body."""
    body = error_body(response)  # never the raw body: only the platform's own fields
    parts = [
        clean_text(body.get(key), 300)
        for key in ("reason", "title", "detail", "required_enrollment")
    ]
    errors = as_array(body.get("errors"))
    parts += [clean_text(e.get("message"), 300) for e in errors[:3] if isinstance(e, dict)]
    return "; ".join(part for part in parts if part) or f"HTTP {response.status_code}"


def _valid_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _tweets_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The posts of an answer; X leaves ``data`` out when nothing matched."""
    if body.get("data") is None:
        return []
    return json_records(body, "data", "x: expected 'data' to be a list of posts")


def _includes(body: dict[str, Any]) -> dict[str, Any]:
    return body["includes"] if isinstance(body.get("includes"), dict) else {}


def _history(tweet: Mapping[str, Any]) -> list[str]:
    """The edit chain, oldest first; a post never edited is its own chain."""
    own = _valid_id(tweet.get("id"))
    raw = tweet.get("edit_history_tweet_ids")
    chain = [tid for tid in as_array(raw) if _valid_id(tid)]
    if own and own not in chain:
        chain.append(own)
    return chain


def _normalise_page(
    body: dict[str, Any], hashtags: Sequence[str]
) -> tuple[tuple[FetchedPost, ...], tuple[str, ...]]:
    """The page's latest versions carrying a wanted tag, once each, and the unreadable ones."""
    includes = _includes(body)
    posts, skipped = normalise_each(
        [tweet for tweet in _tweets_of(body) if not _superseded(tweet)],
        lambda tweet: normalise_tweet(tweet, includes),
        lambda tweet: f"post {_valid_id(tweet.get('id')) or '?'}",
    )
    return carrying(posts, hashtags), skipped


def _superseded(tweet: Mapping[str, Any]) -> bool:
    """An older version of an edited post: its latest version is read instead."""
    own = _valid_id(tweet.get("id"))
    chain = _history(tweet)
    return bool(own and chain and chain[-1] != own)


def normalise_tweet(tweet: Mapping[str, Any], includes: Mapping[str, Any]) -> FetchedPost:
    """Map one v2 post (with the response's ``includes``) to a :class:`FetchedPost`."""
    post_id = _valid_id(tweet.get("id"))
    if post_id is None:
        raise UnreadableRecord("no valid id")
    created = parse_time(tweet.get("created_at"))
    if created is None:
        raise UnreadableRecord("no readable created_at")
    author_id = _valid_id(tweet.get("author_id"))
    if author_id is None:
        raise UnreadableRecord("no author_id")
    chain = _history(tweet)
    original = chain[0]
    edited_at = created if original != post_id else None
    created_at = (snowflake_time(original) or created) if edited_at else created
    users = as_array(includes.get("users"))
    user = next((u for u in users if isinstance(u, dict) and u.get("id") == author_id), {})
    username = as_str(user.get("username"))
    username = username if _USERNAME.fullmatch(username) else ""
    note = as_object(tweet.get("note_tweet"))
    raw_text = note.get("text") if isinstance(note.get("text"), str) else tweet.get("text")
    text = clean_text(html.unescape(raw_text) if isinstance(raw_text, str) else "")
    hashtags = unique(
        [*platform_tags(_entity_tags(tweet) + _entity_tags(note)), *extract_hashtags(text)]
    )
    sensitive = tweet.get("possibly_sensitive") is True
    attachments = as_object(tweet.get("attachments"))
    metrics = as_object(tweet.get("public_metrics"))
    shares = as_count(metrics.get("retweet_count"))
    return FetchedPost(
        platform="x",
        external_id=original,
        url=(
            f"https://x.com/{username}/status/{post_id}"
            if username
            else f"https://x.com/i/web/status/{post_id}"
        ),
        author=Author(
            handle=f"@{username}" if username else f"id:{author_id}",
            name=clean_text(user.get("name"), 300) or username or f"X user {author_id}",
            url=f"https://x.com/{username}" if username else None,
        ),
        text=text,
        html=sanitise_html(text_to_html(text)),
        created_at=created_at,
        hashtags=hashtags,
        media=tuple(_media(attachments.get("media_keys"), includes, sensitive))[:_MAX_MEDIA],
        engagement=Engagement(
            likes=as_count(metrics.get("like_count")),
            shares=shares if shares is not None else as_count(metrics.get("repost_count")),
            replies=as_count(metrics.get("reply_count")),
            quotes=as_count(metrics.get("quote_count")),
            views=as_count(metrics.get("impression_count")),
        ),
        sensitive=sensitive,
        edited_at=edited_at,
        ref=post_id,
        author_followers=as_count(as_object(user.get("public_metrics")).get("followers_count")),
    )


def _entity_tags(holder: Mapping[str, Any]) -> list[str]:
    entities = as_object(holder.get("entities"))
    tags = as_array(entities.get("hashtags"))
    return [t["tag"] for t in tags if isinstance(t, dict) and isinstance(t.get("tag"), str)]


def _media(keys: Any, includes: Mapping[str, Any], sensitive: bool) -> list[Media]:
    """The post's attachments from ``includes.media``, in the post's order."""
    listed = as_array(includes.get("media"))
    by_key = {m["media_key"]: m for m in listed if isinstance(m, dict) and "media_key" in m}
    media: list[Media] = []
    for key in as_array(keys):
        item = by_key.get(key) if isinstance(key, str) else None
        kind = _MEDIA_KINDS.get(str(item.get("type"))) if item else None
        if item is None or kind is None:
            continue
        preview = http_url(item.get("preview_image_url"))
        url = http_url(item.get("url")) if kind == "image" else _best_video(item.get("variants"))
        url = url or preview
        if url is None:
            continue
        media.append(
            Media(
                kind=kind,
                url=url,
                alt=clean_text(item.get("alt_text"), 1500) or None,
                preview_url=preview,
                sensitive=sensitive,
                width=as_count(item.get("width")),
                height=as_count(item.get("height")),
                key=key,
            )
        )
    return media


def _best_video(variants: Any) -> str | None:
    """The highest-bitrate MP4 of a video or GIF (HLS playlists cannot be pinned)."""
    mp4 = [
        (as_count(v.get("bit_rate")) or 0, url)
        for v in as_array(variants)
        if isinstance(v, dict)
        and v.get("content_type") == "video/mp4"
        and (url := http_url(v.get("url")))
    ]
    return max(mp4)[1] if mp4 else None
