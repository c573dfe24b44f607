"""An independent reference for the detector, and matching two lists of objects.

The reference uses neither the service's decoder nor its output reading: Pillow opens the
photo whole, turns it upright, squashes it to 300x300 with BILINEAR (the procedure of the
shared MANIFEST.md), and the runtime's own Interpreter runs it; the outputs are read in the
TF1 order that MANIFEST.md gives, class id c naming line c + 1 of the label map.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps


@dataclass(frozen=True)
class Found:
    """One object: label, score and box as fractions (x_min, y_min, x_max, y_max)."""

    label: str
    score: float
    box: tuple[float, float, float, float]


def interpreter_class() -> Any:
    """The runtime's Interpreter class for EDGE_RUNTIME (auto: LiteRT when installed)."""
    choice = os.environ.get("EDGE_RUNTIME", "auto")
    if choice in ("litert", "auto"):
        try:
            from ai_edge_litert.interpreter import Interpreter

            return Interpreter
        except ImportError:
            if choice == "litert":
                raise
    from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,unused-ignore]

    return Interpreter


def reference(model: Path, label_map: Path, data: bytes, min_score: float) -> list[Found]:
    """The detector's objects on a photo, best first, by the reference procedure."""
    picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    tensor = np.asarray(picture.resize((300, 300), Image.Resampling.BILINEAR), np.uint8)[None]
    interpreter = interpreter_class()(model_path=str(model), num_threads=2)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    boxes, classes, scores, count = (
        interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()
    )
    lines = label_map.read_text().splitlines()
    found = []
    for i in range(int(count[0])):
        if scores[0, i] < min_score:
            continue
        y_min, x_min, y_max, x_max = (float(v) for v in np.clip(boxes[0, i], 0.0, 1.0))
        label = lines[int(classes[0, i]) + 1]
        found.append(Found(label, float(scores[0, i]), (x_min, y_min, x_max, y_max)))
    return sorted(found, key=lambda f: -f.score)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x_min, y_min, x_max, y_max) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def unmatched(
    wanted: Sequence[Found],
    candidates: Sequence[Found],
    *,
    min_iou: float,
    score_tolerance: float,
) -> list[Found]:
    """The objects of `wanted` with no candidate of the same label, box (IoU) and score."""
    left = list(candidates)
    missing = []
    for want in wanted:
        best = max(
            (
                c
                for c in left
                if c.label == want.label and abs(c.score - want.score) <= score_tolerance
            ),
            key=lambda c: iou(c.box, want.box),
            default=None,
        )
        if best is None or iou(best.box, want.box) < min_iou:
            missing.append(want)
        else:
            left.remove(best)
    return missing


def from_answer(answer: dict[str, Any]) -> list[Found]:
    """The objects of a `/detect` answer, boxes as fractions."""
    return [
        Found(
            d["label"],
            d["score"],
            (
                d["box_normalized"]["x_min"],
                d["box_normalized"]["y_min"],
                d["box_normalized"]["x_max"],
                d["box_normalized"]["y_max"],
            ),
        )
        for d in answer["detections"]
    ]
