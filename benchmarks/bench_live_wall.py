"""live_wall: many open walls following ``/gallery/events`` while posts are approved.

``BENCH_LIVE_WALLS`` (default 500) walls hold a stream open against a real
``hashtag-monitor serve`` process for ``BENCH_LIVE_WALL_SECONDS`` (default 20;
the issue's figure is 60, which ``make bench`` cannot afford next to the other
benchmarks) while a moderator approves a post every half second from another
process. Reported:

- ``cpu_ms_per_wall_minute``: the server's CPU time (from ``/proc``) per open
  wall per minute, against the same server answering the same walls polling
  ``/gallery.json`` every 10 s (what commercial walls do) for the same time.
  Each poll connects anew (uvicorn closes a connection idle for 5 s). Target:
  ratio < 1 (pushing is cheaper than a 10-second poll).
- ``errors``: walls that failed to connect or lost their stream, plus approvals a
  wall never received, against every delivery expected. Target: 0.
- ``approval_to_wall_p95_s``: seconds from the approval's commit to a wall
  reading the event, p95 over every wall and approval, against the 5 s a
  10-second poll waits on average.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks._harness import ScratchDatabase, emit, p95
from monitor.config import load_settings
from monitor.db import session_scope
from monitor.models import Post
from monitor.services.ingest import record_posts
from monitor.services.moderation import decide
from tests.factories import make_post
from tests.web.auth_helpers import make_user

WALLS = int(os.environ.get("BENCH_LIVE_WALLS", "500"))
SECONDS = float(os.environ.get("BENCH_LIVE_WALL_SECONDS", "20"))
APPROVE_EVERY = 0.5
POLL_EVERY = 10.0
_ID_RE = re.compile(rb'event: approved\ndata: \{"id":"([^"]+)"')
_CLOCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Wall:
    """One open wall: a raw HTTP/1.1 stream, the approvals it saw and when."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.ok = False
        self.lost = False

    async def follow(self, port: int, stop: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /gallery/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Accept: text/event-stream\r\n\r\n"
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            self.ok = head.startswith(b"HTTP/1.1 200")
            buffer = b""
            while not stop.is_set():
                chunk = await reader.read(65536)
                if not chunk:
                    self.lost = not stop.is_set()
                    break
                buffer += chunk
                frames = buffer.split(b"\n\n")
                buffer = frames.pop()
                now = time.monotonic()
                for frame in frames:
                    for match in _ID_RE.finditer(frame):
                        self.seen.setdefault(match[1].decode(), now)
            writer.close()
        except (OSError, asyncio.IncompleteReadError):
            self.lost = True


async def poll_json(port: int, stop: asyncio.Event, offset: float) -> int:
    """A wall that polls ``/gallery.json`` every 10 s (raw HTTP/1.1, as cheap for this
    process as the streams are). Each poll connects anew, as a browser does: the server
    closes a connection idle for 5 s (uvicorn's keep-alive)."""
    errors = 0
    await asyncio.sleep(offset)
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /gallery.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            body = await reader.read()
            writer.close()
            if not body.startswith(b"HTTP/1.1 200"):
                errors += 1
        except OSError:
            errors += 1
        try:
            await asyncio.wait_for(stop.wait(), POLL_EVERY)
        except TimeoutError:
            pass
    return errors


async def measure_push(port: int, pid: int, ids: list[int], engine) -> dict[str, float]:  # type: ignore[no-untyped-def]
    settings = load_settings()
    stop = asyncio.Event()
    walls = [Wall() for _ in range(WALLS)]
    tasks = [asyncio.create_task(wall.follow(port, stop)) for wall in walls]
    while sum(wall.ok for wall in walls) + sum(wall.lost for wall in walls) < WALLS:
        await asyncio.sleep(0.05)
    approved_at: dict[str, float] = {}
    start_cpu, started = cpu_seconds(pid), time.monotonic()
    for post_id in ids:
        if time.monotonic() - started >= SECONDS:
            break
        ref = await asyncio.to_thread(_approve, engine, settings, post_id)
        approved_at[ref] = time.monotonic()
        await asyncio.sleep(APPROVE_EVERY)
    remaining = SECONDS - (time.monotonic() - started)
    if remaining > 0:
        await asyncio.sleep(remaining)
    cpu = cpu_seconds(pid) - start_cpu
    elapsed = time.monotonic() - started
    # Give the last approvals a moment to arrive before counting what is missing.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(len(w.seen) < len(approved_at) for w in walls):
        await asyncio.sleep(0.05)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    missing = sum(1 for w in walls for ref in approved_at if ref not in w.seen)
    failed = sum(1 for w in walls if not w.ok or w.lost)
    delays = [w.seen[ref] - at for w in walls for ref, at in approved_at.items() if ref in w.seen]
    return {
        "cpu": cpu,
        "elapsed": elapsed,
        "errors": float(missing + failed),
        "p95": p95(delays) if len(delays) > 1 else float("nan"),
        "approvals": float(len(approved_at)),
    }


async def measure_poll(port: int, pid: int) -> tuple[float, float, int]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(poll_json(port, stop, POLL_EVERY * n / WALLS)) for n in range(WALLS)
    ]
    start_cpu, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(SECONDS)
    cpu, elapsed = cpu_seconds(pid) - start_cpu, time.monotonic() - started
    stop.set()
    errors = sum(await asyncio.gather(*tasks))
    return cpu, elapsed, errors


def _approve(engine, settings, post_id: int) -> str:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        post = session.get(Post, post_id)
        assert post is not None
        decide(
            session=session,
            post=post,
            action="approve",
            actor="bench",
            settings=settings,
            expected_version=post.version,
        )
        return f"{post.platform}:{post.external_id}"


def main() -> None:
    with ScratchDatabase() as engine, tempfile.TemporaryDirectory() as data:
        make_user(engine, "bench", "moderator")
        wanted = int(SECONDS / APPROVE_EVERY) + 5
        with session_scope(engine) as session:
            # A gallery that already has a page of approved posts, and the ones to approve.
            shown = record_posts(session=session, posts=[make_post(media=()) for _ in range(30)])
            for post_id in shown.new_ids:
                session.get_one(Post, post_id).status = "approved"
            ids = record_posts(
                session=session, posts=[make_post(media=()) for _ in range(wanted)]
            ).new_ids
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": str(engine.url),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATA_DIR": data,
            "MEDIA_DIR": str(Path(data) / "media"),
            "SECRET_KEY": "bench-secret-key-bench-secret-key",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update({k: env[k] for k in ("DATA_DIR", "MEDIA_DIR", "SECRET_KEY")})
        server = subprocess.Popen(
            [sys.executable, "-c", "from monitor.cli import main; main()", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            push = asyncio.run(measure_push(port, server.pid, ids, engine))
            if server.poll() is not None:
                raise SystemExit(f"the server stopped during the push phase ({server.returncode})")
            poll_cpu, poll_elapsed, poll_errors = asyncio.run(measure_poll(port, server.pid))
        finally:
            server.terminate()
            server.wait(30)
    per_wall = push["cpu"] * 1000 / WALLS / (push["elapsed"] / 60)
    baseline = poll_cpu * 1000 / WALLS / (poll_elapsed / 60)
    emit(
        "live_wall",
        "cpu_ms_per_wall_minute",
        per_wall,
        baseline,
        WALLS,
        seconds=SECONDS,
        approvals=int(push["approvals"]),
        poll_errors=poll_errors,
    )
    # Errors against every delivery expected: the ratio is the error rate.
    deliveries = WALLS * push["approvals"] + WALLS
    emit("live_wall", "errors", push["errors"], deliveries, WALLS, seconds=SECONDS)
    # Against the mean wait of a 10-second poll.
    emit("live_wall", "approval_to_wall_p95_s", push["p95"], POLL_EVERY / 2, WALLS)


if __name__ == "__main__":
    main()
