"""The public side: the gallery pages, its JSON feed, the embed script, pinned media
and the takedown form. No login and no cookies; nothing is loaded from another site.

Every response sets its own Content-Security-Policy (only our origin, and
``frame-ancestors`` from ``GALLERY_FRAME_ANCESTORS``), because the app-wide
default forbids framing, which the embed needs.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, TypedDict
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from adapters import display_name
from monitor.config import Settings
from monitor.models import Post
from monitor.resources import templates_dir
from monitor.services.alerts import send_soon
from monitor.services.app_settings import gallery_paused, paused_campaigns
from monitor.services.campaigns import campaign_tags
from monitor.services.gallery import (
    DEFAULT_PAGE_SIZE,
    EMBED_PAGE_SIZE,
    GalleryInputError,
    GalleryPage,
    GalleryQuery,
    gallery_context,
    last_change,
    load_page,
    load_posts,
    page_etag,
    parse_query,
    post_json,
    report_base,
)
from monitor.services.looks import featured_ids, load_look, looks_stamp, pinned_ids
from monitor.services.media import PINNED_NAME_RE, is_published_media, pinned_file
from monitor.services.takedown import (
    CATEGORIES,
    TakedownRefused,
    TooManyRequests,
    check_token,
    client_key,
    find_reportable,
    issue_token,
    network_key,
    request_takedown,
    takedown_hides,
)
from monitor.web.deps import PublicPage, ReadSessionDep, SettingsDep, TemplatesDep, Visitor
from monitor.web.live import live_hub, live_url, theme_url

router = APIRouter()

#: A takedown form is a few short fields; anything bigger is not one of ours.
MAX_FORM_BYTES = 16 * 1024
_ANCESTOR_RE = re.compile(r"'self'|'none'|\*|(https?://)?(\*\.)?[A-Za-z0-9.-]+(:(\d{1,5}|\*))?")
PAGE_CACHE = "no-cache"
MEDIA_CACHE = "public, max-age=31536000, immutable"


def frame_ancestors(settings: Settings) -> str:
    """The configured ancestors, keeping only well-formed sources (no header injection)."""
    sources = [s for s in settings.gallery_frame_ancestors.split() if _ANCESTOR_RE.fullmatch(s)]
    return " ".join(sources) or "'none'"


def public_headers(settings: Settings, *, cache: str = PAGE_CACHE) -> dict[str, str]:
    """Headers of every public response: our origin only, framable where configured."""
    return {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self';"
            " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
            f" form-action 'self'; frame-ancestors {frame_ancestors(settings)}"
        ),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": cache,
    }


def _not_modified(request: Request, etag: str, modified: datetime | None) -> bool:
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = {value.strip().removeprefix("W/") for value in match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return when.tzinfo is not None and modified.replace(microsecond=0) <= when
    return False


def _validators(etag: str, modified: datetime | None) -> dict[str, str]:
    headers = {"ETag": etag}
    if modified is not None:
        headers["Last-Modified"] = email.utils.format_datetime(modified, usegmt=True)
    return headers


def _load(
    visitor: Visitor, media_base: str, default_limit: int = DEFAULT_PAGE_SIZE
) -> tuple[GalleryQuery, GalleryPage]:
    """The page of the visitor's campaign the query parameters ask for; raises
    GalleryInputError for bad ones."""
    params = visitor.request.query_params
    secret = visitor.settings.ensure_secret_key()
    query = parse_query(
        secret=secret,
        hashtag=params.get("tag"),
        platform=params.get("platform"),
        cursor=params.get("cursor"),
        limit=params.get("limit"),
        default_limit=default_limit,
        scope=visitor.scope,
    )
    page = load_page(
        visitor.session, query, secret=secret, media_url=lambda name: media_base + name
    )
    return query, page


class _PageLinks(TypedDict):
    older_url: str | None
    newer_url: str | None
    newer_label: str


def _page_links(
    query: GalleryQuery, page: GalleryPage, path: str, default_limit: int
) -> _PageLinks:
    filters = {"tag": query.hashtag, "platform": query.platform}
    if query.limit != default_limit:
        filters["limit"] = str(query.limit)
    kept = {k: v for k, v in filters.items() if v}
    older = "?" + urlencode({**kept, "cursor": page.next_cursor}) if page.next_cursor else None
    newer = (path + ("?" + urlencode(kept) if kept else "")) if query.cursor else None
    return {"older_url": older, "newer_url": newer, "newer_label": "Newest messages"}


def _html_gallery(visitor: Visitor, *, template: str, embed: bool) -> Response:
    request, session, settings, templates = (
        visitor.request, visitor.session, visitor.settings, visitor.templates
    )  # fmt: skip
    headers = public_headers(settings)
    default_limit = EMBED_PAGE_SIZE if embed else DEFAULT_PAGE_SIZE
    # The live position is read before the page: an event after it may repeat what the
    # page shows (the wall skips a card it has), but none the page lacks is skipped.
    live = live_hub(request)
    live.start_from_thread()
    since = live.position()
    tags = campaign_tags(visitor.campaign, settings)
    try:
        query, loaded = _load(visitor, "/media/", default_limit)
    except GalleryInputError as exc:
        context = gallery_context(
            settings,
            GalleryPage((), None, False),
            message=str(exc),
            assets="/static/",
            hashtags=tags,
        )
        return templates.TemplateResponse(request, "gallery/message.html", context, 400, headers)
    variant = f"{template}|{query.hashtag}|{query.platform}|{tags}|{visitor.prefix}"
    etag = page_etag(loaded, variant=f"{variant}|{looks_stamp(session, visitor.campaign)}")
    modified = last_change(session)
    headers.update(_validators(etag, modified))
    if _not_modified(request, etag, modified):
        return Response(status_code=304, headers=headers)
    look = load_look(session, visitor.campaign)
    pinned_set = set(pinned_ids(session, visitor.campaign))
    pinned = (
        ()
        if query.cursor or loaded.paused
        else load_posts(
            session,
            pinned_set,
            media_url=lambda name: "/media/" + name,
            campaign_id=visitor.campaign_id,
        )
    )
    shown = dataclasses.replace(
        loaded, posts=tuple(post for post in loaded.posts if post.id not in pinned_set)
    )
    context = gallery_context(
        settings,
        shown,
        embed=embed,
        assets="/static/",
        report_base=f"{visitor.prefix}/gallery/report/",
        hashtags=tags,
        look=look,
        pinned=pinned,
        featured=set(featured_ids(session, visitor.campaign)),
        # Only the newest page follows live: an older page is a place in the archive.
        live_url=None if query.cursor else live_url(query, embed=embed, base=visitor.prefix),
        live_since=since,
        live_limit=query.limit,
        theme_url=theme_url(look, visitor.prefix),
        filters={
            "tags": list(tags),
            "platforms": [
                (name, display_name(name, public=True)) for name in settings.enabled_platforms
            ],
            "tag": query.hashtag,
            "platform": query.platform,
        },
        **_page_links(query, loaded, request.url.path, default_limit),
    )
    return templates.TemplateResponse(request, template, context, headers=headers)


#: Where each campaign's copy of a public route lives (``/gallery``: the default campaign).
CAMPAIGN_PREFIX = "/c/{slug}"


@router.get("/gallery")
@router.get(f"{CAMPAIGN_PREFIX}/gallery")
def gallery(visitor: PublicPage) -> Response:
    """The full public gallery page."""
    return _html_gallery(visitor, template="gallery/index.html", embed=False)


@router.get("/gallery/embed")
@router.get(f"{CAMPAIGN_PREFIX}/gallery/embed")
def gallery_embed(visitor: PublicPage) -> Response:
    """The gallery without site chrome, for an iframe; it reports its height to the parent."""
    return _html_gallery(visitor, template="gallery/embed.html", embed=True)


@router.get("/gallery.json")
@router.get(f"{CAMPAIGN_PREFIX}/gallery.json")
def gallery_json(visitor: PublicPage) -> Response:
    """Approved posts, newest first, with a cursor to the next page."""
    request, session, settings = visitor.request, visitor.session, visitor.settings
    headers = {**public_headers(settings), "Access-Control-Allow-Origin": "*"}
    try:
        query, loaded = _load(visitor, f"{settings.public_base_url}/media/")
    except GalleryInputError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400, headers=headers)
    etag = page_etag(loaded, variant=f"json|{query.hashtag}|{query.platform}|{visitor.prefix}")
    modified = last_change(session)
    headers.update(_validators(etag, modified))
    if _not_modified(request, etag, modified):
        return Response(status_code=304, headers=headers)
    body = {
        "paused": loaded.paused,
        "posts": [
            post_json(post, report_base=report_base(settings, visitor.prefix))
            for post in loaded.posts
        ],
        "next_cursor": loaded.next_cursor,
    }
    return JSONResponse(body, headers=headers)


@lru_cache(maxsize=1)
def _embed_script() -> bytes:
    return (templates_dir() / "static" / "embed.js").read_bytes()


@router.get("/embed.js")
@router.get(f"{CAMPAIGN_PREFIX}/embed.js")
def embed_script(visitor: PublicPage) -> Response:
    """One script tag a force's site adds: it inserts the iframe (of the campaign the
    script's own address names) and keeps it sized."""
    settings = visitor.settings
    headers = {
        **public_headers(settings, cache="public, max-age=3600"),
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    return Response(_embed_script(), media_type="text/javascript; charset=utf-8", headers=headers)


@router.get("/media/{name}")
def media(name: str, session: ReadSessionDep, settings: SettingsDep) -> Response:
    """A pinned image, while an approved post shows it (never while the gallery is paused)."""
    match = PINNED_NAME_RE.match(name)
    path = pinned_file(settings.media_dir, name) if match else None
    if (
        match is None
        or path is None
        or gallery_paused(session)
        or not is_published_media(session, match["hash"], paused=paused_campaigns(session))
        or not path.is_file()
    ):
        return Response("Not found", status_code=404, headers=public_headers(settings))
    headers = {**public_headers(settings, cache=MEDIA_CACHE)}
    headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return FileResponse(path, media_type="image/jpeg", headers=headers)


def _report_context(
    session: Session,
    settings: Settings,
    post: Post,
    *,
    token: str,
    values: Mapping[str, str],
    error: str | None,
) -> dict[str, Any]:
    return gallery_context(
        settings,
        GalleryPage((), None, False),
        title="Report a post or request its removal",
        post=post,
        excerpt=post.text if len(post.text) <= 280 else post.text[:279] + "…",
        token=token,
        categories=CATEGORIES,
        hides=takedown_hides(session, settings),
        values=values,
        error=error,
        assets="/static/",
    )


def _not_found(request: Request, settings: Settings, templates: Jinja2Templates) -> Response:
    context = gallery_context(
        settings,
        GalleryPage((), None, False),
        title="Post not found",
        message="This post is not in the gallery (it may have been removed).",
        assets="/static/",
    )
    return templates.TemplateResponse(
        request, "gallery/message.html", context, 404, public_headers(settings)
    )


@router.get("/gallery/report/{public_id:path}")
@router.get(f"{CAMPAIGN_PREFIX}/gallery/report/{{public_id:path}}")
def report_form(public_id: str, visitor: PublicPage) -> Response:
    """The takedown request form for one published post (row id or public id)."""
    request, session, settings, templates = (
        visitor.request, visitor.session, visitor.settings, visitor.templates
    )  # fmt: skip
    post = find_reportable(session, public_id, visitor.campaign_id)
    if post is None or gallery_paused(session, visitor.scope.campaign_id):
        return _not_found(request, settings, templates)
    token = issue_token(settings.ensure_secret_key(), post.id or 0)
    context = _report_context(session, settings, post, token=token, values={}, error=None)
    return templates.TemplateResponse(
        request, "gallery/report.html", context, headers=public_headers(settings)
    )


async def _read_form(request: Request) -> dict[str, str] | None:
    """The urlencoded form, or None when it is too big or not a form at all."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in fields.items()}


@router.post("/gallery/report/{public_id:path}")
@router.post(f"{CAMPAIGN_PREFIX}/gallery/report/{{public_id:path}}")
async def report_submit(
    public_id: str,
    request: Request,
    settings: SettingsDep,
    templates: TemplatesDep,
) -> Response:
    """Store a takedown request: flagged for moderators, held in a safeguarding category."""
    form = await _read_form(request)
    address = request.client.host if request.client else "unknown"
    return await run_in_threadpool(_submit, request, public_id, form, address, settings, templates)


def _submit(
    request: Request,
    public_id: str,
    form: dict[str, str] | None,
    address: str,
    settings: Settings,
    templates: Jinja2Templates,
) -> Response:
    secret = settings.ensure_secret_key()
    headers = public_headers(settings)
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        post = find_reportable(session, public_id)
        if post is None or gallery_paused(session):
            return _not_found(request, settings, templates)
        post_id = post.id or 0
        values = form or {}
        try:
            if form is None:
                raise TakedownRefused("the form could not be read; please send it again")
            check_token(secret, values.get("token", ""), post_id)
            request_takedown(
                session=session,
                settings=settings,
                post=post,
                category=values.get("category", ""),
                details=values.get("details", ""),
                contact=values.get("contact", ""),
                client=client_key(secret, address),
                network=network_key(secret, address),
            )
            session.commit()
            held = post.takedown_hold
        except TakedownRefused as exc:
            session.rollback()
            status = 429 if isinstance(exc, TooManyRequests) else 400
            context = _report_context(
                session,
                settings,
                post,
                token=issue_token(secret, post_id),
                values=values,
                error=str(exc),
            )
            return templates.TemplateResponse(
                request, "gallery/report.html", context, status, headers
            )
    send_soon(request.app.state.engine, settings)
    context = gallery_context(
        settings,
        GalleryPage((), None, False),
        title="Request received",
        message="Thank you. A moderator will review this post and your request soon."
        + (" It is hidden from the gallery until then." if held else ""),
        assets="/static/",
    )
    return templates.TemplateResponse(request, "gallery/message.html", context, headers=headers)
