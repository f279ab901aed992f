"""``run`` (scheduler + web app) and ``serve`` (web app only)."""

from __future__ import annotations

import socket

import typer
import uvicorn
from fastapi import FastAPI

from monitor.cli._common import echo, load, open_engine
from monitor.config import Settings, check_writable_dir, startup_warnings
from monitor.db import session_scope
from monitor.listen import bind
from monitor.services.users import FIRST_ADMIN, create_first_admin
from monitor.web import live
from monitor.web.app import create_app


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
    _serve(create_app(settings, engine=engine, with_scheduler=True), settings, sock)


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
        server = live.Server(config, app)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the signal it handled once it has shut down
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(serve)
