"""Objects found by an SSD-style detector: reading its outputs, and placing its boxes.

Detectors converted to TFLite end in the `TFLite_Detection_PostProcess` op (non-maximum
suppression inside the model), whose four float32 outputs are boxes [1, N, 4] as (ymin, xmin,
ymax, xmax) normalised to the model input, class ids [1, N], scores [1, N] and the count [1].
Converters emit them in one of two orders: TF1's (boxes, classes, scores, count) and the one
EfficientDet-Lite and Model Maker models have (scores, boxes, count, classes). pycoral's
`detect.get_objects` tells them apart the same way `output_layout` does here.

Class ids count from the first real class: a label map whose first line is `???` or
`background` (the convention of Google's SSD label maps) is shifted by one, and its other
`???` lines are ids with no class, never reported.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from .imaging import ResizeMode
from .region import Region

NO_CLASS = "???"
_PLACEHOLDERS = (NO_CLASS, "background")


class Task(StrEnum):
    """What a model answers: a class for the whole picture, objects with boxes, a class for
    every pixel (`segmentation.py` reads those), faces (a BlazeFace detector's raw anchors,
    `blazeface.py` reads those), or (an embedding model, the base of learned classes) a vector
    that is not served on its own."""

    classification = "classification"
    detection = "detection"
    segmentation = "segmentation"
    faces = "faces"
    embedding = "embedding"


@dataclass(frozen=True)
class OutputLayout:
    """Where each post-processed output sits in the model's output list."""

    boxes: int
    classes: int
    scores: int
    count: int

    def order(self) -> tuple[int, int, int, int]:
        """The output positions as (boxes, classes, scores, count)."""
        return self.boxes, self.classes, self.scores, self.count


@dataclass(frozen=True)
class Box:
    """A box as fractions (0..1) of a picture's width and height."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x_min, y_min, x_max, y_max) in whole pixels of a width x height picture."""
        return (
            min(width, max(0, round(self.x_min * width))),
            min(height, max(0, round(self.y_min * height))),
            min(width, max(0, round(self.x_max * width))),
            min(height, max(0, round(self.y_max * height))),
        )


@dataclass(frozen=True)
class Detection:
    """One object: its class id, label, score and box."""

    index: int
    label: str
    score: float
    box: Box


def output_layout(details: Sequence[Mapping[str, Any]]) -> OutputLayout | None:
    """The layout of a detector's four outputs, or None when the model is not one."""
    if len(details) != 4 or any(np.dtype(d["dtype"]) != np.float32 for d in details):
        return None
    shapes = [tuple(int(s) for s in d["shape"]) for d in details]
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[0] == 1 and s[2] == 4]
    counts = [i for i, s in enumerate(shapes) if math.prod(s) == 1]
    if len(boxes) != 1 or len(counts) != 1:
        return None
    n = shapes[boxes[0]][1]
    pair = [i for i in range(4) if i not in (boxes[0], counts[0])]
    if any(shapes[i] != (1, n) for i in pair):
        return None
    # pycoral's rule: with the count last it is TF1's order (classes before scores),
    # otherwise EfficientDet-Lite's (scores first, classes last).
    classes, scores = (pair[0], pair[1]) if counts[0] == 3 else (pair[1], pair[0])
    return OutputLayout(boxes=boxes[0], classes=classes, scores=scores, count=counts[0])


def class_labels(lines: Sequence[str]) -> list[str]:
    """Labels indexed by class id: a leading `???` or `background` line is not a class."""
    if lines and lines[0].strip().lower() in _PLACEHOLDERS:
        return list(lines[1:])
    return list(lines)


def read_detections(
    outputs: Sequence[npt.NDArray[Any]],
    layout: OutputLayout,
    labels: Sequence[str],
    *,
    min_score: float,
    max_results: int,
    wanted: Collection[str] | None = None,
) -> list[Detection]:
    """The detections of one invoke, best first, boxes clamped to the model input.

    Ids with no class (`???`, out of range), scores below `min_score`, labels not in `wanted`
    (when given) and boxes with no area are left out.
    """
    boxes = np.asarray(outputs[layout.boxes], dtype=np.float32).reshape(-1, 4)
    classes = np.asarray(outputs[layout.classes]).reshape(-1)
    scores = np.asarray(outputs[layout.scores], dtype=np.float32).reshape(-1)
    count = float(np.asarray(outputs[layout.count]).reshape(-1)[0])
    n = min(len(scores), len(classes), len(boxes), int(count) if math.isfinite(count) else 0)
    found: list[Detection] = []
    for i in range(max(0, n)):
        score = float(scores[i])
        if not math.isfinite(score) or score < min_score:
            continue
        index = int(classes[i]) if math.isfinite(float(classes[i])) else -1
        label = labels[index] if 0 <= index < len(labels) else NO_CLASS
        if label == NO_CLASS or (wanted is not None and label not in wanted):
            continue
        y_min, x_min, y_max, x_max = (min(1.0, max(0.0, float(v))) for v in boxes[i])
        if x_max <= x_min or y_max <= y_min:
            continue
        found.append(Detection(index, label, min(1.0, score), Box(x_min, y_min, x_max, y_max)))
    found.sort(key=lambda d: -d.score)
    return found[:max_results]


def unfit(box: Box, aspect: float, target: tuple[int, int], mode: ResizeMode) -> Box:
    """A box on the model input mapped back onto the picture it was fitted from.

    `aspect` is the picture's width / height; `target` the model input's (width, height).
    Squashing keeps fractions as they are; centre-cropping showed the model the middle of
    the picture; letterboxing added bands the box is moved out of (and clamped to).
    """
    shown = target[0] / target[1]
    if mode is ResizeMode.squash or math.isclose(aspect, shown):
        return box
    if mode is ResizeMode.center_crop:
        if aspect > shown:  # the sides were cut off
            part = shown / aspect
            return _scale_x(box, part, (1 - part) / 2)
        part = aspect / shown  # the top and bottom were cut off
        return _scale_y(box, part, (1 - part) / 2)
    if aspect > shown:  # letterbox: bands above and below
        part = shown / aspect
        return _clamped(_scale_y(box, 1 / part, -(1 - part) / 2 / part))
    part = aspect / shown  # bands left and right
    return _clamped(_scale_x(box, 1 / part, -(1 - part) / 2 / part))


def uncrop(box: Box, region: Region | None) -> Box:
    """A box on a crop mapped back onto the whole picture."""
    if region is None:
        return box
    width, height = region.x1 - region.x0, region.y1 - region.y0
    return Box(
        region.x0 + box.x_min * width,
        region.y0 + box.y_min * height,
        region.x0 + box.x_max * width,
        region.y0 + box.y_max * height,
    )


def _scale_x(box: Box, factor: float, offset: float) -> Box:
    return Box(offset + box.x_min * factor, box.y_min, offset + box.x_max * factor, box.y_max)


def _scale_y(box: Box, factor: float, offset: float) -> Box:
    return Box(box.x_min, offset + box.y_min * factor, box.x_max, offset + box.y_max * factor)


def _clamped(box: Box) -> Box:
    return Box(*(min(1.0, max(0.0, v)) for v in (box.x_min, box.y_min, box.x_max, box.y_max)))
