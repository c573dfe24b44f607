"""Detection through a real server process, driven by the clients NVRs and Home Assistant use.

- `deepstack-python` (Home Assistant's DeepStack object component): `DeepstackObject.detect()`
  posts `image` with `api_key` and `min_confidence`, to `/v1/vision/detection`, or to
  `/v1/vision/custom/{model}` with `custom_model`; it reads `predictions` without a check.
- Frigate's DeepStack detector plugin (`frigate/detectors/plugins/deepstack.py`), its request
  and its parse loop reproduced line for line: the model-input frame (320x320 RGB) as a JPEG
  at Pillow's default quality in the field `image` (file name `image`, no part Content-Type),
  form field `api_key` "" and no `min_confidence`; it stops at the first prediction under 0.4
  or with a label outside its label map, lower case, truck read as car, and writes into a
  20-row array (a 21st passing prediction would crash it). The newest plugin reuses a
  `requests.Session`; the first merged one posts without a session and without the key. Its
  0.1 s timeout is a latency claim, not a behaviour: here the plugin waits as long as the other
  clients, and `benchmarks/detection.py` measures its round trip and counts the answers that
  would have come later than 0.1 s.
- Triton's `tritonclient[http]` on the detector's KServe v2 outputs.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from deepstack.core import DeepstackException, DeepstackObject
from PIL import Image

from edge_server.client import Client

from conftest import DEFAULT_MODEL, DETECTOR, ServerProcess, free_port, server_env

Photo = Callable[[str], bytes]
# Frigate's `api_timeout` is 0.1 s: whether an answer comes that fast depends on the machine and
# what else it runs, so it is measured in the benchmark, and the test waits as long as the others.
FRIGATE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def detecting_server(models_dir: Path, runtime: str) -> Iterator[ServerProcess]:
    """A server process with the COCO detector and the default classifier."""
    env = server_env(models_dir, runtime, model=f"objects,{DEFAULT_MODEL}")
    process = ServerProcess(env, free_port())
    process.wait_ready()
    yield process
    process.stop()


def _client(server: ServerProcess, **options: Any) -> DeepstackObject:
    address = urlsplit(server.url)
    return DeepstackObject(ip=address.hostname, port=address.port, timeout=60, **options)


def test_deepstack_python_detects_the_kites_and_people(
    detecting_server: ServerProcess, photo: Photo
) -> None:
    """The PyPI client's detect(): ten objects, best first, pixel boxes of the photo sent."""
    predictions = _client(detecting_server).detect(photo("kite_and_cold.jpg"))
    assert sorted({p["label"] for p in predictions}) == ["kite", "person"]
    assert len(predictions) == 10  # all >= 0.45, the client's default min_confidence
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True) and min(confidences) >= 0.45
    for p in predictions:
        assert all(isinstance(p[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))
        assert 0 <= p["x_min"] < p["x_max"] <= 1352 and 0 <= p["y_min"] < p["y_max"] <= 900


def test_home_assistant_settings_find_a_person(
    detecting_server: ServerProcess, photo: Photo
) -> None:
    """min_confidence 0.1 (the component's), a target counted above 80 % of confidence."""
    predictions = _client(detecting_server, min_confidence=0.1).detect(photo("grace_hopper.jpg"))
    assert 4 <= len(predictions) <= 20
    assert min(p["confidence"] for p in predictions) >= 0.1
    # The component's rule: a target counts when confidence * 100 > its threshold (default 80);
    # for the person here that takes a threshold under 72.
    people = [p for p in predictions if p["label"] == "person" and p["confidence"] * 100 > 70]
    assert len(people) == 1


def test_deepstack_python_custom_models(detecting_server: ServerProcess, photo: Photo) -> None:
    """custom_model: the detector by alias, and a classifier answering whole-image boxes."""
    objects = _client(detecting_server, custom_model="objects").detect(photo("parrot.jpg"))
    assert objects[0]["label"] == "bird"
    classes = _client(detecting_server, custom_model=DEFAULT_MODEL, min_confidence=0.5).detect(
        photo("grace_hopper.jpg")
    )
    assert [p["label"] for p in classes] == ["military uniform"]
    box = {k: classes[0][k] for k in ("x_min", "y_min", "x_max", "y_max")}
    assert box == {"x_min": 0, "y_min": 0, "x_max": 512, "y_max": 600}


def test_deepstack_python_sees_errors(detecting_server: ServerProcess) -> None:
    """A non-image is a 400 and an unknown custom model a 404, both raised by the client."""
    with pytest.raises(DeepstackException, match="400"):
        _client(detecting_server).detect(b"not a picture")
    with pytest.raises(DeepstackException, match="404"):
        _client(detecting_server, custom_model="licence-plates").detect(b"x")


# --- Frigate's DeepStack detector plugin ----------------------------------------------------


def _frigate_labelmap(models_dir: Path) -> dict[int, str]:
    """Frigate's labelmap.txt (COCO ids with gaps), which load_labels pre-fills with unknown."""
    lines = (models_dir / "coco_ssd_labelmap.txt").read_text().splitlines()
    labels = dict.fromkeys(range(91), "unknown")
    labels.update({i: name for i, name in enumerate(lines[1:]) if name != "???"})
    return labels


def _model_input(data: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The (1, 320, 320, 3) RGB tensor Frigate's detector gets: the region fitted to 320x320."""
    region = Image.open(io.BytesIO(data)).convert("RGB").resize((320, 320))
    return np.asarray(region, dtype=np.uint8)[None]


class FrigatePlugin:
    """frigate/detectors/plugins/deepstack.py's DeepStack class, its detect_raw as written
    (with a generous `api_timeout`)."""

    def __init__(self, api_url: str, labels: dict[int, str], *, newest: bool = True) -> None:
        self.api_url, self.labels, self.newest = api_url, labels, newest
        self.api_timeout, self.api_key = FRIGATE_TIMEOUT, ""
        self.session = requests.Session()

    def get_label_index(self, label_value: str) -> int:
        if label_value.lower() == "truck":
            label_value = "car"
        for index, value in self.labels.items():
            if value == label_value.lower():
                return index
        return -1

    def detect_raw(self, tensor_input: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        image_data = np.squeeze(tensor_input).astype(np.uint8)
        image = Image.fromarray(image_data)
        self.w, self.h = image.size
        with io.BytesIO() as output:
            image.save(output, format="JPEG")
            image_bytes = output.getvalue()
        data = {"api_key": self.api_key}
        if self.newest:
            response = self.session.post(
                self.api_url, data=data, files={"image": image_bytes}, timeout=self.api_timeout
            )
        else:  # the first merged version: no session, and the key built but not sent
            response = requests.post(
                self.api_url, files={"image": image_bytes}, timeout=self.api_timeout
            )
        response_json = response.json()
        detections = np.zeros((20, 6), np.float32)
        if response_json.get("predictions") is None:
            return detections
        for i, detection in enumerate(response_json.get("predictions")):
            if detection["confidence"] < 0.4:
                break
            label = self.get_label_index(detection["label"])
            if label < 0:
                break
            detections[i] = [
                label,
                float(detection["confidence"]),
                detection["y_min"] / self.h,
                detection["x_min"] / self.w,
                detection["y_max"] / self.h,
                detection["x_max"] / self.w,
            ]
        return detections


@pytest.mark.parametrize("newest", [True, False], ids=["session+key", "first-merged"])
def test_frigates_plugin_reads_our_answer(
    detecting_server: ServerProcess, models_dir: Path, photo: Photo, newest: bool
) -> None:
    """Frigate's exact request and parse loop: right label indices, boxes in 0..1, <= 20 rows."""
    plugin = FrigatePlugin(
        detecting_server.url + "/v1/vision/detection", _frigate_labelmap(models_dir), newest=newest
    )
    rows = plugin.detect_raw(_model_input(photo("kite_and_cold.jpg")))
    found = rows[rows[:, 1] > 0]
    assert len(found) >= 5  # people and kites at 320x320
    assert set(found[:, 0].astype(int)) <= {0, 37}  # Frigate's ids of person and kite
    assert {37, 0} & set(found[:, 0].astype(int))
    assert np.all(found[:, 2:] >= 0) and np.all(found[:, 2:] <= 1)
    assert np.all(found[:, 4] > found[:, 2]) and np.all(found[:, 5] > found[:, 3])
    assert np.all(np.diff(found[:, 1]) <= 0)  # read in order, none skipped by a break


def test_frigates_plugin_gets_nothing_from_an_empty_frame(
    detecting_server: ServerProcess, models_dir: Path
) -> None:
    """A dark frame: an answer with no predictions, so an all-zero array, not a crash."""
    plugin = FrigatePlugin(
        detecting_server.url + "/v1/vision/detection", _frigate_labelmap(models_dir)
    )
    rows = plugin.detect_raw(np.zeros((1, 320, 320, 3), np.uint8))
    assert not rows.any()


def test_the_answer_never_holds_more_than_frigate_can_take(
    detecting_server: ServerProcess, photo: Photo
) -> None:
    """Even at min_confidence 0, an answer has at most 20 predictions (EDGE_MAX_DETECTIONS)."""
    response = requests.post(
        detecting_server.url + "/v1/vision/detection",
        files={"image": photo("kite_and_cold.jpg")},
        data={"min_confidence": "0"},
        timeout=60,
    )
    body = response.json()
    assert response.status_code == 200 and body["success"] is True
    assert body["count"] == len(body["predictions"]) <= 20
    assert "Content-Length" in response.headers  # not chunked: Blue Iris needs a length


# --- Triton's client on the detector ------------------------------------------------------


def test_tritonclient_infers_with_the_detector(
    detecting_server: ServerProcess, photo: Photo
) -> None:
    """Metadata says detection; infer answers boxes, classes, scores and count per image."""
    client = triton.InferenceServerClient(
        detecting_server.url.removeprefix("http://"), network_timeout=60
    )
    try:
        metadata = client.get_model_metadata(DETECTOR)
        assert metadata["parameters"] == {"task": "detection"}
        assert [o["name"] for o in metadata["outputs"]] == [
            "detection_boxes",
            "detection_classes",
            "detection_scores",
            "num_detections",
        ]
        images = triton.InferInput("image", [2], "BYTES")
        images.set_data_from_numpy(
            np.array([photo("kite_and_cold.jpg"), photo("parrot.jpg")], dtype=np.object_),
            binary_data=True,
        )
        result = client.infer("objects", [images])
        count = result.as_numpy("num_detections")
        assert count is not None and count.tolist() == [10.0, 1.0]
        classes, scores = result.as_numpy("detection_classes"), result.as_numpy("detection_scores")
        boxes = result.as_numpy("detection_boxes")
        assert classes is not None and scores is not None and boxes is not None
        assert boxes.shape == (2, 20, 4) and scores.shape == (2, 20)
        assert set(classes[0, :10].astype(int)) == {0, 37} and int(classes[1, 0]) == 15  # bird
        assert scores[1, 0] == pytest.approx(0.81, abs=0.05) and not scores[1, 1:].any()
        y_min, x_min, y_max, x_max = boxes[1, 0]
        assert (x_min, y_min, x_max, y_max) == pytest.approx((0.17, 0.11, 0.93, 0.92), abs=0.03)
    finally:
        client.close()


# --- our own client and command -------------------------------------------------------------


def test_client_detect_and_the_cli_with_url(
    detecting_server: ServerProcess, photo: Photo, images_dir: Path
) -> None:
    """Client.detect answers typed objects; `edge-server detect --url` prints them."""
    answer = Client(detecting_server.url).detect(
        photo("kite_and_cold.jpg"), labels=["person"], max_results=3, min_score=0.5
    )
    assert [d.label for d in answer.detections] == ["person"] * 3
    assert answer.model.name == DETECTOR and answer.image.width == 1352
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_server",
            "detect",
            "--url",
            detecting_server.url,
            "--json",
            str(images_dir / "parrot.jpg"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)["results"][0]["detections"]
    assert found[0]["label"] == "bird" and found[0]["box"]["x_max"] <= 512
