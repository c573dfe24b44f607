"""Reading a detector's post-processed outputs and placing its boxes (pure functions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge_server.core.detection import (
    Box,
    OutputLayout,
    class_labels,
    output_layout,
    read_detections,
    uncrop,
    unfit,
)
from edge_server.core.imaging import ResizeMode, fit
from edge_server.core.region import Region


def _detail(name: str, shape: list[int], dtype: Any = np.float32) -> dict[str, Any]:
    return {"name": name, "shape": np.array(shape), "dtype": dtype}


TF1 = [
    _detail("TFLite_Detection_PostProcess", [1, 10, 4]),
    _detail("TFLite_Detection_PostProcess:1", [1, 10]),
    _detail("TFLite_Detection_PostProcess:2", [1, 10]),
    _detail("TFLite_Detection_PostProcess:3", [1]),
]
# EfficientDet-Lite / Model Maker order: scores, boxes, count, classes.
EFFICIENTDET = [
    _detail("StatefulPartitionedCall:1", [1, 25]),
    _detail("StatefulPartitionedCall:3", [1, 25, 4]),
    _detail("StatefulPartitionedCall:0", [1]),
    _detail("StatefulPartitionedCall:2", [1, 25]),
]


def test_both_converter_orders_are_recognised() -> None:
    """TF1's boxes-classes-scores-count and EfficientDet-Lite's scores-boxes-count-classes."""
    assert output_layout(TF1) == OutputLayout(boxes=0, classes=1, scores=2, count=3)
    assert output_layout(EFFICIENTDET) == OutputLayout(boxes=1, classes=3, scores=0, count=2)


def test_a_classifier_is_not_a_detector() -> None:
    """One output, uint8 outputs, or shapes that do not pair up: not a detector."""
    assert output_layout([_detail("softmax", [1, 1001], np.uint8)]) is None
    assert output_layout([*TF1[:3], _detail("x", [1], np.uint8)]) is None
    assert output_layout([TF1[0], _detail("a", [1, 9]), TF1[2], TF1[3]]) is None


def test_the_label_map_offset_and_gaps() -> None:
    """A leading ??? or background line is not a class; later ??? ids are never reported."""
    assert class_labels(["???", "person", "bicycle"]) == ["person", "bicycle"]
    assert class_labels(["background", "cat"]) == ["cat"]
    assert class_labels(["person", "bicycle"]) == ["person", "bicycle"]


def _outputs(rows: list[tuple[list[float], float, float]], count: float | None = None) -> list[Any]:
    boxes = np.array([[r[0] for r in rows]], dtype=np.float32)
    classes = np.array([[r[1] for r in rows]], dtype=np.float32)
    scores = np.array([[r[2] for r in rows]], dtype=np.float32)
    return [boxes, classes, scores, np.array([len(rows) if count is None else count], np.float32)]


LABELS = ["person", "bicycle", "???", "car"]
LAYOUT = OutputLayout(boxes=0, classes=1, scores=2, count=3)


def test_detections_are_filtered_sorted_and_clamped() -> None:
    """Low scores, ??? and unknown ids, empty boxes and NaN go; the rest best first, clamped."""
    outputs = _outputs(
        [
            ([0.1, 0.1, 0.5, 0.5], 0, 0.5),
            ([-0.02, 0.2, 1.03, 0.9], 3, 0.9),  # strays outside 0..1: clamped
            ([0.1, 0.1, 0.5, 0.5], 2, 0.95),  # ??? : no class
            ([0.1, 0.1, 0.5, 0.5], 40, 0.95),  # past the label map
            ([0.5, 0.5, 0.5, 0.7], 1, 0.8),  # no area
            ([0.1, 0.1, 0.5, 0.5], 1, float("nan")),
            ([0.1, 0.1, 0.5, 0.5], 1, 0.2),  # under min_score
        ]
    )
    found = read_detections(outputs, LAYOUT, LABELS, min_score=0.4, max_results=20)
    assert [(d.label, d.index) for d in found] == [("car", 3), ("person", 0)]
    assert [d.score for d in found] == pytest.approx([0.9, 0.5])
    box = found[0].box
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == pytest.approx((0.2, 0.0, 0.9, 1.0))


def test_count_max_results_and_wanted_labels_limit_the_answer() -> None:
    """Rows past the count are ignored; max_results keeps the best; wanted keeps those labels."""
    rows = [([0.1, 0.1, 0.5, 0.5], float(i % 2), 0.9 - i / 100) for i in range(6)]
    assert len(read_detections(_outputs(rows, 4), LAYOUT, LABELS, min_score=0, max_results=20)) == 4
    best = read_detections(_outputs(rows), LAYOUT, LABELS, min_score=0, max_results=2)
    assert [d.score for d in best] == pytest.approx([0.9, 0.89])
    bikes = read_detections(
        _outputs(rows), LAYOUT, LABELS, min_score=0, max_results=20, wanted={"bicycle"}
    )
    assert {d.label for d in bikes} == {"bicycle"} and len(bikes) == 3


def test_pixels_round_and_stay_inside_the_image() -> None:
    """Pixel boxes are whole numbers within the picture."""
    assert Box(0.0, 0.25, 0.5, 1.0).pixels(640, 480) == (0, 120, 320, 480)
    assert Box(0.1234, 0.0, 0.99999, 0.5).pixels(100, 10) == (12, 0, 100, 5)


@pytest.mark.parametrize("mode", list(ResizeMode))
@pytest.mark.parametrize("size", [(400, 200), (200, 400), (300, 300)])
def test_unfit_undoes_each_resize_mode(mode: ResizeMode, size: tuple[int, int]) -> None:
    """A white square drawn on a picture is found where fit() put it, and unfit() maps it back."""
    width, height = size
    picture = Image.new("RGB", size)
    drawn = (int(width * 0.4), int(height * 0.4), int(width * 0.6), int(height * 0.6))
    picture.paste((255, 255, 255), drawn)
    fitted = np.asarray(fit(picture, (100, 100), mode).convert("L"))
    rows, cols = np.nonzero(fitted > 128)
    on_input = Box(
        cols.min() / 100, rows.min() / 100, (cols.max() + 1) / 100, (rows.max() + 1) / 100
    )
    back = unfit(on_input, width / height, (100, 100), mode).pixels(width, height)
    assert back == pytest.approx(drawn, abs=max(width, height) * 0.02)


def test_uncrop_places_a_box_on_the_whole_image() -> None:
    """A box on the right half's crop lands in the right half of the whole image."""
    box = uncrop(Box(0.0, 0.0, 0.5, 1.0), Region(0.5, 0.0, 1.0, 0.5))
    assert box == Box(0.5, 0.0, 0.75, 0.5)
    assert uncrop(box, None) == box
