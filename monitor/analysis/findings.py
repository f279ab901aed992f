"""The seam between the analysis pipeline and the detectors.

A detector is handed one decoded image (already turned upright by its EXIF
orientation, so face boxes land on the picture a person sees) and a
:class:`Context` of install-wide knowledge (the text rules, the hash banks). It
returns findings in words. What a finding does (flag, reject, escalate) is the
pipeline's business; a detector may only ask for more caution, never for less:
no verdict approves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from PIL import Image


class Verdict(StrEnum):
    """What a finding asks of its post, from mildest to strongest."""

    #: Needs a person's closer look: flagged on the card, acknowledged before approval.
    FLAG = "flag"
    #: Rejected automatically, with the rule named in the audit log.
    REJECT = "reject"
    #: Rejected, escalated to the safeguarding lead, never shown unblurred to anyone.
    ESCALATE = "escalate"


@dataclass(frozen=True)
class Box:
    """A region in pixels of the upright image: left, top, right, bottom (exclusive)."""

    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True)
class Finding:
    """One thing a detector saw in one image, said the way a moderator reads it."""

    #: The detector's name (``faces``, ``text``, ``nudity``, ``known_image``).
    detector: str
    #: The image's 1-based position in its post.
    position: int
    #: The flag in words, e.g. "2 faces in image 1".
    words: str
    verdict: Verdict = Verdict.FLAG
    #: Regions to blur for "publish with faces blurred" (and where the finding is).
    boxes: tuple[Box, ...] = ()
    #: Hide the image in the queue until a moderator reveals it.
    blur: bool = False
    #: Detector-specific facts kept with the finding (read text, a hash, a match, scores).
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageInput:
    """One stored image to analyse."""

    image: Image.Image
    position: int
    media_id: int
    post_id: int


@dataclass
class Context:
    """Install-wide knowledge a detector may consult, built fresh for each batch.

    Every callable is pure from the detector's point of view; the pipeline builds
    them from the database (see :func:`monitor.analysis.context.build_context`).
    """

    #: Text rules (personal data, blocked terms, place names) run over text read in an
    #: image: returns each reason in words with the verdict it asks for.
    text_reasons: Callable[[str], Sequence[tuple[str, Verdict]]] = lambda _text: ()
    #: A perceptual hash's match in the banks, if any: (reason in words, verdict).
    known_match: Callable[[str], tuple[str, Verdict] | None] = lambda _hash: None
    #: What a detector learnt about an image that is no finding (its perceptual hash, the
    #: text read in it), by media id: the pipeline stores it with the findings
    #: (:func:`monitor.analysis.context.store_notes`), for reposts and the card.
    notes: dict[int, dict[str, Any]] = field(default_factory=dict)


class Detector(Protocol):
    """What every detector provides."""

    #: A short stable name (``faces``, ``text``, ``nudity``, ``known_image``).
    name: str

    def load(self) -> None:
        """Load the model; raise :class:`ModelMissing` naming the package if it cannot."""

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        """Every finding in one image (an empty list: nothing found)."""


class ModelMissing(RuntimeError):
    """A detector's model file or package is not installed (says which package)."""
