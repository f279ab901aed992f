"""Pinning: a local, metadata-free copy of every image a moderator or the public sees.

Each image (or a video's thumbnail) is downloaded once, before review (see
:mod:`monitor.services.staging`), and re-encoded, so no page ever hotlinks a
platform CDN or passes on EXIF or GPS data. The download treats the URL as hostile:

* only http(s); the host is resolved by us and private, loopback, link-local
  and reserved addresses are refused (unless ``OUTBOUND_ALLOW_PRIVATE``), and
  the connection goes to the address we checked, so DNS cannot change under us;
* redirects are followed by hand, each hop checked the same way;
* the body is capped in bytes and in time, and never decompressed in transit;
* the bytes must decode as JPEG, PNG, GIF or WebP (sniffed by Pillow, not the
  ``Content-Type``), within a pixel budget that stops decompression bombs.

Files are stored as ``<sha256 of the original>-<width>.jpg`` under
``MEDIA_DIR/<first two hex digits>/``, each written to a temporary file and
renamed into place, so a half-written file is never served.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import logging
import math
import re
import time
import warnings
from collections.abc import Collection, Iterable
from pathlib import Path

import httpx
import sqlalchemy as sa
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from adapters.http import USER_AGENT
from adapters.netguard import AddressRefused, checked_address
from monitor.config import Settings
from monitor.errors import UserError
from monitor.files import TEMP_PREFIX, write_atomic
from monitor.models import CampaignPost, MediaItem, Post, PostStatus
from monitor.services.placements import Scope
from monitor.services.public import publicly_visible

#: Decoders we let near hostile bytes; Pillow's others (EPS calls Ghostscript) stay off.
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
MAX_DOWNLOAD_BYTES = 25 * 1024 * 1024
#: Pixels of the decoded original; a 12,000 x 4,000 panorama still fits. JPEG decodes at a
#: reduced scale (draft mode), so only its budget can be this large.
MAX_SOURCE_PIXELS = 50_000_000
#: PNG, GIF and WebP decode at full size, four bytes a pixel and more while converting:
#: a tiny file of a huge flat area would otherwise cost gigabytes of memory.
MAX_FULL_DECODE_PIXELS = 16_000_000
MAX_REDIRECTS = 5
#: Responsive widths offered in ``srcset``; the largest rendition is capped at the last.
RENDITION_WIDTHS = (320, 640, 1280)
MAX_HEIGHT = 2400
JPEG_QUALITY = 82
#: Files younger than this are never erased: an approval may be pinning them right now.
ERASE_GRACE_SECONDS = 300
PINNED_NAME_RE = re.compile(r"^(?P<hash>[0-9a-f]{64})-(?P<width>[1-9][0-9]{0,3})\.jpg$")
_ERASE_PENDING = "hashtag_monitor_erase_media_pending"

log = logging.getLogger("monitor.media")


class PinError(UserError):
    """Media could not be pinned; the message says which and why, for the moderator."""


@dataclasses.dataclass(frozen=True, slots=True)
class PinnedImage:
    """The stored renditions of one original."""

    digest: str
    widths: tuple[int, ...]
    width: int
    height: int


def pinned_name(digest: str, width: int) -> str:
    return f"{digest}-{width}.jpg"


def pinned_file(media_dir: Path, name: str) -> Path:
    """Where a pinned file lives; ``name`` must already match :data:`PINNED_NAME_RE`."""
    return media_dir / name[:2] / name


def rendition_height(width: int, full_width: int, full_height: int) -> int:
    return max(1, round(full_height * width / full_width))


# --- download -----------------------------------------------------------------------


def download_image(url: str, *, settings: Settings, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The body at ``url``, fetched under the rules in the module docstring."""
    current = _parse_url(url)
    deadline = time.monotonic() + 3 * settings.http_timeout_seconds
    headers = {"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"}
    # trust_env=False: no proxy from the environment may take over the address we checked.
    with httpx.Client(
        timeout=settings.http_timeout_seconds,
        follow_redirects=False,
        headers=headers,
        trust_env=False,
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            address = _checked_address(current, settings)
            extensions = {"sni_hostname": current.host} if current.scheme == "https" else {}
            request = client.build_request(
                "GET",
                current.copy_with(host=address),
                headers={"Host": current.netloc.decode("ascii")},
                extensions=extensions,
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise PinError(f"could not download {_short(current)}: {_describe(exc)}") from None
            try:
                if response.is_redirect:  # a 3xx that carries a Location header
                    current = _parse_url(str(current.join(response.headers["location"])))
                    continue
                if response.status_code != 200:
                    raise PinError(
                        f"{_short(current)} answered HTTP {response.status_code}, not an image"
                    )
                return _read_capped(response, current, max_bytes, deadline)
            finally:
                response.close()
    raise PinError(f"{_short(url)} redirected more than {MAX_REDIRECTS} times")


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise PinError(f"{_short(url)} is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise PinError(f"{_short(url)} is not an http(s) URL; only web addresses are fetched")
    return parsed


def _checked_address(url: httpx.URL, settings: Settings) -> str:
    """The shared SSRF guard (``adapters.netguard``), its refusal as a PinError."""
    try:
        return checked_address(url, allow_private=settings.outbound_allow_private)
    except AddressRefused as exc:
        raise PinError(str(exc)) from None


def _read_capped(
    response: httpx.Response, url: httpx.URL, max_bytes: int, deadline: float
) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PinError(f"{_short(url)} is {int(declared):,} bytes; the limit is {max_bytes:,}")
    body = bytearray()
    try:
        # Raw bytes: a gzip "image" must not inflate past the cap in one chunk.
        for chunk in response.iter_raw():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise PinError(f"{_short(url)} is over the {max_bytes:,}-byte limit")
            if time.monotonic() > deadline:
                raise PinError(f"{_short(url)} is downloading too slowly; gave up")
    except httpx.HTTPError as exc:
        raise PinError(f"could not download {_short(url)}: {_describe(exc)}") from None
    return bytes(body)


def _short(url: object) -> str:
    text = str(url)
    return text if len(text) <= 120 else text[:117] + "..."


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# --- re-encoding and storage -------------------------------------------------------


def store_image(data: bytes, media_dir: Path) -> PinnedImage:
    """Decode ``data`` as an image and write its clean renditions under ``media_dir``."""
    digest = hashlib.sha256(data).hexdigest()
    image = _decode(data)
    widths = _renditions_widths(image.width)
    try:
        rendition = image
        # Largest first; each smaller rendition is scaled from the previous one (cheaper).
        for width in reversed(widths):
            if width != rendition.width:
                height = rendition_height(width, image.width, image.height)
                rendition = rendition.resize(
                    (width, height), Image.Resampling.LANCZOS, reducing_gap=2.0
                )
            _write_atomic(pinned_file(media_dir, pinned_name(digest, width)), rendition)
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise PinError(f"could not store pinned media in {media_dir}: {reason}") from None
    return PinnedImage(digest, tuple(widths), image.width, image.height)


def _decode(data: bytes) -> Image.Image:
    """An RGB, upright, size-capped image with no metadata, or a PinError."""
    unreadable = "the file is not an image (JPEG, PNG, GIF or WebP expected)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            budget = MAX_SOURCE_PIXELS if source.format == "JPEG" else MAX_FULL_DECODE_PIXELS
            if source.width * source.height > budget:
                raise PinError(
                    f"the image is {source.width} x {source.height} pixels; the limit is"
                    f" {budget:,} pixels for {source.format}"
                )
            if source.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the result is still big enough.
                source.draft("RGB", _needed_size(source))
            source.load()
            upright = ImageOps.exif_transpose(source) or source
            image = _flatten(upright)
    except PinError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PinError("the image has too many pixels to decode safely") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise PinError(unreadable) from None
    image.thumbnail((RENDITION_WIDTHS[-1], MAX_HEIGHT), Image.Resampling.LANCZOS)
    image.info = {}
    return image


def _needed_size(source: Image.Image) -> tuple[int, int]:
    """The largest rendition's size in the file's own (unrotated) orientation."""
    width, height = source.size
    turned = source.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
    upright_width, upright_height = (height, width) if turned else (width, height)
    scale = min(1.0, RENDITION_WIDTHS[-1] / upright_width, MAX_HEIGHT / upright_height)
    return math.ceil(width * scale), math.ceil(height * scale)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on white: JPEG has no alpha, and a transparent pixel must not turn black."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "F"):
        return image.convert("L").convert("RGB")
    return image.convert("RGB")


def _renditions_widths(width: int) -> list[int]:
    return [w for w in RENDITION_WIDTHS if w < width] + [width]


def _write_atomic(path: Path, image: Image.Image) -> None:
    write_atomic(
        path,
        lambda handle: image.save(handle, "JPEG", quality=JPEG_QUALITY, progressive=True),
        suffix=".jpg",
    )


def pin_url(url: str, *, settings: Settings) -> PinnedImage:
    """Download and store one image."""
    return store_image(download_image(url, settings=settings), settings.media_dir)


# --- who may see a stored copy, and when it goes ------------------------------------


def _published_hashes_query() -> sa.Select[tuple[str | None]]:
    media, posts = MediaItem.__table__, Post.__table__
    return (
        sa.select(media.c.pinned_hash)
        .join(posts, posts.c.id == media.c.post_id)
        .where(posts.c.status == PostStatus.APPROVED, media.c.pinned_hash.is_not(None))
    )


def _held_hashes_query() -> sa.Select[tuple[str | None]]:
    """Copies we still hold for review: every post not gone at source (its retention
    decides how long a pending or rejected post, and so its media, is kept)."""
    media, posts = MediaItem.__table__, Post.__table__
    return (
        sa.select(media.c.pinned_hash)
        .join(posts, posts.c.id == media.c.post_id)
        .where(posts.c.status != PostStatus.REMOVED, media.c.pinned_hash.is_not(None))
    )


def is_published_media(
    session: Session, digest: str, *, paused: Collection[int] = frozenset()
) -> bool:
    """True while at least one public post shows the image with this hash (a held or
    escalated post keeps its files, for a review that may keep it, but serves none);
    ``paused``: campaigns whose kill switch is on, whose galleries show nothing, so
    their approval alone does not serve it."""
    query = _published_hashes_query().where(
        MediaItem.__table__.c.pinned_hash == digest, publicly_visible()
    )
    if paused:
        placed = CampaignPost.__table__
        query = query.where(
            sa.exists().where(
                placed.c.post_id == MediaItem.__table__.c.post_id,
                placed.c.status == PostStatus.APPROVED,
                placed.c.campaign_id.not_in(sorted(paused)),
            )
        )
    return session.execute(query.limit(1)).first() is not None


def is_held_media(session: Session, digest: str, *, within: Scope | None = None) -> bool:
    """True while a post we hold for review has a copy with this hash (staff may see it);
    ``within``: a post of that campaign (its staff may see it)."""
    query = _held_hashes_query().where(MediaItem.__table__.c.pinned_hash == digest)
    if within is not None:
        query = query.where(within.contains())
    return session.execute(query.limit(1)).first() is not None


def erase_unreferenced_media(
    session: Session, settings: Settings, *, grace_seconds: float = ERASE_GRACE_SECONDS
) -> int:
    """Delete stored files no held post refers to any more; returns how many went.

    Call it after a post is removed at source, erased or purged, once that change
    is committed. Files younger than ``grace_seconds`` are kept, because staging in
    another transaction may have written them and not yet committed their rows.
    """
    keep = {digest for (digest,) in session.execute(_held_hashes_query()) if digest}
    cutoff = time.time() - grace_seconds
    erased = 0
    for path in _media_files(settings.media_dir):
        match = PINNED_NAME_RE.match(path.name)
        if match and match["hash"] in keep:
            continue
        try:
            if path.stat().st_mtime > cutoff:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        erased += 1
    return erased


def _media_files(media_dir: Path) -> Iterable[Path]:
    """Our pinned files and left-over temporary files; anything else is not ours to touch."""
    if not media_dir.is_dir():
        return []
    found: list[Path] = []
    for folder in media_dir.iterdir():
        if folder.is_dir() and re.fullmatch(r"[0-9a-f]{2}", folder.name):
            found.extend(
                path
                for path in folder.iterdir()
                if PINNED_NAME_RE.match(path.name) or path.name.startswith(TEMP_PREFIX)
            )
    return found


def erase_after_commit(session: Session, settings: Settings) -> None:
    """Run :func:`erase_unreferenced_media` once this session's transaction commits.

    For code that moves posts out of ``approved``: erasing before the commit
    could delete files a rolled-back transaction still publishes.
    """
    if session.info.get(_ERASE_PENDING):
        return
    session.info[_ERASE_PENDING] = True
    bind = session.get_bind()

    def erase(_session: Session) -> None:
        session.info.pop(_ERASE_PENDING, None)
        try:
            with Session(bind) as fresh:
                erased = erase_unreferenced_media(fresh, settings)
        except (OSError, SQLAlchemyError) as exc:
            log.warning("could not erase unpublished media: %s", exc)
            return
        if erased:
            log.info("erased %d pinned media files no approved post shows", erased)

    sa.event.listen(session, "after_commit", erase, once=True)
