"""``moderate`` from a script follows the web queue's rules, so a scripted decision is as
accountable as a clicked one (issue 12, point 8)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.fakes.mastodon import FakeMastodon
from tests.fakes.server import Reply
from tests.processes import CliResult


@pytest.fixture
def media_env(env: FakeMastodon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMastodon:
    """The deployment, with a local media host (so outbound private addresses are allowed)."""
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (200, 60, 60)).save(buffer, "PNG")
    body = buffer.getvalue()
    env.server.route(
        "GET", r"/media/.*", lambda _r: Reply(200, body, {"Content-Type": "image/png"})
    )
    monkeypatch.setenv("OUTBOUND_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    return env


def _with_image(server: FakeMastodon, *, sensitive: bool = False) -> dict[str, object]:
    attachment = {
        "id": "901",
        "type": "image",
        "url": f"{server.url}/media/901.png",
        "preview_url": f"{server.url}/media/901-small.png",
        "description": None,
    }
    return server.add(media_attachments=[attachment], sensitive=sensitive)


def _moderator(cli: Callable[..., CliResult]) -> None:
    cli("db", "upgrade")
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


def test_reject_needs_a_reason(cli: Callable[..., CliResult], env: FakeMastodon) -> None:
    [status] = env.add_many(1)
    _moderator(cli)
    cli("poll")
    code, _, err = cli("moderate", "reject", f"mastodon:{status['uri']}", "--as", "alice")
    assert code == 2 and "--reason" in err
    code, _, err = cli(
        "moderate", "reject", f"mastodon:{status['uri']}", "--as", "alice", "--reason", "  "
    )
    assert code == 2 and "say why" in err


def test_approve_fetches_media_first_and_takes_alt_text(
    cli: Callable[..., CliResult], media_env: FakeMastodon
) -> None:
    status = _with_image(media_env)
    _moderator(cli)
    code, out, _ = cli("poll")
    assert "media: fetched for review on 1 post(s)" in out
    ref = f"mastodon:{status['uri']}"

    code, _, err = cli("moderate", "approve", ref, "--as", "alice")
    assert code == 2 and "has no alt text" in err and "--alt N=TEXT" in err
    code, _, err = cli("moderate", "approve", ref, "--as", "alice", "--alt", "one=Hands")
    assert code == 2 and "--alt" in err and "number" in err
    code, out, err = cli("moderate", "approve", ref, "--as", "alice", "--alt", "1=Two hands")
    assert code == 0, err

    [record] = [json.loads(line) for line in cli("export")[1].splitlines()]
    assert record["status"] == "approved" and record["media"][0]["alt"] == "Two hands"
    assert media_env.server.hits("/media/901.png") == 1  # once, by the poll's staging
    assert media_env.server.hits("/media/901-small.png") == 0


def test_hidden_media_needs_media_seen_and_a_refusal_changes_nothing(
    cli: Callable[..., CliResult], media_env: FakeMastodon
) -> None:
    hidden = _with_image(media_env, sensitive=True)
    [plain] = media_env.add_many(1)
    _moderator(cli)
    cli("poll")
    refs = [f"mastodon:{plain['uri']}", f"mastodon:{hidden['uri']}"]

    code, _, err = cli("moderate", "approve", *refs, "--as", "alice", "--decorative", "1")
    assert code == 2 and "--media-seen" in err and "nothing was changed" in err
    records = [json.loads(line) for line in cli("export")[1].splitlines()]
    statuses = {record["external_id"]: record["status"] for record in records}
    assert set(statuses.values()) == {"pending"}  # the plain one was not approved either

    code, _, err = cli(
        "moderate", "approve", *refs, "--as", "alice", "--decorative", "1", "--media-seen"
    )
    assert code == 0, err


def test_consent_given_on_the_command_line_is_on_the_record(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    [status] = env.add_many(1)
    _moderator(cli)
    cli("poll")
    ref = f"mastodon:{status['uri']}"
    code, _, err = cli(
        "moderate", "approve", ref, "--as", "alice", "--consent", "Signed form at the event"
    )
    assert code == 0, err
    [record] = [json.loads(line) for line in cli("export")[1].splitlines()]
    assert record["consent"]["how"] == "Signed form at the event"
    assert record["consent"]["by"] == "alice"
