"""RSS and Atom: every feed in ``RSS_FEEDS``, items kept when they carry a hashtag.

Facts relied on (RSS 2.0 at rssboard.org, RFC 4287 for Atom, RFC 9110 for
conditional requests, Media RSS for ``media:content`` / ``media:thumbnail``):

* A feed is one document holding its most recent items; there is no paging,
  no search and no way to ask for older items, and an item that disappears
  has usually just rolled off, not been deleted.
* ``ETag`` / ``Last-Modified`` answers let us ask again with ``If-None-Match``
  / ``If-Modified-Since``; an unchanged feed is then a bodiless 304.
* Item identity is the RSS ``guid`` / Atom ``id`` (feedparser's ``id``); a few
  feeds have neither, and then the link is all there is.

Parsing is feedparser's, fed bytes that the shared :class:`HttpClient` fetched
(so the timeouts, retries and size caps apply); its HTML is sanitised again.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import io
import re
import time
import xml.sax
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

import charset_normalizer
import feedparser  # type: ignore[import-untyped]
import httpx
import pydantic

from adapters.base import (
    Adapter,
    AuthFailed,
    Author,
    ConfigError,
    FetchedPost,
    JsonCursor,
    MalformedResponse,
    Media,
    MediaKind,
    Page,
    RefreshResult,
    RequestRejected,
    Target,
    UnreadableRecord,
    normalise_each,
    normalise_one,
)
from adapters.http import HttpClient
from adapters.netguard import AddressRefused, checked_address
from adapters.settings import AdapterSettings
from adapters.text import (
    as_array,
    as_count,
    as_object,
    as_str,
    clean_text,
    extract_hashtags,
    html_to_text,
    http_url,
    normalise_tag,
    sanitise_html,
    text_to_html,
    unique,
)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+xml;q=0.9,"
    " application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
MAX_REDIRECTS = 5
#: Items read from one feed; real feeds hold tens, anything past this is abuse.
MAX_ENTRIES = 1000
MAX_MEDIA = 20
DIGEST_CHARS = 8
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_URI_RE = re.compile(r"[a-z][a-z0-9+.-]*:\S+", re.I)
_HEADER_RE = re.compile(r"[\x20-\x7e]{1,200}")
_MEDIUMS: dict[str, MediaKind] = {"image": "image", "video": "video", "audio": "audio"}
_XML_ENCODING_RE = re.compile(rb"\s*<\?xml[^>]*\bencoding\s*=", re.I)
_HASHTAG_FEED_RE = re.compile(r"/tags/[^/]+?(\.rss)?")


class RssSettings(AdapterSettings):
    """The keys this adapter reads (see ``.env.example``)."""

    rss_feeds: str = ""
    rss_category_hashtag_feeds: str = ""
    #: The deployment-wide switch, read here too: feeds pass the private-address guard.
    outbound_allow_private: bool = False


class RssAdapter(Adapter[RssSettings]):
    """Reads each feed in ``RSS_FEEDS`` with conditional GETs; no credentials."""

    name: ClassVar[str] = "rss"
    display_name: ClassVar[str] = "RSS feed"
    public_name: ClassVar[str] = "News feed"

    def __init__(self, config: Mapping[str, str], http: HttpClient) -> None:
        super().__init__(config, http)
        raw = config.get("RSS_FEEDS", "")
        self.feeds = list(unique(item.strip() for item in raw.split(",")))
        if not self.feeds:
            raise ConfigError("RSS_FEEDS: give one or more feed URLs, comma-separated")
        for feed in self.feeds:
            url = httpx.URL(feed) if feed.isascii() else None
            if url is None or url.scheme not in ("http", "https") or not url.host:
                raise ConfigError(f"RSS_FEEDS: {feed!r} is not an http(s) feed URL")
        self.category_feeds = frozenset(
            item.strip() for item in config.get("RSS_CATEGORY_HASHTAG_FEEDS", "").split(",")
        )
        # The same switch as media pinning: a deployment reading its own intranet says so.
        self.allow_private = self.settings.outbound_allow_private

    @classmethod
    def is_configured(cls, config: Mapping[str, str]) -> bool:
        """On by default only when there is a feed to read: it needs no credential."""
        return bool(config.get("RSS_FEEDS", "").strip(" ,"))

    def categories_are_hashtags(self, feed: str) -> bool:
        """True when a feed's categories are hashtags: a hashtag feed, or the admin says so.

        On a Mastodon tag feed a category is a hashtag of the post; on a blog it
        is the site's own filing (a tag cloud), which the author never wrote as one.
        """
        return is_hashtag_feed(feed) or feed in self.category_feeds

    def targets(self, hashtags: Sequence[str]) -> list[Target]:
        """One target per feed carrying every hashtag: a feed is fetched whole anyway."""
        return [Target(feed, tuple(hashtags)) for feed in self.feeds]

    def search(
        self, target: Target, cursor: str | None, *, since: datetime, max_pages: int
    ) -> Iterator[Page]:
        """One page: the feed's matching items that the cursor has not seen in this form.

        The cursor (JSON) holds the validators for a conditional GET and a short
        digest of every matching item as last seen, so a changed feed yields only
        new or edited items; a digest trimmed to fit the column only means that
        item is yielded (and upserted) again. The first poll skips items older
        than ``since``.
        """
        state = _FeedCursor.load(cursor)
        fetched = self._fetch(target.scope, state)
        if fetched is None:
            yield Page(())  # 304: nothing changed, the stored cursor stays
            return
        parsed, response = fetched
        posts: list[FetchedPost] = []
        skipped: list[str] = []
        digests: list[tuple[datetime, str]] = []
        categories = self.categories_are_hashtags(target.scope)
        for post in matching_items(target, parsed, skipped, categories_are_hashtags=categories):
            digest = _digest(post)
            digests.append((post.created_at, digest))
            if state is not None and digest in state.digests:
                continue
            if state is None and post.created_at < since:
                continue
            posts.append(post)
        new_cursor = _FeedCursor.build(response.headers, digests)
        yield Page(tuple(posts), new_cursor, skipped=tuple(skipped))

    def backfill(
        self, target: Target, *, since: datetime, resume: str | None, max_pages: int
    ) -> Iterator[Page]:
        """The whole feed back to ``since``: a feed holds only what it holds."""
        fetched = self._fetch(target.scope, None)
        if fetched is None:
            return
        skipped: list[str] = []
        categories = self.categories_are_hashtags(target.scope)
        matching = list(
            matching_items(target, fetched[0], skipped, categories_are_hashtags=categories)
        )
        posts = tuple(post for post in matching if post.created_at >= since)
        oldest = min((post.created_at for post in matching), default=None)
        gap = None
        if oldest is None or oldest > since:
            reach = f" (its oldest matching item is from {oldest:%Y-%m-%d})" if oldest else ""
            gap = (
                "a feed holds only its most recent items"
                f"{reach}; older posts cannot be fetched from it"
            )
        yield Page(posts, None, gap=gap, skipped=tuple(skipped))

    def refresh(self, refs: Sequence[str]) -> RefreshResult:
        """Nothing to learn, by design: an empty result.

        Feeds carry no engagement, and an item missing from a feed has usually
        rolled off rather than been deleted, so its absence proves nothing.
        Edits are caught by polling instead: a changed item is yielded again.
        """
        return RefreshResult()

    # --- fetching and parsing -----------------------------------------------

    def _fetch(
        self, feed: str, state: _FeedCursor | None
    ) -> tuple[feedparser.FeedParserDict, httpx.Response] | None:
        """The parsed feed and its response, or None when the server says 304."""
        headers = {"Accept": FEED_ACCEPT}
        if state is not None and state.etag:
            headers["If-None-Match"] = state.etag
        if state is not None and state.modified:
            headers["If-Modified-Since"] = state.modified
        url = feed
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self.http.request(
                    "GET",
                    url,
                    headers=headers,
                    ok_statuses=frozenset({304}) | _REDIRECTS,
                    connect_to=self._guarded(feed, url),
                )
            except AuthFailed as exc:
                raise AuthFailed(
                    f"rss: {feed} refused access ({exc}); RSS_FEEDS must list public feeds"
                ) from None
            if response.status_code == 304:
                return None
            if response.status_code not in _REDIRECTS:
                return _parse(feed, url, response), response
            try:
                location = http_url(str(httpx.URL(url).join(response.headers.get("location", ""))))
            except httpx.InvalidURL:
                location = None
            if location is None or location == url:
                raise MalformedResponse(f"rss: {feed} redirects to an unusable address")
            url = location
        raise RequestRejected(f"rss: {feed} redirects more than {MAX_REDIRECTS} times")

    def _guarded(self, feed: str, url: str) -> str | None:
        """The checked address to connect to for ``url`` (None when private ones are allowed)."""
        if self.allow_private:
            return None
        try:
            return checked_address(httpx.URL(url), allow_private=False)
        except AddressRefused as exc:
            raise AddressRefused(
                f"rss: {exc}; OUTBOUND_ALLOW_PRIVATE=true allows private addresses"
            ) from None


def is_hashtag_feed(url: str) -> bool:
    """True for a Mastodon-style hashtag feed (``https://instance/tags/NAME.rss``)."""
    return _HASHTAG_FEED_RE.fullmatch(httpx.URL(url).path) is not None


def matching_items(
    target: Target,
    parsed: feedparser.FeedParserDict,
    skipped: list[str],
    *,
    categories_are_hashtags: bool = False,
) -> Iterator[FetchedPost]:
    """Readable items carrying one of the target's hashtags, once per id; the rest noted."""
    now = datetime.now(UTC)
    wanted = {normalise_tag(tag) for tag in target.hashtags}
    feed = parsed.get("feed") if isinstance(parsed.get("feed"), dict) else {}
    entries = parsed.get("entries") if isinstance(parsed.get("entries"), list) else []
    items = [_fields(entry) for entry in entries[:MAX_ENTRIES]]
    skipped.extend("an item is not a mapping" for item in items if item is None)
    posts, unreadable = normalise_each(
        [item for item in items if item is not None],
        lambda item: normalise_entry(
            target.scope, feed, item, categories_are_hashtags=categories_are_hashtags, now=now
        ),
        _entry_label,
    )
    skipped.extend(unreadable)
    seen: set[str] = set()
    for post in posts:
        if post.external_id in seen:
            skipped.append(f"item {post.external_id!r}: repeated in the feed, first kept")
        elif wanted.intersection(post.hashtags):
            seen.add(post.external_id)
            yield post


def _parse(feed: str, url: str, response: httpx.Response) -> feedparser.FeedParserDict:
    """feedparser over the fetched bytes; a document that is no feed is malformed."""
    content, content_type = _as_utf8(response.content, response.headers.get("content-type", ""))
    # A stream, never bytes or str: feedparser would read a path-like string as a file.
    parsed = feedparser.parse(
        io.BytesIO(content),
        response_headers={"content-type": content_type, "content-location": url},
        sanitize_html=True,
        resolve_relative_uris=True,
    )
    problem = parsed.get("bozo_exception")
    if isinstance(problem, xml.sax.SAXParseException) and re.search(
        r"unclosed token|no element found", str(problem)
    ):
        raise MalformedResponse(f"rss: {feed} answered a feed that ends early (truncated?)")
    if parsed.get("version") or parsed.get("entries"):
        return parsed
    if "html" in content_type.lower() or response.content.lstrip()[:15].lower().startswith(
        (b"<!doctype html", b"<html")
    ):
        reason = (
            "an HTML page, not a feed; use the feed's own address (the page's"
            ' <link rel="alternate" type="application/rss+xml">)'
        )
    else:
        reason = f"no RSS or Atom document ({clean_text(str(problem), 200) or 'empty'})"
    raise MalformedResponse(f"rss: {feed} answered {reason}")


def _as_utf8(content: bytes, content_type: str) -> tuple[bytes, str]:
    """The feed as UTF-8 when it declares no encoding and is not UTF-8 (a legacy one).

    feedparser guesses windows-1252 for such a feed, so KOI8-R or Shift_JIS
    comes out garbled; charset-normalizer reads the bytes themselves. A feed
    that declares its encoding (header, BOM or XML declaration) keeps it.
    """
    declared = "charset=" in content_type.lower() or _XML_ENCODING_RE.match(content[:300])
    if declared or content.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return content, content_type
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        best = charset_normalizer.from_bytes(content).best()
        if best is not None:
            mime = content_type.split(";", 1)[0].strip() or "application/xml"
            return str(best).encode("utf-8"), f"{mime}; charset=utf-8"
    return content, content_type


class _FeedCursor(JsonCursor):
    """Validators for the next conditional GET and digests of the items seen.

    JSON: ``{"v": 1, "etag": ..., "modified": ..., "seen": "<8 hex>..."}``; the
    newest items' digests come first, and the oldest are dropped to fit.
    """

    v: Literal[1] = 1
    etag: Annotated[str | None, pydantic.BeforeValidator(lambda v: _validator(v))] = None
    modified: Annotated[str | None, pydantic.BeforeValidator(lambda v: _validator(v))] = None
    seen: Annotated[str, pydantic.BeforeValidator(as_str)] = ""

    @property
    def digests(self) -> frozenset[str]:
        seen = self.seen
        return frozenset(
            seen[i : i + DIGEST_CHARS] for i in range(0, len(seen) - DIGEST_CHARS + 1, DIGEST_CHARS)
        )

    def shrunk(self) -> Self | None:
        if not self.seen:
            return None
        return self.model_copy(update={"seen": self.seen[:-DIGEST_CHARS]})

    @classmethod
    def build(cls, headers: httpx.Headers, digests: list[tuple[datetime, str]]) -> str:
        """The cursor after a full fetch: newest items' digests first, trimmed to fit."""
        ordered = unique(digest for _, digest in sorted(digests, key=lambda d: d[0], reverse=True))
        return cls(
            etag=headers.get("etag"), modified=headers.get("last-modified"), seen="".join(ordered)
        ).dump()


def _validator(value: Any) -> str | None:
    """An ETag or date worth sending back: printable ASCII of sane length, else none."""
    return value if isinstance(value, str) and _HEADER_RE.fullmatch(value) else None


def _digest(post: FetchedPost) -> str:
    """What makes an item new or edited to us: its id and its visible content."""
    material = "\0".join(
        [post.external_id, post.text, post.content_warning or "", *(m.url for m in post.media)]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:DIGEST_CHARS]


def _as_time(value: Any) -> datetime | None:
    """feedparser's ``*_parsed`` (a UTC ``struct_time``) as an aware datetime."""
    if not isinstance(value, time.struct_time | tuple) or len(value) < 6:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(tuple(value[:6]) + (0, 0, 0)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _text_of(detail: Any) -> tuple[str, str]:
    """Plain text and sanitised HTML of a feedparser text construct (dict with value/type)."""
    if not isinstance(detail, dict) or not isinstance(detail.get("value"), str):
        return "", ""
    value = detail["value"]
    if str(detail.get("type", "")).lower() in ("text/html", "application/xhtml+xml", "html"):
        return html_to_text(value), sanitise_html(value)
    text = clean_text(value)
    return text, text_to_html(text)


def _external_id(feed_url: str, entry: Mapping[str, Any], content: str) -> str:
    """The guid/id if it is a URI; a bare guid ("123") only within its feed; else the link.

    An item with neither is named by a digest of its feed and content, which is
    stable while the item is unchanged (an edit then reads as a new item, which
    is all such a feed lets anyone know).
    """
    guid = clean_text(entry.get("id"), 2000)
    if guid:
        stable = guid if _URI_RE.fullmatch(guid) else f"{feed_url}#{guid}"
        if len(stable) <= 500:
            return stable
        return "sha256:" + hashlib.sha256(stable.encode()).hexdigest()
    link = http_url(entry.get("link"))
    material = link or f"{feed_url}\0{content}"
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


def _fields(entry: Any) -> dict[str, Any] | None:
    """An entry's fields as parsed, or None when it is not a mapping.

    Plain dict access: feedparser's dict maps a missing updated_parsed to
    published_parsed with a DeprecationWarning; we want the fields as parsed.
    """
    if not isinstance(entry, dict):
        return None
    return {key: dict.__getitem__(entry, key) for key in dict.keys(entry)}


def _entry_label(entry: Mapping[str, Any]) -> str:
    label = clean_text(entry.get("id"), 100) or clean_text(entry.get("title"), 60) or "?"
    return f"item {label!r}"


def read_entry(
    feed_url: str,
    feed: Mapping[str, Any],
    entry: Any,
    *,
    categories_are_hashtags: bool = False,
    now: datetime | None = None,
) -> tuple[FetchedPost | None, str | None]:
    """One feed item normalised, or ``(None, reason)`` when it cannot be read.

    ``now`` is the time an undated item is first seen (default: the clock).
    """
    fields = _fields(entry)
    if fields is None:
        return None, "an item is not a mapping"
    when = now or datetime.now(UTC)
    return normalise_one(
        fields,
        lambda item: normalise_entry(
            feed_url, feed, item, categories_are_hashtags=categories_are_hashtags, now=when
        ),
        _entry_label,
    )


def normalise_entry(
    feed_url: str,
    feed: Mapping[str, Any],
    entry: Mapping[str, Any],
    *,
    categories_are_hashtags: bool,
    now: datetime,
) -> FetchedPost:
    """Map one feedparser entry to a :class:`FetchedPost`; UnreadableRecord if unusable."""
    published = _as_time(entry.get("published_parsed"))
    updated = _as_time(entry.get("updated_parsed"))
    title = _title(entry)
    summary = as_str(entry.get("summary"))
    body_text, body_html = _body(entry, summary)
    if not title and not body_text:
        raise UnreadableRecord("neither title nor content")
    text = f"{title}\n\n{body_text}" if title and body_text else title or body_text
    summary_text = html_to_text(summary) if summary else ""
    categories = _category_tags(entry) if categories_are_hashtags else ()
    site = http_url(feed.get("link")) or feed_url
    host = httpx.URL(site).host or site
    author = clean_text(entry.get("author"), 300) or clean_text(feed.get("title"), 300) or host
    sensitive = _rated_adult(entry)
    return FetchedPost(
        platform="rss",
        external_id=_external_id(feed_url, entry, text),
        url=http_url(entry.get("link")) or site,
        author=Author(handle=host, name=author, url=site),
        text=text,
        html=(text_to_html(title) if title else "") + body_html,
        created_at=published or updated or now,
        hashtags=unique([*extract_hashtags(f"{text}\n{summary_text}"), *categories]),
        media=_media(entry, sensitive),
        sensitive=sensitive,
        edited_at=updated if published and updated and updated > published else None,
        created_at_is_first_seen=not (published or updated),
    )


def _title(entry: Mapping[str, Any]) -> str:
    """The title as plain text (Atom titles may be HTML)."""
    detail = entry.get("title_detail")
    title = _text_of(detail)[0] if isinstance(detail, dict) else clean_text(entry.get("title"))
    return title[:1000]


def _body(entry: Mapping[str, Any], summary: str) -> tuple[str, str]:
    """Text and HTML of the full content when the feed has it, else of the summary."""
    for detail in [
        *as_array(entry.get("content")),
        entry.get("summary_detail"),
        {"value": summary, "type": "html"},
    ]:
        text, html = _text_of(detail)
        if text:
            return text, html
    return "", ""


def _category_tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """The entry's categories that are a hashtag word each ("CEADAY21", not "Road safety")."""
    terms = [as_object(c).get("term") for c in as_array(entry.get("tags"))]
    tags = [normalise_tag(term) for term in terms if isinstance(term, str)]
    return tuple(tag for tag in tags if tag and extract_hashtags(f"#{tag}") == (tag,))


def _rated_adult(entry: Mapping[str, Any]) -> bool:
    rating = entry.get("media_rating")
    content = rating.get("content") if isinstance(rating, dict) else rating
    return isinstance(content, str) and content.strip().lower() == "adult"


def _kind(mime: Any, medium: Any) -> MediaKind | None:
    if isinstance(medium, str) and medium.lower() in _MEDIUMS:
        kind = _MEDIUMS[medium.lower()]
    elif isinstance(mime, str) and mime.split("/", 1)[0].lower() in _MEDIUMS:
        kind = _MEDIUMS[mime.split("/", 1)[0].lower()]
    else:
        return None
    return "gif" if kind == "image" and str(mime).lower() == "image/gif" else kind


def _media(entry: Mapping[str, Any], sensitive: bool) -> tuple[Media, ...]:
    """Enclosures and ``media:content``; ``media:thumbnail`` previews them or stands alone."""

    def listed(key: str) -> list[dict[str, Any]]:
        value = entry.get(key)
        return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []

    thumbnails = [url for url in (http_url(t.get("url")) for t in listed("media_thumbnail")) if url]
    found: dict[str, Media] = {}
    # feedparser keeps RSS enclosures as links with rel="enclosure".
    enclosures = listed("enclosures") + [
        link for link in listed("links") if link.get("rel") == "enclosure"
    ]
    candidates: list[tuple[Any, Any, Any, Mapping[str, Any]]] = [
        (e.get("href"), e.get("type"), None, {}) for e in enclosures
    ] + [(m.get("url"), m.get("type"), m.get("medium"), m) for m in listed("media_content")]
    for raw_url, mime, medium, extra in candidates:
        url, kind = http_url(raw_url), _kind(mime, medium)
        if url is None or kind is None or url in found:
            continue
        found[url] = Media(
            kind=kind,
            url=url,
            preview_url=thumbnails[0] if thumbnails and kind != "image" else None,
            sensitive=sensitive,
            width=as_count(extra.get("width")),
            height=as_count(extra.get("height")),
        )
    if not found:
        for url in thumbnails:
            found.setdefault(url, Media(kind="image", url=url, sensitive=sensitive))
    return tuple(found.values())[:MAX_MEDIA]
