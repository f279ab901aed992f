"""The detectors this package builds, besides faces, for the pipeline's registry."""

from __future__ import annotations

from monitor.analysis.findings import Detector
from monitor.analysis.known import KnownImageDetector
from monitor.analysis.nudity import NudityDetector
from monitor.analysis.text import TextDetector

#: The detector classes, in the order they run: the cheapest first.
DETECTORS = (KnownImageDetector, NudityDetector, TextDetector)


def make_detectors() -> list[Detector]:
    """A fresh instance of each (each loads its model on :meth:`Detector.load`)."""
    return [detector() for detector in DETECTORS]
