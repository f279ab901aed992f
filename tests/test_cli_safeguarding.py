"""``moderate escalate`` and ``gallery pause|resume`` from a script: same rules, same audit."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.fakes.mastodon import FakeMastodon
from tests.processes import CliResult

PASSWORD = "a long enough password\n"


def _setup(cli: Callable[..., CliResult], env: FakeMastodon) -> str:
    [status] = env.add_many(1)
    cli("db", "upgrade")
    cli("poll")
    for name, role in (("mo", "moderator"), ("vic", "viewer"), ("lead", "safeguarding")):
        code, _, err = cli("users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        assert code == 0, err
    return f"mastodon:{status['uri']}"


def test_escalate_from_the_cli_is_audited_exported_and_blocks_publication(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    ref = _setup(cli, env)

    code, _, err = cli("moderate", "escalate", ref, "--as", "vic", "--reason", "disclosure")
    assert code == 2 and "vic is a viewer in campaign 'default': only moderators and admins" in err
    code, _, err = cli("moderate", "escalate", ref, "--as", "mo", "--reason", "  ")
    assert code == 2 and err.strip() == "error: give a reason for the safeguarding lead"
    code, out, err = cli("moderate", "escalate", ref, "--as", "mo", "--reason", "disclosure")
    assert code == 0, err
    assert out.strip() == f"{ref}: escalated to the safeguarding lead"

    cli("moderate", "approve", ref, "--as", "mo")
    [record] = [json.loads(line) for line in cli("export")[1].splitlines()]
    assert record["escalated"] is True
    code, _, err = cli("moderate", "escalate", ref, "--as", "mo", "--reason", "again")
    assert code == 2 and "already escalated" in err


def test_a_moderator_pauses_and_resumes_the_gallery_from_the_cli(
    cli: Callable[..., CliResult], env: FakeMastodon
) -> None:
    _setup(cli, env)

    assert cli("gallery", "pause", "--as", "vic")[0] == 2
    code, out, err = cli("gallery", "pause", "--as", "mo", "--reason", "hijack")
    assert code == 0 and out.strip() == "The public gallery is paused.", err
    again = cli("gallery", "pause", "--as", "mo")[1].strip()
    assert again == "The public gallery was already paused."
    code, out, _ = cli("gallery", "resume", "--as", "mo")
    assert code == 0 and out.strip() == "The public gallery is live again."
    assert "only moderators and admins pause" in cli("gallery", "resume", "--as", "lead")[2]
    # The install's switch, over every campaign's gallery, is an install admin's.
    code, _, err = cli("gallery", "pause", "--as", "mo", "--everywhere")
    assert code == 2 and "mo is a moderator: only install admins pause the gallery" in err
    assert cli("users", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORD)[0] == 0
    code, out, _ = cli("gallery", "pause", "--as", "ada", "--everywhere", "--reason", "raid")
    assert code == 0 and out.strip() == "The public gallery is paused."
    code, _, err = cli("gallery", "resume", "--as", "mo")
    assert code == 2 and "only an install admin can resume it" in err
    assert cli("gallery", "resume", "--as", "ada", "--everywhere")[0] == 0
    code, _, err = cli("gallery", "pause", "--as", "ada", "--everywhere", "--campaign", "default")
    assert code == 2 and "give --campaign or --everywhere, not both" in err
