"""POST /detect on the real COCO detector: the reference's objects, upright boxes, crops, limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from conftest import DETECTOR, SMALL_MODEL, images_folder
from support import variants
from support.detections import from_answer, iou, reference, unmatched
from support.hostile import BadRequest, corpus

Photo = Callable[[str], bytes]
PHOTOS = sorted(p.name for p in images_folder().iterdir() if p.suffix in (".jpg", ".png"))
# Objects near the 0.4 floor may fall either side of it in one pipeline or the other, so
# both sides are asked down to 0.3 and only objects at 0.45 or more must be matched.
FLOOR, MUST = 0.3, 0.45


def _detect(http: httpx.Client, data: bytes, **params: str) -> dict[str, Any]:
    response = http.post("/detect", params=params, files={"image": ("photo", data)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _corners(detection: dict[str, Any]) -> list[int]:
    return [detection["box"][k] for k in ("x_min", "y_min", "x_max", "y_max")]


@pytest.mark.parametrize("name", PHOTOS)
def test_objects_match_the_independent_reference(
    detector_http: httpx.Client, models_dir: Path, photo: Photo, name: str
) -> None:
    """Same labels and boxes (IoU >= 0.9, scores within 0.05) as the interpreter run by hand."""
    data = photo(name)
    expected = reference(
        models_dir / f"{DETECTOR}.tflite", models_dir / "coco_ssd_labelmap.txt", data, FLOOR
    )
    got = from_answer(_detect(detector_http, data, min_score=str(FLOOR)))
    strong = [f for f in expected if f.score >= MUST]
    assert strong, f"the reference finds nothing in {name}"
    assert unmatched(strong, got, min_iou=0.9, score_tolerance=0.05) == []
    assert (
        unmatched([f for f in got if f.score >= MUST], expected, min_iou=0.9, score_tolerance=0.05)
        == []
    )


def test_kite_and_cold_has_its_ten_objects(detector_http: httpx.Client, photo: Photo) -> None:
    """The MANIFEST's ten detections: seven people and three kites, best first, in pixels."""
    answer = _detect(detector_http, photo("kite_and_cold.jpg"))
    found = answer["detections"]
    assert isinstance(found, list)
    assert Counter(d["label"] for d in found) == {"person": 7, "kite": 3}
    scores = [d["score"] for d in found]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.4
    assert answer["image"] == {
        "width": 1352,
        "height": 900,
        "format": "JPEG",
        "orientation_applied": False,
        "resize": "squash",  # the catalog's fit for the detector
    }
    for d in found:
        box = d["box"]
        assert 0 <= box["x_min"] < box["x_max"] <= 1352 and 0 <= box["y_min"] < box["y_max"] <= 900
        assert d["index"] == {"person": 0, "kite": 37}[d["label"]]
    assert set(answer["timing_ms"]) == {
        "queue",
        "decode",
        "preprocess",
        "inference",
        "postprocess",
        "total",
    }


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_exif_rotated_photo_gets_upright_boxes(
    detector_http: httpx.Client, photo: Photo, orientation: int
) -> None:
    """A photo stored turned, with the EXIF tag that rights it, gets the upright photo's boxes."""
    same_quality = variants.encode(variants.open_rgb(photo("parrot.jpg")), "JPEG", quality=95)
    upright = [f for f in from_answer(_detect(detector_http, same_quality)) if f.score >= MUST]
    turned = _detect(
        detector_http,
        variants.exif_rotated(photo("parrot.jpg"), orientation),
        min_score=str(FLOOR),
    )
    assert [f.label for f in upright] == ["bird"]
    assert turned["image"]["orientation_applied"] is True
    assert (turned["image"]["width"], turned["image"]["height"]) == (512, 929)
    assert unmatched(upright, from_answer(turned), min_iou=0.9, score_tolerance=0.05) == []


def test_a_crop_answers_in_whole_image_pixels(detector_http: httpx.Client, photo: Photo) -> None:
    """Boxes found in a crop lie inside it and are given in the whole photo's pixels."""
    data = photo("kite_and_cold.jpg")
    whole = _detect(detector_http, data, labels="kite", min_score="0.5")["detections"]
    cropped = _detect(detector_http, data, crop="0.4,0,0.6,0.25", labels="kite")["detections"]
    assert isinstance(whole, list) and isinstance(cropped, list) and cropped
    for d in cropped:
        box = d["box"]
        assert 0.4 * 1352 - 1 <= box["x_min"] < box["x_max"] <= 0.6 * 1352 + 1
        assert 0 <= box["y_min"] < box["y_max"] <= 0.25 * 900 + 1
    # The big kite at the top is in both answers, at about the same place (the crop shows it
    # to the model at four times the resolution, so its box is tighter).
    top = max(whole, key=lambda d: d["score"])
    assert max(iou(_corners(top), _corners(d)) for d in cropped) >= 0.5


def test_filters_and_limits(detector_http: httpx.Client, photo: Photo) -> None:
    """labels keeps those labels, max_results the best N, min_score the confident ones."""
    data = photo("kite_and_cold.jpg")
    kites = _detect(detector_http, data, labels="kite,zebra")["detections"]
    assert [d["label"] for d in kites] == ["kite"] * 3
    best = _detect(detector_http, data, max_results="2")["detections"]
    assert len(best) == 2
    sure = _detect(detector_http, data, min_score="0.7")["detections"]
    assert sure and all(d["score"] >= 0.7 for d in sure)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"min_score": "high"}, "min_score"),
        ({"min_score": "1.5"}, "outside 0..1"),
        ({"min_score": "nan"}, "outside 0..1"),
        ({"max_results": "0"}, "max_results"),
        ({"max_results": "101"}, "max_results"),
        ({"max_results": "2.5"}, "max_results"),
        ({"max_results": "\u00b2"}, "max_results"),
        ({"max_results": "0" * 5000}, "max_results"),
        ({"labels": " , "}, "labels is empty"),
        ({"crop": "0.5,0.5,0.2,1"}, "empty box"),
        ({"model": SMALL_MODEL}, "classification model"),
        ({"model": "nope"}, "no model named"),
    ],
)
def test_bad_parameters_are_refused_before_the_upload(
    detector_http: httpx.Client, photo: Photo, params: dict[str, str], detail: str
) -> None:
    """Each bad parameter is a 4xx problem+json naming it; the detector keeps serving."""
    response = detector_http.post("/detect", params=params, files={"image": photo("parrot.jpg")})
    assert response.status_code in (400, 404), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert _detect(detector_http, photo("parrot.jpg"))["detections"]


def test_classify_and_detect_each_find_their_model(
    detector_http: httpx.Client, photo: Photo
) -> None:
    """/classify uses the classifier though the detector is the default; /v1/models says tasks."""
    answer = detector_http.post("/classify", files={"image": photo("parrot.jpg")})
    assert answer.status_code == 200 and answer.json()["model"]["name"] == SMALL_MODEL
    wrong = detector_http.post(
        "/classify", params={"model": "objects"}, files={"image": photo("parrot.jpg")}
    )
    assert wrong.status_code == 400 and "/detect" in wrong.json()["detail"]
    tasks = {m["name"]: m["task"] for m in detector_http.get("/v1/models").json()["models"]}
    assert tasks == {DETECTOR: "detection", SMALL_MODEL: "classification"}


def test_a_detection_is_counted_per_model_and_label(
    detector_http: httpx.Client, photo: Photo
) -> None:
    """edge_detections counts answered objects; stage times carry the detection task."""
    from conftest import metric

    before = metric(
        detector_http.get("/metrics").text, "edge_detections_total", model=DETECTOR, label="bird"
    )
    _detect(detector_http, photo("parrot.jpg"))
    text = detector_http.get("/metrics").text
    assert metric(text, "edge_detections_total", model=DETECTOR, label="bird") == before + 1
    assert (
        metric(
            text,
            "edge_classify_stage_seconds_count",
            stage="total",
            model=DETECTOR,
            task="detection",
        )
        >= 1
    )


def test_a_huge_photo_is_refused_not_detected(detector_http: httpx.Client) -> None:
    """An image over the pixel limit is a 413 before decoding, as on /classify."""
    big = Image.new("RGB", (12000, 10000))
    data = variants.encode(big, "JPEG", quality=20)
    response = detector_http.post("/detect", files={"image": data})
    assert response.status_code in (413,), response.text


# The cases of /classify's body and headers (its own parameters, top_k..., mean nothing here).
HOSTILE = [
    case
    for case in corpus(images_folder(), 2_000_000)
    if case.path == "/classify" and not case.params
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_hostile_input_on_both_detection_routes(
    detector_http: httpx.Client, photo: Photo, case: BadRequest
) -> None:
    """Each broken request: never a 5xx; /detect answers as /classify does, DeepStack's route in
    its own error shape; and the detector keeps serving."""
    request = {
        "params": case.params,
        "headers": case.headers,
        "content": case.content,
        "files": case.files,
        "data": case.data,
    }
    native = detector_http.request(case.method, "/detect", **request)  # type: ignore[arg-type]
    assert 400 <= native.status_code < 500, native.text
    assert native.status_code == case.status, native.text
    assert native.headers["content-type"] == "application/problem+json"
    assert case.detail in native.json()["detail"]
    deepstack = detector_http.request(case.method, "/v1/vision/detection", **request)  # type: ignore[arg-type]
    assert 400 <= deepstack.status_code < 500, deepstack.text
    body = deepstack.json()
    assert body["success"] is False and body["code"] == deepstack.status_code and body["error"]
    assert _detect(detector_http, photo("parrot.jpg"))["detections"]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("high", "not a number"),
        ("1.5", "outside 0..1"),
        ("-0.1", "outside 0..1"),
        ("inf", "outside"),
    ],
)
def test_deepstack_min_confidence_is_checked(
    detector_http: httpx.Client, photo: Photo, value: str, detail: str
) -> None:
    """A bad min_confidence is a 400 in DeepStack's shape, for detection and custom models."""
    for path in ("/v1/vision/detection", f"/v1/vision/custom/{SMALL_MODEL}"):
        response = detector_http.post(
            path, files={"image": ("image", photo("parrot.jpg"))}, data={"min_confidence": value}
        )
        assert response.status_code == 400
        body = response.json()
        assert body == {"success": False, "error": body["error"], "code": 400}
        assert detail in body["error"]


def test_deepstack_status_and_unserved_routes(detector_http: httpx.Client) -> None:
    """Blue Iris' probes answer; plate and other unserved routes are a 404 naming the served
    routes."""
    assert detector_http.get("/v1/status/ping").json()["success"] is True
    update = detector_http.get("/v1/status/updateavailable").json()
    assert update["updateAvailable"] is False and update["current"] == update["latest"]
    assert {"major", "minor", "patch"} <= set(update["version"])
    listed = detector_http.post("/v1/vision/custom/list").json()
    assert listed == {"success": True, "models": [DETECTOR, SMALL_MODEL]}
    for path in ("/v1/vision/alpr", "/v1/vision/face/unknown_action", "/v1/vision/plate"):
        response = detector_http.post(path)
        assert response.status_code == 404
        assert "/v1/vision/detection" in response.json()["error"]
    wrong_method = detector_http.get("/v1/vision/detection")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


def test_batch_classifies_beside_a_default_detector(
    detector_http: httpx.Client, photo: Photo
) -> None:
    """/classify/batch uses the served classifier though the detector is the default."""
    response = detector_http.post(
        "/classify/batch",
        files=[
            ("images", ("a.jpg", photo("parrot.jpg"))),
            ("images", ("b.png", photo("coffee.png"))),
        ],
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["result"]["model"]["name"] for i in items] == [SMALL_MODEL, SMALL_MODEL]
    assert items[0]["result"]["predictions"][0]["label"] == "macaw"
    wrong = detector_http.post(
        "/classify/batch", params={"model": "objects"}, files=[("images", ("a.jpg", b"x"))]
    )
    assert wrong.status_code == 400 and "/detect" in wrong.json()["detail"]
