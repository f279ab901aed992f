"""The detectors' registry: which detectors look at every stored image.

Built-in detectors are listed here, by name and ``"module:Class"`` target, and
nowhere else; third-party ones come through the ``hashtag_monitor.detectors``
entry-point group (``[project.entry-points."hashtag_monitor.detectors"]
name = "pkg.module:Class"``). Each target names a class with a no-argument
constructor that satisfies :class:`monitor.analysis.findings.Detector`.

The pipeline passes the *targets* (strings) to the analyser process, which
imports and loads them there: a detector never runs in the process that holds
the database or serves the web app, so one that crashes or hangs takes only its
analyser down (see :mod:`monitor.analysis.runner`).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import entry_points

from monitor.analysis.findings import Detector

ENTRY_POINT_GROUP = "hashtag_monitor.detectors"

BUILTIN_DETECTORS: dict[str, str] = {
    "faces": "monitor.analysis.faces:FaceDetector",
}


def available_detectors() -> dict[str, str]:
    """Every detector name with its import target, built-ins first, sorted by name."""
    found = dict(BUILTIN_DETECTORS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return dict(sorted(found.items()))


def instantiate(target: str) -> Detector:
    """A fresh, not yet loaded detector from its ``"module:Class"`` target."""
    module_name, _, attribute = target.partition(":")
    detector: Detector = getattr(import_module(module_name), attribute)()
    return detector


def load_detectors(targets: Mapping[str, str]) -> list[Detector]:
    """Every detector instantiated and its model loaded, in name order.

    Raises :class:`~monitor.analysis.findings.ModelMissing` (naming the package) for
    the first one that cannot load, so a deployment without a model fails at start.
    """
    detectors = []
    for name in sorted(targets):
        detector = instantiate(targets[name])
        detector.load()
        detectors.append(detector)
    return detectors
