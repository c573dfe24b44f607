"""The KServe v2 / Open Inference Protocol subset, driven by Triton's `tritonclient[http]`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from edge_server.http.kserve.codec import deserialize_bytes, serialize_bytes

from conftest import DEFAULT_MODEL, ServerProcess

Photo = Callable[[str], bytes]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    """A Triton HTTP client of the shared server."""
    client = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


def _images(*photos: bytes, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(photos)], "BYTES")
    values = photos if binary else tuple(base64.b64encode(p) for p in photos)
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
    return tensor


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    """Live, ready, server and model metadata and model readiness, as the client reads them."""
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "edge-server" and "classification" in server["extensions"]
    model = client.get_model_metadata(DEFAULT_MODEL)
    assert model["name"] == DEFAULT_MODEL and model["versions"] == ["1"]
    assert model["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert model["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 1001]}]
    assert client.is_model_ready(DEFAULT_MODEL)
    assert client.is_model_ready(DEFAULT_MODEL, "1")
    assert not client.is_model_ready(DEFAULT_MODEL, "2")
    assert not client.is_model_ready("resnet50")


def test_classification_extension_with_binary_tensors(
    client: triton.InferenceServerClient, photo: Photo
) -> None:
    """Two raw images in binary tensor data, class_count=3: the 3 best of each as bytes
    (squashed, as the manifest's scores were, by the request's resize parameter)."""
    result = client.infer(
        DEFAULT_MODEL,
        [_images(photo("grace_hopper.jpg"), photo("parrot.jpg"))],
        outputs=[triton.InferRequestedOutput("probabilities", class_count=3)],
        request_id="doorbell-7",
        parameters={"resize": "squash"},
    )
    entries = result.as_numpy("probabilities")
    assert entries.shape == (2, 3)
    best = [row[0].decode().split(":") for row in entries]
    assert [(int(index), label) for _, index, label in best] == [
        (653, "military uniform"),
        (89, "macaw"),
    ]
    assert float(best[0][0]) == pytest.approx(0.92, abs=0.02)
    scores = [float(entry.decode().split(":")[0]) for entry in entries[0]]
    assert scores == sorted(scores, reverse=True)
    assert result.get_response()["id"] == "doorbell-7"


def test_json_base64_input_and_full_probabilities(
    client: triton.InferenceServerClient, photo: Photo
) -> None:
    """A base64 image in JSON and no classification: the FP32 probabilities of every class."""
    result = client.infer(
        DEFAULT_MODEL,
        [_images(photo("coffee.png"), binary=False)],
        outputs=[triton.InferRequestedOutput("probabilities", binary_data=False)],
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (1, 1001) and probabilities.dtype == np.float32
    assert int(probabilities[0].argmax()) == 968  # espresso
    assert 0.9 < float(probabilities.sum()) < 1.1


def test_two_outputs_in_one_plain_json_request(http: httpx.Client, photo: Photo) -> None:
    """The 2 best and the full probabilities side by side, as plain JSON on the wire."""
    request = {
        "id": "r1",
        "parameters": {"resize": "squash"},
        "inputs": [
            {
                "name": "image",
                "shape": [1, 1],
                "datatype": "BYTES",
                "data": [[base64.b64encode(photo("grace_hopper.jpg")).decode()]],
            }
        ],
        "outputs": [
            {"name": "probabilities", "parameters": {"classification": 2}},
            {"name": "probabilities"},
        ],
    }
    response = http.post(f"/v2/models/{DEFAULT_MODEL}/versions/1/infer", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert (answer["model_name"], answer["model_version"], answer["id"]) == (
        DEFAULT_MODEL,
        "1",
        "r1",
    )
    best, dense = answer["outputs"]
    assert best["datatype"] == "BYTES" and best["shape"] == [1, 2]
    assert best["data"][0].startswith("0.92") and best["data"][0].endswith(":653:military uniform")
    assert dense["datatype"] == "FP32" and dense["shape"] == [1, 1001]
    assert dense["data"][653] == pytest.approx(0.92, abs=0.02)
    # Every class is ranked for the dense output, not only the classification's 2 best.
    assert sum(1 for value in dense["data"] if value > 0) > 2


def test_resize_parameter_fits_the_images_and_a_bad_one_is_refused(
    http: httpx.Client, photo: Photo
) -> None:
    """The request's resize parameter changes what the model sees (the model's own centre
    crop cuts grace_hopper's uniform: a lower score than squashed); an unknown mode is a 400
    naming the modes."""

    def score(parameters: dict[str, object]) -> httpx.Response:
        request = {
            "parameters": parameters,
            "inputs": [
                {
                    "name": "image",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [base64.b64encode(photo("grace_hopper.jpg")).decode()],
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 1}}],
        }
        return http.post(f"/v2/models/{DEFAULT_MODEL}/infer", json=request)

    squashed = float(score({"resize": "squash"}).json()["outputs"][0]["data"][0].split(":")[0])
    own = float(score({}).json()["outputs"][0]["data"][0].split(":")[0])
    cropped = float(score({"resize": "center-crop"}).json()["outputs"][0]["data"][0].split(":")[0])
    assert own == cropped and abs(squashed - cropped) > 0.1
    refused = score({"resize": "stretch"})
    assert refused.status_code == 400
    assert (
        refused.json()["error"] == "resize 'stretch' is not one of squash, center-crop, letterbox"
    )
    assert score({"resize": 3}).status_code == 400


def test_errors_reach_the_client_with_their_status(
    client: triton.InferenceServerClient, photo: Photo
) -> None:
    """Unknown model is 404; a non-image or a wrong input name are 400 with a clear message."""
    with pytest.raises(InferenceServerException, match="no model named 'resnet50'") as raised:
        client.infer("resnet50", [_images(b"x")])
    assert str(raised.value.status()) == "404"
    with pytest.raises(InferenceServerException, match="not an image") as raised:
        client.infer(DEFAULT_MODEL, [_images(b"just some text")])
    assert str(raised.value.status()) == "400"
    wrong = triton.InferInput("input_1", [1], "BYTES")
    wrong.set_data_from_numpy(np.array([photo("coffee.png")], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="one input named 'image'"):
        client.infer(DEFAULT_MODEL, [wrong])


_BINARY_HEADER = json.dumps(
    {
        "inputs": [
            {
                "name": "image",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 8},
            }
        ]
    }
).encode()

BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("not json", b"{inputs", {}, 400, "not valid"),
    ("no inputs", b"{}", {}, 400, "inputs"),
    (
        "wrong datatype",
        json.dumps(
            {"inputs": [{"name": "image", "shape": [1], "datatype": "UINT8", "data": [1]}]}
        ).encode(),
        {},
        400,
        "takes BYTES",
    ),
    (
        "shape mismatch",
        json.dumps(
            {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": ["AAAA"]}]}
        ).encode(),
        {},
        400,
        "shape [2]",
    ),
    (
        "bad base64",
        json.dumps(
            {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["@@"]}]}
        ).encode(),
        {},
        400,
        "not valid base64",
    ),
    (
        "header length past the body",
        b"{}",
        {"Inference-Header-Content-Length": "99"},
        400,
        "Inference-Header-Content-Length",
    ),
    (
        "truncated binary element",
        _BINARY_HEADER + serialize_bytes([b"abcdefgh"])[:8],
        {"Inference-Header-Content-Length": str(len(_BINARY_HEADER))},
        400,
        "only 4 remain",
    ),
    (
        "unknown output",
        json.dumps(
            {
                "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["AAAA"]}],
                "outputs": [{"name": "logits"}],
            }
        ).encode(),
        {},
        400,
        "no output 'logits'",
    ),
    ("gzip body", b"\x1f\x8b", {"Content-Encoding": "gzip"}, 415, "compressed"),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "error"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_infer_requests_get_kserve_errors(
    http: httpx.Client, case: str, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    """Malformed requests are 4xx with the protocol's {"error": ...} body."""
    response = http.post(f"/v2/models/{DEFAULT_MODEL}/infer", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert error in response.json()["error"]


def test_bytes_tensor_round_trip() -> None:
    """The binary BYTES format: uint32 little-endian length, then the bytes, per element."""
    elements = [b"", b"abc", bytes(range(256))]
    data = serialize_bytes(elements)
    assert data[:8] == b"\x00\x00\x00\x00\x03\x00\x00\x00"
    assert deserialize_bytes(data) == elements
