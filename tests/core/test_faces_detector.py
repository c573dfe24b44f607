"""BlazeFace read as MediaPipe's graphs read it: the real detectors through our Engine against
an independent decode of the raw interpreter's outputs, the shared face photos, and the
letterbox, anchors and weighted NMS on hand-made values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageOps

from edge_server.core import blazeface
from edge_server.core.blazeface import FULL_RANGE, SHORT_RANGE, BlazeFace, Face, Letterbox
from edge_server.core.detection import Task
from edge_server.core.engine import Engine, LoadOptions
from edge_server.core.imaging import ResizeMode
from edge_server.core.runtime import RuntimeChoice

from support.reference import reference_interpreter

FILES = {
    "short": ("face_detection_short_range.tflite", SHORT_RANGE),
    "full": ("face_detection_full_range_sparse.tflite", FULL_RANGE),
}
GROUPS = ("kit_with_rose.jpg", "obama_and_biden.jpg", "two_people.jpg")


def _people_photos(images_dir: Path) -> list[Path]:
    folder = images_dir / "faces"
    return sorted(
        p
        for p in folder.glob("*/*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.parent.name != "groups"
    )


def _picture(path: Path) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def _reference_anchors(side: int, strides: tuple[int, ...], interpolated: bool) -> list[Any]:
    """SsdAnchorsCalculator's loop, written out: per run of equal strides one feature map,
    two anchors per layer when an interpolated scale is configured."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        repeats = (j - i) * (2 if interpolated else 1)
        cells = math.ceil(side / strides[i])
        for y in range(cells):
            for x in range(cells):
                for _ in range(repeats):
                    out.append(((x + 0.5) / cells, (y + 0.5) / cells))
        i = j
    return out


def _reference_decode(raw: Any, logits: Any, model: BlazeFace, threshold: float) -> list[Any]:
    """A straightforward decode: a loop over anchors, then weighted NMS in plain Python."""
    centres = _reference_anchors(
        model.side, model.strides, model.interpolated_scale_aspect_ratio > 0
    )
    candidates = []
    for i, (ax, ay) in enumerate(centres):
        logit = max(-100.0, min(100.0, float(logits.reshape(-1)[i])))
        score = 1 / (1 + math.exp(-logit))
        if score < threshold:
            continue
        v = raw.reshape(-1, 16)[i] / model.side
        cx, cy, w, h = v[0] + ax, v[1] + ay, v[2], v[3]
        points = [(v[4 + 2 * k] + ax, v[5 + 2 * k] + ay) for k in range(6)]
        candidates.append((score, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], points))
    candidates.sort(key=lambda c: -c[0])

    def overlap(a: list[float], b: list[float]) -> float:
        iw = min(a[2], b[2]) - max(a[0], b[0])
        ih = min(a[3], b[3]) - max(a[1], b[1])
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union

    faces = []
    while candidates:
        top = candidates[0]
        group = [c for c in candidates if overlap(c[1], top[1]) > 0.3]
        candidates = [c for c in candidates if overlap(c[1], top[1]) <= 0.3]
        total = sum(c[0] for c in group)
        box = [sum(c[0] * c[1][k] for c in group) / total for k in range(4)]
        points = [
            (
                sum(c[0] * c[2][k][0] for c in group) / total,
                sum(c[0] * c[2][k][1] for c in group) / total,
            )
            for k in range(6)
        ]
        faces.append((top[0], box, points))
    return faces


@pytest.fixture(scope="module", params=sorted(FILES))
def detector(request: pytest.FixtureRequest, models_dir: Path, runtime: str) -> Any:
    """Each BlazeFace model through our Engine and through the runtime directly."""
    name, model = FILES[request.param]
    path = models_dir / name
    engine = Engine.load(
        path,
        LoadOptions(runtime=RuntimeChoice(runtime), num_threads=1, resize=ResizeMode.letterbox),
    )
    yield engine, model, reference_interpreter(path, runtime)
    engine.close()


def _invoke(engine: Engine, tensor: npt.NDArray[np.float32]) -> tuple[Any, Any]:
    inference = engine.submit(tensor).result(timeout=60)
    regressors, scores = inference.outputs
    return regressors, scores


def test_a_blazeface_model_loads_as_a_face_detector(detector: Any) -> None:
    """The Engine knows BlazeFace by its outputs: task faces, no labels, both outputs read."""
    engine, model, _ = detector
    assert engine.info.task is Task.faces
    assert engine.info.labels == []
    outputs = [{"shape": o.shape, "dtype": o.dtype} for o in engine.info.outputs]
    assert blazeface.model_for(outputs) == model
    regressors, scores = _invoke(engine, np.zeros((1, model.side, model.side, 3), np.float32))
    assert regressors.shape == (1, model.anchors, 16) and scores.shape == (1, model.anchors, 1)


def test_the_decode_matches_an_independent_reference_on_every_face_photo(
    detector: Any, images_dir: Path
) -> None:
    """Our Engine + decode + weighted NMS give the reference decode's faces (score, box and
    keypoints within 1e-4) of the raw interpreter's outputs on every shared photo."""
    engine, model, interpreter = detector
    compared = 0
    for path in [*_people_photos(images_dir), *(images_dir / "faces/groups").glob("*")]:
        tensor, _ = blazeface.letterbox(_picture(path), model.side)
        regressors, scores = _invoke(engine, tensor)
        ours = blazeface.decode(regressors, scores, model)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
        interpreter.invoke()
        outs = interpreter.get_output_details()
        raw = interpreter.get_tensor(outs[0]["index"])
        logits = interpreter.get_tensor(outs[1]["index"])
        theirs = _reference_decode(raw, logits, model, model.min_score)
        assert len(ours) == len(theirs), path.name
        for face, (score, box, points) in zip(ours, theirs, strict=True):
            assert face.score == pytest.approx(score, abs=1e-4)
            assert [face.x_min, face.y_min, face.x_max, face.y_max] == pytest.approx(box, abs=1e-4)
            assert [c for p in face.keypoints for c in p] == pytest.approx(
                [c for p in points for c in p], abs=1e-4
            )
            compared += 1
    assert compared >= 20


def test_full_range_finds_every_face_of_the_shared_photos(
    models_dir: Path, images_dir: Path, runtime: str
) -> None:
    """The full-range model (the default) finds one face in each person's photo, two in each
    group photo (obama_and_biden.jpg's third, a child half hidden in the background, looking
    down, is not found by either model), each box around its eyes."""
    name, model = FILES["full"]
    engine = Engine.load(models_dir / name, LoadOptions(runtime=RuntimeChoice(runtime)))
    try:
        for path in _people_photos(images_dir) + [images_dir / "faces/groups" / g for g in GROUPS]:
            picture = _picture(path)
            tensor, placed = blazeface.letterbox(picture, model.side)
            found = [
                blazeface.unletterbox(f, placed)
                for f in blazeface.decode(*_invoke(engine, tensor), model)
            ]
            expected = 2 if path.parent.name == "groups" else 1
            assert len(found) == expected, path.name
            for face in found:
                eyes = face.keypoints[:2]
                assert all(
                    face.x_min <= x <= face.x_max and face.y_min <= y <= face.y_max for x, y in eyes
                )
    finally:
        engine.close()


def test_letterbox_bands_are_black_and_undone() -> None:
    """A 200x100 picture fills the middle half of the tensor; bands are -1 (black, as
    ImageToTensor's BORDER_ZERO); a face on the tensor maps back onto the picture."""
    picture = Image.new("RGB", (200, 100), (255, 255, 255))
    tensor, placed = blazeface.letterbox(picture, 128)
    assert placed == Letterbox(0.0, 0.25, 1.0, 0.5)
    assert tensor.shape == (1, 128, 128, 3)
    assert tensor[0, :32].max() == -1.0 and tensor[0, 96:].max() == -1.0
    assert tensor[0, 32:96].min() == 1.0
    face = Face(0.25, 0.375, 0.75, 0.625, 0.9, ((0.5, 0.5),) * 6)
    back = blazeface.unletterbox(face, placed)
    assert (back.x_min, back.y_min, back.x_max, back.y_max) == (0.25, 0.25, 0.75, 0.75)
    assert back.keypoints[0] == (0.5, 0.5)


def test_anchor_counts_are_the_graphs_num_boxes() -> None:
    """896 anchors for short range (16x16x2 + 8x8x6), 2304 for full range (48x48), centred."""
    assert SHORT_RANGE.anchors == 896 and FULL_RANGE.anchors == 2304
    anchors = blazeface.anchors(SHORT_RANGE)
    assert tuple(anchors[0]) == (1 / 32, 1 / 32) and tuple(anchors[1]) == (1 / 32, 1 / 32)
    assert tuple(anchors[512]) == (1 / 16, 1 / 16)
    assert tuple(blazeface.anchors(FULL_RANGE)[-1]) == pytest.approx((95 / 96, 95 / 96))


def test_weighted_nms_averages_a_cluster_by_score_and_keeps_the_best_score() -> None:
    """Two overlapping boxes become one at their score-weighted mean with the higher score; a
    box apart stays its own face."""
    boxes = np.array([[0, 0, 1, 1], [0.1, 0.1, 1.1, 1.1], [5, 5, 6, 6]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    points[1] += 1.0
    faces = blazeface.weighted_nms(boxes, scores, points)
    assert len(faces) == 2
    assert faces[0].score == pytest.approx(0.9)
    assert faces[0].x_min == pytest.approx(0.06 / 1.5)
    assert faces[0].keypoints[0] == pytest.approx((0.4, 0.4))
    assert faces[1].x_min == 5.0 and faces[1].score == pytest.approx(0.7)


def test_other_models_are_not_taken_for_blazeface() -> None:
    """Output shapes of another count, another width or another dtype are not BlazeFace."""
    f32 = np.float32
    assert blazeface.model_for([{"shape": (1, 896, 16), "dtype": f32}]) is None
    assert (
        blazeface.model_for(
            [{"shape": (1, 900, 16), "dtype": f32}, {"shape": (1, 900, 1), "dtype": f32}]
        )
        is None
    )
    assert (
        blazeface.model_for(
            [{"shape": (1, 896, 16), "dtype": np.uint8}, {"shape": (1, 896, 1), "dtype": f32}]
        )
        is None
    )
