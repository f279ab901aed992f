"""A real HTTP server on 127.0.0.1 with routes and programmable faults.

Each platform fake registers its routes on a :class:`FakeServer`; tests queue
faults (``server.fail(...)``) that the next matching requests suffer before
the real answer: an HTTP status with headers, a hang past the client's
timeout, a connection reset, a truncated body.

A hang or a drip waits on conditions, not only on its clock: it ends as soon as
the client hangs up or the server stops. A test that means "past the client's
timeout" asks for :data:`FOREVER`, so only the client's own timeout ends the wait,
however slowly a busy machine runs the client; a hang that ends by itself after a
few seconds could otherwise beat a starved client to it, and the client would see
a dropped connection instead of its timeout.
"""

from __future__ import annotations

import dataclasses
import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: A hang or drip "past any timeout": it lasts until the client gives up or the server
#: stops, never until this many seconds (a ceiling so a broken test cannot hang for good).
FOREVER = 600.0


@dataclasses.dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: A streamed answer (server-sent events): called with a ``write`` that sends and
    #: flushes bytes, and returns when the stream ends (the connection then closes).
    stream: Callable[[Callable[[bytes], None]], None] | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(
            status,
            json.dumps(value).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


@dataclasses.dataclass
class Fault:
    """What the next matching request suffers: see :meth:`FakeServer.fail`."""

    kind: str  # "status", "hang", "reset", "truncate", "garbage", "drip"
    status: int = 500
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    path: str = ""
    #: Matching requests to let through untouched before this fault strikes.
    after: int = 0


Handler = Callable[[FakeRequest], Reply]


class FakeServer:
    """A threaded HTTP server; ``url`` is its base, ``requests`` what it received."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults: list[Fault] = []
        #: Faults that struck a request, in order: what a test can say was injected.
        self.struck: list[Fault] = []
        self.requests: list[FakeRequest] = []
        #: Called with each request before it is answered: lets a test strike elsewhere
        #: (lock the database, kill its connections) at a known point of a poll.
        self.on_request: Callable[[FakeRequest], None] | None = None
        self._lock = threading.Lock()
        #: Set by :meth:`stop`: every hang and drip still waiting ends at once.
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for the loop to notice (0.5 s by default).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def route(self, method: str, pattern: str, handler: Handler, *, first: bool = False) -> None:
        """Answer ``method`` on paths matching ``pattern``; ``first`` overrides earlier routes."""
        entry = (method, re.compile(f"^{pattern}$"), handler)
        if first:
            self.routes.insert(0, entry)
        else:
            self.routes.append(entry)

    def unroute(self, pattern: str) -> None:
        """Forget a route, as a server without that endpoint would (404)."""
        self.routes = [r for r in self.routes if r[1].pattern != f"^{pattern}$"]

    def fail(self, kind: str, times: int = 1, **options: Any) -> None:
        """Queue ``times`` faults of ``kind`` for requests whose path starts with ``path``."""
        with self._lock:
            self.faults.extend(Fault(kind, **options) for _ in range(times))

    def hits(self, path_prefix: str = "") -> int:
        return sum(1 for r in self.requests if r.path.startswith(path_prefix))

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self.faults):
                if path.startswith(fault.path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    self.struck.append(fault)
                    return self.faults.pop(index)
        return None

    def _dispatch(self, request: FakeRequest) -> Reply:
        for method, pattern, handler in self.routes:
            if method == request.method and pattern.match(request.path):
                return handler(request)
        return Reply.json({"error": "Record not found"}, 404)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm the body waits
            # for the client's delayed ACK (about 40 ms on loopback) on every request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Tests read ``server.requests``; nothing on stderr."""

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = FakeRequest(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                with server._lock:
                    server.requests.append(request)
                if server.on_request is not None:
                    server.on_request(request)
                fault = server._take_fault(parts.path)
                if fault is not None and self._suffer(fault):
                    return
                reply = server._dispatch(request)
                if fault is not None and fault.kind in ("truncate", "garbage", "drip"):
                    self._mangle(reply, fault)
                    return
                self._send(reply)

            do_GET = do_POST = do_DELETE = _handle

            def _send(self, reply: Reply) -> None:
                if reply.stream is not None:
                    self._stream(reply)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def _pause(self, seconds: float) -> bool:
                """Wait up to ``seconds`` without answering; False as soon as the client has
                hung up or the server is stopping (then there is nobody left to answer)."""
                deadline = time.monotonic() + seconds
                while not server._stopping.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return True
                    readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
                    if readable:
                        try:
                            if not self.connection.recv(1, socket.MSG_PEEK):
                                return False  # the client closed its end
                        except OSError:
                            return False
                        # The client sent more (a pipelined request): keep waiting quietly.
                        server._stopping.wait(min(left, 0.05))
                return False

            def _stream(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

                def write(data: bytes) -> None:
                    self.wfile.write(data)
                    self.wfile.flush()

                assert reply.stream is not None
                try:
                    reply.stream(write)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client went away: the stream ends

            def _suffer(self, fault: Fault) -> bool:
                """Apply a fault that replaces the answer; False if it mangles the answer."""
                if fault.kind == "status":
                    body = json.dumps({"error": f"injected {fault.status}"}).encode()
                    self._send(Reply(fault.status, body, fault.headers))
                    return True
                if fault.kind == "hang":
                    self._pause(fault.seconds)
                    self.close_connection = True
                    return True
                if fault.kind == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    return True
                return False

            def _mangle(self, reply: Reply, fault: Fault) -> None:
                if fault.kind == "garbage":
                    self._send(Reply(reply.status, b"<html>Bad gateway</html>", {}))
                elif fault.kind == "truncate":
                    self._send(
                        Reply(reply.status, reply.body[: len(reply.body) // 2], reply.headers)
                    )
                else:  # drip: headers promptly, then the body a byte at a time
                    self.send_response(reply.status)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.close_connection = True
                    try:
                        for byte in reply.body[:50]:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if not self._pause(fault.seconds):
                                return
                    except (BrokenPipeError, ConnectionResetError):
                        return  # the client gave up waiting, as it should

        return _Handler
