"""docs/deploy.md's steps, run as written against a scratch directory.

The environment file is the guide's own block (only the paths and the database
moved into the scratch directory) and the install step is the guide's own line
(without ``sudo -u``), so a step that cannot work as written fails here first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "deploy.md").read_text()
EXECUTABLE = str(Path(sys.executable).with_name("hashtag-monitor"))


def _env_block() -> str:
    match = re.search(r"```ini\n(# /etc/hashtag-monitor/env.*?)```", GUIDE, re.S)
    assert match, "deploy.md has no /etc/hashtag-monitor/env block"
    return match.group(1)


def _step(command: str) -> str:
    [line] = [ln for ln in GUIDE.splitlines() if ln.startswith("sudo") and command in ln]
    return line


def _scratch_env(scratch: Path) -> Path:
    """The guide's env file, with its paths and database moved under ``scratch``."""
    text = _env_block().replace("/var/lib/hashtag-monitor", str(scratch / "var"))
    text = re.sub(
        r"^DATABASE_URL=.*$", f"DATABASE_URL=sqlite:///{scratch / 'monitor.db'}", text, flags=re.M
    )
    path = scratch / "env"
    path.write_text(text)
    path.chmod(0o600)
    return path


def _run_step(line: str, env_file: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    command = line.removeprefix("sudo -u hashtag-monitor ")
    command = command.replace("/etc/hashtag-monitor/env", str(env_file))
    command = command.replace("/opt/hashtag-monitor/bin/hashtag-monitor", EXECUTABLE)
    keys = re.findall(r"^([A-Z_]+)=", _env_block(), re.M)
    clean = {k: v for k, v in os.environ.items() if k not in keys}
    return subprocess.run(
        command, shell=True, cwd=scratch, env=clean, capture_output=True, text=True, timeout=120
    )


def test_the_install_step_migrates_with_the_guides_env_file(tmp_path: Path) -> None:
    env_file = _scratch_env(tmp_path)
    done = _run_step(_step("db upgrade"), env_file, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Created the database schema on a new database.\n"
    assert done.stderr == ""


def test_the_guides_env_file_reads_the_same_as_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(_scratch_env(tmp_path), tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.gallery_frame_ancestors == "'self' https://www.force.example.org"
    assert settings.public_base_url == "https://monitor.example.org"
    assert settings.metrics_token and settings.log_format == "json"


def test_the_guide_keeps_metrics_private_in_both_proxy_examples() -> None:
    caddy = re.search(r"```caddy\n(.*?)```", GUIDE, re.S)
    nginx = re.search(r"```nginx\n(.*?)```", GUIDE, re.S)
    assert caddy and "respond /metrics 404" in caddy.group(1)
    assert nginx and re.search(r"location = /metrics \{\s*return 404;", nginx.group(1))
    assert "env $(cat" not in GUIDE
