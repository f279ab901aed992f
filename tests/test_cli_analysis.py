"""The image checks from the command line: ``poll`` runs them on SQLite, ``moderate approve``
waits for them, ``status`` reports them, and ``worker`` says where it can run."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from skimage import data

from monitor.config import load_settings
from monitor.db import create_db_engine
from monitor.services.polling import poll_all
from monitor.services.staging import stage_all_waiting
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import Reply
from tests.test_cli import CliResult, cli, env

__all__ = ["cli", "env"]


@pytest.fixture
def checked_env(env: FakeMastodon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMastodon:
    """The deployment with a local media host and the image checks on."""
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (60, 160, 60)).save(buffer, "PNG")
    body = buffer.getvalue()
    env.server.route(
        "GET", r"/media/.*", lambda _r: Reply(200, body, {"Content-Type": "image/png"})
    )
    for key, value in {
        "OUTBOUND_ALLOW_PRIVATE": "true",
        "MEDIA_DIR": str(tmp_path / "media"),
        "IMAGE_ANALYSIS": "true",
        "HTTP_TIMEOUT_SECONDS": "10",
    }.items():
        monkeypatch.setenv(key, value)
    return env


def _with_image(server: FakeMastodon) -> str:
    attachment = {
        "id": "901",
        "type": "image",
        "url": f"{server.url}/media/901.png",
        "preview_url": f"{server.url}/media/901.png",
        "description": "Hands",
    }
    return f"mastodon:{server.add(media_attachments=[attachment])['uri']}"


def _moderator(cli: Callable[..., CliResult]) -> None:
    assert cli("db", "upgrade")[0] == 0
    code, _, err = cli(
        "users",
        "add",
        "alice",
        "--role",
        "moderator",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert code == 0, err


def test_approve_waits_for_the_checks_and_says_where_they_run(
    cli: Callable[..., CliResult], checked_env: FakeMastodon, db_url: str
) -> None:
    if db_url.startswith("postgresql"):
        pytest.skip("on PostgreSQL the workers check; see tests/test_worker.py")
    ref = _with_image(checked_env)
    _moderator(cli)
    # Stored but not yet checked (as when `run` has not got to it): approval waits.
    settings = load_settings()
    engine = create_db_engine(settings.database_url)
    poll_all(engine=engine, settings=settings)
    stage_all_waiting(engine=engine, settings=settings)
    code, _, err = cli("moderate", "approve", ref, "--as", "alice")
    assert code == 2
    assert "image 1 is still being checked automatically" in err
    assert "`hashtag-monitor worker` on PostgreSQL" in err and "nothing was changed" in err

    code, out, err = cli("poll")
    assert code == 0, err
    assert "images: checked 1 (faces, text, known images)" in out
    code, out, err = cli("moderate", "approve", ref, "--as", "alice")
    assert code == 0, err

    code, out, _ = cli("status", "--json")
    report = json.loads(out)["image_analysis"]
    assert report["state"] == "ok" and report["backlog"] == 0 and report["last_done_at"]
    code, out, _ = cli("status")
    assert "image analysis: OK  backlog: 0" in out


def test_poll_queues_the_checks_for_workers_on_postgresql(
    cli: Callable[..., CliResult], checked_env: FakeMastodon, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite checks in-process")
    _with_image(checked_env)
    _moderator(cli)
    code, out, err = cli("poll")
    assert code == 0, err
    assert "images: 1 queued for checking by `hashtag-monitor worker`" in out
    code, out, _ = cli("status")
    assert "image analysis: STALLED: NO HASHTAG-MONITOR WORKER IS RUNNING" in out
    assert "workers: 0" in out


def test_worker_refuses_sqlite_and_image_analysis_off(
    cli: Callable[..., CliResult], env: FakeMastodon, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db_url.startswith("postgresql"):
        pytest.skip("about SQLite")
    assert cli("db", "upgrade")[0] == 0
    code, _, err = cli("worker")
    assert code == 2 and "IMAGE_ANALYSIS is false" in err
    monkeypatch.setenv("IMAGE_ANALYSIS", "true")
    code, _, err = cli("worker")
    assert code == 2 and "`worker` needs PostgreSQL" in err and "`run` checks" in err


def test_faces_from_the_command_line_need_consent_or_blurring(
    cli: Callable[..., CliResult],
    env: FakeMastodon,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if db_url.startswith("postgresql"):
        pytest.skip("the CLI path is the same on both; SQLite checks in-process")
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG")
    body = buffer.getvalue()
    env.server.route(
        "GET", r"/media/.*", lambda _r: Reply(200, body, {"Content-Type": "image/jpeg"})
    )
    for key, value in {
        "OUTBOUND_ALLOW_PRIVATE": "true",
        "MEDIA_DIR": str(tmp_path / "media"),
        "IMAGE_ANALYSIS": "true",
        "HTTP_TIMEOUT_SECONDS": "10",
    }.items():
        monkeypatch.setenv(key, value)
    ref = _with_image(env)
    _moderator(cli)
    assert cli("poll")[0] == 0
    seen = ["--media-seen", "--ack-flags"]

    code, _, err = cli("moderate", "approve", ref, "--as", "alice", *seen)
    assert code == 2 and "1 face in image 1" in err and "`moderate blur-faces`" in err

    code, out, err = cli("moderate", "blur-faces", ref, "--as", "alice")
    assert code == 0 and "faces blurred in 1 image(s)" in out, err
    code, _, err = cli("moderate", "approve", ref, "--as", "alice", *seen)
    assert code == 0, err
