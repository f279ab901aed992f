"""``hashtag-monitor demo``: the whole product on made-up posts, gone when it stops.

Everything lives in one temporary folder (the SQLite database, the secret
key, drawn and pinned images) that is removed on Ctrl-C or SIGTERM. The only
platform is the training sample; no digest is mailed (there are no
recipients): it is a page while the demo runs and printed when it stops. The
web app listens on the loopback address only.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType

import uvicorn
from sqlalchemy.engine import Engine

from monitor.config import Settings, load_settings
from monitor.db import create_db_engine, require_current_schema, session_scope
from monitor.demo.adapter import DEFAULT_RELEASE_SECONDS, register
from monitor.demo.sample import SAMPLE_PLACES
from monitor.demo.site import DIGEST_PATH, add_sample_site
from monitor.listen import bind
from monitor.logs import configure_logging
from monitor.models import Role, utcnow
from monitor.services.digest import compute_digest
from monitor.services.mail import digest_subject, render_digest_text
from monitor.services.rules import add_place_list
from monitor.services.users import add_user
from monitor.web.app import Server, create_app

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TRAINER = "trainer"
DEMO_ACTOR = "demo"
TEMP_PREFIX = "hashtag-monitor-demo-"
DEMO_FRAME_ANCESTORS = "'self' http://localhost:* http://127.0.0.1:*"
#: Short cycles, so posts, engagement, edits and deletions show within minutes.
POLL_SECONDS = 10
REFRESH_SECONDS = 60


@dataclasses.dataclass(frozen=True, slots=True)
class DemoLogin:
    name: str
    password: str


def demo_settings(directory: Path, port: int) -> Settings:
    """Settings for a throwaway instance; ``.env`` is ignored so nothing real is used."""
    register()  # the sample platform exists in training mode only
    data_dir = directory / "data"
    return load_settings(
        _env_file=None,
        database_url=f"sqlite:///{data_dir / 'monitor.db'}",
        hashtags=["CEADAY21", "HelpingHands"],
        platforms=["demo"],
        poll_interval_seconds=POLL_SECONDS,
        refresh_interval_seconds=REFRESH_SECONDS,
        host=HOST,
        port=port,
        public_base_url=f"http://{HOST}:{port}",
        # docs/embedding.md's first step embeds the demo from a page served on localhost.
        gallery_frame_ancestors=DEMO_FRAME_ANCESTORS,
        secret_key=None,
        data_dir=data_dir,
        media_dir=data_dir / "media",
        smtp_host=None,
        digest_from=None,
        digest_to=[],
        # The sample's media are served by this same process on the loopback address.
        outbound_allow_private=True,
        demo_mode=True,
        log_level="WARNING",
    )


def sample_environment(settings: Settings, release_seconds: int) -> dict[str, str]:
    """The sample platform's keys (adapters read the environment, not Settings)."""
    return {
        "DEMO_SAMPLE": "on",
        "DEMO_STARTED_AT": utcnow().isoformat(),
        "DEMO_RELEASE_SECONDS": str(release_seconds),
        "DEMO_MEDIA_BASE": settings.public_base_url,
    }


def seed(engine: Engine) -> DemoLogin:
    """The trainee's one-time login and the sample area's place names; the personal-data
    detectors are on by default."""
    password = secrets.token_urlsafe(12)
    with session_scope(engine) as session:
        add_user(
            session=session, name=TRAINER, role=Role.ADMIN, password=password, actor=DEMO_ACTOR
        )
        add_place_list(
            session=session,
            title="Schools and estates in the sample area",
            data="\n".join(SAMPLE_PLACES).encode(),
            actor=DEMO_ACTOR,
        )
    return DemoLogin(TRAINER, password)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the demo like Ctrl-C, so the temporary folder is still removed."""
    raise KeyboardInterrupt


def welcome(settings: Settings, login: DemoLogin, release_seconds: int) -> list[str]:
    """What the demo prints: where to go, how to log in, and that nothing is real."""
    base = settings.public_base_url
    today = datetime.now(settings.zone).date().isoformat()
    minutes = max(1, round(release_seconds / 60))
    return [
        "Training mode: hashtag-monitor on made-up posts. Nothing is sent anywhere.",
        f"  Queue     {base}/queue",
        f"  Log in    user {login.name}  password {login.password}"
        "  (exists only until the demo stops)",
        f"  Gallery   {base}/gallery  (fills as you approve posts)",
        f"  Stats     {base}/stats?from={today}",
        f"  Digest    {base}{DIGEST_PATH}  (the email partners would get; not sent)",
        f"  Sources   {base}/admin/sources",
        f"New posts arrive over the next {minutes} minute(s); engagement, an edit and a"
        " deletion at source show at each refresh (every minute).",
        "Press Ctrl-C to stop: the demo then deletes everything it created.",
    ]


def session_digest(engine: Engine, settings: Settings) -> list[str]:
    """Today's digest as text: what partners would have been emailed (it is never sent)."""
    with session_scope(engine) as session:
        digest = compute_digest(session, settings, datetime.now(settings.zone).date())
    return [
        "Today's digest, as partners would receive it (not sent):",
        f"Subject: {digest_subject(digest)}",
        "",
        render_digest_text(digest, settings).rstrip(),
    ]


def run_demo(
    *,
    port: int = DEFAULT_PORT,
    release_seconds: int = DEFAULT_RELEASE_SECONDS,
    echo: Callable[[str], None],
) -> None:
    """Serve the demo until Ctrl-C or SIGTERM, then remove every file it made."""
    sock = bind(HOST, port, busy_hint="pass --port N (or --port 0 for any free port)")
    directory = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    previous_sigterm = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        settings = demo_settings(directory, sock.getsockname()[1])
        os.environ.update(sample_environment(settings, release_seconds))
        configure_logging(settings)
        engine = create_db_engine(settings.database_url)
        try:
            require_current_schema(engine, auto_upgrade_empty=True)
            login = seed(engine)
            app = create_app(settings, engine=engine, with_scheduler=True)
            add_sample_site(app, directory / "sample-media")
            for line in welcome(settings, login, release_seconds):
                echo(line)
            server = Server(
                uvicorn.Config(app, log_config=None, lifespan="on", access_log=False), app
            )
            try:
                server.run(sockets=[sock])
            except KeyboardInterrupt:
                pass  # uvicorn re-raises the signal it handled once it has shut down
            for line in session_digest(engine, settings):
                echo(line)
        finally:
            engine.dispose()
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)
        echo(f"Demo stopped; removed {directory}.")
