"""What the public sees: approved posts only, newest first, in keyset pages.

Every public surface (``/gallery``, ``/gallery/embed``, ``/gallery.json``, the
static export) reads through :func:`load_page`, which filters on
``status = 'approved'`` in SQL, so a post that leaves ``approved`` disappears
from all of them at the next request. Cursors are signed: a forged or edited
one is refused instead of being fed to the query. The kill switch
(:func:`monitor.services.app_settings.gallery_paused`) empties every surface.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlmodel import Session

from adapters.text import normalise_tag
from monitor import __version__
from monitor.errors import UserError
from monitor.models import MediaItem, ModerationEvent, Post, PostHashtag, PostStatus
from monitor.services.app_settings import gallery_paused
from monitor.services.media import pinned_name, rendition_height
from monitor.services.users import STAFF_ACTIVITY_ACTIONS

DEFAULT_PAGE_SIZE = 24
#: The embed shows fewer posts a page so its markup stays light (under 30 KB with assets).
EMBED_PAGE_SIZE = 12
MAX_PAGE_SIZE = 100
MAX_CURSOR_CHARS = 200
PLATFORM_LABELS = {
    "bluesky": "Bluesky",
    "instagram": "Instagram",
    "mastodon": "Mastodon",
    "reddit": "Reddit",
    "rss": "News feed",
    "x": "X",
    "youtube": "YouTube",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLATFORM_RE = re.compile(r"[a-z0-9_-]{1,40}")
_TAG_RE = re.compile(r"\w{1,100}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

#: Turns a pinned file name (``<hash>-<width>.jpg``) into the URL a page uses.
MediaUrl = Callable[[str], str]


class GalleryInputError(UserError):
    """A query parameter of a public route is malformed (cursor, page size, filter)."""


@dataclasses.dataclass(frozen=True, slots=True)
class GalleryQuery:
    hashtag: str | None = None
    platform: str | None = None
    cursor: tuple[datetime, int] | None = None
    limit: int = DEFAULT_PAGE_SIZE


@dataclasses.dataclass(frozen=True, slots=True)
class GalleryImage:
    kind: str
    alt: str
    src: str
    srcset: tuple[tuple[str, int], ...]
    width: int
    height: int


@dataclasses.dataclass(frozen=True, slots=True)
class GalleryPost:
    id: int
    ref: str
    platform: str
    platform_label: str
    url: str | None
    author_name: str
    author_handle: str
    author_url: str | None
    text: str
    content_warning: str | None
    created_at: datetime
    hashtags: tuple[str, ...]
    images: tuple[GalleryImage, ...]
    #: Attachments with nothing to show here (audio, a video without thumbnail).
    unshown_media: int
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class GalleryPage:
    posts: tuple[GalleryPost, ...]
    next_cursor: str | None
    paused: bool


def parse_query(
    *,
    secret: str,
    hashtag: str | None = None,
    platform: str | None = None,
    cursor: str | None = None,
    limit: str | int | None = None,
    default_limit: int = DEFAULT_PAGE_SIZE,
) -> GalleryQuery:
    """Validate raw query parameters into a :class:`GalleryQuery`, or a clear error."""
    tag = normalise_tag(hashtag) if hashtag and hashtag.strip() else None
    if tag is not None and not _TAG_RE.fullmatch(tag):
        raise GalleryInputError("tag must be one hashtag of letters, digits or _")
    name = platform.strip().lower() if platform and platform.strip() else None
    if name is not None and not _PLATFORM_RE.fullmatch(name):
        raise GalleryInputError("platform must be a platform name such as mastodon")
    return GalleryQuery(
        hashtag=tag,
        platform=name,
        cursor=decode_cursor(cursor, secret) if cursor else None,
        limit=_page_size(limit, default_limit),
    )


def _page_size(limit: str | int | None, default: int) -> int:
    if limit is None or limit == "":
        return default
    text = str(limit).strip()
    if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise GalleryInputError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def encode_cursor(created_at: datetime, post_id: int, secret: str) -> str:
    """An opaque, signed position after which the next page starts."""
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    payload = f"{micros}:{post_id}".encode()
    return f"{_b64(payload)}.{_b64(_cursor_mac(payload, secret))}"


def decode_cursor(token: str, secret: str) -> tuple[datetime, int]:
    """The position in a cursor we issued; anything else is refused."""
    invalid = GalleryInputError("cursor is not one this gallery issued; start from the first page")
    if len(token) > MAX_CURSOR_CHARS or token.count(".") != 1:
        raise invalid
    encoded_payload, encoded_mac = token.split(".")
    try:
        payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not hmac.compare_digest(mac, _cursor_mac(payload, secret)):
        raise invalid
    match = re.fullmatch(rb"(-?\d{1,17}):(\d{1,18})", payload)
    if match is None:
        raise invalid
    try:
        created_at = _EPOCH + timedelta(microseconds=int(match[1]))
    except OverflowError:
        raise invalid from None
    return created_at, int(match[2])


def _cursor_mac(payload: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode(), b"gallery-cursor\0" + payload, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def safe_url(value: str | None) -> str | None:
    """The URL if it is a plain http(s) link we may put in an ``href``, else None."""
    if not value or len(value) > 2000 or _CONTROL_RE.search(value) or " " in value:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def load_page(
    session: Session, query: GalleryQuery, *, secret: str, media_url: MediaUrl
) -> GalleryPage:
    """One page of approved posts, newest first, with pinned media and hashtags."""
    if gallery_paused(session):
        return GalleryPage(posts=(), next_cursor=None, paused=True)
    posts = Post.__table__
    select = sa.select(
        posts.c.id,
        posts.c.platform,
        posts.c.external_id,
        posts.c.url,
        posts.c.author_handle,
        posts.c.author_name,
        posts.c.author_url,
        posts.c.text,
        posts.c.content_warning,
        posts.c.created_at,
        posts.c.version,
    ).where(posts.c.status == PostStatus.APPROVED.value)
    if query.hashtag:
        tags = PostHashtag.__table__
        select = select.where(
            posts.c.id.in_(sa.select(tags.c.post_id).where(tags.c.tag == query.hashtag))
        )
    if query.platform:
        select = select.where(posts.c.platform == query.platform)
    if query.cursor:
        created_at, post_id = query.cursor
        select = select.where(
            sa.or_(
                posts.c.created_at < created_at,
                sa.and_(posts.c.created_at == created_at, posts.c.id < post_id),
            )
        )
    select = select.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(query.limit + 1)
    rows = session.execute(select).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    ids = [row.id for row in rows]
    images, unshown = _media_by_post(session, ids, media_url)
    hashtags = _hashtags_by_post(session, ids)
    page_posts = tuple(
        GalleryPost(
            id=row.id,
            ref=f"{row.platform}:{row.external_id}",
            platform=row.platform,
            platform_label=PLATFORM_LABELS.get(row.platform, row.platform.title()),
            url=safe_url(row.url),
            author_name=row.author_name or row.author_handle,
            author_handle=row.author_handle,
            author_url=safe_url(row.author_url),
            text=row.text,
            content_warning=row.content_warning,
            created_at=row.created_at,
            hashtags=hashtags.get(row.id, ()),
            images=tuple(images.get(row.id, ())),
            unshown_media=unshown.get(row.id, 0),
            version=row.version,
        )
        for row in rows
    )
    next_cursor = None
    if more and rows:
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id, secret)
    return GalleryPage(posts=page_posts, next_cursor=next_cursor, paused=False)


def _media_by_post(
    session: Session, ids: list[int], media_url: MediaUrl
) -> tuple[dict[int, list[GalleryImage]], dict[int, int]]:
    images: dict[int, list[GalleryImage]] = {}
    unshown: dict[int, int] = {}
    if not ids:
        return images, unshown
    media = MediaItem.__table__
    rows = session.execute(
        sa.select(
            media.c.post_id,
            media.c.kind,
            media.c.alt,
            media.c.decorative,
            media.c.pinned_hash,
            media.c.pinned_widths,
            media.c.pinned_width,
            media.c.pinned_height,
        )
        .where(media.c.post_id.in_(ids))
        .order_by(media.c.post_id, media.c.position)
    ).all()
    for row in rows:
        widths = _valid_widths(row.pinned_widths)
        if not row.pinned_hash or not widths or not row.pinned_width or not row.pinned_height:
            unshown[row.post_id] = unshown.get(row.post_id, 0) + 1
            continue
        srcset = tuple((media_url(pinned_name(row.pinned_hash, w)), w) for w in widths)
        images.setdefault(row.post_id, []).append(
            GalleryImage(
                kind=row.kind,
                alt=_alt_text(row.alt, decorative=row.decorative, kind=row.kind),
                src=srcset[-1][0],
                srcset=srcset,
                width=row.pinned_width,
                height=row.pinned_height,
            )
        )
    return images, unshown


def _valid_widths(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(w for w in value if isinstance(w, int) and 0 < w < 10_000)


def _alt_text(alt: str | None, *, decorative: bool, kind: str) -> str:
    """The approved description; empty when a moderator marked the image decorative."""
    if decorative:
        return ""
    if alt and alt.strip():
        return alt.strip()
    return "Video thumbnail with no description" if kind != "image" else "Image with no description"


def _hashtags_by_post(session: Session, ids: list[int]) -> dict[int, tuple[str, ...]]:
    if not ids:
        return {}
    tags = PostHashtag.__table__
    rows = session.execute(
        sa.select(tags.c.post_id, tags.c.tag).where(tags.c.post_id.in_(ids)).order_by(tags.c.tag)
    )
    found: dict[int, list[str]] = {}
    for row in rows:
        found.setdefault(row.post_id, []).append(row.tag)
    return {post_id: tuple(values) for post_id, values in found.items()}


def all_pages(
    session: Session, *, secret: str, media_url: MediaUrl, page_size: int
) -> list[GalleryPage]:
    """Every page of the whole gallery (the static export), empty list when paused."""
    pages: list[GalleryPage] = []
    query = GalleryQuery(limit=page_size)
    while True:
        page = load_page(session, query, secret=secret, media_url=media_url)
        if page.paused:
            return [page]
        pages.append(page)
        if page.next_cursor is None:
            return pages
        query = dataclasses.replace(query, cursor=decode_cursor(page.next_cursor, secret))


def page_etag(page: GalleryPage, *, variant: str) -> str:
    """A strong validator of exactly what a response shows (ids, versions, next page)."""
    digest = hashlib.sha256(f"{__version__}\0{variant}\0{page.paused}\0".encode())
    for post in page.posts:
        digest.update(f"{post.id}:{post.version};".encode())
    digest.update((page.next_cursor or "").encode())
    return f'"{digest.hexdigest()[:32]}"'


def last_change(session: Session) -> datetime | None:
    """When anything on the record last happened: an upper bound for ``Last-Modified``.

    Logins and account changes are left out: they change nothing public, and a public
    header that moved with them would show when staff are at work.
    """
    events = ModerationEvent.__table__
    query = sa.select(sa.func.max(events.c.at)).where(
        events.c.action.not_in(sorted(STAFF_ACTIVITY_ACTIONS))
    )
    value: datetime | None = session.execute(query).scalar()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def post_json(post: GalleryPost) -> dict[str, Any]:
    """One post of ``/gallery.json`` and the export's ``gallery.json``."""
    return {
        "id": post.ref,
        "platform": post.platform,
        "url": post.url,
        "author": {"name": post.author_name, "handle": post.author_handle, "url": post.author_url},
        "text": post.text,
        "content_warning": post.content_warning,
        "created_at": post.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "hashtags": list(post.hashtags),
        "media": [
            {
                "kind": image.kind,
                "alt": image.alt,
                "url": image.src,
                "width": image.width,
                "height": image.height,
                "sizes": [
                    {
                        "url": url,
                        "width": width,
                        "height": rendition_height(width, image.width, image.height),
                    }
                    for url, width in image.srcset
                ],
            }
            for image in post.images
        ],
    }
