"""The image detectors (issue 13): analyse_images, pdq_match and place_names.

- ``analyse_images`` ``images_per_s``: 1024-pixel photos (drawn hands with words, and
  scikit-image's photos scaled to 1024) decoded from JPEG and run through every detector
  this package ships (known images, nudity, text), on one core, against plain Pillow
  decode-and-resize of the same files in the same run. Target: at least 2 images/s.
  The rate is per second of the process's CPU time (the models run single-threaded),
  so a machine shared with other work does not read as a slow detector; the wall-clock
  rate is reported beside it (``wall_images_per_s``).
- ``pdq_match`` ``match_s``: one hash matched against a bank of 1,000,000 hashes (all
  eight rotations and mirrors would be eight of these), against computing one image's
  hashes. Target: ratio at most 1.
- ``place_names`` ``match_us``: one post's text checked against a list of 10,000 place
  names with the Aho-Corasick automaton the rules use, in microseconds, against one
  compiled regular-expression alternation of the same names (``compile_s``: building
  each).
"""

from __future__ import annotations

import io
import os
import random
import re
import statistics
import time

import numpy as np
from PIL import Image

from benchmarks._harness import emit
from benchmarks.imageset import BENIGN_WORDS, PERSONAL_WORDS, hand, photos
from monitor.analysis.builtin import make_detectors
from monitor.analysis.findings import Context, ImageInput
from monitor.analysis.known import hash_image
from monitor.models import ModerationRule
from monitor.services.known_images import HashIndex
from monitor.services.rules import CompiledRules, fold, place_key

N_BANK = int(os.environ.get("BENCH_PDQ_BANK", "1000000"))


def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _jpegs() -> list[bytes]:
    pictures = [hand(w, seed=i) for i, (w, _) in enumerate(PERSONAL_WORDS[:4])]
    pictures += [hand(w, seed=50 + i) for i, w in enumerate(BENIGN_WORDS[:2])]
    for picture in list(photos().values())[:4]:
        scale = 1024 / max(picture.size)
        pictures.append(picture.resize((int(picture.width * scale), int(picture.height * scale))))
    files = []
    for picture in pictures:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=88)
        files.append(buffer.getvalue())
    return files


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def analyse_images() -> None:
    files = _jpegs()
    detectors = make_detectors()
    for detector in detectors:
        detector.load()
    context = Context()
    # Warm up each model once (first runs allocate).
    for detector in detectors:
        detector.analyse(ImageInput(_decode(files[0]), 1, 1, 1), context)

    def baseline() -> None:
        for data in files:
            image = _decode(data)
            image.thumbnail((512, 512))

    def analyse() -> None:
        for number, data in enumerate(files):
            item = ImageInput(_decode(data), 1, number, number)
            for detector in detectors:
                detector.analyse(item, context)

    base = min(_cpu(baseline) for _ in range(3))
    start = time.perf_counter()
    took = _cpu(analyse)
    wall = time.perf_counter() - start
    emit(
        "analyse_images",
        "images_per_s",
        len(files) / took,
        len(files) / base,
        len(files),
        target_images_per_s=2.0,
        wall_images_per_s=round(len(files) / wall, 3),
    )


def _cpu(action: object) -> float:
    start = time.process_time()
    action()  # type: ignore[operator]
    return time.process_time() - start


def _timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def pdq_match() -> None:
    rng = np.random.default_rng(1)
    bank = [bytes(row).hex() for row in rng.integers(0, 256, (N_BANK, 32), dtype=np.uint8)]
    index = HashIndex(bank)
    photo = photos()["astronaut"].resize((1024, 1024))
    [query, *_], _ = hash_image(photo)
    hashing = statistics.median(_timed(lambda: hash_image(photo)) for _ in range(9))
    matching = statistics.median(_timed(lambda: index.nearest(query)) for _ in range(9))
    emit("pdq_match", "match_s", matching, hashing, N_BANK, target_ratio=1.0)


def place_names() -> None:
    rng = random.Random(3)
    words = ["Oak", "Mill", "Church", "Station", "Park", "Green", "Hill", "Saint", "Mary"]
    kinds = ["Road", "Lane", "Close", "Primary", "Academy", "Estate", "Street"]
    names = list(
        dict.fromkeys(
            f"{rng.choice(words)} {rng.choice(words)}{n} {rng.choice(kinds)}" for n in range(10_000)
        )
    )
    rule = ModerationRule(id=1, kind="place_names", pattern="Places", action="flag", created_by="")  # type: ignore[call-arg]
    texts = [
        "We wrote our messages at " + rng.choice(names) + " today. #CEADAY21 #HelpingHands " * 4
        for _ in range(200)
    ]
    start = time.perf_counter()
    compiled = CompiledRules([rule], [(rule, name) for name in names])
    automaton_build = time.perf_counter() - start
    start = time.perf_counter()
    alternation = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(place_key(n)) for n in names) + r")(?!\w)"
    )
    regex_build = time.perf_counter() - start

    def by_automaton() -> None:
        for text in texts:
            compiled.places.find(text)

    def by_regex() -> None:
        for text in texts:
            alternation.findall(place_key(fold(text)))

    automaton = min(_timed(by_automaton) for _ in range(3)) / len(texts) * 1e6
    regex = min(_timed(by_regex) for _ in range(3)) / len(texts) * 1e6
    emit("place_names", "match_us", automaton, regex, len(names))
    emit("place_names", "compile_s", automaton_build, regex_build, len(names))


if __name__ == "__main__":
    _one_core()
    pdq_match()
    place_names()
    analyse_images()
