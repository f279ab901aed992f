"""Home page and the probes load balancers and supervisors call."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitor.db import describe_db_error
from monitor.services.metrics import DatabaseCollector
from monitor.web.deps import ReadSessionDep, SettingsDep, TemplatesDep

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, settings: SettingsDep, templates: TemplatesDep) -> HTMLResponse:
    """The landing page: what this instance watches."""
    return templates.TemplateResponse(
        request, "home.html", {"hashtags": settings.hashtags, "title": "hashtag-monitor"}
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


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus metrics: posts, queue, sources, polls, decision latency, digests."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(request.app.state.engine))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
