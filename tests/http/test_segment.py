"""`POST /segment` through the real app and the real DeepLab model: the answer, the mask, the
regions and every refusal, checked against an independent reference."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.runtime import RuntimeChoice

from conftest import DEFAULT_MODEL, images_folder, metric
from support import variants
from support.hostile import BadRequest, corpus
from support.inprocess import in_process
from support.reference import SEGMENTER, reference_class_map, reference_interpreter, upright

Photo = Callable[[str], bytes]
TFLITE = os.environ.get("EDGE_RUNTIME") == "tflite"
PHOTOS = ["grace_hopper.jpg", "segmentation/voc_2007_000033.jpg"]
if not TFLITE:  # about a second an invoke under tflite-runtime: a lean matrix there
    PHOTOS += ["kite_and_cold.jpg", "segmentation/dog_segmentation.bmp"]


@pytest.fixture(scope="module")
def segmenting(models_dir: Path, runtime: str) -> Iterator[httpx.Client]:
    """The segmenter (the default) beside the default classifier, in process; a 20 MiB decode
    budget, so a 49 MP photo decodes at reduced scale but its full-size mask does not fit."""
    settings = Settings(
        model=["segmenter", DEFAULT_MODEL],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        num_threads=1,
        decode_memory_mb=20,
    )
    with in_process(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def reference(models_dir: Path, runtime: str) -> Any:
    """The plain interpreter of the segmenter, which the reference reads it with."""
    return reference_interpreter(models_dir / f"{SEGMENTER}.tflite", runtime)


def _mask(answer: dict[str, Any]) -> npt.NDArray[np.uint8]:
    mask = answer["mask"]
    picture = Image.open(io.BytesIO(base64.b64decode(mask["data"])))
    assert picture.mode == "P" and picture.size == (mask["width"], mask["height"])
    return np.asarray(picture, dtype=np.uint8)


def _floor(runtime: str) -> float:
    return 0.98 if runtime == "tflite" else 0.99


@pytest.mark.parametrize("name", PHOTOS)
def test_the_mask_and_fractions_match_the_reference(
    segmenting: httpx.Client, reference: Any, runtime: str, photo: Photo, name: str
) -> None:
    """The full-size mask has the reference's class on >= 99 % of pixels (98 % under
    tflite-runtime); each class's fraction and box agree with the reference's map."""
    data = photo(name)
    response = segmenting.post("/segment", params={"mask": "png"}, files={"image": data})
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = reference_class_map(reference, upright(data))
    ours = _mask(answer)
    assert ours.shape == expected.shape
    assert np.mean(ours == expected) >= _floor(runtime)
    assert answer["image"]["resize"] == "letterbox"
    assert answer["model"]["name"] == SEGMENTER
    assert sum(c["fraction"] for c in answer["classes"]) == pytest.approx(1.0, abs=1e-5)
    for found in answer["classes"]:
        assert found["fraction"] == pytest.approx(np.mean(expected == found["index"]), abs=0.01)
        rows, cols = np.nonzero(ours == found["index"])
        box = found["box"]
        assert (box["x_min"], box["y_min"]) == (cols.min(), rows.min())
        assert (box["x_max"], box["y_max"]) == (cols.max() + 1, rows.max() + 1)
    legend = {e["index"]: e["label"] for e in answer["mask"]["legend"]}
    assert legend[0] == "background" and legend[15] == "person" and len(legend) == 21


def test_people_are_found_where_they_are(segmenting: httpx.Client, photo: Photo) -> None:
    """grace_hopper.jpg is a portrait: person covers a large share, its box in the picture."""
    answer = segmenting.post("/segment", files={"image": photo("grace_hopper.jpg")}).json()
    person = next(c for c in answer["classes"] if c["label"] == "person")
    assert person["fraction"] > 0.3
    assert 0 <= person["box"]["x_min"] < person["box"]["x_max"] <= 512
    assert "mask" not in answer and "regions" not in answer


def test_an_exif_rotated_copy_gives_the_upright_mask(
    segmenting: httpx.Client, photo: Photo
) -> None:
    """A copy stored on its side with EXIF orientation 6 answers like the upright photo."""
    data = photo("grace_hopper.jpg")
    upright_answer = segmenting.post("/segment", params={"mask": "png"}, files={"image": data})
    rotated = variants.exif_rotated(data, 6)
    turned = segmenting.post("/segment", params={"mask": "png"}, files={"image": rotated})
    assert turned.json()["image"]["orientation_applied"] is True
    first, second = _mask(upright_answer.json()), _mask(turned.json())
    assert first.shape == second.shape == (600, 512)
    assert np.mean(first == second) >= 0.98


def test_a_crop_gives_fractions_of_the_crop_and_boxes_in_the_whole_image(
    segmenting: httpx.Client, reference: Any, runtime: str, photo: Photo
) -> None:
    """crop= segments only that part: fractions of the crop, the mask placed at its corner,
    boxes in whole-image pixels, and the reference run on the cropped picture agrees."""
    data = photo("grace_hopper.jpg")
    response = segmenting.post(
        "/segment", params={"crop": "0.25,0.1,1,0.9", "mask": "png"}, files={"image": data}
    )
    answer = response.json()
    mask = answer["mask"]
    assert (mask["left"], mask["top"], mask["width"], mask["height"]) == (128, 60, 384, 480)
    assert sum(c["fraction"] for c in answer["classes"]) == pytest.approx(1.0, abs=1e-5)
    cropped = upright(data).crop((128, 60, 512, 540))
    expected = reference_class_map(reference, cropped)
    assert np.mean(_mask(answer) == expected) >= _floor(runtime)
    for found in answer["classes"]:
        box = found["box"]
        assert 128 <= box["x_min"] < box["x_max"] <= 512
        assert 60 <= box["y_min"] < box["y_max"] <= 540


def test_regions_say_what_covers_each_of_them(
    segmenting: httpx.Client, reference: Any, photo: Photo
) -> None:
    """Two named polygons: each region's class shares equal the reference map's inside the
    same polygon drawn by Pillow, within a point."""
    data = photo("grace_hopper.jpg")
    regions = {
        "face": [[0.3, 0.05], [0.75, 0.05], [0.75, 0.45], [0.3, 0.45]],
        "corner": [[0.0, 0.0], [0.15, 0.0], [0.0, 0.15]],
    }
    response = segmenting.post(
        "/segment", params={"regions": json.dumps(regions)}, files={"image": data}
    )
    assert response.status_code == 200, response.text
    covers = {r["name"]: r for r in response.json()["regions"]}
    expected = reference_class_map(reference, upright(data))
    height, width = expected.shape
    for name, corners in regions.items():
        canvas = Image.new("L", (width, height))
        ImageDraw.Draw(canvas).polygon(
            [(x * width, y * height) for x, y in corners], fill=1, outline=1
        )
        inside = expected[np.asarray(canvas, dtype=bool)]
        assert covers[name]["pixels"] == pytest.approx(inside.size, rel=0.02)
        for share in covers[name]["classes"]:
            assert share["fraction"] == pytest.approx(np.mean(inside == share["index"]), abs=0.01)
    assert covers["face"]["classes"][0]["label"] == "person"


def test_a_49_mp_photos_mask_is_charged_to_the_decode_budget(
    segmenting: httpx.Client, photo: Photo
) -> None:
    """A 7000x7000 JPEG decodes at reduced scale inside a 20 MiB budget; its 49 MB full-size
    mask does not fit: 413 naming the budget, while the answer without a mask is a 200."""
    big = variants.upscaled_jpeg(photo("grace_hopper.jpg"), 7000, 7000)
    plain = segmenting.post("/segment", files={"image": big})
    assert plain.status_code == 200, plain.text
    refused = segmenting.post("/segment", params={"mask": "png"}, files={"image": big})
    assert refused.status_code == 413
    assert "EDGE_DECODE_MEMORY_MB" in refused.json()["detail"]
    text = segmenting.get("/metrics").text
    assert metric(text, "edge_decode_memory_refused_total", reason="too_large") >= 1
    assert metric(text, "edge_decode_memory_used_bytes") == 0


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"mask": "jpeg"}, "mask 'jpeg' is not one of png"),
        ({"regions": "{not json"}, "regions is not valid JSON"),
        ({"regions": "[1, 2]"}, "regions is not a JSON object"),
        ({"regions": json.dumps({"a": [[0, 0], [1, 1]]})}, "3 to 64 corners"),
        ({"regions": json.dumps({"a": [[0, 0], [1, 0], [2, 1]]})}, "outside the image"),
        ({"regions": json.dumps({"a": [[0, 0], [1, 0], [1, "x"]]})}, "not [x, y]"),
        ({"regions": json.dumps({"a": [[0, 0], [1, 0], [1, True]]})}, "not [x, y]"),
        ({"regions": json.dumps({"<b>": [[0, 0], [1, 0], [1, 1]]})}, "is not allowed"),
        ({"regions": json.dumps({f"r{i}": [[0, 0], [1, 0], [1, 1]] for i in range(17)})}, "17"),
        ({"resize": "center-crop"}, "without a class"),
        ({"resize": "stretch"}, "not one of squash, center-crop, letterbox"),
        ({"model": DEFAULT_MODEL}, "send it to /classify"),
        ({"crop": "0.5,0.5,0.2,0.9"}, "crop"),
        ({"format": "overlay", "mask": "png"}, "carries no mask or regions"),
        (
            {"format": "blur", "regions": json.dumps({"a": [[0, 0], [1, 0], [1, 1]]})},
            "carries no mask or regions",
        ),
    ],
)
def test_bad_options_are_400s_that_say_what_is_allowed(
    segmenting: httpx.Client, photo: Photo, params: dict[str, str], says: str
) -> None:
    """Each bad option is a 400 problem naming what is allowed, before any work."""
    before = metric(segmenting.get("/metrics").text, "edge_model_invokes_total", model=SEGMENTER)
    response = segmenting.post("/segment", params=params, files={"image": photo("parrot.jpg")})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]
    after = metric(segmenting.get("/metrics").text, "edge_model_invokes_total", model=SEGMENTER)
    assert after == before


def test_a_segmenter_sent_to_classify_is_told_its_route(
    segmenting: httpx.Client, photo: Photo
) -> None:
    """Naming the segmenter on /classify is a 400 that points to /segment."""
    response = segmenting.post(
        "/classify", params={"model": "segmenter"}, files={"image": photo("parrot.jpg")}
    )
    assert response.status_code == 400
    assert "send it to /segment" in response.json()["detail"]


def test_without_a_segmenter_the_route_is_a_404_that_says_how_to_add_one(
    http: httpx.Client, photo: Photo
) -> None:
    """The default set-up serves no segmenter: 404 with the EDGE_MODEL to set."""
    response = http.post("/segment", files={"image": photo("parrot.jpg")})
    assert response.status_code == 404
    assert "segmenter" in response.json()["detail"]


def test_the_models_list_gives_the_segmenters_task(segmenting: httpx.Client) -> None:
    """/v1/models and KServe's metadata say the segmenter's task."""
    models = {m["name"]: m for m in segmenting.get("/v1/models").json()["models"]}
    assert models[SEGMENTER]["task"] == "segmentation"
    assert models[SEGMENTER]["resize"] == "letterbox"


HOSTILE_LIMIT = 2_000_000
SHARED_OPTIONS = {"crop", "model", "resize"}
HOSTILE = [
    case
    for case in corpus(images_folder(), HOSTILE_LIMIT)
    # Its options that /segment takes too (top_k and threshold are classify's own).
    if case.path == "/classify" and case.method == "POST" and set(case.params) <= SHARED_OPTIONS
]


@pytest.fixture(scope="module")
def hostile_segmenting(models_dir: Path, runtime: str) -> Iterator[httpx.Client]:
    """The segmenter alone, in process, with the hostile corpus' 2 MB upload limit."""
    settings = Settings(
        model=["segmenter"],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        num_threads=1,
        max_upload_bytes=HOSTILE_LIMIT,
    )
    with in_process(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_the_hostile_corpus_never_gets_a_server_error(
    hostile_segmenting: httpx.Client, photo: Photo, case: BadRequest
) -> None:
    """Every bad upload of the corpus, sent to /segment with a mask asked for: the corpus'
    own 4xx problem, and the next photo answers."""
    response = hostile_segmenting.request(
        case.method,
        "/segment",
        params={**case.params, "mask": "png"},
        headers=case.headers,
        content=case.content,
        files=case.files,
        data=case.data,
    )
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert case.detail in response.json()["detail"]
    good = hostile_segmenting.post("/segment", files={"image": photo("grace_hopper.jpg")})
    assert good.status_code == 200


def test_a_segmenter_is_loaded_reloaded_and_unloaded_beside_a_classifier(
    models_dir: Path, runtime: str, photo: Photo
) -> None:
    """KServe's repository loads the segmenter while the classifier serves; it answers
    /segment and is counted in the invoke and stage metrics; a reload swaps it in place; once
    unloaded /segment is a 404 and /classify still answers."""
    key = "segmenter-test-key"
    auth = {"Authorization": f"Bearer {key}"}
    settings = Settings(
        model=[DEFAULT_MODEL],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        num_threads=1,
        api_key=key,
    )
    data = photo("grace_hopper.jpg")
    with in_process(create_app(settings)) as client:
        assert client.post("/segment", files={"image": data}, headers=auth).status_code == 404
        loaded = client.post("/v2/repository/models/segmenter/load", headers=auth)
        assert loaded.status_code == 200, loaded.text
        answer = client.post("/segment", files={"image": data}, headers=auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["name"] == SEGMENTER
        reloaded = client.post("/v1/models/reload", json={"name": SEGMENTER}, headers=auth)
        assert reloaded.status_code == 200, reloaded.text
        again = client.post("/segment", files={"image": data}, headers=auth).json()
        assert again["classes"] == answer.json()["classes"]
        text = client.get("/metrics", headers=auth).text
        assert metric(text, "edge_model_invokes_total", model=SEGMENTER) >= 2
        assert (
            metric(
                text,
                "edge_classify_stage_seconds_count",
                stage="inference",
                model=SEGMENTER,
                task="segmentation",
            )
            >= 2
        )
        unloaded = client.post(f"/v2/repository/models/{SEGMENTER}/unload", headers=auth)
        assert unloaded.status_code == 200, unloaded.text
        assert client.post("/segment", files={"image": data}, headers=auth).status_code == 404
        classified = client.post("/classify", files={"image": data}, headers=auth)
        assert classified.status_code == 200
