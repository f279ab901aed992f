"""The detectors this package builds besides faces: known images, nudity, text in images.

For the registry (:mod:`monitor.analysis.detectors`): :data:`TARGETS` maps each
name to its ``"module:Class"`` target; every class has a no-argument constructor
and loads its model in :meth:`~monitor.analysis.findings.Detector.load`.
"""

from __future__ import annotations

from monitor.analysis.findings import Detector
from monitor.analysis.known import KnownImageDetector
from monitor.analysis.nudity import NudityDetector
from monitor.analysis.text import TextDetector

#: The detector classes, cheapest first.
DETECTORS = (KnownImageDetector, NudityDetector, TextDetector)
#: Name -> import target, as the registry lists built-in detectors.
TARGETS: dict[str, str] = {
    detector.name: f"{detector.__module__}:{detector.__qualname__}" for detector in DETECTORS
}


def make_detectors() -> list[Detector]:
    """A fresh instance of each (each loads its model on :meth:`Detector.load`)."""
    return [detector() for detector in DETECTORS]
