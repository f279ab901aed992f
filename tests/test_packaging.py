"""A non-editable install carries the templates and migrations with it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_bundles_templates_migrations_and_entry_points(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("hashtag_monitor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "monitor/_bundled/templates/base.html" in names
    assert "monitor/_bundled/migrations/env.py" in names
    assert "monitor/_bundled/migrations/versions/0001_foundation.py" in names
    assert "adapters/mastodon.py" in names
    dist_info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(dist_info).decode()
    assert "[hashtag_monitor.adapters]" in entry_points
    assert "hashtag-monitor = monitor.cli:main" in entry_points
