"""The HTTP API on the default model: in process, and through a real server where sockets matter."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from conftest import DEFAULT_MODEL, ServerProcess
from support import variants
from support.reference import REFERENCE, TOLERANCE

Photo = Callable[[str], bytes]
STAGES = ["queue", "decode", "preprocess", "inference", "postprocess", "total"]


def _classify(
    http: httpx.Client, data: bytes, name: str = "photo", **params: str | int | float
) -> httpx.Response:
    return http.post("/classify", files={"image": (name, data)}, params=params)


@pytest.mark.parametrize("image", sorted(REFERENCE[DEFAULT_MODEL]))
def test_real_photos_are_classified(http: httpx.Client, photo: Photo, image: str) -> None:
    """Each photo's top-1 label and score over HTTP, squashed as the manifest's were (the
    model's own fit is the centre crop), match the manifest."""
    label, low, high = REFERENCE[DEFAULT_MODEL][image]
    response = _classify(http, photo(image), image, resize="squash")
    assert response.status_code == 200, response.text
    top = response.json()["predictions"][0]
    assert top["label"].split(",")[0] == label
    assert low - TOLERANCE <= top["score"] <= high + TOLERANCE


def test_answer_carries_predictions_image_and_timing(http: httpx.Client, photo: Photo) -> None:
    """top_k predictions best first, the image facts, the model, and timing in body and header."""
    response = _classify(http, photo("parrot.jpg"), top_k=3)
    body = response.json()
    assert response.headers["content-type"] == "application/json"
    assert body["model"]["name"] == DEFAULT_MODEL and len(body["model"]["sha256"]) == 64
    predictions = body["predictions"]
    assert len(predictions) == 3
    assert [p["score"] for p in predictions] == sorted(
        (p["score"] for p in predictions), reverse=True
    )
    assert predictions[0] == {
        "label": "macaw",
        "index": 89,
        "score": pytest.approx(0.996, abs=0.02),
    }
    assert body["image"] == {
        "width": 512,
        "height": 929,
        "format": "JPEG",
        "orientation_applied": False,
        "resize": "center-crop",  # the catalog's fit for the default model
    }
    timing = body["timing_ms"]
    assert list(timing) == STAGES
    assert all(value >= 0 for value in timing.values())
    assert timing["inference"] > 0 and timing["total"] >= timing["inference"]
    header = dict(re.findall(r"(\w+);dur=([\d.]+)", response.headers["server-timing"]))
    assert list(header) == STAGES
    assert float(header["inference"]) == pytest.approx(timing["inference"], abs=0.001)


def test_request_id_is_echoed_or_made(http: httpx.Client, photo: Photo) -> None:
    """The client's X-Request-ID comes back; without one the server makes one."""
    echoed = http.post(
        "/classify", files={"image": photo("coffee.png")}, headers={"X-Request-ID": "doorbell-42"}
    )
    assert echoed.headers["x-request-id"] == "doorbell-42"
    made = _classify(http, photo("coffee.png")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)


def test_raw_body_file_field_and_exif(http: httpx.Client, photo: Photo) -> None:
    """A raw image/* body, the `file` field and an EXIF-rotated photo all classify."""
    raw = http.post("/classify", content=photo("coffee.png"), headers={"Content-Type": "image/png"})
    assert raw.json()["predictions"][0]["label"] == "espresso"
    as_file = http.post("/classify", files={"file": ("c.png", photo("coffee.png"))})
    assert as_file.json()["predictions"][0]["label"] == "espresso"
    turned = _classify(http, variants.exif_rotated(photo("parrot.jpg"), 6)).json()
    assert turned["image"]["orientation_applied"] is True
    assert (turned["image"]["width"], turned["image"]["height"]) == (512, 929)
    assert turned["predictions"][0]["label"] == "macaw"


def test_threshold_drops_low_scores(http: httpx.Client, photo: Photo) -> None:
    """threshold=0.5 keeps only the confident prediction, whatever top_k asks."""
    predictions = _classify(http, photo("parrot.jpg"), top_k=10, threshold=0.5).json()[
        "predictions"
    ]
    assert [p["label"] for p in predictions] == ["macaw"]


def test_fifty_concurrent_requests_all_succeed(server: ServerProcess, photo: Photo) -> None:
    """50 simultaneous uploads of four photos over 50 real connections all get the manifest's
    answer, squashed as it was (no interpreter crash)."""
    expected = {
        "grace_hopper.jpg": "military uniform",
        "coffee.png": "espresso",
        "parrot.jpg": "macaw",
        "chelsea.png": "Egyptian cat",
    }
    names = [sorted(expected)[i % 4] for i in range(50)]
    bodies = {name: photo(name) for name in expected}

    def send(name: str) -> tuple[str, int, str]:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            response = _classify(client, bodies[name], name, resize="squash")
        label = response.json()["predictions"][0]["label"] if response.status_code == 200 else ""
        return name, response.status_code, label

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(send, names))
    assert [status for _, status, _ in results] == [200] * 50
    assert all(label == expected[name] for name, _, label in results)


def _bomb() -> bytes:
    return variants.encode(Image.new("1", (12000, 12000)), "PNG")


BAD_REQUESTS: list[tuple[str, int, dict[str, object], str]] = [
    ("empty multipart file", 400, {"files": {"image": ("e.jpg", b"")}}, "empty"),
    ("text file", 400, {"files": {"image": ("a.txt", b"just some text")}}, "not an image"),
    (
        "html body",
        400,
        {"content": b"<html></html>", "headers": {"Content-Type": "image/jpeg"}},
        "not an image",
    ),
    ("no image field", 400, {"files": {"picture": ("p.jpg", b"x")}}, "no 'image'"),
    (
        "text in image field",
        400,
        {"data": {"image": "hello"}, "files": {"other": ("o", b"x")}},
        "holds text",
    ),
    ("pixel bomb", 413, {"files": {"image": ("b.png", _bomb())}}, "EDGE_MAX_IMAGE_PIXELS"),
    (
        "too big",
        413,
        {"content": b"\xff" * 2_100_000, "headers": {"Content-Type": "image/jpeg"}},
        "EDGE_MAX_UPLOAD_BYTES",
    ),
    (
        "text/plain",
        415,
        {"content": b"hi", "headers": {"Content-Type": "text/plain"}},
        "text/plain is not accepted",
    ),
    (
        "form-urlencoded",
        415,
        {"content": b"\xff\xd8", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        "curl",
    ),
    ("no content type", 415, {"content": b"\xff\xd8"}, "no Content-Type"),
]


@pytest.mark.parametrize(
    ("case", "status", "request_args", "detail"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_get_problem_json_and_the_server_keeps_serving(
    http: httpx.Client,
    photo: Photo,
    case: str,
    status: int,
    request_args: dict[str, object],
    detail: str,
) -> None:
    """Each bad upload gets its 4xx as problem+json with an actionable detail; next one works."""
    response = http.post("/classify", **request_args)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["instance"] == "/classify"
    assert detail in problem["detail"]
    assert _classify(http, photo("coffee.png")).status_code == 200


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": "five"}, "top_k"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "high"}, "threshold"),
    ],
)
def test_bad_parameters_are_422(
    http: httpx.Client, photo: Photo, params: dict[str, str | int | float], name: str
) -> None:
    """Out-of-range or non-numeric top_k/threshold are 422 problem+json naming the parameter."""
    response = http.post("/classify", files={"image": photo("coffee.png")}, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith(name)


def test_truncated_upload_is_400(http: httpx.Client, photo: Photo) -> None:
    """Half a JPEG is a 400 saying it is truncated."""
    data = photo("grace_hopper.jpg")
    response = _classify(http, data[: len(data) // 2])
    assert response.status_code == 400
    assert "truncated" in response.json()["detail"]


def test_unknown_route_is_problem_json(http: httpx.Client) -> None:
    """404s are problem+json too."""
    response = http.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_health_ready_and_model_description(http: httpx.Client, runtime: str) -> None:
    """healthz and readyz are 200; /v1/models describes model, tensors, backend and threads."""
    health = http.get("/healthz").json()
    assert health.pop("faces")["people"] == 0  # the face models are in the models folder
    assert health == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}
    (model,) = http.get("/v1/models").json()["models"]
    assert model["name"] == DEFAULT_MODEL
    assert model["file"] == f"{DEFAULT_MODEL}.tflite"
    assert model["input"] == {
        "shape": [1, 224, 224, 3],
        "dtype": "uint8",
        "quantization": {"scale": 0.0078125, "zero_point": 128},
    }
    assert model["output"]["shape"] == [1, 1001]
    assert model["labels"] == 1001
    assert model["num_threads"] == 1
    expected_backend = {"litert": "ai-edge-litert", "tflite": "tflite-runtime"}.get(runtime)
    assert expected_backend in (None, model["backend"])


def test_metrics_show_requests_and_stage_histograms(http: httpx.Client, photo: Photo) -> None:
    """After traffic, /metrics counts requests by route and status and has stage histograms."""
    assert _classify(http, photo("coffee.png")).status_code == 200
    assert _classify(http, b"not an image").status_code == 400
    text = http.get("/metrics").text

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
        assert match, pattern
        return float(match.group(1))

    route = r'edge_http_requests_total\{{method="POST",route="/classify",status="{}"\}}'
    assert value(route.format("200")) >= 1
    assert value(route.format("400")) >= 1
    for stage in STAGES:
        labels = rf'model="{DEFAULT_MODEL}",stage="{stage}",task="classification"'
        assert value(rf"edge_classify_stage_seconds_count\{{{labels}\}}") >= 1
    assert "edge_http_requests_in_flight" in text
    info = next(line for line in text.splitlines() if line.startswith("edge_model_info{"))
    assert f'model="{DEFAULT_MODEL}"' in info


def test_server_stops_cleanly_on_sigterm(models_dir: object, runtime: str) -> None:
    """SIGTERM ends the server with exit status 0."""
    from pathlib import Path

    from conftest import free_port, server_env

    process = ServerProcess(server_env(Path(str(models_dir)), runtime), free_port())
    process.wait_ready()
    assert process.stop() == 0


def test_counters_with_known_labels_start_at_zero(http: httpx.Client) -> None:
    """Timeouts by phase, reloads by model and result, MQTT and Frigate counters exist at 0,
    so an alert on the first failure has a series to see it increase."""
    text = http.get("/metrics").text
    for name, labels in [
        ("edge_classify_timeouts_total", {"phase": "upload"}),
        ("edge_classify_timeouts_total", {"phase": "processing"}),
        ("edge_model_reloads_total", {"model": DEFAULT_MODEL, "result": "failed"}),
        ("edge_mqtt_connect_failures_total", {"reason": "auth"}),
        ("edge_mqtt_messages_dropped_total", {"kind": "classify", "reason": "queue_full"}),
        ("edge_frigate_events_total", {"outcome": "failed"}),
        ("edge_frigate_sub_labels_total", {"result": "failed"}),
    ]:
        label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        assert f"{name}{{{label_text}}} 0.0" in text, name
