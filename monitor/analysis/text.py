"""Words on hands: the text in each image, read offline, run through the post-text rules.

The OCR is RapidOCR's PP-OCRv4 (``rapidocr-onnxruntime``, Apache-2.0), whose three ONNX
models ship inside the wheel: nothing is downloaded. The text read is checked by exactly
the rules a post's text is (personal data, blocked terms, place names, through
``Context.text_reasons``), and kept (``Context.notes``) so the card can show it and offer
it as the start of the alt text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from monitor.analysis._images import bgr, note
from monitor.analysis.findings import Context, Finding, ImageInput, ModelMissing, Verdict

PACKAGE = "rapidocr-onnxruntime"
#: The detector reads at most this many pixels a side: handwriting a person can read on a
#: phone screen stays readable (768 read 31 of the 32 evaluation hands, as 1024 did, in
#: half the time; 640 read 28), and the text model's cost is kept down. PP-OCR's own
#: default instead scales the *shorter* side up to 736, so a 3 x 200 image became a
#: 736 x 45,632 tensor: never let a picture's shape choose the work.
MAX_SIDE = 768
#: Narrower than this, or more elongated, and no word a person wrote can be read.
MIN_SIDE = 12
MAX_ASPECT = 25
#: A line read with less confidence than this is dropped (PP-OCR's own default is 0.5).
MIN_LINE_SCORE = 0.6


class TextDetector:
    """Reads the words in an image and flags those the text rules flag."""

    name = "text"

    def __init__(self, engine: Any | None = None) -> None:
        #: The OCR engine; tests may pass a stand-in with the same call signature.
        self._engine = engine

    def load(self) -> None:
        if self._engine is not None:
            return
        try:
            import rapidocr_onnxruntime
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise ModelMissing(f"text in images needs the {PACKAGE} package: {exc}") from exc
        models = Path(rapidocr_onnxruntime.__file__).parent / "models"
        if not any(models.glob("*rec*.onnx")) or not any(models.glob("*det*.onnx")):
            raise ModelMissing(f"the {PACKAGE} package has no OCR models in {models}")
        # One thread: a worker process is one core; more workers, not more threads, scale.
        self._engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, print_verbose=False)

    def read(self, item: ImageInput) -> str:
        """Every line of text in the image, top to bottom, one a line."""
        width, height = item.image.size
        if min(width, height) < MIN_SIDE or max(width, height) > MAX_ASPECT * min(width, height):
            return ""
        if self._engine is None:
            self.load()
        result, _elapsed = self._engine(bgr(item.image, MAX_SIDE))  # type: ignore[misc]
        lines = [
            (box, str(words).strip())
            for box, words, score in result or []
            if float(score) >= MIN_LINE_SCORE and _legible(str(words))
        ]
        # Reading order: by the top of each line's box, then its left.
        lines.sort(key=lambda line: (min(p[1] for p in line[0]), min(p[0] for p in line[0])))
        return "\n".join(words for _box, words in lines)

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        text = self.read(item)
        if not text:
            return []
        note(context.notes, item.media_id, item.post_id)["text"] = text
        return text_findings(item.position, text, context.text_reasons(text))


def text_findings(
    position: int, text: str, reasons: Iterable[tuple[str, Verdict]]
) -> list[Finding]:
    """The findings of the text rules ``text`` (read in image ``position``) tripped: the
    detector's, and a campaign's own rules' (:mod:`monitor.analysis.context`)."""
    return [
        Finding(
            detector=TextDetector.name,
            position=position,
            words=f"{reason} (in image {position}'s text)",
            verdict=verdict,
            detail={"text": text, "rule": reason},
        )
        for reason, verdict in reasons
    ]


def _legible(words: str) -> bool:
    """Not noise: two or more characters, some of them letters or digits in a script the
    model reads besides Chinese (its CJK output on hands is knuckles and creases)."""
    words = words.strip()
    return len(words) >= 2 and any(ch.isalnum() and not "\u2e80" <= ch <= "\u9fff" for ch in words)


def alt_suggestion(text: str) -> str:
    """A start for the alt text of a hand with ``text`` on it, for the moderator to confirm."""
    words = " ".join(text.split())
    return f"Hand with the words “{words}” written on it"
