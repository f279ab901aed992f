"""Known images: the PDQ hash of every image, matched against the hash banks.

The hash (``pdqhash``, the binding of Meta's reference PDQ code) is noted for
every image (``Context.notes``), so reposts of one picture are grouped on the
card; all eight rotations and mirror images are matched, so a flipped repost
is still found. What a match does is the bank's (see
:mod:`monitor.services.known_images`): a rejected picture is rejected again (or
flagged, by policy), an imported bank's match is escalated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from monitor.analysis._images import note, rgb
from monitor.analysis.findings import Context, Finding, ImageInput, ModelMissing, Verdict

PACKAGE = "pdqhash"
#: PDQ's reference tools hash at most 512 pixels a side: the hash does not change, the cost
#: falls tenfold.
HASH_SIDE = 512


def _pdqhash() -> Any:
    try:
        import pdqhash
    except ImportError as exc:
        raise ModelMissing(f"known-image matching needs the {PACKAGE} package: {exc}") from exc
    return pdqhash


def _hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def hash_image(image: Image.Image) -> tuple[list[str], int]:
    """The image's PDQ hash and those of its seven rotations and mirrors (the first is the
    image as it is), with PDQ's quality score (0-100)."""
    picture = rgb(image, HASH_SIDE)
    hashes, quality = _pdqhash().compute_dihedral(np.ascontiguousarray(np.asarray(picture)))
    return [_hex(bits) for bits in hashes], int(quality)


class KnownImageDetector:
    """Hashes every image and reports a match in the banks."""

    name = "known_image"

    def load(self) -> None:
        _pdqhash()

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        from monitor.services.known_images import MIN_QUALITY

        hashes, quality = hash_image(item.image)
        facts = note(context.notes, item.media_id, item.post_id)
        facts["pdq"], facts["pdq_quality"], facts["pdq_variants"] = hashes[0], quality, hashes
        if quality < MIN_QUALITY:
            return []  # a flat picture (a plain card) matches too much to say anything
        for candidate in hashes:
            match = context.known_match(candidate)
            if match is None:
                continue
            return [known_finding(item.position, candidate, match)]
        return []


def known_finding(position: int, candidate: str, match: tuple[str, Verdict]) -> Finding:
    """A banked picture found in image ``position``: by the detector (the shared banks) or
    in a campaign's own bank (:mod:`monitor.analysis.context`)."""
    reason, verdict = match
    return Finding(
        detector=KnownImageDetector.name,
        position=position,
        words=f"{reason} (image {position})",
        verdict=verdict,
        # A picture rejected before, or on a shared bank, is never shown unasked.
        blur=True,
        detail={"pdq": candidate, "match": reason, "escalate": verdict is Verdict.ESCALATE},
    )
