"""The offline detectors besides faces (known images, nudity, text in images), in one
place for benchmarks and evaluation; the registry (:mod:`monitor.analysis.detectors`)
lists their targets. Every class has a no-argument constructor and loads its model in
:meth:`~monitor.analysis.findings.Detector.load`.
"""

from __future__ import annotations

from monitor.analysis.findings import Detector
from monitor.analysis.known import KnownImageDetector
from monitor.analysis.nudity import NudityDetector
from monitor.analysis.text import TextDetector

#: The detector classes, cheapest first.
DETECTORS = (KnownImageDetector, NudityDetector, TextDetector)


def make_detectors() -> list[Detector]:
    """A fresh instance of each (each loads its model on :meth:`Detector.load`)."""
    return [detector() for detector in DETECTORS]
