"""Nudity and explicit content, with NudeNet's 320n detector (its ONNX model is in the wheel).

The model finds body parts, exposed or covered, each with a score. Only exposed
breasts, genitalia, buttocks and anus count. A score at or above
:data:`FLAG_SCORE` flags the image and blurs it in the queue; at or above
:data:`REJECT_SCORE` the post is rejected automatically, the rule named. The
thresholds, and why, are in docs/image-safety.md. A detector can only ask for
more caution: nothing it says makes an image safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.analysis._images import bgr
from monitor.analysis.findings import Box, Context, Finding, ImageInput, ModelMissing, Verdict

PACKAGE = "nudenet"
#: What the model's labels mean to a moderator (covered parts and faces are ignored).
EXPLICIT = {
    "FEMALE_BREAST_EXPOSED": "exposed breast",
    "FEMALE_GENITALIA_EXPOSED": "exposed genitals",
    "MALE_GENITALIA_EXPOSED": "exposed genitals",
    "BUTTOCKS_EXPOSED": "exposed buttocks",
    "ANUS_EXPOSED": "exposed anus",
}
#: Flag and blur from this score on (the model reports from 0.2).
FLAG_SCORE = 0.4
#: Reject automatically from this score on.
REJECT_SCORE = 0.75
#: The model reads 320 pixels; more only costs decoding time.
MAX_SIDE = 640
REJECT_RULE = f"nudity detector score ≥ {REJECT_SCORE}"


class NudityDetector:
    """Flags (and above a threshold rejects) images the model sees nudity in."""

    name = "nudity"

    def __init__(self, model: Any | None = None) -> None:
        #: Anything with NudeNet's ``detect(array) -> [{"class", "score", "box"}]``.
        self._model = model

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import nudenet
            import onnxruntime
        except ImportError as exc:
            raise ModelMissing(f"nudity detection needs the {PACKAGE} package: {exc}") from exc
        path = Path(nudenet.__file__).parent / "320n.onnx"
        if not path.is_file():
            raise ModelMissing(f"the {PACKAGE} package has no model at {path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        model = nudenet.NudeDetector(model_path=str(path))
        # NudeNet opens its session with every core; a worker is one core.
        model.onnx_session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._model = model

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        if self._model is None:
            self.load()
        array = bgr(item.image, MAX_SIDE)
        scale = item.image.width / array.shape[1]
        hits = [
            d
            for d in self._model.detect(array)  # type: ignore[union-attr]
            if d.get("class") in EXPLICIT and float(d.get("score", 0)) >= FLAG_SCORE
        ]
        if not hits:
            return []
        hits.sort(key=lambda d: -float(d["score"]))
        top = float(hits[0]["score"])
        parts = ", ".join(dict.fromkeys(EXPLICIT[d["class"]] for d in hits))
        boxes = tuple(_box(d["box"], scale) for d in hits)
        scores = [{"part": d["class"], "score": round(float(d["score"]), 3)} for d in hits]
        if top >= REJECT_SCORE:
            return [
                Finding(
                    detector=self.name,
                    position=item.position,
                    words=f"Explicit: {parts} in image {item.position} ({REJECT_RULE})",
                    verdict=Verdict.REJECT,
                    boxes=boxes,
                    blur=True,
                    detail={"scores": scores, "rule": REJECT_RULE},
                )
            ]
        return [
            Finding(
                detector=self.name,
                position=item.position,
                words=f"Possible nudity: {parts} in image {item.position}",
                boxes=boxes,
                blur=True,
                detail={"scores": scores},
            )
        ]


def _box(xywh: list[int], scale: float) -> Box:
    x, y, w, h = (int(round(v * scale)) for v in xywh)
    return Box(x, y, x + w, y + h)
