"""Reddit: site-wide link search for each hashtag, with an application-only token.

API facts relied on (reddit.com/dev/api, the OAuth2 wiki and the Data API wiki):

* ``POST {REDDIT_AUTH_BASE}/api/v1/access_token`` with HTTP basic auth (client
  id, secret) and ``grant_type=client_credentials`` answers ``access_token``
  and ``expires_in`` (seconds); wrong credentials are a 401. API calls go to
  ``oauth.reddit.com`` with ``Authorization: bearer <token>`` and a unique,
  descriptive User-Agent (generic agents are blocked).
* ``GET /search?q=&sort=new&type=link&limit=100&after=`` is a Listing
  (``data.children[].data``, ``data.after``), newest first, at most about 1000
  results deep. An unknown ``after`` gives an empty listing, not an error.
* ``GET /api/info?id=t3_a,t3_b`` returns up to 100 things; ids it leaves out
  no longer exist. Removed posts still come back, marked by ``[removed]`` /
  ``[deleted]`` text, a ``[deleted]`` author or ``removed_by_category``.
* ``X-Ratelimit-Remaining`` / ``X-Ratelimit-Reset`` (SECONDS until the window
  resets) come on every API answer; 100 queries a minute per client id.

Reddit has no hashtag entity: search finds the word, and only posts whose
title or text carries the hashtag itself are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

import httpx
import pydantic

from adapters.base import (
    Adapter,
    AuthFailed,
    Author,
    Batch,
    CredentialCache,
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
    WalkPage,
    carrying,
    normalise_each,
    normalise_one,
    refresh_in_chunks,
    walk_newest_first,
)
from adapters.http import HttpClient, decode_json, seconds_reset_reader
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
    sanitise_html,
    text_to_html,
    unique,
)

DEFAULT_API_BASE = "https://oauth.reddit.com"
DEFAULT_AUTH_BASE = "https://www.reddit.com"
SITE = "https://www.reddit.com"
PAGE_LIMIT = 100
INFO_LIMIT = 100
#: Reddit listings stop after about this many results, whatever ``after`` says.
LISTING_DEPTH = 1000
#: Search indexes a post a little after it is made: later polls look back this
#: far behind the newest post already seen, so a late-indexed post is not missed.
INDEX_LAG = timedelta(minutes=15)
#: A token is renewed this long before Reddit says it expires.
TOKEN_MARGIN_SECONDS = 60.0
CREDENTIALS_HELP = (
    "create a 'script' or 'web' app at https://www.reddit.com/prefs/apps and set"
    " REDDIT_CLIENT_ID (under the app name) and REDDIT_CLIENT_SECRET"
)

_FULLNAME_RE = re.compile(r"t3_[0-9a-z]{1,13}")
_BASE36_RE = re.compile(r"[0-9a-z]{1,13}")
_USERNAME_RE = re.compile(r"[\w-]{1,40}")
_REMOVED_TEXTS = frozenset({"[removed]", "[deleted]"})
_FENCED_CODE_RE = re.compile(r"^ {0,3}(```|~~~).*?(^ {0,3}\1[^\n]*$|\Z)", re.M | re.S)
_INDENTED_CODE_RE = re.compile(r"^(?: {4}|\t).*$", re.M)
_INLINE_CODE_RE = re.compile(r"`+[^`\n]*`+")
_LINK_TARGET_RE = re.compile(r"\]\([^)\s]*(?:\s[^)]*)?\)")
_HEADING_RE = re.compile(r"^ {0,3}#{1,6}(?=[^#\s]|\s|$)", re.M)
_read_reset = seconds_reset_reader("x-ratelimit-reset")
#: Token expiry and quota resets are measured on this clock (tests move it).
_clock = time.monotonic


# Adapters are rebuilt every polling cycle; the token outlives them (a day by
# default), so it is cached per credential for the process, not per adapter.
_TOKENS: CredentialCache[str] = CredentialCache(clock=lambda: _clock())


class RedditSettings(AdapterSettings):
    """The keys this adapter reads (see ``.env.example``)."""

    reddit_client_id: str
    reddit_client_secret: pydantic.SecretStr
    reddit_user_agent: Annotated[str, pydantic.AfterValidator(lambda value: _checked_agent(value))]
    reddit_api_base: BaseUrl = DEFAULT_API_BASE
    reddit_auth_base: BaseUrl = DEFAULT_AUTH_BASE


class RedditAdapter(Adapter[RedditSettings]):
    """Searches Reddit for each hashtag and keeps posts whose text carries it."""

    name: ClassVar[str] = "reddit"

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        settings = self.settings
        self.api_base, self.auth_base = settings.reddit_api_base, settings.reddit_auth_base
        self.client_id, self.user_agent = settings.reddit_client_id, settings.reddit_user_agent
        self._secret = settings.reddit_client_secret.get_secret_value()
        self._token_key = _TOKENS.key(self.auth_base, self.client_id, secret=self._secret)
        self._quota_lock = threading.Lock()
        self._quota_resets_at: float | None = None

    # --- polling ---------------------------------------------------------

    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        """Newest first until posts older than the stored cursor (or ``since``).

        Listings cannot be resumed from a stored position reliably (an
        ``after`` or ``before`` naming a deleted post gives an empty listing),
        so every poll starts at the newest result and stops by TIME: at the
        first post created before the cursor's newest post minus
        :data:`INDEX_LAG`. Posts inside that overlap already seen are named in
        the cursor and not yielded again; the walk stops even when the post
        the cursor was made from has been deleted since.
        """
        state = _PollCursor.load(cursor)
        note = None
        if cursor and state is None:
            note = "the stored cursor was unreadable, so this poll re-read back to the look-back"
        stop_at = state.stop_at if state else since.timestamp()
        already = state.fullnames if state else frozenset()
        walked: dict[str, float] = {}
        tag = normalise_tag(target.hashtags[0])

        def unseen(fullname: str, _created: float) -> bool:
            return fullname not in already

        def fetch(after: str | None) -> Batch[FetchedPost, str]:
            children, next_after = self._search_page(target.hashtags[0], after)
            return _read_children(children, tag, walked, stop_at, unseen, next_after)

        walk = walk_newest_first(
            fetch,
            until=datetime.fromtimestamp(stop_at, UTC),
            max_pages=max_pages,
            last_cursor=lambda _ids: _PollCursor.from_walk(walked) if walked else None,
        )
        for page in walk:
            gap = page.gap or (note if page.last else None)
            ended = page.finished and page.batch.next is None and not _reached(page, stop_at)
            if ended and len(walked) >= LISTING_DEPTH:
                gap = f"Reddit search lists at most about {LISTING_DEPTH} results; older unseen"
            yield Page(page.posts, page.cursor, gap=gap, skipped=page.skipped)

    def _search_page(self, query: str, after: str | None) -> tuple[list[Any], str | None]:
        params = {
            "q": query.lstrip("#＃"),
            "sort": "new",
            "limit": PAGE_LIMIT,
            "type": "link",
            "restrict_sr": "false",
            # Opt out of the legacy escaping of <, > and & in every string field.
            "raw_json": 1,
        }
        if after:
            params["after"] = after
        return _listing(self._api_get("/search", params))

    # --- history ---------------------------------------------------------

    def backfill(
        self, target: Target, *, since: datetime, resume: str | None, max_pages: int
    ) -> Iterator[Page]:
        """Page back with ``after``; a position is that ``after`` plus the oldest time reached.

        Reddit answers an ``after`` it no longer knows (the post was deleted)
        with an empty listing, so a resumed walk that finds nothing starts again
        from the newest result and skips everything newer than the position's
        time: slower, but it neither skips nor (beyond one second) repeats.
        """
        position = _BackfillPosition.load(resume)
        if position is not None and position.after is None:
            return  # the interrupted walk had already reached its end
        run = _BackfillRun(position, since.timestamp())
        for page in walk_newest_first(
            self._backfill_pages(target, run), until=since, max_pages=max_pages
        ):
            reached = _reached(page, run.since)
            gap = _depth_gap(run.listed, run.oldest) if page.finished and not reached else None
            after = None if page.finished else page.batch.next
            cursor = _BackfillPosition(after=after, oldest=run.oldest, listed=run.listed)
            yield Page(page.posts, cursor.dump(), gap=gap, skipped=page.skipped)

    def _backfill_pages(
        self, target: Target, run: _BackfillRun
    ) -> Callable[[str | None], Batch[FetchedPost, str]]:
        """Reads a backfill's pages, from its resumed position first.

        Until a resumed walk finds its position gone, everything it lists is
        wanted; then it starts again from the newest result, keeping only posts
        older than the position's time.
        """
        tag, query = normalise_tag(target.hashtags[0]), target.hashtags[0]

        def fetch(after: str | None) -> Batch[FetchedPost, str]:
            resuming = run.resumed is not None and run.boundary == math.inf
            if after is None and run.resumed is not None:
                after = run.resumed.after
            children, next_after = self._backfill_page(query, after, resuming)
            if not children and resuming:
                assert run.resumed is not None
                run.boundary, run.listed = run.resumed.oldest or run.since, 0
                children, next_after = self._search_page(query, None)
            before, kept = len(run.seen), list[float]()
            keep = functools.partial(_not_after, run.boundary, kept)
            batch = _read_children(children, tag, run.seen, run.since, keep, next_after)
            run.listed += len(run.seen) - before
            if kept:
                run.oldest = min(kept) if run.oldest is None else min(run.oldest, *kept)
            return batch

        return fetch

    def _backfill_page(
        self, query: str, after: str | None, resuming: bool
    ) -> tuple[list[Any], str | None]:
        """One search page; a resumed position Reddit refuses reads as an empty listing."""
        try:
            return self._search_page(query, after)
        except RequestRejected:
            if not resuming:
                raise
            return [], None

    # --- refresh ---------------------------------------------------------

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        """``/api/info`` in chunks of 100: missing or removed posts are deleted."""
        fullnames = unique(ref for ref in refs if _FULLNAME_RE.fullmatch(ref))
        skipped = [f"{ref!r} is not a Reddit post fullname" for ref in refs if ref not in fullnames]

        def live(chunk: list[str]) -> dict[str, dict[str, Any]]:
            """The chunk's posts still up; a removed one is left out, so it counts as gone."""
            children, _ = _listing(
                self._api_get("/api/info", {"id": ",".join(chunk), "raw_json": 1})
            )
            found: dict[str, dict[str, Any]] = {}
            for child in children:
                data, _, fullname, problem = _identify(child)
                if problem:
                    skipped.append(problem)
                elif fullname in chunk and not is_removed(data):
                    found[fullname] = data
            return found

        result = refresh_in_chunks(
            fullnames, INFO_LIMIT, live, lambda items: normalise_each(items, normalise_post, _label)
        )
        return RefreshResult(skipped=tuple(skipped)) + result

    # --- HTTP ------------------------------------------------------------

    def _api_get(self, path: str, params: Mapping[str, Any]) -> Any:
        """GET an API path with the bearer token; a 401 renews the token once."""
        [body] = _TOKENS.renewing_once(
            self._token_key,
            self._fetch_token,
            lambda token: self._send_with(token, path, params),
            lambda: AuthFailed(
                "reddit: the API refused a freshly issued token (HTTP 401); check that the app"
                f" behind REDDIT_CLIENT_ID is not suspended, or {CREDENTIALS_HELP}"
            ),
        )
        return body

    def _send_with(self, token: str, path: str, params: Mapping[str, Any]) -> tuple[Any] | None:
        """One API call with ``token``: the decoded body (boxed, it may be JSON null), or
        None when the token was refused (401)."""
        self._respect_quota()
        try:
            response = self.http.request(
                "GET",
                f"{self.api_base}{path}",
                params=params,
                headers={"Authorization": f"bearer {token}", "User-Agent": self.user_agent},
                reset_reader=_read_reset,
                ok_statuses=frozenset({401}),
            )
        except AuthFailed as exc:
            raise AuthFailed(
                f"reddit: access refused ({exc}). Reddit blocks generic or misleading"
                " user agents: set REDDIT_USER_AGENT to '<platform>:<app id>:<version>"
                " (by /u/<username>)', and check the app may use the Data API"
            ) from None
        self._note_quota(response.headers)
        return None if response.status_code == 401 else (decode_json(response),)

    def _fetch_token(self) -> tuple[str, float]:
        """A new application-only token and how long to use it (renewed before it expires)."""
        try:
            response = self.http.request(
                "POST",
                f"{self.auth_base}/api/v1/access_token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self._secret),
                headers={"User-Agent": self.user_agent},
                reset_reader=_read_reset,
            )
        except AuthFailed:
            raise AuthFailed(
                "reddit: REDDIT_CLIENT_ID / REDDIT_CLIENT_SECRET were refused by the token"
                f" endpoint; {CREDENTIALS_HELP} (an 'installed app' has no secret and cannot"
                " use application-only access)"
            ) from None
        body = decode_json(response)
        if not isinstance(body, dict):
            raise MalformedResponse("reddit: the token endpoint did not answer a JSON object")
        error = body.get("error")
        if error is not None:
            raise AuthFailed(
                f"reddit: the token endpoint answered error {clean_text(str(error), 100)!r};"
                f" {CREDENTIALS_HELP}"
            )
        value = body.get("access_token")
        if not isinstance(value, str) or not value.isascii() or not value.strip().isprintable():
            raise MalformedResponse("reddit: the token endpoint answered no access_token")
        lifetime = body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
            lifetime = 3600.0
        elif not 0 < lifetime <= 365 * 86400:  # also refuses NaN
            lifetime = 3600.0
        lifetime = float(lifetime)
        renew_in = max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)
        return value.strip(), renew_in

    def _note_quota(self, headers: httpx.Headers) -> None:
        """Remember when the window resets once Reddit says nothing is left in it."""
        remaining = _header_number(headers.get("x-ratelimit-remaining"))
        reset = _read_reset(headers)
        with self._quota_lock:
            if remaining is not None and remaining < 1 and reset is not None:
                self._quota_resets_at = _clock() + reset
            else:
                self._quota_resets_at = None

    def _respect_quota(self) -> None:
        """Wait for a short reset; give up with RateLimited when it is far off."""
        with self._quota_lock:
            resets_at = self._quota_resets_at
        if resets_at is None:
            return
        wait = resets_at - _clock()
        if wait <= 0:
            return
        if wait > self.http.policy.max_retry_after:
            retry_at = datetime.now(UTC) + timedelta(seconds=wait)
            raise RateLimited(
                "reddit: the request quota for REDDIT_CLIENT_ID is used up"
                f" (X-Ratelimit-Remaining 0) until {retry_at:%Y-%m-%d %H:%M:%S} UTC",
                retry_at=retry_at,
            )
        time.sleep(wait)


class _PollCursor(JsonCursor):
    """Where a poll stopped: the newest creation time seen and the ids near it.

    Stored as compact JSON: ``{"v": 1, "t": <epoch>, "ids": "id1,id2"}``; ids
    are those created within :data:`INDEX_LAG` of ``t``, newest first, trimmed
    to fit the column (a trimmed id is merely fetched again, never lost).
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    v: Literal[1]
    t: Annotated[float, pydantic.Field(allow_inf_nan=False), pydantic.PlainSerializer(math.floor)]
    ids: str

    @property
    def stop_at(self) -> float:
        return self.t - INDEX_LAG.total_seconds()

    @property
    def fullnames(self) -> frozenset[str]:
        return frozenset(f"t3_{short}" for short in self.ids.split(",") if short)

    def shrunk(self) -> Self | None:
        if not self.ids:
            return None
        return self.model_copy(update={"ids": self.ids.rpartition(",")[0]})

    @staticmethod
    def from_walk(walked: Mapping[str, float]) -> str:
        newest = max(walked.values())
        recent = sorted(
            (item for item in walked.items() if item[1] >= newest - INDEX_LAG.total_seconds()),
            key=lambda item: item[1],
            reverse=True,
        )
        ids = ",".join(fullname.removeprefix("t3_") for fullname, _ in recent)
        return _PollCursor(v=1, t=newest, ids=ids).dump()


@dataclasses.dataclass
class _BackfillRun:
    """A backfill's progress across its pages: what its position records."""

    resumed: _BackfillPosition | None
    since: float
    #: Until a resumed walk finds its position gone, everything it lists is wanted.
    boundary: float = math.inf
    oldest: float | None = None
    listed: int = 0
    seen: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resumed is not None:
            self.oldest, self.listed = self.resumed.oldest, self.resumed.listed


class _BackfillPosition(JsonCursor):
    """A resumable backfill position: Reddit's ``after`` plus the oldest time reached."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)

    #: None once the walk reached its end.
    after: (
        Annotated[str, pydantic.StringConstraints(pattern=f"^{_FULLNAME_RE.pattern}$")] | None
    ) = None
    oldest: Annotated[float, pydantic.Field(allow_inf_nan=False)] | None = None
    listed: Annotated[int, pydantic.Field(ge=0)] = 0


def _checked_agent(value: str) -> str:
    if not value.isascii() or not value.isprintable():
        raise ValueError(
            "use printable ASCII only, e.g. 'server:org.example.monitor:v1.0 (by /u/yourname)'"
        )
    return value


def _header_number(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _listing(body: Any) -> tuple[list[Any], str | None]:
    """The children and ``after`` of a Listing; anything else is malformed."""
    data = body.get("data") if isinstance(body, dict) else None
    children = data.get("children") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(children, list):
        raise MalformedResponse(
            "reddit: expected a Listing ({'kind': 'Listing', 'data': {'children': [...]}}),"
            f" got {type(body).__name__}"
        )
    after = data.get("after")
    return children, after if isinstance(after, str) and _FULLNAME_RE.fullmatch(after) else None


def _epoch(value: Any) -> float | None:
    """A Unix time from a payload (``created_utc`` is a float), or None if unusable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value < 253402300800:  # before year 10000
        return None
    return float(value)


def _identify(child: Any) -> tuple[dict[str, Any], float, str, str | None]:
    """A listing entry's post data, creation time and fullname, or why it is unusable."""
    data = child.get("data") if isinstance(child, dict) else None
    if not isinstance(data, dict) or (isinstance(child, dict) and child.get("kind") != "t3"):
        return {}, 0.0, "", "a listing entry is not a post (kind t3)"
    post_id = as_id(data.get("id"))
    if post_id is None or not _BASE36_RE.fullmatch(post_id):
        return {}, 0.0, "", "a post has no usable id"
    created = _epoch(data.get("created_utc"))
    if created is None:
        return {}, 0.0, "", f"t3_{post_id}: no readable created_utc"
    return data, created, f"t3_{post_id}", None


def _not_after(limit: float, kept: list[float], _fullname: str, created: float) -> bool:
    """Whether a backfill wants a post (not newer than ``limit``); its time goes in ``kept``."""
    if created > limit:
        return False
    kept.append(created)
    return True


def _reached(page: WalkPage[FetchedPost, str], stop_at: float) -> bool:
    """Whether the page listed a post older than ``stop_at`` (the walk reached its time)."""
    return page.batch.oldest is not None and page.batch.oldest.timestamp() < stop_at


def _depth_gap(listed: int, oldest: float | None) -> str | None:
    """The gap of a backfill that ended at the bottom of Reddit's listing, not at ``since``."""
    if listed < LISTING_DEPTH:
        return None
    reach = (
        f": history reached back to {minute_utc(datetime.fromtimestamp(oldest, UTC))} only"
        if oldest is not None
        else ""
    )
    return f"Reddit search lists at most about {LISTING_DEPTH} results{reach}"


def _read_children(
    children: list[Any],
    tag: str,
    walked: dict[str, float],
    stop_at: float,
    keep: Callable[[str, float], bool],
    next_after: str | None,
) -> Batch[FetchedPost, str]:
    """One listing page read newest first: the posts carrying ``tag`` and what was skipped.

    ``walked`` collects every fullname with its time across the walk (listings
    shift as posts arrive, so a page may repeat the last one's tail); a post
    older than ``stop_at`` is not read (the batch's ``oldest`` then ends the
    walk); ``keep(fullname, time)`` says whether a post newer than that is wanted.
    """
    problems: list[str] = []
    ids: list[str] = []
    times: list[float] = []
    wanted: list[dict[str, Any]] = []
    for child in children:
        data, created, fullname, problem = _identify(child)
        if problem:
            problems.append(problem)
            continue
        ids.append(fullname)
        if fullname in walked:
            continue
        walked[fullname] = created
        times.append(created)
        if created >= stop_at and keep(fullname, created) and not is_removed(data):
            wanted.append(data)
    posts, skipped = normalise_each(wanted, normalise_post, _label)
    oldest = datetime.fromtimestamp(min(times), UTC) if times else None
    return Batch(
        carrying(posts, [tag]),
        (*problems, *skipped),
        tuple(ids),
        next_after,
        oldest=oldest,
    )


def _label(data: Mapping[str, Any]) -> str:
    return f"t3_{as_id(data.get('id')) or '?'}"


def is_removed(data: Mapping[str, Any]) -> bool:
    """True for a post removed by moderators or deleted by its author.

    An author of ``[deleted]`` alone means the account is gone, not the post:
    with ``removed_by_category`` null and its text intact the post is still up.
    """
    selftext = data.get("selftext")
    return (isinstance(selftext, str) and selftext in _REMOVED_TEXTS) or bool(
        data.get("removed_by_category")
    )


def markdown_hashtags(title: str, selftext: str) -> tuple[str, ...]:
    """Hashtags of a post, with the selftext's markdown syntax that looks like one left out.

    Reddit markdown reads ``#Heading`` at a line start as a heading, ``#include``
    in code as code and ``[text](#anchor)`` as a link to an anchor; none of them
    is a hashtag. The title is plain text.
    """
    prose = _FENCED_CODE_RE.sub("\n", selftext)
    prose = _INDENTED_CODE_RE.sub("", prose)
    prose = _INLINE_CODE_RE.sub(" ", prose)
    prose = _LINK_TARGET_RE.sub("]", prose)
    prose = _HEADING_RE.sub("", prose)
    return extract_hashtags(f"{title}\n\n{prose}")


def read_post(data: Mapping[str, Any]) -> tuple[FetchedPost | None, str | None]:
    """A live post normalised, ``(None, None)`` if removed, or ``(None, reason)``."""
    if is_removed(data):
        return None, None
    return normalise_one(data, normalise_post, _label)


def normalise_post(data: Mapping[str, Any]) -> FetchedPost:
    """Map one Reddit post (``t3`` data) to a :class:`FetchedPost`; UnreadableRecord if unusable."""
    post_id = as_id(data.get("id"))
    if post_id is None or not _BASE36_RE.fullmatch(post_id):
        raise UnreadableRecord("no usable id")
    created = _epoch(data.get("created_utc"))
    if created is None:
        raise UnreadableRecord("no readable created_utc")
    author = clean_text(data.get("author"), 100)
    if not author:
        raise UnreadableRecord("no author")
    title = clean_text(data.get("title"), 1000)
    selftext = clean_text(data.get("selftext"))
    if not title and not selftext:
        raise UnreadableRecord("neither title nor text")
    text = f"{title}\n\n{selftext}" if selftext else title
    raw_html = data.get("selftext_html")
    if isinstance(raw_html, str) and raw_html.lstrip().startswith("&lt;"):
        raw_html = html.unescape(raw_html)  # legacy escaping: raw_json=1 was not honoured
    body_html = (
        sanitise_html(raw_html)
        if isinstance(raw_html, str) and raw_html
        else text_to_html(selftext)
    )
    labels = [
        label
        for label, flag in (("NSFW", data.get("over_18")), ("spoiler", data.get("spoiler")))
        if flag is True
    ]
    sensitive = bool(labels)
    permalink = data.get("permalink")
    url = (
        f"{SITE}{permalink}"
        if isinstance(permalink, str) and re.fullmatch(r"/[^\s/][^\s]{0,500}", permalink)
        else f"{SITE}/comments/{post_id}/"
    )
    edited = _epoch(data.get("edited"))
    return FetchedPost(
        platform="reddit",
        external_id=post_id,
        url=url,
        author=Author(
            handle=f"u/{author}",
            name=author,
            url=f"{SITE}/user/{author}/" if _USERNAME_RE.fullmatch(author) else None,
        ),
        text=text,
        html=text_to_html(title) + body_html,
        created_at=datetime.fromtimestamp(created, UTC),
        hashtags=markdown_hashtags(title, selftext),
        media=_media(data, sensitive),
        engagement=Engagement(
            likes=_first_count(data.get("ups"), data.get("score")),
            replies=as_count(data.get("num_comments")),
        ),
        sensitive=sensitive,
        content_warning=", ".join(labels) or None,
        edited_at=datetime.fromtimestamp(edited, UTC) if edited else None,
        ref=f"t3_{post_id}",
        # A post in a subreddit reaches its subscribers, not the poster's followers.
        author_followers=as_count(data.get("subreddit_subscribers")),
    )


def _first_count(*values: Any) -> int | None:
    """The first readable count: ``ups`` is the upvote count, ``score`` its older alias."""
    return next((count for count in map(as_count, values) if count is not None), None)


def _media_url(value: Any) -> str | None:
    """Reddit escapes ``&`` in media URLs as ``&amp;`` unless ``raw_json=1`` was honoured."""
    return http_url(html.unescape(value)) if isinstance(value, str) else None


def _media(data: Mapping[str, Any], sensitive: bool) -> tuple[Media, ...]:
    """Gallery images, else a hosted video or image, else the link's preview image."""
    gallery = _gallery(data, sensitive)
    if gallery:
        return gallery
    images = as_object(data.get("preview")).get("images")
    first = as_object(images[0]) if isinstance(images, list) and images else {}
    source = as_object(first.get("source"))
    preview_url, preview_key = _media_url(source.get("url")), as_id(first.get("id"))

    def one(
        kind: MediaKind, url: str, size: Mapping[str, Any], key: str | None, preview: str | None
    ) -> tuple[Media, ...]:
        return (
            Media(
                kind=kind,
                url=url,
                preview_url=preview,
                sensitive=sensitive,
                width=as_count(size.get("width")),
                height=as_count(size.get("height")),
                key=key,
            ),
        )

    video = as_object(as_object(data.get("secure_media") or data.get("media")).get("reddit_video"))
    video_url = _media_url(video.get("fallback_url"))
    if video_url:
        return one("video", video_url, video, preview_key, preview_url)
    destination = _media_url(data.get("url_overridden_by_dest"))
    if destination and httpx.URL(destination).host == "i.redd.it":
        kind: MediaKind = "gif" if destination.lower().endswith(".gif") else "image"
        key = httpx.URL(destination).path.lstrip("/") or None
        return one(kind, destination, source, key, preview_url)
    return one("image", preview_url, source, preview_key, None) if preview_url else ()


def _gallery(data: Mapping[str, Any], sensitive: bool) -> tuple[Media, ...]:
    """Images of a gallery post, in the order of ``gallery_data`` with its captions."""
    items = as_object(data.get("gallery_data")).get("items")
    metadata = as_object(data.get("media_metadata"))
    found: list[Media] = []
    for item in items if isinstance(items, list) else []:
        item = as_object(item)
        media_id = as_id(item.get("media_id"))
        meta = as_object(metadata.get(media_id)) if media_id else {}
        if meta.get("status") != "valid":
            continue
        largest = as_object(meta.get("s"))
        animated = meta.get("e") == "AnimatedImage"
        url = _media_url(largest.get("gif") or largest.get("mp4") if animated else largest.get("u"))
        if url is None:
            continue
        # An animation's ``p`` lists still renditions, smallest first: the last previews it.
        stills = [as_object(p) for p in meta.get("p", []) if isinstance(p, dict)]
        still = _media_url(stills[-1].get("u")) if animated and stills else None
        found.append(
            Media(
                kind="gif" if animated else "image",
                url=url,
                alt=clean_text(item.get("caption"), 1500) or None,
                preview_url=still,
                sensitive=sensitive,
                width=as_count(largest.get("x")),
                height=as_count(largest.get("y")),
                key=media_id,
            )
        )
    return tuple(found)
