"""What the public sees: approved posts only, newest first, in keyset pages.

Every public surface (``/gallery``, ``/gallery/embed``, ``/gallery.json``, the
static export) reads through :func:`load_page`, which filters on
``status = 'approved'`` in SQL, so a post that leaves ``approved`` disappears
from all of them at the next request. Cursors are signed: a forged or edited
one is refused instead of being fed to the query. The kill switch
(:func:`monitor.services.app_settings.gallery_paused`) empties every surface.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from sqlmodel import Session

from adapters import display_name
from adapters.text import normalise_tag
from monitor import __version__
from monitor.config import Settings
from monitor.errors import UserError
from monitor.models import (
    AuditEvent,
    Campaign,
    CampaignPost,
    MediaItem,
    Post,
    PostHashtag,
    PostStatus,
    Role,
)
from monitor.services.app_settings import (
    GALLERY_PAUSED,
    gallery_paused,
    get_app_setting,
    pause_key,
    set_app_setting,
)
from monitor.services.audit import STAFF_ACTIVITY_ACTIONS
from monitor.services.campaigns import role_in
from monitor.services.media import pinned_name, rendition_height
from monitor.services.placements import Scope
from monitor.services.public import publicly_visible
from monitor.services.takedown import MAX_CONTACT_CHARS, MAX_DETAILS_CHARS
from monitor.services.users import get_active_user
from monitor.signing import BadToken, Use, sign, unsign

DEFAULT_PAGE_SIZE = 24
#: The embed shows fewer posts a page so its markup stays light (under 30 KB with assets).
EMBED_PAGE_SIZE = 12
MAX_PAGE_SIZE = 100
MAX_CURSOR_CHARS = 200
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
    #: Only posts approved in this campaign (None: the install has one campaign, whose
    #: approved posts are the public ones).
    campaign_id: int | None = None
    #: The campaign whose gallery this is: its own kill switch applies, beside the
    #: install's (None: the install's alone).
    gallery_of: int | None = None


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
    #: Media marked sensitive at source: behind a content note on every public surface.
    sensitive: bool
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
    scope: Scope | None = None,
) -> GalleryQuery:
    """Validate raw query parameters into a :class:`GalleryQuery` for the gallery of
    ``scope``'s campaign, or a clear error."""
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
        campaign_id=campaign_filter(scope),
        gallery_of=scope.campaign_id if scope is not None else None,
    )


def campaign_filter(scope: Scope | None) -> int | None:
    """The campaign a public query must filter on: none when the install has one."""
    return None if scope is None or scope.alone else scope.campaign_id


def _page_size(limit: str | int | None, default: int) -> int:
    if limit is None or limit == "":
        return default
    text = str(limit).strip()
    if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise GalleryInputError(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def encode_cursor(created_at: datetime, post_id: int, secret: str) -> str:
    """A signed position after which the next page starts."""
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return sign(Use.GALLERY_CURSOR, f"{micros}:{post_id}", secret=secret)


def decode_cursor(token: str, secret: str) -> tuple[datetime, int]:
    """The position in a cursor we issued; anything else is refused."""
    invalid = GalleryInputError("cursor is not one this gallery issued; start from the first page")
    if len(token) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        payload = unsign(Use.GALLERY_CURSOR, token, secret=secret)
    except BadToken:
        raise invalid from None
    match = re.fullmatch(r"(-?\d{1,17}):(\d{1,18})", payload)
    if match is None:
        raise invalid
    try:
        created_at = _EPOCH + timedelta(microseconds=int(match[1]))
    except OverflowError:
        raise invalid from None
    return created_at, int(match[2])


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
    if gallery_paused(session, query.gallery_of):
        return GalleryPage(posts=(), next_cursor=None, paused=True)
    params: dict[str, Any] = {"limit": query.limit + 1}
    if query.hashtag:
        params["tag"] = query.hashtag
    if query.platform:
        params["platform"] = query.platform
    if query.cursor:
        params["cursor_at"], params["cursor_id"] = query.cursor
    if query.campaign_id is not None:
        params["campaign"] = query.campaign_id
    select = _page_statement(
        bool(query.hashtag), bool(query.platform), bool(query.cursor), query.campaign_id is not None
    )
    rows = session.execute(select, params).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    page_posts = _gallery_posts(session, rows, media_url)
    next_cursor = None
    if more and rows:
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id, secret)
    return GalleryPage(posts=page_posts, next_cursor=next_cursor, paused=False)


def _gallery_posts(
    session: Session, rows: Sequence[Any], media_url: MediaUrl
) -> tuple[GalleryPost, ...]:
    """Page rows (from :func:`_page_statement`'s columns) with their media and hashtags."""
    ids = [row.id for row in rows]
    images, unshown = _media_by_post(session, ids, media_url)
    hashtags = _hashtags_by_post(session, ids)
    return tuple(
        GalleryPost(
            id=row.id,
            ref=f"{row.platform}:{row.external_id}",
            platform=row.platform,
            platform_label=display_name(row.platform, public=True),
            url=safe_url(row.url),
            author_name=row.author_name or row.author_handle,
            author_handle=row.author_handle,
            author_url=safe_url(row.author_url),
            text=row.text,
            content_warning=row.content_warning,
            sensitive=bool(row.sensitive),
            created_at=row.created_at,
            hashtags=hashtags.get(row.id, ()),
            images=tuple(images.get(row.id, ())),
            unshown_media=unshown.get(row.id, 0),
            version=row.version,
        )
        for row in rows
    )


def load_posts(
    session: Session,
    ids: Collection[int],
    *,
    media_url: MediaUrl,
    campaign_id: int | None = None,
    gallery_of: int | None = None,
) -> tuple[GalleryPost, ...]:
    """The posts among ``ids`` the public may see now on ``campaign_id``'s gallery (None:
    the only one), newest first (the live wall's new cards, the event screen's set);
    nothing while the gallery of ``gallery_of`` (see :class:`GalleryQuery`) is paused."""
    if not ids or gallery_paused(session, gallery_of):
        return ()
    posts = Post.__table__
    columns = _page_statement(False, False, False, False).selected_columns
    select = (
        sa.select(*columns)
        .where(publicly_visible(posts), posts.c.id.in_(sorted(ids)))
        .order_by(posts.c.created_at.desc(), posts.c.id.desc())
    )
    if campaign_id is not None:
        select = select.where(_approved_in_campaign(posts, sa.literal(campaign_id)))
    return _gallery_posts(session, session.execute(select).all(), media_url)


def _approved_in_campaign(posts: sa.Table, campaign: Any) -> sa.ColumnElement[bool]:
    placed = CampaignPost.__table__
    return sa.exists().where(
        placed.c.campaign_id == campaign,
        placed.c.post_id == posts.c.id,
        placed.c.status == PostStatus.APPROVED,
    )


@functools.cache
def _page_statement(
    by_tag: bool, by_platform: bool, after_cursor: bool, in_campaign: bool
) -> sa.Select[Any]:
    """The page query for one combination of filters, built once per process.

    Values come in as bound parameters, so a request pays neither for building the
    expression nor for computing its cache key from scratch; the hot path of
    ``/gallery.json`` (measured by ``bench_gallery``) is mostly this overhead.
    """
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
        posts.c.sensitive,
        posts.c.created_at,
        posts.c.version,
    ).where(publicly_visible(posts))
    if by_tag:
        tags = PostHashtag.__table__
        select = select.where(
            posts.c.id.in_(sa.select(tags.c.post_id).where(tags.c.tag == sa.bindparam("tag")))
        )
    if by_platform:
        select = select.where(posts.c.platform == sa.bindparam("platform"))
    if in_campaign:
        select = select.where(_approved_in_campaign(posts, sa.bindparam("campaign")))
    if after_cursor:
        created_at = sa.bindparam("cursor_at", type_=posts.c.created_at.type)
        select = select.where(
            sa.or_(
                posts.c.created_at < created_at,
                sa.and_(posts.c.created_at == created_at, posts.c.id < sa.bindparam("cursor_id")),
            )
        )
    ordered = select.order_by(posts.c.created_at.desc(), posts.c.id.desc())
    return ordered.limit(sa.bindparam("limit", type_=sa.Integer()))


_MEDIA_QUERY = (
    sa.select(
        MediaItem.__table__.c.post_id,
        MediaItem.__table__.c.kind,
        MediaItem.__table__.c.alt,
        MediaItem.__table__.c.decorative,
        MediaItem.__table__.c.pinned_hash,
        MediaItem.__table__.c.pinned_widths,
        MediaItem.__table__.c.pinned_width,
        MediaItem.__table__.c.pinned_height,
    )
    .where(MediaItem.__table__.c.post_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(MediaItem.__table__.c.post_id, MediaItem.__table__.c.position)
)
_TAGS_QUERY = (
    sa.select(PostHashtag.__table__.c.post_id, PostHashtag.__table__.c.tag)
    .where(PostHashtag.__table__.c.post_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(PostHashtag.__table__.c.tag)
)


def _media_by_post(
    session: Session, ids: list[int], media_url: MediaUrl
) -> tuple[dict[int, list[GalleryImage]], dict[int, int]]:
    images: dict[int, list[GalleryImage]] = {}
    unshown: dict[int, int] = {}
    if not ids:
        return images, unshown
    rows = session.execute(_MEDIA_QUERY, {"ids": ids}).all()
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
    rows = session.execute(_TAGS_QUERY, {"ids": ids})
    found: dict[int, list[str]] = {}
    for row in rows:
        found.setdefault(row.post_id, []).append(row.tag)
    return {post_id: tuple(values) for post_id, values in found.items()}


def all_pages(
    session: Session,
    *,
    secret: str,
    media_url: MediaUrl,
    page_size: int,
    scope: Scope | None = None,
) -> list[GalleryPage]:
    """Every page of one campaign's gallery (the static export), empty list when paused."""
    pages: list[GalleryPage] = []
    query = GalleryQuery(
        limit=page_size,
        campaign_id=campaign_filter(scope),
        gallery_of=scope.campaign_id if scope is not None else None,
    )
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


_LAST_CHANGE_QUERY = sa.select(sa.func.max(AuditEvent.__table__.c.at))


def last_change(session: Session) -> datetime | None:
    """When anything on the record last happened: an upper bound for ``Last-Modified``.

    Logins and account changes are left out: they change nothing public, and a public
    header that moved with them would show when staff are at work.
    """
    events = AuditEvent.__table__
    query = sa.select(sa.func.max(events.c.at)).where(
        events.c.action.not_in(sorted(STAFF_ACTIVITY_ACTIONS))
    )
    value: datetime | None = session.execute(query).scalar()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def post_json(post: GalleryPost, *, report_base: str) -> dict[str, Any]:
    """One post of ``/gallery.json`` and the export's ``gallery.json``; ``report_base`` is
    the takedown form's absolute URL prefix (the public id is appended)."""
    return {
        "id": post.ref,
        "report_url": report_base + quote(post.ref, safe=":@"),
        "platform": post.platform,
        "url": post.url,
        "author": {"name": post.author_name, "handle": post.author_handle, "url": post.author_url},
        "text": post.text,
        "content_warning": post.content_warning,
        "sensitive": post.sensitive,
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


def report_base(settings: Settings, prefix: str = "") -> str:
    """Where a post's takedown form lives (under a campaign's ``prefix``, ``/c/<slug>``):
    the public id is appended, URL-quoted."""
    return f"{settings.public_base_url}{prefix}/gallery/report/"


def show_date(value: datetime, settings: Settings) -> str:
    local = value.astimezone(settings.zone)
    return f"{local.day} {local:%B %Y}"


def gallery_context(
    settings: Settings,
    page: GalleryPage,
    *,
    title: str = "Messages of support",
    hashtags: Sequence[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What every gallery template needs, on the web and in the static export;
    ``hashtags``: the campaign's (default: ``HASHTAGS``)."""
    tags = ", ".join(f"#{tag}" for tag in (settings.hashtags if hashtags is None else hashtags))
    return {
        "page": page,
        "title": title,
        "intro": f"Posts tagged {tags}. A person read and approved each one before it"
        " appeared here.",
        "show_date": lambda value: show_date(value, settings),
        "iso": lambda value: value.isoformat(),
        "max_details": MAX_DETAILS_CHARS,
        "max_contact": MAX_CONTACT_CHARS,
        **extra,
    }


def set_gallery_paused(
    *,
    session: Session,
    pause: bool,
    actor: str,
    reason: str | None,
    campaign: Campaign | None,
) -> str:
    """A kill switch, audited; returns what changed, in words for the person who asked.

    ``campaign``: that campaign's own switch, for its moderators and admins (and install
    admins); it blanks that campaign's gallery, embed, feed, screen and media and no other
    campaign's, so one force can never blank another's wall. None: the install's switch,
    which blanks every campaign's at once, for install admins only.
    """
    user = get_active_user(session=session, name=actor)
    role = user.role if campaign is None else role_in(session, user, campaign)
    allowed = (Role.ADMIN,) if campaign is None else (Role.MODERATOR, Role.ADMIN)
    if role not in allowed:
        who = "install admins pause" if campaign is None else "moderators and admins pause"
        raise UserError(f"{actor} is a {role or 'non-member'}: only {who} the gallery")
    note = " ".join((reason or "").split())[:500] or None
    subject = _switch_subject(session, campaign)
    if campaign is None:
        key, campaign_id = GALLERY_PAUSED, None
    else:
        campaign_id = campaign.id or 0
        key = pause_key(campaign_id)
        if not pause and gallery_paused(session):
            raise UserError(
                "every campaign's gallery is paused by an install admin: only an install"
                " admin can resume it (the admin page)"
            )
    if pause == bool(get_app_setting(session, key, False)):
        return f"{subject} was already " + ("paused." if pause else "live.")
    set_app_setting(session, key, pause, actor=actor, reason=note, campaign_id=campaign_id)
    return f"{subject} is paused." if pause else f"{subject} is live again."


def _switch_subject(session: Session, campaign: Campaign | None) -> str:
    """What a kill switch blanks, in words: an install with one campaign has one gallery."""
    count = session.execute(sa.select(sa.func.count()).select_from(Campaign.__table__)).scalar()
    if (count or 0) <= 1:
        return "The public gallery"
    return "Every campaign's gallery" if campaign is None else f"The gallery of {campaign.name}"
