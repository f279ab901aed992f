"""analysis_lag: from a post's image being stored to its check showing on the card.

500 stored copies (``BENCH_ANALYSIS_IMAGES``) wait at once, as after a burst of
posts; ``run``'s job (SQLite) checks them through the real analyser process.
Each copy's lag is the time from the moment all were stored to the commit of its
outcome, which is when the card stops saying "being checked"; the p95 is reported.

Two figures, because one shared 2-core machine cannot run the face model on 500
images well inside a minute:

- ``analysis_lag``: p95 lag of the pipeline itself (queue scan, analyser process,
  decode, the post's transaction) with a detector that finds nothing, against
  the p95 lag of merely decoding each stored copy in turn (the least any check
  must do), measured in the same run;
- ``analysis_lag_faces``: the same p95 with the face detector, measured on
  ``BENCH_ANALYSIS_SAMPLE`` copies and scaled to the 500 (the queue is worked
  through in order, so the lag grows with the per-image time); baseline the
  pipeline-only figure above.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from PIL import Image
from skimage import data
from sqlmodel import select

from benchmarks._harness import ScratchDatabase, emit, p95
from monitor.analysis.runner import Analyser
from monitor.config import load_settings
from monitor.db import session_scope
from monitor.models import MediaAnalysis, MediaItem, Post
from monitor.services.analysis import analyse_all_waiting
from monitor.services.media import pinned_file, pinned_name, store_image

IMAGES = int(os.environ.get("BENCH_ANALYSIS_IMAGES", "500"))
SAMPLE = int(os.environ.get("BENCH_ANALYSIS_SAMPLE", "20"))
NOTHING = {"nothing": "benchmarks.bench_analysis_lag:FindsNothing"}
FACES = {"faces": "monitor.analysis.faces:FaceDetector"}


class FindsNothing:
    """A detector that looks and finds nothing: the pipeline's own cost."""

    name = "nothing"

    def load(self) -> None:
        return None

    def analyse(self, item: object, context: object) -> list[object]:
        return []


def _photos(media_dir: Path) -> list[tuple[str, list[int], int, int]]:
    """A few distinct 1024-pixel photos, stored as staging stores them."""
    stored = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image = image.resize((1024, round(1024 * image.height / image.width)))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        pinned = store_image(buffer.getvalue(), media_dir)
        stored.append((pinned.digest, list(pinned.widths), pinned.width, pinned.height))
    return stored


def _queue(engine: object, photos: list[tuple[str, list[int], int, int]], count: int) -> float:
    """``count`` pending posts, each with one stored copy; returns when they were stored."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    with session_scope(engine) as session:  # type: ignore[arg-type]
        for number in range(count):
            digest, widths, width, height = photos[number % len(photos)]
            post = Post(
                platform="mastodon",
                external_id=f"p{number}",
                ref=f"p{number}",
                url=f"https://m.example/{number}",
                author_handle=f"@u{number}",
                author_name="U",
                text="Hands",
                html="<p>Hands</p>",
                content_hash=str(number),
                created_at=now,
                first_seen_at=now,
                last_seen_at=now,
            )
            session.add(post)
            session.flush()
            session.add(
                MediaItem(
                    post_id=post.id or 0,
                    kind="image",
                    url=f"https://m.example/{number}.jpg",
                    pinned_hash=digest,
                    pinned_widths=widths,
                    pinned_width=width,
                    pinned_height=height,
                    pinned_path=f"{digest[:2]}/{pinned_name(digest, widths[-1])}",
                )
            )
    return time.time()


def _lags(engine: object, stored_at: float) -> list[float]:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        rows = session.exec(select(MediaAnalysis)).all()
        return [(row.finished_at.timestamp() - stored_at) for row in rows if row.finished_at]


def _run(targets: dict[str, str], count: int) -> tuple[list[float], float]:
    """Queue ``count`` copies and check them all; (lags, seconds to decode them plainly)."""
    with TemporaryDirectory(prefix="hm-bench-media-") as media, ScratchDatabase() as engine:
        os.environ.update(MEDIA_DIR=media, IMAGE_ANALYSIS="true", DATABASE_URL=str(engine.url))
        settings = load_settings()
        photos = _photos(Path(media))
        with Analyser(targets=targets) as analyser:
            analyser.start()
            stored_at = _queue(engine, photos, count)
            analyse_all_waiting(engine=engine, settings=settings, analyser=analyser)
        lags = _lags(engine, stored_at)
        decode_lags = []
        start = time.perf_counter()
        for number in range(count):
            digest, widths, _w, _h = photos[number % len(photos)]
            with Image.open(pinned_file(Path(media), pinned_name(digest, widths[-1]))) as image:
                image.convert("RGB")
            decode_lags.append(time.perf_counter() - start)
    return lags, p95(decode_lags)


def main() -> None:
    pipeline, decode_p95 = _run(NOTHING, IMAGES)
    pipeline_p95 = p95(pipeline)
    emit("analysis", "analysis_lag", pipeline_p95, decode_p95, len(pipeline), unit="s")
    sample, _ = _run(FACES, SAMPLE)
    per_image = max(sample) / len(sample)
    scaled = pipeline_p95 + per_image * 0.95 * IMAGES
    emit(
        "analysis",
        "analysis_lag_faces",
        scaled,
        pipeline_p95,
        IMAGES,
        unit="s",
        measured_images=len(sample),
        seconds_per_image=round(per_image, 3),
    )


if __name__ == "__main__":
    main()
