"""The fault suite's shared pieces: its figures, printed at the end of the run.

Every schedule adds what it did to one :class:`FaultFigures`; the terminal
summary prints the totals so a run shows, beside "passed", how hard the
pipeline was pushed and that nothing was lost or stored twice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

_FIGURES = pytest.StashKey["FaultFigures"]()


@dataclasses.dataclass
class FaultFigures:
    """Totals over every fault schedule of the run."""

    schedules: int = 0
    cycles: int = 0
    failed_cycles: int = 0
    faults: int = 0
    posts: int = 0
    lost: int = 0
    duplicated: int = 0

    def describe(self) -> str:
        return (
            f"fault schedules: {self.schedules} run, {self.faults} faults injected,"
            f" {self.cycles} poll/refresh cycles ({self.failed_cycles} failed, each on record),"
            f" {self.posts} posts checked against the server's truth:"
            f" posts lost = {self.lost}, duplicated = {self.duplicated}"
        )


@pytest.fixture(autouse=True)
def no_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The suite speaks plain HTTP to 127.0.0.1, yet every poll cycle builds its HTTP
    clients and each parses certifi's CA bundle (about 0.1 s): an empty CA directory
    (honoured by httpx through ``SSL_CERT_DIR``) keeps hundreds of cycles fast."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))


@pytest.fixture(scope="session")
def fault_figures(request: pytest.FixtureRequest) -> FaultFigures:
    """The run's totals; the terminal summary prints them once the schedules are done."""
    return request.config.stash.setdefault(_FIGURES, FaultFigures())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = terminalreporter.config.stash.get(_FIGURES, None)
    if figures is not None and figures.schedules:
        terminalreporter.write_line(figures.describe())
