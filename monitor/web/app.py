"""The FastAPI application factory: ``create_app(settings)``, nothing at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters import display_name
from monitor.analysis.runner import Analyser
from monitor.config import Settings
from monitor.db import create_db_engine
from monitor.resources import templates_dir
from monitor.scheduler import Monitor
from monitor.services.sources import source_label
from monitor.templating import make_environment
from monitor.web.deps import campaign_role, nav_counts
from monitor.web.live import Server
from monitor.web.routes import admin as admin_routes
from monitor.web.routes import auth as auth_routes
from monitor.web.routes import campaign_settings as campaign_settings_routes
from monitor.web.routes import campaigns as campaigns_routes
from monitor.web.routes import gallery as gallery_routes
from monitor.web.routes import live as live_routes
from monitor.web.routes import looks as looks_routes
from monitor.web.routes import operations
from monitor.web.routes import queue as queue_routes
from monitor.web.routes import safeguarding as safeguarding_routes
from monitor.web.routes import sources as sources_routes
from monitor.web.routes import stats as stats_routes

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

#: The server the CLI runs the app under (it ends open event streams on shutdown).
__all__ = ["Server", "create_app"]


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    with_scheduler: bool = False,
    analyser: Analyser | None = None,
) -> FastAPI:
    """Build the app; ``with_scheduler`` (used by ``run``) starts the polling jobs too, and
    ``analyser`` (``run`` on SQLite) checks the stored images in this process."""
    engine = engine or create_db_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        monitor = (
            Monitor(engine=engine, settings=settings, analyser=analyser) if with_scheduler else None
        )
        app.state.monitor = monitor
        if monitor is not None:
            monitor.start()
        try:
            yield
        finally:
            await app.state.live_hub.close()
            if monitor is not None:
                await monitor.drain(timeout=settings.http_timeout_seconds * 2)
                monitor.shutdown()

    # No public API schema: it maps every staff route for a visitor (tests use app.openapi()).
    app = FastAPI(
        title="hashtag-monitor",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.monitor = None
    app.state.templates = Jinja2Templates(env=make_environment(settings))
    # Every staff page's navigation shows the live count of takedowns and escalations.
    app.state.templates.env.globals["nav_counts"] = nav_counts
    app.state.templates.env.globals["campaign_role"] = campaign_role
    app.state.templates.env.filters["source_label"] = source_label
    app.state.templates.env.filters["platform_label"] = display_name
    app.state.live_hub = live_routes.make_hub(app.state, app.state.templates, settings)
    app.mount("/static", StaticFiles(directory=str(templates_dir() / "static")), name="static")
    app.include_router(operations.router)
    app.include_router(gallery_routes.router)
    app.include_router(live_routes.router)
    app.include_router(auth_routes.router)
    app.include_router(queue_routes.router)
    app.include_router(safeguarding_routes.router)
    app.include_router(sources_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(campaigns_routes.router)
    app.include_router(looks_routes.router)
    app.include_router(campaign_settings_routes.router)
    app.include_router(stats_routes.router)

    @app.exception_handler(StarletteHTTPException)
    async def error_page(request: Request, exc: StarletteHTTPException) -> Response:
        """People in a browser get a page that explains; scripts keep the JSON answer."""
        wants_page = "text/html" in request.headers.get("accept", "")
        if exc.status_code < 400 or not wants_page:
            return await http_exception_handler(request, exc)
        templates: Jinja2Templates = app.state.templates
        return templates.TemplateResponse(
            request,
            "error.html",
            {"title": f"Error {exc.status_code}", "status": exc.status_code, "detail": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> Response:
        """A number or date past what Python or the database holds is the client's mistake."""
        return await error_page(
            request, StarletteHTTPException(400, detail="A value in the request is out of range.")
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        """The 500 answer, outside every middleware: it sets the security headers itself."""
        response = await error_page(
            request,
            StarletteHTTPException(500, detail="Something went wrong on our side; it is logged."),
        )
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        # A route that sets its own CSP (the embeddable gallery) owns its framing policy:
        # X-Frame-Options DENY would forbid the embedding frame-ancestors allows.
        own_policy = "content-security-policy" in response.headers
        for name, value in SECURITY_HEADERS.items():
            if not (own_policy and name == "X-Frame-Options"):
                response.headers.setdefault(name, value)
        return response

    return app
