"""Helpers for tests that run ``hashtag-monitor`` as a real child process."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable

import httpx
import sqlalchemy as sa

#: The console entry point, run by this interpreter (no reliance on PATH).
CLI = [sys.executable, "-c", "from monitor.cli import main; main()"]
#: Generous: a child process starting on a machine busy with other work can take a minute.
DEADLINE_S = 150


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``check`` until it is true; a server or database still starting counts as not yet."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, sa.exc.OperationalError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")
