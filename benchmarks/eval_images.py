"""Accuracy of the image detectors on the generated, labelled set (benchmarks/imageset.py).

``python -m benchmarks.eval_images`` prints one JSON line per figure and a table for
docs/image-safety.md: for the text detector, recall on the hands with personal data or a
place name and false alarms on the rest; for the nudity detector, false alarms on every
picture (the set holds no explicit image) and the highest score it gave; for known
images, recall per kind of repost and false matches between different pictures; for
faces, recall on every labelled face (photos, pasted heads, drawings), per size, angle and
lighting, false alarms on every picture without a face, at several thresholds, and the
CPU time per picture.
"""

from __future__ import annotations

import collections
import json
import statistics
import time
from collections.abc import Sequence

from benchmarks.imageset import PLACE_NAMES, Sample, build
from monitor.analysis.faces import MAX_SIDE as FACE_MAX_SIDE
from monitor.analysis.faces import THRESHOLD as FACE_THRESHOLD
from monitor.analysis.faces import FaceDetector
from monitor.analysis.findings import Box, Context, ImageInput, Verdict
from monitor.analysis.known import KnownImageDetector, hash_image
from monitor.analysis.nudity import EXPLICIT, NudityDetector
from monitor.analysis.text import TextDetector
from monitor.models import ModerationRule
from monitor.services.known_images import MIN_QUALITY, HashIndex
from monitor.services.rules import CompiledRules

_RULE_OF_LABEL = {
    "Personal data: looks like a UK phone number": "uk_phone",
    "Personal data: contains an email address": "email",
    "Personal data: looks like a UK postcode": "uk_postcode",
}


def _context() -> Context:
    rules = [
        ModerationRule(id=n, kind="detector", pattern=p, action="flag", created_by="")  # type: ignore[call-arg]
        for n, p in enumerate(("uk_phone", "email", "uk_postcode"), start=1)
    ]
    places = ModerationRule(
        id=9, kind="place_names", pattern="Places", action="flag", created_by=""
    )  # type: ignore[call-arg]
    compiled = CompiledRules([*rules, places], [(places, name) for name in PLACE_NAMES])
    return Context(
        text_reasons=lambda text: [(m.label, Verdict.FLAG) for m in compiled.text_matches(text)]
    )


def _rules(reasons: Sequence[str]) -> set[str]:
    return {
        _RULE_OF_LABEL.get(r.split(" (in image")[0], "place" if "Place name" in r else r)
        for r in reasons
    }


def text(samples: list[Sample]) -> dict[str, object]:
    detector = TextDetector()
    detector.load()
    hits = misses = false_alarms = negatives = 0
    missed: list[str] = []
    by_rule: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for number, sample in enumerate(samples):
        found = detector.analyse(ImageInput(sample.image, 1, number, number), _context())
        rules = _rules([f.words for f in found])
        if sample.expect_rule:
            by_rule[sample.expect_rule][1] += 1
            if sample.expect_rule in rules:
                hits += 1
                by_rule[sample.expect_rule][0] += 1
            else:
                misses += 1
                missed.append(sample.name)
        else:
            negatives += 1
            false_alarms += bool(found)
    return {
        "detector": "text",
        "recall": round(hits / (hits + misses), 3),
        "recall_by_rule": {k: f"{v[0]}/{v[1]}" for k, v in by_rule.items()},
        "precision": round(hits / (hits + false_alarms), 3) if hits + false_alarms else None,
        "false_alarm_rate": round(false_alarms / negatives, 3),
        "positives": hits + misses,
        "negatives": negatives,
        "missed": missed,
    }


class _Scores:
    """The real model, keeping the highest explicit-part score it reports."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.top = 0.0

    def detect(self, array: object) -> list[dict[str, object]]:
        found: list[dict[str, object]] = self.model.detect(array)  # type: ignore[attr-defined]
        for d in found:
            if d["class"] in EXPLICIT:
                self.top = max(self.top, float(d["score"]))  # type: ignore[arg-type]
        return found


def nudity(samples: list[Sample]) -> dict[str, object]:
    real = NudityDetector()
    real.load()
    scores = _Scores(real._model)  # noqa: SLF001 - wrap the loaded model, not a stand-in
    detector = NudityDetector(scores)
    alarms = [
        s.name
        for n, s in enumerate(samples)
        if detector.analyse(ImageInput(s.image, 1, n, n), Context())
    ]
    return {
        "detector": "nudity",
        "false_alarm_rate": round(len(alarms) / len(samples), 3),
        "negatives": len(samples),
        "false_alarms": alarms,
        "highest_explicit_score": round(scores.top, 3),
    }


def known(samples: list[Sample]) -> dict[str, object]:
    originals = {s.name: s for s in samples if s.group == "original"}
    names = list(originals)
    index = HashIndex([hash_image(originals[n].image)[0][0] for n in names])
    per_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    wrong: list[str] = []
    detector = KnownImageDetector()
    for number, sample in enumerate(samples):
        matched: list[str] = []

        def match(candidate: str, into: list[str] = matched) -> tuple[str, Verdict] | None:
            found = index.nearest(candidate)
            if found is None:
                return None
            into.append(names[found[0]])
            return names[found[0]], Verdict.REJECT

        detector.analyse(ImageInput(sample.image, 1, number, number), Context(known_match=match))
        if sample.group == "repost":
            kind = sample.name.rsplit("-", 1)[1]
            per_kind[kind][0] += matched[:1] == [sample.copy_of]
            per_kind[kind][1] += 1
        elif sample.group != "original" and matched and matched[0] != sample.name:
            wrong.append(f"{sample.name}~{matched[0]}")
    others = [s for s in samples if s.group not in ("original", "repost")]
    flat = sum(hash_image(s.image)[1] < MIN_QUALITY for s in others)
    total = sum(v[1] for v in per_kind.values())
    return {
        "detector": "known_image",
        "recall": round(sum(v[0] for v in per_kind.values()) / total, 3),
        "recall_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in per_kind.items()},
        "false_matches": len(wrong),
        "false_match_pairs": wrong,
        "negatives": len(others),
        "too_flat_to_match": flat,
    }


#: The face thresholds measured: each candidate is read once at the lowest.
FACE_THRESHOLDS = (0.3, 0.4, FACE_THRESHOLD, 0.6, 0.7)
#: A larger analysis size than the detector's, to measure what it would find and cost.
FACE_LARGER_SIDE = 1024


def _matched(labels: Sequence[tuple[int, int, int, int]], found: list[tuple[Box, float]]) -> int:
    """Labelled faces with a detection centred inside them (each detection used once)."""
    free = sorted(found, key=lambda pair: -pair[1])
    hits = 0
    for left, top, right, bottom in labels:
        for pair in free:
            box = pair[0]
            x, y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
            if left <= x <= right and top <= y <= bottom:
                free.remove(pair)
                hits += 1
                break
    return hits


def _kind(sample: Sample) -> str:
    """What a face picture tests: its size, angle, lighting, a group, a portrait, a drawing."""
    if sample.group == "drawn_face":
        return "drawn"
    if "-face-" not in sample.name:
        return "group" if sample.name.startswith("group-") else "portrait"
    return sample.name.split("-face-", 1)[1]


def faces(samples: list[Sample]) -> dict[str, object]:
    detector = FaceDetector()
    detector.load()
    labelled = [s for s in samples if s.face_boxes]
    negatives = [s for s in samples if not s.faces]
    lowest = min(FACE_THRESHOLDS)
    seconds: list[float] = []
    found: dict[int, list[tuple[Box, float]]] = {}
    for index, sample in enumerate(samples):
        if not (sample.face_boxes or not sample.faces):
            continue  # a copy of a portrait with no box to check against
        start = time.process_time()
        found[index] = detector.boxes(sample.image, threshold=lowest)
        seconds.append(time.process_time() - start)
    by_threshold: dict[str, dict[str, object]] = {}
    for threshold in FACE_THRESHOLDS:
        kept = {i: [p for p in boxes if p[1] > threshold] for i, boxes in found.items()}
        photo = [(i, s) for i, s in enumerate(samples) if s.face_boxes and s.group == "face"]
        hits = sum(_matched(s.face_boxes, kept[i]) for i, s in photo)
        total = sum(len(s.face_boxes) for _, s in photo)
        extra = sum(len(kept[i]) - _matched(s.face_boxes, kept[i]) for i, s in photo)
        alarms = [s.name for i, s in enumerate(samples) if not s.faces and kept[i]]
        drawn = [(i, s) for i, s in enumerate(samples) if s.group == "drawn_face"]
        by_threshold[str(threshold)] = {
            "face_recall": round(hits / total, 3),
            "faces_found": f"{hits}/{total}",
            "pictures_flagged": f"{sum(bool(kept[i]) for i, _ in photo)}/{len(photo)}",
            "extra_boxes_in_face_pictures": extra,
            "drawn_faces_found": f"{sum(_matched(s.face_boxes, kept[i]) for i, s in drawn)}"
            f"/{len(drawn)}",
            "false_alarm_pictures": len(alarms),
            "false_alarms": alarms,
        }
    default = {i: [p for p in boxes if p[1] > FACE_THRESHOLD] for i, boxes in found.items()}
    per_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    missed: list[str] = []
    for index, sample in enumerate(samples):
        if not sample.face_boxes:
            continue
        hits = _matched(sample.face_boxes, default[index])
        per_kind[_kind(sample)][0] += hits
        per_kind[_kind(sample)][1] += len(sample.face_boxes)
        if hits < len(sample.face_boxes):
            missed.append(f"{sample.name} ({hits}/{len(sample.face_boxes)})")
    photos = [s for s in samples if s.face_boxes and s.group == "face"]
    start = time.process_time()
    larger = sum(
        _matched(s.face_boxes, detector.boxes(s.image, max_side=FACE_LARGER_SIDE)) for s in photos
    )
    larger_s = (time.process_time() - start) / len(photos)
    return {
        "detector": "faces",
        "threshold": FACE_THRESHOLD,
        "max_side": FACE_MAX_SIDE,
        "by_threshold": by_threshold,
        "recall_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in per_kind.items()},
        "missed": missed,
        "face_pictures": len(labelled),
        "negatives": len(negatives),
        "cpu_s_per_picture_median": round(statistics.median(seconds), 3),
        "cpu_s_per_picture_max": round(max(seconds), 3),
        f"at_max_side_{FACE_LARGER_SIDE}": {
            "faces_found": f"{larger}/{sum(len(s.face_boxes) for s in photos)}",
            "cpu_s_per_picture_mean": round(larger_s, 3),
        },
    }


def main() -> None:
    samples = build()
    text_set = [s for s in samples if s.group in ("hand_personal", "hand_benign", "benign")]
    print(json.dumps(faces(samples)), flush=True)
    for result in (text(text_set), nudity(samples), known(samples)):
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
