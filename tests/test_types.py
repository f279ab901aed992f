"""The type gate: ``mypy --strict`` passes on the adapters and the service.

CI runs only ``make test``, so the gate that ``make lint`` applies lives here too;
a change that breaks a type (a column compared as the wrong enum, a query built on
an attribute SQLModel does not type) fails the suite, not only a local lint.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mypy_strict_passes_on_adapters_and_monitor() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "adapters", "monitor"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
