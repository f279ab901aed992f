"""The live public side: ``/gallery/events`` (server-sent events), the event screen,
the admin's theme and logo. No login, no cookies, nothing from another site.

The routes are built by :func:`add_live_routes` on a router given a path prefix:
none for the default campaign, ``/c/{slug}`` for each campaign's own, so
``/c/<slug>/gallery/events`` is one more call, not a copy.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlmodel import Session

from monitor.config import Settings
from monitor.db import read_only
from monitor.services.gallery import (
    GalleryInputError,
    GalleryPage,
    gallery_context,
    load_posts,
    parse_query,
)
from monitor.services.looks import featured_anywhere, is_current_logo, load_look
from monitor.services.media import PINNED_NAME_RE, pinned_file
from monitor.services.placements import scope_for
from monitor.web.deps import (
    PublicPage,
    ReadSessionDep,
    SettingsDep,
    public_campaign,
)
from monitor.web.live import (
    MAX_LISTENERS,
    VARIANTS,
    LiveHub,
    Renderer,
    live_hub,
    theme_url,
)
from monitor.web.routes.gallery import public_headers

#: Posts the event screen keeps (slideshow and mosaic): the newest few, for a room.
SCREEN_POSTS = 24
SCREEN_MODES = ("slideshow", "mosaic")
_MAX_SINCE_CHARS = 40


def card_renderer(templates: Jinja2Templates, settings: Settings) -> Renderer:
    """Renders live cards with the very macros the pages use (one source of markup)."""
    template = templates.env.get_template("gallery/_card.html")

    def render(session: Session, ids: Collection[int], variant: str) -> Mapping[int, str]:
        posts = load_posts(session, ids, media_url=lambda name: "/media/" + name)
        context = gallery_context(
            settings,
            GalleryPage(posts, None, False),
            embed=variant == "embed",
            report_base="/gallery/report/",
        )
        module: Any = template.make_module(context)
        featured = featured_anywhere(session)
        if variant == "screen":
            return {post.id: str(module.screen_card(post)) for post in posts}
        return {
            post.id: str(module.post_card(post, featured=post.id in featured)) for post in posts
        }

    return render


def qr_svg(url: str) -> Markup:
    """A QR code of ``url`` drawn here (segno, SVG): no image service ever sees the link."""
    code = segno.make(url, error="m")
    return Markup(code.svg_inline(scale=1, border=2, omitsize=True, dark="#000", light="#fff"))


def add_live_routes(router: APIRouter, *, prefix: str = "") -> None:
    """The live routes under ``prefix`` (``""``: the default campaign)."""

    @router.get(f"{prefix}/gallery/events")
    async def gallery_events(request: Request, settings: SettingsDep) -> Response:
        """Server-sent events: ``approved`` (with the card) and ``removed`` for each post by
        its ``/gallery.json`` id, ``paused`` and ``reset`` (reload the list)."""
        # The campaign is read once in a short session: the stream holds no connection.
        visitor_scope = await run_in_threadpool(_campaign_of, request, settings)
        headers = public_headers(settings, cache="no-store")
        params = request.query_params
        variant = params.get("variant", "page")
        try:
            if variant not in VARIANTS:
                raise GalleryInputError("variant must be page, embed or screen")
            query = parse_query(
                secret=settings.ensure_secret_key(),
                hashtag=params.get("tag"),
                platform=params.get("platform"),
            )
        except GalleryInputError as exc:
            return Response(str(exc), status_code=400, headers=headers)
        hub = live_hub(request)
        if hub.listeners >= MAX_LISTENERS:
            return Response("Busy: try again soon.", 503, {**headers, "Retry-After": "30"})
        await hub.start()
        since = params.get("since") or request.headers.get("last-event-id")
        stream = hub.listen(
            variant=variant,
            tag=query.hashtag,
            platform=query.platform,
            since=since[:_MAX_SINCE_CHARS] if since else None,
            campaign_id=visitor_scope,
        )
        headers["X-Accel-Buffering"] = "no"
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    @router.get(f"{prefix}/gallery/screen")
    def gallery_screen(visitor: PublicPage) -> Response:
        """The event screen: full screen, large type, the newest approved posts after the
        screen delay, and the help message with a QR code to the help page."""
        request, session, settings, templates = (
            visitor.request, visitor.session, visitor.settings, visitor.templates
        )  # fmt: skip
        prefix = visitor.prefix
        mode = request.query_params.get("mode", "slideshow")
        if mode not in SCREEN_MODES:
            mode = "slideshow"
        hub = live_hub(request)
        hub.start_from_thread()
        since = hub.position()
        ids = hub.screen_ids(visitor.campaign_id)
        campaign_id = visitor.scope.campaign_id
        posts = load_posts(
            session,
            ids,
            media_url=lambda name: "/media/" + name,
            campaign_id=visitor.campaign_id,
            gallery_of=campaign_id,
        )[:SCREEN_POSTS]
        paused = hub.wall.paused_for(campaign_id) if hub.wall is not None else False
        look = load_look(session, visitor.campaign)
        help_url = look.help_url or f"{settings.public_base_url}{prefix}/gallery"
        context = gallery_context(
            settings,
            GalleryPage(posts, None, paused),
            title="Messages of support",
            assets="/static/",
            look=look,
            theme_url=theme_url(look, prefix),
            mode=mode,
            other_mode="mosaic" if mode == "slideshow" else "slideshow",
            help_url=help_url,
            qr=qr_svg(help_url),
            live_url=f"{prefix}/gallery/events?variant=screen",
            live_since=since,
            live_limit=SCREEN_POSTS,
        )
        return templates.TemplateResponse(
            request, "gallery/screen.html", context, headers=public_headers(settings)
        )

    @router.get(f"{prefix}/gallery/theme.css")
    def gallery_theme(visitor: PublicPage) -> Response:
        """The colours of the campaign's gallery as CSS custom properties (a file: the CSP
        allows no inline style)."""
        look = load_look(visitor.session, visitor.campaign)
        css = visitor.templates.env.get_template("gallery/theme.css").render(look=look)
        return Response(
            css,
            media_type="text/css; charset=utf-8",
            headers=public_headers(visitor.settings, cache="public, max-age=31536000, immutable"),
        )

    @router.get(f"{prefix}/gallery/logo/{{name}}")
    def gallery_logo(name: str, session: ReadSessionDep, settings: SettingsDep) -> Response:
        """A logo an admin uploaded (our own re-encoded copy), while a gallery shows it."""
        path = pinned_file(settings.media_dir, name) if PINNED_NAME_RE.match(name) else None
        if path is None or not is_current_logo(session, name) or not path.is_file():
            return Response("Not found", status_code=404, headers=public_headers(settings))
        headers = public_headers(settings, cache="public, max-age=86400")
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return FileResponse(path, media_type="image/jpeg", headers=headers)


def _campaign_of(request: Request, settings: Settings) -> int | None:
    """The campaign an event stream follows (404 for none, 410 for an archived one)."""
    with Session(read_only(request.app.state.engine)) as session:
        scope = scope_for(session, public_campaign(request, session, settings))
        return None if scope.alone else scope.campaign_id


router = APIRouter()
add_live_routes(router)
add_live_routes(router, prefix="/c/{slug}")


def make_hub(app_state: Any, templates: Jinja2Templates, settings: Settings) -> LiveHub:
    """The app's one hub (see :class:`LiveHub`), rendering with the app's templates."""
    return LiveHub(
        engine=app_state.engine, settings=settings, render=card_renderer(templates, settings)
    )
