"""gallery_json, embed_weight and pin_media: the public gallery (gallery issue).

- ``gallery_json``: p95 latency of ``/gallery.json`` (the first page and the
  next nine through their cursors, in turn) over ``BENCH_GALLERY_POSTS`` posts
  (default 100,000) of which one in ten is approved with a pinned image,
  against the p95 of ``/healthz`` from the same real uvicorn server, the two
  requests interleaved so both see the same machine load. Target: ratio <= 3.
- ``embed_weight``: bytes of ``/gallery/embed`` plus the CSS and JS it loads,
  before images; the baseline is the 30 KB budget. Target: ratio < 1.
- ``pin_media``: images pinned per second (download from a local server,
  decode, orient, strip, three renditions written atomically) against plain
  Pillow open + save of the same files in the same run.

Rows are written with plain ``sqlite3`` so that building the store does not
dominate the run.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from PIL import ExifTags, Image

from benchmarks._harness import EVENT_SQL, ScratchDatabase, bulk_writer, emit, p95, seconds, stamp
from monitor.config import load_settings
from monitor.services.media import pin_url
from monitor.web.app import create_app
from tests.fakes.server import FakeServer, Reply
from tests.web.live_server import live_server

POSTS = int(os.environ.get("BENCH_GALLERY_POSTS", "100000"))
SAMPLES = int(os.environ.get("BENCH_GALLERY_SAMPLES", "300"))
PIN_IMAGES = int(os.environ.get("BENCH_GALLERY_PIN_IMAGES", "20"))
EMBED_BUDGET_BYTES = 30 * 1024
BATCH = 50_000
START = datetime(2021, 3, 1, tzinfo=UTC)


def fill(path: str, posts: int) -> int:
    """Write the store; returns how many posts are approved."""
    approved = 0
    with bulk_writer(path) as connection:
        for first in range(0, posts, BATCH):
            post_rows, tag_rows, media_rows, event_rows = [], [], [], []
            for i in range(first, min(first + BATCH, posts)):
                created = START + timedelta(seconds=30 * i)
                status = "approved" if i % 10 == 0 else ("pending", "rejected")[i % 2]
                approved += status == "approved"
                post_rows.append(
                    (i + 1, "mastodon", f"id{i}", f"mastodon:id{i}", f"https://m.example/@u/{i}",
                     f"@u{i % 5000}@m.example", f"User {i % 5000}",
                     f"Post number {i}: we wrote on our hands for #CEADAY21", f"<p>Post {i}</p>",
                     f"h{i}", stamp(created), stamp(created), stamp(created), status)
                )  # fmt: skip
                tag_rows.append((i + 1, "ceaday21"))
                if status == "approved":
                    digest = f"{i:064x}"
                    media_rows.append(
                        (i + 1, 0, "image", f"https://files.example/{i}.jpg", "Hands on a sign",
                         digest, "[320, 640, 1280]", 1280, 960, f"{digest[:2]}/{digest}-1280.jpg")
                    )  # fmt: skip
                    event_rows.append(
                        (i + 1, stamp(created + timedelta(hours=1)), "alice", "approve",
                         "pending", "approved")
                    )  # fmt: skip
            connection.executemany(
                "INSERT INTO posts (id, platform, external_id, ref, url, author_handle,"
                " author_name, text, html, content_hash, created_at, first_seen_at, last_seen_at,"
                " status, flagged, sensitive, version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0,1)",
                post_rows,
            )
            connection.executemany("INSERT INTO post_hashtags VALUES (?, ?)", tag_rows)
            connection.executemany(
                "INSERT INTO media (post_id, position, kind, url, alt, sensitive, decorative,"
                " pinned_hash, pinned_widths, pinned_width, pinned_height, pinned_path)"
                " VALUES (?,?,?,?,?,0,0,?,?,?,?,?)",
                media_rows,
            )
            connection.executemany(EVENT_SQL, event_rows)
    return approved


def bench_json_and_weight(engine_path: Path, settings_dir: Path, approved: int) -> None:
    from monitor.db import create_db_engine

    engine = create_db_engine(f"sqlite:///{engine_path}")
    settings = load_settings(
        data_dir=settings_dir / "data", media_dir=settings_dir / "media", log_level="WARNING"
    )
    with (
        live_server(create_app(settings, engine=engine)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        paths = ["/gallery.json"]
        while len(paths) < 10:
            cursor = client.get(paths[-1]).json()["next_cursor"]
            paths.append(f"/gallery.json?cursor={cursor}")
        for path in paths:  # warm caches and the connection pool
            client.get(path).raise_for_status()
            client.get("/healthz").raise_for_status()
        json_times, health_times = [], []
        for sample in range(SAMPLES):
            path = paths[sample % len(paths)]
            json_times.append(seconds(lambda p=path: client.get(p).raise_for_status()))
            health_times.append(seconds(lambda: client.get("/healthz").raise_for_status()))
        emit(
            "gallery_json", "p95_ms", p95(json_times) * 1000, p95(health_times) * 1000, POSTS,
            approved=approved, samples=SAMPLES,
        )  # fmt: skip

        page = client.get("/gallery/embed")
        page.raise_for_status()
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        weight = len(page.content) + sum(len(client.get(a).content) for a in assets)
        emit("embed_weight", "bytes", weight, EMBED_BUDGET_BYTES, POSTS, baseline_is="budget")
    engine.dispose()


def photo(number: int) -> bytes:
    """A 12-megapixel phone-camera JPEG (4032x3024) with EXIF and GPS, one per number."""
    small = Image.effect_mandelbrot((1008, 756), (-2 + number / 50, -1.2, 1, 1.2), 60)
    grey = small.resize((4032, 3024), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((4032, 3024), 12)
    image = Image.merge("RGB", (grey, Image.blend(grey, noise, 0.3), noise))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.GPSInfo).update({ExifTags.GPS.GPSLatitudeRef: "N"})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def bench_pin(work: Path) -> None:
    images = [photo(n) for n in range(PIN_IMAGES)]
    server = FakeServer().start()
    try:
        for number, data in enumerate(images):
            server.route(
                "GET",
                f"/{number}.jpg",
                lambda _r, d=data: Reply(200, d, {"Content-Type": "image/jpeg"}),
            )
        settings = load_settings(
            media_dir=work / "pinned", data_dir=work / "data", outbound_allow_private=True
        )
        started = time.perf_counter()
        for number in range(PIN_IMAGES):
            pin_url(f"{server.url}/{number}.jpg", settings=settings)
        pinned_rate = PIN_IMAGES / (time.perf_counter() - started)
    finally:
        server.stop()

    plain = work / "plain"
    plain.mkdir()
    started = time.perf_counter()
    for number, data in enumerate(images):
        with Image.open(io.BytesIO(data)) as image:
            image.save(plain / f"{number}.jpg", "JPEG", quality=82)
    plain_rate = PIN_IMAGES / (time.perf_counter() - started)
    emit("pin_media", "images_per_s", pinned_rate, plain_rate, PIN_IMAGES, source="4032x3024")


def main() -> None:
    scratch = ScratchDatabase()
    with scratch as engine, tempfile.TemporaryDirectory(prefix="hm-bench-") as work:
        approved = fill(str(scratch.path), POSTS)
        engine.dispose()
        bench_json_and_weight(scratch.path, Path(work), approved)
        bench_pin(Path(work))


if __name__ == "__main__":
    main()
