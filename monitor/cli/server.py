"""``run`` (scheduler + web app) and ``serve`` (web app only)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from monitor.analysis.detectors import available_detectors
from monitor.analysis.findings import ModelMissing
from monitor.analysis.runner import Analyser, AnalyserError
from monitor.cli._common import echo, load, open_engine
from monitor.config import Settings, check_writable_dir, startup_warnings
from monitor.db import session_scope
from monitor.errors import UserError
from monitor.listen import bind
from monitor.services.jobs import HEARTBEAT_SECONDS, run_worker
from monitor.services.users import FIRST_ADMIN, create_first_admin
from monitor.web.app import Server, create_app


def _start() -> Settings:
    """Settings for a server, with a line on stderr for each setting that looks wrong."""
    settings = load()
    for warning in startup_warnings(settings):
        typer.echo(f"warning: {warning}", err=True)
    return settings


def run() -> None:
    """Run the scheduler (polling and upkeep) and the web app in one process."""
    settings = _start()
    check_writable_dir("DATA_DIR", settings.data_dir)
    check_writable_dir("MEDIA_DIR", settings.media_dir)
    sock = _bind(settings)
    engine = open_engine(settings, auto_upgrade_empty=True)
    with session_scope(engine) as session:
        password = create_first_admin(session=session)
    if password:
        echo(f"First start: created user '{FIRST_ADMIN}' with one-time password: {password}")
        echo("Write it down now; it will not be shown again.")
    # SQLite: this process checks the images; its models load now, so a missing one is an
    # error at start naming the package, not a failure on every image later.
    analyser = start_analyser(settings) if engine.dialect.name == "sqlite" else None
    app = create_app(settings, engine=engine, with_scheduler=True, analyser=analyser)
    _serve(app, settings, sock)


def worker(
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat-seconds",
            min=0.5,
            help="Seconds between heartbeats; a worker silent for three is taken as dead"
            " and its job is given to another.",
        ),
    ] = HEARTBEAT_SECONDS,
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            help="NAME=module:Class: run only these detectors (repeatable; default: every"
            " registered one).",
        ),
    ] = None,
) -> None:
    """Run image-analysis jobs (PostgreSQL; start any number; on SQLite `run` does it)."""
    settings = load()
    if not settings.image_analysis:
        raise UserError("IMAGE_ANALYSIS is false: there are no image checks to run")
    engine = open_engine(settings)
    if engine.dialect.name != "postgresql":
        raise UserError(
            "`worker` needs PostgreSQL (DATABASE_URL=postgresql+psycopg://...);"
            " on SQLite `run` checks the images itself"
        )
    check_writable_dir("MEDIA_DIR", settings.media_dir)
    analyser = start_analyser(settings, _detectors(detector))
    assert analyser is not None
    echo(f"Checking images with: {', '.join(sorted(analyser.targets))}")
    try:
        run_worker(engine=engine, settings=settings, analyser=analyser, heartbeat_seconds=heartbeat)
    except KeyboardInterrupt:
        pass
    finally:
        analyser.stop()


def _detectors(chosen: list[str] | None) -> dict[str, str]:
    """``--detector NAME=module:Class`` values, or every registered detector."""
    if not chosen:
        return available_detectors()
    targets = {}
    for value in chosen:
        name, _, target = value.partition("=")
        if not name.strip() or ":" not in target:
            raise UserError(f"--detector {value[:60]!r}: give NAME=module:Class")
        targets[name.strip()] = target.strip()
    return targets


def start_analyser(settings: Settings, targets: dict[str, str] | None = None) -> Analyser | None:
    """The analyser with every detector loaded, or None when IMAGE_ANALYSIS is off."""
    if not settings.image_analysis:
        return None
    analyser = Analyser(targets=targets if targets is not None else available_detectors())
    try:
        analyser.start()
    except (ModelMissing, AnalyserError) as exc:
        raise UserError(
            f"image analysis cannot start: {exc} (or set IMAGE_ANALYSIS=false)"
        ) from None
    return analyser


def serve() -> None:
    """Run the web app only (extra replicas behind a load balancer)."""
    settings = _start()
    check_writable_dir("MEDIA_DIR", settings.media_dir)
    sock = _bind(settings)
    engine = open_engine(settings)
    _serve(create_app(settings, engine=engine), settings, sock)


def _bind(settings: Settings) -> socket.socket:
    """Bind first, so a busy port is one line before anything is created or printed."""
    return bind(
        settings.host, settings.port, busy_hint="set PORT to a free one, or stop what listens there"
    )


def _serve(app: FastAPI, settings: Settings, sock: socket.socket) -> None:
    try:
        echo(f"Serving on http://{settings.host}:{settings.port}")
        config = uvicorn.Config(app, log_config=None, proxy_headers=True)
        # Ends the open event streams on shutdown (uvicorn would wait for them).
        server = Server(config, app)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the signal it handled once it has shut down
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(serve)
    app.command()(worker)
