"""The gallery service: approved posts only, signed keyset cursors, filters, kill switch.

``publish`` and ``tiny_png`` are shared with the media, web, browser and export tests
(the ``gallery_engine`` fixture is in ``tests/conftest.py``).
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from adapters.base import Author, Media
from monitor.config import Settings
from monitor.db import session_scope
from monitor.models import MediaItem, Post, PostStatus
from monitor.services.app_settings import GALLERY_PAUSED, set_app_setting
from monitor.services.gallery import (
    GalleryInputError,
    GalleryPage,
    GalleryQuery,
    all_pages,
    decode_cursor,
    encode_cursor,
    load_page,
    page_etag,
    parse_query,
    post_json,
    safe_url,
)
from monitor.services.ingest import record_posts
from monitor.services.media import PinnedImage, pinned_name, store_image
from monitor.signing import Use, sign
from tests.factories import BASE_TIME, make_post

SECRET = "test-secret"


def tiny_png(
    colour: tuple[int, int, int] = (30, 90, 160), size: tuple[int, int] = (64, 48)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def publish(
    engine: Engine,
    settings: Settings,
    *,
    status: str = PostStatus.APPROVED,
    image: bytes | None = None,
    decorative: bool = False,
    **overrides: Any,
) -> int:
    """Store a post in ``status``; with ``image``, pin it as approval would (no network)."""
    media: tuple[Media, ...] = ()
    if image is not None:
        media = (
            Media(kind="image", url="https://cdn.example/x.jpg", alt=overrides.pop("alt", "A")),
        )
    with session_scope(engine) as session:
        result = record_posts(session=session, posts=[make_post(media=media, **overrides)])
        post_id = result.new_ids[0]
        session.execute(
            sa.update(Post.__table__).where(Post.__table__.c.id == post_id).values(status=status)
        )
        if image is not None:
            pinned = _store_once(image, settings.media_dir)
            item = session.exec(select(MediaItem).where(MediaItem.post_id == post_id)).one()
            item.pinned_hash, item.pinned_widths = pinned.digest, list(pinned.widths)
            item.pinned_width, item.pinned_height = pinned.width, pinned.height
            item.pinned_path = (
                f"{pinned.digest[:2]}/{pinned_name(pinned.digest, pinned.widths[-1])}"
            )
            item.decorative = decorative
            session.add(item)
    return post_id


@functools.lru_cache(maxsize=32)
def _store_once(image: bytes, media_dir: Path) -> PinnedImage:
    """Tests publish the same picture many times; re-encoding it once is enough."""
    return store_image(image, media_dir)


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(MEDIA_DIR=str(tmp_path / "media"), DATA_DIR=str(tmp_path / "data"))


def _page(engine: Engine, query: GalleryQuery | None = None) -> GalleryPage:
    with Session(engine) as session:
        return load_page(
            session, query or GalleryQuery(), secret=SECRET, media_url=lambda n: "/media/" + n
        )


def test_only_approved_posts_newest_first(gallery_engine: Engine, settings: Settings) -> None:
    old = publish(gallery_engine, settings, created_at=BASE_TIME)
    new = publish(gallery_engine, settings, created_at=BASE_TIME + timedelta(hours=1))
    for status in (PostStatus.PENDING, PostStatus.REJECTED, PostStatus.REMOVED):
        publish(gallery_engine, settings, status=status, created_at=BASE_TIME + timedelta(hours=2))

    page = _page(gallery_engine)

    assert [post.id for post in page.posts] == [new, old]
    assert page.next_cursor is None and not page.paused


def test_cursor_pages_cover_every_post_once_even_with_equal_times(
    engine: Engine, settings: Settings
) -> None:
    ids = [
        publish(engine, settings, created_at=BASE_TIME + timedelta(minutes=i // 3))
        for i in range(8)
    ]

    seen: list[int] = []
    query = GalleryQuery(limit=3)
    while True:
        page = _page(engine, query)
        seen.extend(post.id for post in page.posts)
        if page.next_cursor is None:
            break
        query = GalleryQuery(limit=3, cursor=decode_cursor(page.next_cursor, SECRET))

    expected = sorted(ids, key=lambda i: (-(ids.index(i) // 3), -i))
    assert seen == expected


def test_a_post_leaving_approved_drops_out_and_changes_the_etag(
    gallery_engine: Engine, settings: Settings
) -> None:
    keep = publish(gallery_engine, settings)
    leaving = publish(gallery_engine, settings)
    before = _page(gallery_engine)
    with session_scope(gallery_engine) as session:
        session.execute(
            sa.update(Post.__table__).where(Post.__table__.c.id == leaving).values(status="pending")
        )

    after = _page(gallery_engine)

    assert [post.id for post in after.posts] == [keep]
    assert page_etag(before, variant="json") != page_etag(after, variant="json")
    assert page_etag(after, variant="json") == page_etag(_page(gallery_engine), variant="json")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "a.b.c",
        "x" * 5000,
        encode_cursor(BASE_TIME, 5, "another-secret"),
        encode_cursor(BASE_TIME, 5, SECRET)[:-2] + "AA",
        base64.urlsafe_b64encode(b"1:1").decode() + "." + "A" * 22,
        "%%%." + "A" * 22,
    ],
    ids=["garbage", "dots", "huge", "other-key", "bad-mac", "unsigned", "not-base64"],
)
def test_forged_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(GalleryInputError, match="cursor is not one this gallery issued"):
        parse_query(secret=SECRET, cursor=cursor)


@pytest.mark.parametrize(
    "use", [use for use in Use if use is not Use.GALLERY_CURSOR], ids=lambda use: use.value
)
def test_tokens_signed_for_other_uses_are_not_cursors(use: Use) -> None:
    micros = (BASE_TIME - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    token = sign(use, f"{micros}:5", secret=SECRET)

    with pytest.raises(GalleryInputError, match="cursor is not one this gallery issued"):
        parse_query(secret=SECRET, cursor=token)


def test_cursor_round_trip_keeps_microseconds() -> None:
    when = BASE_TIME + timedelta(microseconds=123457)
    assert decode_cursor(encode_cursor(when, 42, SECRET), SECRET) == (when, 42)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1e3", "99999999999999", " 5 x"])
def test_absurd_page_sizes_are_refused(limit: str) -> None:
    with pytest.raises(GalleryInputError, match="limit must be a whole number from 1 to 100"):
        parse_query(secret=SECRET, limit=limit)


def test_page_size_bounds_are_accepted() -> None:
    assert parse_query(secret=SECRET, limit="1").limit == 1
    assert parse_query(secret=SECRET, limit="100").limit == 100
    assert parse_query(secret=SECRET).limit == 24


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hashtag": "<script>"}, "tag must be one hashtag"),
        ({"hashtag": "a" * 500}, "tag must be one hashtag"),
        ({"platform": "mastodon'; drop table posts"}, "platform must be a platform name"),
    ],
)
def test_malformed_filters_are_refused(params: dict[str, str], message: str) -> None:
    with pytest.raises(GalleryInputError, match=message):
        parse_query(secret=SECRET, **params)


def test_hashtag_and_platform_filters(gallery_engine: Engine, settings: Settings) -> None:
    tagged = publish(gallery_engine, settings, hashtags=("helpinghands",))
    other = publish(gallery_engine, settings, hashtags=("ceaday21",), platform="bluesky")

    by_tag = parse_query(secret=SECRET, hashtag="#HelpingHands")
    by_platform = parse_query(secret=SECRET, platform="Bluesky")

    assert [post.id for post in _page(gallery_engine, by_tag).posts] == [tagged]
    assert [post.id for post in _page(gallery_engine, by_platform).posts] == [other]


def test_kill_switch_empties_the_gallery(gallery_engine: Engine, settings: Settings) -> None:
    publish(gallery_engine, settings)
    with session_scope(gallery_engine) as session:
        set_app_setting(session, GALLERY_PAUSED, True, actor="admin")

    page = _page(gallery_engine)

    assert page.paused and page.posts == () and page.next_cursor is None
    with Session(gallery_engine) as session:
        pages = all_pages(session, secret=SECRET, media_url=str, page_size=10)
    assert len(pages) == 1 and pages[0].paused


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.social/@a/1", "https://example.social/@a/1"),
        ("javascript:alert(1)", None),
        ("JAVASCRIPT:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("https://exa mple.org/", None),
        ("https://example.org/\n<script>", None),
        ("//evil.example/", None),
        (None, None),
        ("https://" + "a" * 3000, None),
    ],
)
def test_only_plain_web_links_are_kept(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_hostile_author_and_links_are_neutralised_in_json(
    gallery_engine: Engine, settings: Settings
) -> None:
    publish(
        gallery_engine,
        settings,
        url="javascript:alert(document.cookie)",
        author=Author(
            handle="@x@y", name="<img src=x onerror=alert(1)>", url="javascript:alert(2)"
        ),
    )

    (post,) = _page(gallery_engine).posts
    record = post_json(post, report_base="https://g.example/gallery/report/")

    assert record["url"] is None and record["author"]["url"] is None
    assert record["author"]["name"] == "<img src=x onerror=alert(1)>"  # data, escaped on output


def test_pinned_images_carry_alt_text_and_responsive_sizes(
    gallery_engine: Engine, settings: Settings
) -> None:
    publish(gallery_engine, settings, image=tiny_png(size=(800, 600)), alt="Hands holding a sign")
    publish(gallery_engine, settings, image=tiny_png(size=(100, 100)), decorative=True)
    publish(gallery_engine, settings, image=tiny_png(size=(90, 90)), alt="")
    with session_scope(gallery_engine) as session:
        record_posts(
            session=session,
            posts=[make_post(media=(Media(kind="audio", url="https://cdn.example/a.mp3"),))],
        )
        session.execute(sa.update(Post.__table__).values(status="approved"))

    posts = {len(p.images) and p.images[0].width: p for p in _page(gallery_engine).posts}

    described = posts[800].images[0]
    assert described.alt == "Hands holding a sign"
    assert [width for _, width in described.srcset] == [320, 640, 800]
    assert described.src.startswith("/media/") and described.src.endswith("-800.jpg")
    assert posts[100].images[0].alt == ""
    assert posts[90].images[0].alt == "Image with no description"
    assert posts[0].unshown_media == 1
    sizes = post_json(posts[800], report_base="")["media"][0]["sizes"]
    assert sizes[0] == {"url": described.srcset[0][0], "width": 320, "height": 240}
