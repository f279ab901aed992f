"""Turning a decoded image into the arrays the models read, at the size they need."""

from __future__ import annotations

import numpy as np
from PIL import Image


def rgb(image: Image.Image, max_side: int) -> Image.Image:
    """The image in 8-bit RGB, shrunk to at most ``max_side`` pixels a side.

    16- and 32-bit greyscale is scaled to 8 bits by its own range (Pillow's own
    conversion clips it, turning most of a 16-bit picture white)."""
    picture = image
    if picture.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(picture, dtype=np.float64)
        top = float(values.max()) or 1.0
        picture = Image.fromarray(np.clip(values / top * 255, 0, 255).astype(np.uint8))
    if picture.mode != "RGB":
        picture = picture.convert("RGB")
    if max(picture.size) > max_side:
        picture = picture.copy() if picture is image else picture
        picture.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return picture


def bgr(image: Image.Image, max_side: int) -> np.ndarray:
    """The image as an OpenCV-style BGR array, shrunk to at most ``max_side`` pixels a side
    (a caller mapping boxes back multiplies by the image's width over the array's)."""
    return np.ascontiguousarray(np.asarray(rgb(image, max_side))[:, :, ::-1])


def note(notes: dict[int, dict[str, object]], media_id: int, post_id: int) -> dict[str, object]:
    """The detectors' shared notes about one image (``Context.notes``)."""
    return notes.setdefault(media_id, {"post_id": post_id})
