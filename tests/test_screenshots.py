"""docs/screenshots.py runs against a real demo in Chromium and writes real pictures.

The images are not compared pixel by pixel (the sample's times and counts
move); each must be a PNG of the right size with more than a blank page in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.browser


def test_screenshot_script_writes_the_readme_images(tmp_path: Path) -> None:
    # A short TMPDIR of its own: Chromium's socket paths must stay under 108 bytes.
    with tempfile.TemporaryDirectory(prefix="hm-shots-") as name:
        temporary = Path(name)
        result = _run_script(tmp_path, temporary)
        leftovers = list(temporary.glob("hashtag-monitor-demo-*"))
    assert result.returncode == 0, result.stdout + result.stderr
    for picture, width in (("queue.png", 1280), ("gallery.png", 1280), ("digest.png", 760)):
        path = tmp_path / picture
        assert f"wrote {path}" in result.stdout
        assert path.stat().st_size > 20_000, picture
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width == width and image.height >= 800
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
            assert len(colours) > 100, f"{picture} looks blank"
    # The demo it started is gone, and so is its temporary folder.
    assert leftovers == []


def _run_script(out: Path, temporary: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "docs" / "screenshots.py"), "--out", str(out)],
        cwd=out,
        env={**os.environ, "TMPDIR": str(temporary)},
        capture_output=True,
        text=True,
        timeout=120,
    )
