"""`resize=` per request: the fit a request asks for is the one the model sees, the answer says
which was used, detection boxes come back through it, and a bad mode is refused."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import DEFAULT_MODEL, DETECTOR
from support.detections import Found, from_answer, interpreter_class, unmatched

Photo = Callable[[str], bytes]
# Scores of the 8-bit output are multiples of 1/256; two bilinear resizes of the same crop
# (Pillow's crop-then-resize against ImageOps.fit's resize of a box) differ by a grey level
# here and there, which moves a score by a few steps.
SCORE_NOISE = 0.03


def _classify(http: httpx.Client, data: bytes, **params: str) -> httpx.Response:
    return http.post("/classify", params=params, files={"image": ("photo", data)})


def _detect(http: httpx.Client, data: bytes, **params: str) -> dict[str, Any]:
    response = http.post("/detect", params=params, files={"image": ("photo", data)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _hand_centre_crop(model: Path, data: bytes) -> list[tuple[int, float]]:
    """The model's five best (index, score) on the central square of the photo, by hand:
    Pillow's full decode, the square cut, a bilinear resize, the runtime's own Interpreter."""
    picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    width, height = picture.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2  # the exact centre, half pixels too
    square = picture.resize(
        (224, 224), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
    )
    tensor = np.asarray(square, np.uint8)[None]
    interpreter = interpreter_class()(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    scale, zero = output["quantization"]
    raw = interpreter.get_tensor(output["index"]).reshape(-1).astype(np.float64)
    scores = (raw - zero) * scale
    best = np.argsort(-scores, kind="stable")[:5]
    return [(int(i), float(scores[i])) for i in best]


@pytest.mark.parametrize("image", ["grace_hopper.jpg", "chelsea.png"])
def test_centre_crop_over_http_is_the_hand_made_centre_crop(
    http: httpx.Client, models_dir: Path, photo: Photo, image: str
) -> None:
    """resize=center-crop through the service gives the top-1 and scores of the central
    square cut and resized by hand and run on the runtime's own interpreter."""
    data = photo(image)
    response = _classify(http, data, resize="center-crop", top_k="5")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"]["resize"] == "center-crop"
    got = {p["index"]: p["score"] for p in body["predictions"]}
    expected = _hand_centre_crop(models_dir / f"{DEFAULT_MODEL}.tflite", data)
    assert body["predictions"][0]["index"] == expected[0][0]
    for index, score in expected[:2]:
        assert got[index] == pytest.approx(score, abs=SCORE_NOISE)


def test_each_mode_is_used_and_said(http: httpx.Client, photo: Photo) -> None:
    """Every mode is answered and named in `image.resize`; a request naming none gets the
    model's own fit, the same answer as naming it; the modes differ on a tall photo."""
    data = photo("grace_hopper.jpg")
    answers = {}
    for mode in ("squash", "center-crop", "letterbox"):
        response = _classify(http, data, resize=mode, top_k="1")
        assert response.status_code == 200, response.text
        assert response.json()["image"]["resize"] == mode
        answers[mode] = response.json()["predictions"][0]["score"]
    own = _classify(http, data, top_k="1").json()
    assert own["image"]["resize"] == "center-crop"
    assert own["predictions"][0]["score"] == answers["center-crop"]
    assert len(set(answers.values())) == 3


def test_batch_items_use_the_requested_fit(http: httpx.Client, photo: Photo) -> None:
    """/classify/batch fits each image with the request's resize= and says so per item."""
    files = [
        ("images", ("a.jpg", photo("grace_hopper.jpg"))),
        ("images", ("b.png", photo("coffee.png"))),
    ]
    response = http.post("/classify/batch", params={"resize": "letterbox"}, files=files)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["result"]["image"]["resize"] for item in items] == ["letterbox", "letterbox"]


@pytest.mark.parametrize("route", ["/classify", "/classify/batch", "/detect"])
def test_an_unknown_mode_is_a_counted_400_naming_the_modes(
    http: httpx.Client, photo: Photo, route: str
) -> None:
    """resize=stretch is a problem+json 400 that lists the modes, counted by route and status."""
    response = http.post(
        route, params={"resize": "stretch"}, files={"image": ("p", photo("coffee.png"))}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "resize 'stretch' is not one of squash, center-crop, letterbox"
    )
    text = http.get("/metrics").text
    pattern = rf'edge_http_requests_total\{{method="POST",route="{route}",status="400"\}} (\S+)'
    match = re.search(pattern, text)
    assert match and float(match.group(1)) >= 1


def _letterbox_reference(model: Path, label_map: Path, data: bytes, floor: float) -> list[Found]:
    """The detector's objects on the photo letterboxed by hand: resized to fit 300x300 with
    its aspect kept, centred on grey (128), run on the runtime's own interpreter, boxes moved out
    of the bands."""
    picture = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    scale = min(300 / picture.width, 300 / picture.height)
    width, height = round(picture.width * scale), round(picture.height * scale)
    left, top = round((300 - width) / 2), round((300 - height) / 2)
    canvas = Image.new("RGB", (300, 300), (128, 128, 128))
    canvas.paste(picture.resize((width, height), Image.Resampling.BILINEAR), (left, top))
    tensor = np.asarray(canvas, np.uint8)[None]
    side = 300
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
        if scores[0, i] < floor:
            continue
        y0, x0, y1, x1 = (float(v) for v in boxes[0, i])
        box = (
            min(max((x0 * side - left) / width, 0.0), 1.0),
            min(max((y0 * side - top) / height, 0.0), 1.0),
            min(max((x1 * side - left) / width, 0.0), 1.0),
            min(max((y1 * side - top) / height, 0.0), 1.0),
        )
        found.append(Found(lines[int(classes[0, i]) + 1], float(scores[0, i]), box))
    return found


def test_letterboxed_boxes_come_back_onto_the_photo(
    detector_http: httpx.Client, models_dir: Path, photo: Photo
) -> None:
    """kite_and_cold with resize=letterbox: the objects and boxes of a letterbox made by hand,
    and most of the manifest's ten objects (found with the detector's own fit) in their
    places; the bands mapped out."""
    data = photo("kite_and_cold.jpg")
    answer = _detect(detector_http, data, resize="letterbox", min_score="0.3")
    assert answer["image"]["resize"] == "letterbox"
    got = from_answer(answer)
    expected = _letterbox_reference(
        models_dir / f"{DETECTOR}.tflite", models_dir / "coco_ssd_labelmap.txt", data, 0.3
    )
    strong = [f for f in expected if f.score >= 0.45]
    assert len(strong) >= 5, strong
    assert unmatched(strong, got, min_iou=0.9, score_tolerance=0.05) == []
    known = from_answer(_detect(detector_http, data))
    assert len(known) == 10 and {f.label for f in known} == {"person", "kite"}
    # The small model input of a letterbox (the frame is 300x200 inside it) loses some of the
    # smallest people; the rest lie where squashing found them. Boxes left in the letterbox's
    # coordinates would be squeezed by a third in height and miss (IoU well under 0.5).
    assert len(unmatched(known, got, min_iou=0.5, score_tolerance=1.0)) <= 4
