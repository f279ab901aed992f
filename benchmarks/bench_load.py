"""load: 200 concurrent clients on the public gallery while polling and moderation go on.

A real ``hashtag-monitor run`` process (scheduler and web app) serves a store of
20,000 posts (2,000 approved) on 127.0.0.1, polling a local Mastodon that keeps
receiving posts every poll interval, while a moderator thread here approves
pending posts through the same service the queue uses. 200 clients then fetch
``/gallery.json`` and ``/gallery/embed`` in turn for ``BENCH_LOAD_SECONDS``
(default 30). The baseline is the same 200 clients on ``/healthz`` for a third
of that time, so the ratio is gallery throughput over trivial throughput.
Errors (any status but 200/304, or a failed connection) must be zero.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from benchmarks._harness import emit, p95
from benchmarks.bench_gallery import fill
from monitor.config import load_settings
from monitor.db import create_db_engine, upgrade
from monitor.models import Post
from monitor.services.moderation import decide
from monitor.services.users import add_user
from tests.fakes.registry import fake_config, make_fake
from tests.fakes.server import FakeServer
from tests.processes import CLI, free_port

CLIENTS = 200
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "30"))
POSTS = 20_000
OK_STATUSES = {200, 304}


async def _hammer(base: str, paths: list[str], seconds: float) -> tuple[int, int, list[float]]:
    """CLIENTS tasks loop over ``paths`` until time is up; returns (done, errors, latencies)."""
    done = errors = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker(offset: int) -> None:
            nonlocal done, errors
            turn = offset
            while time.monotonic() < deadline:
                path = paths[turn % len(paths)]
                turn += 1
                start = time.perf_counter()
                try:
                    response = await client.get(path)
                    failed = response.status_code not in OK_STATUSES
                except httpx.HTTPError:
                    failed = True
                latencies.append(time.perf_counter() - start)
                done += 1
                errors += failed

        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    return done, errors, latencies


def _moderate(url: str, stop: threading.Event, decided: list[int]) -> None:
    """Approve pending posts one at a time, as a moderator working the queue would."""
    engine = create_db_engine(url)
    settings = load_settings()
    table = Post.__table__
    while not stop.is_set():
        with Session(engine) as session:
            post_id = session.execute(
                sa.select(table.c.id).where(table.c.status == "pending").limit(1)
            ).scalar()
            if post_id is None:
                return
            post = session.get_one(Post, post_id)
            decide(session=session, post=post, action="approve", actor="alice", settings=settings)
            session.commit()
            decided.append(post_id)
        time.sleep(0.05)
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hm-load-") as work:
        database = Path(work) / "load.db"
        url = f"sqlite:///{database}"
        engine = create_db_engine(url)
        upgrade(engine)
        fill(str(database), POSTS)
        with Session(engine) as session:
            add_user(session=session, name="alice", role="moderator",
                     password="load test password", actor="bench")  # fmt: skip
            session.commit()
        engine.dispose()

        server = FakeServer().start()
        mastodon = make_fake("mastodon", server)
        mastodon.add_many(20)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "PORT": str(port),
            **fake_config("mastodon", mastodon),
            "HASHTAGS": "CEADAY21",
            "POLL_INTERVAL_SECONDS": "10",
            "DATA_DIR": f"{work}/data",
            "MEDIA_DIR": f"{work}/media",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "DATA_DIR", "MEDIA_DIR")})
        process = subprocess.Popen(
            [*CLI, "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        stop = threading.Event()
        decided: list[int] = []
        moderator = threading.Thread(target=_moderate, args=(url, stop, decided), daemon=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            healthz = asyncio.run(_hammer(base, ["/healthz"], SECONDS / 3))
            moderator.start()
            feeder = threading.Timer(SECONDS / 2, lambda: mastodon.add_many(50))
            feeder.start()
            gallery = asyncio.run(_hammer(base, ["/gallery.json", "/gallery/embed"], SECONDS))
            feeder.join()
        finally:
            stop.set()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
            server.stop()
        moderator.join(timeout=10)

    done, errors, latencies = gallery
    emit(
        "load",
        "requests_per_s",
        done / SECONDS,
        healthz[0] / (SECONDS / 3),
        POSTS,
        clients=CLIENTS,
        seconds=SECONDS,
        errors=errors + healthz[1],
        p95_ms=round(p95(latencies) * 1000, 1),
        decisions_during_load=len(decided),
    )


if __name__ == "__main__":
    sys.exit(main())
