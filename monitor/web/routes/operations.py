"""Home page and the probes load balancers and supervisors call."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitor.db import describe_db_error
from monitor.resources import templates_dir
from monitor.services.metrics import DatabaseCollector
from monitor.services.sessions import tokens_match
from monitor.web.deps import ReadSessionDep, SettingsDep, TemplatesDep, client_address

router = APIRouter()


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (and IPv4-mapped forms); a name or garbage is not."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(parsed, "ipv4_mapped", None)
    return bool((mapped or parsed).is_loopback)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, settings: SettingsDep, templates: TemplatesDep) -> HTMLResponse:
    """The landing page: what this instance watches."""
    return templates.TemplateResponse(
        request, "home.html", {"hashtags": settings.hashtags, "title": "hashtag-monitor"}
    )


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """Browsers ask for it on every page (even JSON): the same icon ``base.html`` links."""
    return FileResponse(
        templates_dir() / "static" / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive and answering."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, session: ReadSessionDep) -> JSONResponse:
    """Ready to serve: the database answers, and under ``run`` the scheduler runs."""
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {describe_db_error(exc)}"
    monitor = request.app.state.monitor
    if monitor is not None:
        # Ready once it is known who runs the scheduled work: this process or another.
        leader = monitor.leader_state if monitor.scheduler.running else "stopped"
        checks["scheduler"] = "ok" if leader in ("leader", "follower") else leader
        checks["leader"] = leader
    ready = all(value == "ok" for key, value in checks.items() if key != "leader")
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _metrics_access(request: Request, settings: SettingsDep) -> None:
    """Metrics name sources and queue sizes: a bearer token, or else this machine only."""
    if settings.metrics_token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not tokens_match(settings.metrics_token, given.strip()):
            raise HTTPException(
                status_code=401,
                detail="Send Authorization: Bearer <METRICS_TOKEN>.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return
    if not is_loopback(client_address(request)):
        raise HTTPException(
            status_code=403, detail="Metrics answer this machine only; set METRICS_TOKEN to scrape."
        )


@router.get("/metrics", dependencies=[Depends(_metrics_access)])
def metrics(request: Request) -> Response:
    """Prometheus metrics: posts, queue, sources, polls, decisions, digests, step latencies."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(request.app.state.engine))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
