"""Detectors for the pipeline's tests, loaded by the analyser process by target string.

Each misbehaves (or rules) on images whose top-left pixel has a given colour, so one
test can give the pipeline a mix of good and poisonous images.
"""

from __future__ import annotations

import os
import time

from monitor.analysis.findings import Context, Finding, ImageInput, ModelMissing, Verdict

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
