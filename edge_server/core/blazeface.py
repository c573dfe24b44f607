"""Faces found by MediaPipe's BlazeFace detectors: anchors, decoding and weighted NMS.

BlazeFace ends without post-processing: per anchor, 16 regressor values (the box centre and
size, then six keypoints, each an offset from the anchor in input pixels) and one score
logit. MediaPipe's `face_detection.pbtxt` reads them with three calculators, followed here
exactly: `SsdAnchorsCalculator` (fixed-size anchors centred on each feature-map cell),
`TensorsToDetectionsCalculator` (x/y/w/h scale = the input side, `reverse_output_order`: the
values are x-first, the score clipped to +-100 before the sigmoid, kept from the graph's
min_score_thresh) and `NonMaxSuppressionCalculator` (WEIGHTED, IoU over 0.3: each cluster's
box and keypoints are the score-weighted mean of its members, the score the best one's).
`ImageToTensorCalculator` letterboxes the picture (black bands, `BORDER_ZERO`) into [-1, 1];
`DetectionProjectionCalculator` maps the boxes back, which `unletterbox` does here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

# The graph's TensorsToDetectionsCalculatorOptions.
NUM_COORDS = 16
NUM_KEYPOINTS = 6
SCORE_CLIPPING = 100.0
# NonMaxSuppressionCalculatorOptions.
MIN_SUPPRESSION_THRESHOLD = 0.3


@dataclass(frozen=True)
class BlazeFace:
    """One BlazeFace model's options, as its MediaPipe graph gives them."""

    side: int  # tensor_width = tensor_height
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float  # 0: no interpolated anchor
    min_score: float  # the graph's min_score_thresh

    @property
    def anchors(self) -> int:
        """How many anchors (rows of the model's outputs) these options make."""
        return len(anchors(self))


# face_detection_short_range.pbtxt and face_detection_full_range.pbtxt.
SHORT_RANGE = BlazeFace(128, (8, 16, 16, 16), 1.0, 0.5)
FULL_RANGE = BlazeFace(192, (4,), 0.0, 0.6)


@dataclass(frozen=True)
class Face:
    """A face on the picture the detector was given, as fractions (0..1) of its width and
    height; keypoints (x, y) in the model's order: right eye, left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion (the subject's right and left)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    score: float
    keypoints: tuple[tuple[float, float], ...]

    @property
    def area(self) -> float:
        """The box's area, as a fraction of the picture's."""
        return max(0.0, self.x_max - self.x_min) * max(0.0, self.y_max - self.y_min)


@dataclass(frozen=True)
class Letterbox:
    """Where the picture lies in the square tensor: the fractions its bands take."""

    x_offset: float  # each side band's share of the tensor's width
    y_offset: float
    x_share: float  # the picture's share of the tensor's width
    y_share: float


def model_for(details: Sequence[Mapping[str, Any]]) -> BlazeFace | None:
    """The BlazeFace options a model's outputs fit (regressors [1, N, 16] and scores
    [1, N, 1], N the anchors of a known graph), or None when it is not BlazeFace."""
    if len(details) != 2 or any(np.dtype(d["dtype"]) != np.float32 for d in details):
        return None
    shapes = [tuple(int(s) for s in d["shape"]) for d in details]
    if shapes[0][:1] != (1,) or len(shapes[0]) != 3 or shapes[0][2] != NUM_COORDS:
        return None
    count = shapes[0][1]
    if shapes[1] != (1, count, 1):
        return None
    for model in (SHORT_RANGE, FULL_RANGE):
        if model.anchors == count:
            return model
    return None


def anchors(model: BlazeFace) -> npt.NDArray[np.float32]:
    """The anchor centres [N, 2] as (x, y) fractions of the input, in the model's order.

    SsdAnchorsCalculator with fixed_anchor_size (every anchor 1 x 1), anchor offset 0.5 and
    one aspect ratio: layers of the same stride share one feature map, each layer adding an
    anchor per cell, and one more when an interpolated scale is configured.
    """
    centres: list[tuple[float, float]] = []
    layer = 0
    strides = model.strides
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 1 + (model.interpolated_scale_aspect_ratio > 0.0)
            last += 1
        cells = math.ceil(model.side / strides[layer])
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
        layer = last
    return np.asarray(centres, dtype=np.float32).reshape(-1, 2)


def letterbox(picture: Image.Image, side: int) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """The picture fitted into a side x side tensor in [-1, 1], bands black (ImageToTensor's
    keep_aspect_ratio with BORDER_ZERO), and where it lies in it."""
    width, height = picture.size
    scale = side / max(width, height)
    shown = (max(1, min(side, round(width * scale))), max(1, min(side, round(height * scale))))
    left, top = (side - shown[0]) // 2, (side - shown[1]) // 2
    padded = Image.new("RGB", (side, side), (0, 0, 0))
    padded.paste(picture.resize(shown, Image.Resampling.BILINEAR), (left, top))
    tensor = (np.asarray(padded, dtype=np.float32) - 127.5) / 127.5
    box = Letterbox(left / side, top / side, shown[0] / side, shown[1] / side)
    return tensor[np.newaxis], box


def decode(
    regressors: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    model: BlazeFace,
    *,
    min_score: float | None = None,
) -> list[Face]:
    """The faces of one invoke, on the tensor (fractions of it), best first, after weighted
    NMS. `min_score` defaults to the graph's."""
    threshold = model.min_score if min_score is None else min_score
    raw = np.asarray(regressors, dtype=np.float32).reshape(-1, NUM_COORDS)
    logits = np.clip(
        np.asarray(scores, dtype=np.float32).reshape(-1), -SCORE_CLIPPING, SCORE_CLIPPING
    )
    with np.errstate(over="ignore"):
        probabilities = 1.0 / (1.0 + np.exp(-logits))
    centres = anchors(model)
    if len(centres) != len(raw) or len(raw) != len(probabilities):
        raise ValueError(
            f"{len(raw)} boxes and {len(probabilities)} scores for {len(centres)} anchors"
        )
    kept = np.flatnonzero(probabilities >= threshold)
    if not len(kept):
        return []
    side = float(model.side)  # x_scale = y_scale = w_scale = h_scale
    values = raw[kept] / side
    anchor = centres[kept]
    x = values[:, 0] + anchor[:, 0]
    y = values[:, 1] + anchor[:, 1]
    w, h = values[:, 2], values[:, 3]
    points = values[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchor[:, np.newaxis, :]
    boxes = np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=1)
    sane = (
        (w >= 0) & (h >= 0) & np.isfinite(boxes).all(axis=1) & np.isfinite(points).all(axis=(1, 2))
    )
    return weighted_nms(boxes[sane], probabilities[kept][sane], points[sane])


def weighted_nms(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    keypoints: npt.NDArray[np.float32],
    threshold: float = MIN_SUPPRESSION_THRESHOLD,
) -> list[Face]:
    """MediaPipe's WEIGHTED non-max suppression: the best remaining box gathers every
    remaining box overlapping it by IoU over `threshold` (itself included); the face is their
    score-weighted mean box and keypoints, with the best one's score."""
    order = np.argsort(-scores, kind="stable")
    remaining = [int(i) for i in order]
    faces: list[Face] = []
    while remaining:
        best = remaining[0]
        ious = iou(boxes[best], boxes[remaining])
        cluster = [i for i, overlap in zip(remaining, ious, strict=True) if overlap > threshold]
        rest = [i for i, overlap in zip(remaining, ious, strict=True) if overlap <= threshold]
        weights = scores[cluster]
        total = float(weights.sum())
        box = (boxes[cluster] * weights[:, None]).sum(axis=0) / total if cluster else boxes[best]
        points = (
            (keypoints[cluster] * weights[:, None, None]).sum(axis=0) / total
            if cluster
            else keypoints[best]
        )
        faces.append(
            Face(
                float(box[0]),
                float(box[1]),
                float(box[2]),
                float(box[3]),
                float(scores[best]),
                tuple((float(px), float(py)) for px, py in points),
            )
        )
        if len(rest) == len(remaining):  # MediaPipe's guard: nothing was taken
            break
        remaining = rest
    return faces


def iou(box: npt.NDArray[np.float32], others: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Intersection over union of one (x_min, y_min, x_max, y_max) box with each of others;
    0 where they do not intersect."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where((inter > 0) & (union > 0), inter / union, 0.0)
    return result.astype(np.float32)


def unletterbox(face: Face, placed: Letterbox) -> Face:
    """A face on the tensor mapped onto the picture that was letterboxed into it (fractions
    of the picture; the box clamped to it, the keypoints left where they fall)."""

    def x(value: float) -> float:
        return (value - placed.x_offset) / placed.x_share

    def y(value: float) -> float:
        return (value - placed.y_offset) / placed.y_share

    return Face(
        min(1.0, max(0.0, x(face.x_min))),
        min(1.0, max(0.0, y(face.y_min))),
        min(1.0, max(0.0, x(face.x_max))),
        min(1.0, max(0.0, y(face.y_max))),
        face.score,
        tuple((x(px), y(py)) for px, py in face.keypoints),
    )
