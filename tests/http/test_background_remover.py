"""CodeProject.AI's background remover (`POST /v1/image/removebackground`) on a real server
process with the real segmenter, asked the way CodeProject.AI's clients ask it.

No client library on PyPI speaks this route (`codeproject-ai-api` 0.1 covers detection, scene
and faces only), so the request is the one CodeProject.AI's explorer page and its API docs
build: a multipart form with `image` (a file) and `use_alphamatting` ("false" or "true"),
sent here with `requests`; the answer is parsed as they parse it: `success` first, then
`imageBase64` as a PNG (`data:image/png;base64,` + it).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
from PIL import Image

from conftest import ServerProcess, free_port, images_folder, server_env
from support.hostile import BadRequest, corpus
from support.reference import SEGMENTER, reference_class_map, reference_interpreter, upright

Photo = Callable[[str], bytes]
TFLITE = os.environ.get("EDGE_RUNTIME") == "tflite"
ROUTE = "/v1/image/removebackground"
UPLOAD_LIMIT = 2_000_000


@pytest.fixture(scope="module")
def remover(models_dir: Path, runtime: str) -> Iterator[ServerProcess]:
    """`edge-server serve` with the segmenter alone and a 2 MB upload limit."""
    env = server_env(models_dir, runtime, model="segmenter", max_upload_bytes=str(UPLOAD_LIMIT))
    process = ServerProcess(env, free_port())
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def reference(models_dir: Path, runtime: str) -> Any:
    """The plain interpreter of the segmenter, which the reference reads it with."""
    return reference_interpreter(models_dir / f"{SEGMENTER}.tflite", runtime)


def _remove_background(url: str, data: bytes, matting: str = "false") -> requests.Response:
    """The explorer's request: FormData with the file as `image` and `use_alphamatting`."""
    return requests.post(
        url + ROUTE,
        files={"image": ("anyfile.jpg", data, "image/jpeg")},
        data={"use_alphamatting": matting},
        timeout=60,
    )


def _parsed(response: requests.Response) -> Image.Image:
    """What the client does with the answer: check `success`, decode `imageBase64`."""
    answer = response.json()
    assert answer["success"] is True, answer
    return Image.open(io.BytesIO(base64.b64decode(answer["imageBase64"])))


PHOTOS = ["grace_hopper.jpg", "segmentation/voc_2007_000033.jpg"]
if not TFLITE:
    PHOTOS += ["segmentation/dog_segmentation.bmp"]


@pytest.mark.parametrize("name", PHOTOS)
def test_the_client_gets_every_class_on_a_transparent_png(
    remover: ServerProcess, reference: Any, runtime: str, photo: Photo, name: str
) -> None:
    """The explorer's request: 200 JSON with a length (Blue Iris cannot read chunked), its
    fields, and a PNG opaque where the reference map has any class but background (>= 99 %
    of pixels, 98 % under tflite-runtime) with the photo's pixels there."""
    data = photo(name)
    response = _remove_background(remover.url, data)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    answer = response.json()
    assert answer["command"] == "removebackground" and answer["code"] == 200
    assert answer["moduleId"] == "edge-server" and answer["moduleName"] == "Background Remover"
    assert 0 < answer["inferenceMs"] <= answer["processMs"] <= answer["analysisRoundTripMs"]
    picture = _parsed(response)
    upright_photo = upright(data)
    assert picture.format == "PNG" and picture.mode == "RGBA"
    assert picture.size == upright_photo.size
    pixels = np.asarray(picture)
    opaque = pixels[..., 3] == 255
    expected = reference_class_map(reference, upright_photo) != 0
    assert opaque.any()
    assert np.mean(opaque == expected) >= (0.98 if runtime == "tflite" else 0.99)
    assert np.array_equal(pixels[opaque][:, :3], np.asarray(upright_photo)[opaque])


def test_alpha_matting_is_accepted_and_changes_nothing(
    remover: ServerProcess, photo: Photo
) -> None:
    """use_alphamatting=true (and a request without the field) answers the same PNG as
    false, which is /segment's cut-out byte for byte."""
    data = photo("grace_hopper.jpg")
    plain = base64.b64decode(_remove_background(remover.url, data).json()["imageBase64"])
    matted = base64.b64decode(_remove_background(remover.url, data, "true").json()["imageBase64"])
    bare = requests.post(remover.url + ROUTE, files={"image": data}, timeout=60)
    cutout = httpx.post(
        remover.url + "/segment", params={"format": "cutout"}, files={"image": data}, timeout=60
    )
    assert plain == matted == base64.b64decode(bare.json()["imageBase64"]) == cutout.content


def test_other_image_modules_and_methods_answer_in_its_shape(remover: ServerProcess) -> None:
    """CodeProject.AI's other image routes are a 404 naming the one served; a GET is a 405;
    both in the `{success: false, error, code}` shape."""
    for path in ("/v1/image/cartoonise", "/v1/image/superresolution"):
        response = requests.post(remover.url + path, timeout=10)
        assert response.status_code == 404
        body = response.json()
        assert body["success"] is False and body["code"] == 404
        assert ROUTE in body["error"]
    wrong = requests.get(remover.url + ROUTE, timeout=10)
    assert wrong.status_code == 405 and wrong.json()["code"] == 405


def test_without_a_segmenter_it_is_a_404_that_says_what_to_add(
    http: httpx.Client, photo: Photo
) -> None:
    """The default set-up serves no segmenter: 404 in its shape, naming EDGE_MODEL and a
    segmenter, as CodeProject.AI answers 404 for a module it does not run."""
    response = http.post(
        ROUTE, files={"image": ("a.jpg", photo("parrot.jpg"))}, data={"use_alphamatting": "false"}
    )
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False and body["code"] == 404
    assert "background remover needs a segmenter" in body["error"]
    assert "EDGE_MODEL" in body["error"] and "segmenter" in body["error"]


# The bodies and headers of the corpus (its /classify options mean nothing here).
HOSTILE = [
    case
    for case in corpus(images_folder(), UPLOAD_LIMIT)
    if case.path == "/classify" and not case.params
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_the_hostile_corpus_gets_a_4xx_in_its_shape(
    remover: ServerProcess, photo: Photo, case: BadRequest
) -> None:
    """Every bad upload of the corpus: never a 5xx; a 4xx with `{success: false, error, code}`
    (a multipart upload the corpus' own status and message; any other body 415, the form
    asked for; another method 405); and the next photo is answered."""
    response = requests.request(
        case.method,
        remover.url + ROUTE,
        headers=case.headers,
        data=case.content if case.content is not None else case.data,
        files=case.files,
        timeout=60,
    )
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == response.status_code and body["error"]
    if case.method != "POST":
        assert response.status_code == 405
    elif case.files is not None or case.headers.get("Content-Type", "").startswith("multipart/"):
        assert response.status_code == case.status, response.text
        assert case.detail in body["error"]
    else:
        assert response.status_code == 415 and "multipart form field 'image'" in body["error"]
    good = _remove_background(remover.url, photo("grace_hopper.jpg"))
    assert good.status_code == 200 and good.json()["success"] is True
