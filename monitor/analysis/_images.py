"""Turning a decoded image into the arrays the models read, at the size they need."""

from __future__ import annotations

import numpy as np
from PIL import Image


def bgr(image: Image.Image, max_side: int) -> np.ndarray:
    """The image as an OpenCV-style BGR array, shrunk to at most ``max_side`` pixels a side.

    Returns the array; a caller mapping boxes back multiplies by the original width over
    the array's width."""
    picture = image if image.mode == "RGB" else image.convert("RGB")
    if max(picture.size) > max_side:
        picture = picture.copy()
        picture.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(picture)[:, :, ::-1])


def note(notes: dict[int, dict[str, object]], media_id: int, post_id: int) -> dict[str, object]:
    """The detectors' shared notes about one image (``Context.notes``)."""
    return notes.setdefault(media_id, {"post_id": post_id})
