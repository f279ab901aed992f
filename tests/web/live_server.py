"""A real uvicorn server on 127.0.0.1 in a thread, for browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from monitor.web import live

STARTUP_TIMEOUT_SECONDS = 10.0


class LiveServer:
    """Serves ``app`` on a free loopback port (or ``port``: a restart) until :meth:`stop`."""

    def __init__(self, app: FastAPI, port: int = 0) -> None:
        self.app = app
        # proto must say TCP: asyncio only sets TCP_NODELAY on such sockets, and without it
        # Nagle's algorithm and delayed ACKs add ~40 ms to every keep-alive response.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", log_config=None)
        self._server = live.Server(config, app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STARTUP_TIMEOUT_SECONDS)
        self._socket.close()


@contextmanager
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    """Run ``app`` for the duration of the ``with`` block."""
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()
