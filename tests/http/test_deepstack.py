"""The DeepStack / CodeProject.AI scene API, driven by the `deepstack-python` client from PyPI.

That client posts `files={"image": bytes}` (part name and file name both `image`, no part
content type) with form fields `api_key` (empty unless set) and `min_confidence` (0.45 unless
set), raises on any status but 200, and deletes `success` from the answer (so it must be there).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from deepstack.core import DeepstackException, DeepstackScene

from conftest import ServerProcess

Photo = Callable[[str], bytes]
# grace_hopper.jpg's top score with the default model's centre crop (0.92 squashed).
CROPPED_SCORE = 0.65


def _scene(server: ServerProcess, **options: object) -> DeepstackScene:
    address = urlsplit(server.url)
    return DeepstackScene(ip=address.hostname, port=address.port, timeout=60, **options)


def test_the_deepstack_client_gets_the_label(server: ServerProcess, photo: Photo) -> None:
    """The unchanged PyPI client (with an api_key set) reads the label, score and timings
    (the model's own fit, its centre crop: DeepStack's routes take no resize)."""
    answer = _scene(server, api_key="any-key").recognize(photo("grace_hopper.jpg"))
    assert answer["label"] == "military uniform"
    assert answer["confidence"] == pytest.approx(CROPPED_SCORE, abs=0.02)
    assert isinstance(answer["inferenceMs"], int) and isinstance(answer["processMs"], int)
    assert 0 <= answer["inferenceMs"] <= answer["processMs"]


def test_below_min_confidence_the_label_is_unknown(server: ServerProcess, photo: Photo) -> None:
    """min_confidence above the best score answers `unknown` with the best score."""
    answer = _scene(server, min_confidence=0.99).recognize(photo("grace_hopper.jpg"))
    assert answer["label"] == "unknown"
    assert answer["confidence"] == pytest.approx(CROPPED_SCORE, abs=0.02)


def test_the_client_sees_a_bad_image_as_an_error(server: ServerProcess) -> None:
    """A non-image makes the client raise with the 400 status, as DeepStack would."""
    with pytest.raises(DeepstackException, match="400"):
        _scene(server).recognize(b"just some text")


def test_a_raw_answer_has_success_true(http: httpx.Client, photo: Photo) -> None:
    """The wire answer, as other DeepStack clients (Blue Iris, Node-RED) parse it."""
    response = http.post(
        "/v1/vision/scene", files={"image": ("image", photo("coffee.png"))}, data={"api_key": ""}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "label", "confidence", "inferenceMs", "processMs"}
    assert body["success"] is True and body["label"] == "espresso"


ERRORS: list[tuple[str, dict[str, object], int, str]] = [
    ("not an image", {"files": {"image": ("image", b"hello")}}, 400, "not an image"),
    ("no image field", {"files": {"picture": ("p", b"x")}}, 400, "no 'image'"),
    (
        "min_confidence not a number",
        {"files": {"image": ("image", b"x")}, "data": {"min_confidence": "high"}},
        400,
        "min_confidence",
    ),
    (
        "min_confidence out of range",
        {"files": {"image": ("image", b"x")}, "data": {"min_confidence": "1.5"}},
        400,
        "outside 0..1",
    ),
    ("form-urlencoded", {"data": {"image": "x"}}, 415, "multipart"),
    (
        "too big",
        {"files": {"image": ("image", b"\xff" * 2_100_000)}},
        413,
        "EDGE_MAX_UPLOAD_BYTES",
    ),
]


@pytest.mark.parametrize(("case", "args", "status", "error"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_have_the_deepstack_shape(
    http: httpx.Client, case: str, args: dict[str, object], status: int, error: str
) -> None:
    """Errors are {success: false, error, code} with the code as the HTTP status."""
    response = http.post("/v1/vision/scene", **args)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "error", "code"}
    assert body["success"] is False and body["code"] == status
    assert error in body["error"]
