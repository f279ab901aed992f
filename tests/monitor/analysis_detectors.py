"""Detectors for the pipeline's tests, loaded by the analyser process by target string.

Each misbehaves (or rules) on images whose top-left pixel has a given colour, so one
test can give the pipeline a mix of good and poisonous images.
"""

from __future__ import annotations

import os
import time
from typing import Any

from monitor.analysis.findings import Context, Finding, ImageInput, ModelMissing, Verdict
from monitor.analysis.nudity import NudityDetector

#: Top-left pixel colours (approximately, after JPEG) that trigger each behaviour.
HANG = (250, 0, 250)
CRASH = (0, 250, 250)
RAISE = (250, 250, 0)
REJECT = (250, 0, 0)
ESCALATE = (0, 0, 250)


def _is(item: ImageInput, colour: tuple[int, int, int]) -> bool:
    pixel = item.image.getpixel((2, 2))
    assert isinstance(pixel, tuple)
    return all(abs(a - b) < 40 for a, b in zip(pixel[:3], colour, strict=True))


class Misbehaving:
    """Hangs, crashes the process, or raises, on images of the matching colour."""

    name = "misbehaving"

    def load(self) -> None:
        return None

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        if _is(item, HANG):
            time.sleep(3600)
        if _is(item, CRASH):
            os._exit(11)
        if _is(item, RAISE):
            raise ValueError("this picture broke the detector")
        return []


class Ruling:
    """Rejects or escalates images of the matching colour; flags every image's colour."""

    name = "ruling"

    def load(self) -> None:
        return None

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        if _is(item, REJECT):
            return [Finding(self.name, item.position, "Explicit image (test rule)", Verdict.REJECT)]
        if _is(item, ESCALATE):
            return [
                Finding(
                    self.name, item.position, "Matches a known-image bank (test)", Verdict.ESCALATE
                )
            ]
        return []


class Missing:
    """A detector whose model package is not installed."""

    name = "missing"

    def load(self) -> None:
        raise ModelMissing("the missing check needs the Python package 'no-such-model-package'")

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        raise AssertionError("never loaded")


#: Top-left colour of images :class:`Slow` takes its time over.
SLOW = (250, 130, 0)
#: Where :class:`Slow` says which process started on which image (set by the worker test).
MARKERS_ENV = "ANALYSIS_TEST_MARKERS"


class Slow:
    """Flags every image; on :data:`SLOW` ones, first says so in a marker file and sleeps,
    so a test can kill the worker while the job is under way."""

    name = "slow"

    def load(self) -> None:
        return None

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        if _is(item, SLOW):
            folder = os.environ.get(MARKERS_ENV)
            if folder:
                marker = os.path.join(folder, f"{os.getppid()}-{item.media_id}")
                with open(marker, "w") as handle:
                    handle.write("started")
            time.sleep(4)
        return [Finding(self.name, item.position, f"Checked slowly: image {item.position}")]


#: Top-left colours of the pictures :class:`StoodInNudity`'s model "sees" nudity in: one
#: scored to flag, one scored to reject (no explicit picture is made or kept). Neither is
#: a colour the drawn hands or the photos of benchmarks/imageset.py start with.
NUDITY_FLAG = (10, 250, 120)
NUDITY_REJECT = (120, 10, 250)


class _NudeNetRawOutput:
    """Stands in for NudeNet at its boundary: ``detect`` answers what the model would for
    a picture it scored, by the picture's top-left colour (the array is BGR)."""

    ANSWERS = {
        NUDITY_FLAG: [{"class": "BUTTOCKS_EXPOSED", "score": 0.6, "box": [40, 30, 200, 160]}],
        NUDITY_REJECT: [
            {"class": "FEMALE_GENITALIA_EXPOSED", "score": 0.92, "box": [60, 60, 120, 90]}
        ],
    }

    def detect(self, array: Any) -> list[dict[str, Any]]:
        blue, green, red = (int(v) for v in array[2, 2, :3])
        for colour, answer in self.ANSWERS.items():
            if all(abs(a - b) < 40 for a, b in zip((red, green, blue), colour, strict=True)):
                return answer
        return []


class StoodInNudity(NudityDetector):
    """The real nudity detector (its thresholds, words, boxes and blur) with the model's
    raw output stood in, loaded by the analyser process like any detector."""

    def __init__(self) -> None:
        super().__init__(_NudeNetRawOutput())
