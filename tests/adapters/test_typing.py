"""``adapters/`` passes ``mypy --strict``: checked by the suite CI runs, not only by make lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_adapters_pass_mypy_strict() -> None:
    """The contract plugins build on is typed: a change that breaks it fails here."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "adapters"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
