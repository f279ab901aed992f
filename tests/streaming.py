"""Running the real stream consumer beside a test: its own event loop in a thread.

The test (or benchmark) stays synchronous and waits on conditions in the database
with a deadline (:func:`wait_for`), never on a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from adapters.base import Adapter, Target
from monitor.config import Settings
from monitor.services.campaigns import current_watch
from monitor.services.polling import poll_target
from monitor.services.sources import configured_platforms
from monitor.streaming import StreamRunner, StreamTuning

T = TypeVar("T")

#: Short timeouts and back-off, so faults play out in well under a second.
FAST = StreamTuning(
    heartbeat_timeout=1.0, idle_timeout=1.0, backoff_base=0.05, backoff_cap=0.2, health_every=0.2
)


def wait_for(check: Callable[[], T], *, timeout: float = 60.0, what: str = "a condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds (a
    ceiling for a hung stream, not an expectation: a loaded machine may take a while)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(0.02)


class RunningStreams:
    """A :class:`StreamRunner` for ``settings`` on ``engine``, catching up with real polls."""

    def __init__(self, engine: Engine, settings: Settings, tuning: StreamTuning = FAST) -> None:
        self.engine, self.settings, self.tuning = engine, settings, tuning
        self.loop = asyncio.new_event_loop()
        self.runner: StreamRunner | None = None
        self.catch_ups = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._platforms: contextlib.ExitStack = contextlib.ExitStack()

    async def _catch_up(self, adapter: Adapter, target: Target) -> None:
        self.catch_ups += 1
        await asyncio.to_thread(
            poll_target, engine=self.engine, adapter=adapter, target=target, settings=self.settings
        )

    def call(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def __enter__(self) -> RunningStreams:
        platforms = self._platforms.enter_context(configured_platforms(self.settings))
        self._thread.start()

        async def start() -> StreamRunner:
            runner = StreamRunner(
                engine=self.engine,
                settings=self.settings,
                platforms=platforms,
                catch_up=self._catch_up,
                watch=await asyncio.to_thread(current_watch, self.engine, self.settings),
                tuning=self.tuning,
            )
            runner.start()
            return runner

        self.runner = self.call(start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.runner is not None:
                self.call(self.runner.stop(timeout=5))
        finally:
            self.call(_cancel_the_rest())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
            self._platforms.close()


async def _cancel_the_rest() -> None:
    """What ``asyncio.run`` does on the way out: no task outlives its loop."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


@contextlib.contextmanager
def running_streams(
    engine: Engine, settings: Settings, tuning: StreamTuning = FAST
) -> Iterator[RunningStreams]:
    with RunningStreams(engine, settings, tuning) as streams:
        yield streams
