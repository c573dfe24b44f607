"""A segmenting MQTT source, with a real mosquitto and a real server process: the result's class
and region fractions are `/segment`'s, the Home Assistant sensors read them, the image entity's
topic gets the class map, bad payloads and bad regions get their answer."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from PIL import Image

from conftest import DEFAULT_MODEL, ServerProcess, free_port, metric, server_env
from support.mosquitto import Mosquitto, Received, Recorder, wait_subscribed
from support.reference import SEGMENTER
from support.waiting import until

pytestmark = pytest.mark.lan

Photo = Callable[[str], bytes]
NODE = "segment-test"
PREFIX = f"edge-server/{NODE}"
ID = "edge_server_segment_test"
DOG = "segmentation/dog_segmentation.bmp"
REGIONS = {
    "left": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
    "lawn": [[0.5, 0.4], [1, 0.4], [1, 1], [0.5, 1]],
}
LABELS = ["dog", "person"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the module."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


def _toml_regions() -> str:
    return ", ".join(f"{name} = {json.dumps(corners)}" for name, corners in REGIONS.items())


@pytest.fixture(scope="module")
def server(
    models_dir: Path, runtime: str, broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The classifier as default and the segmenter; driveway mapped to the segmenter with two
    labels and two regions in the models config; yard to the segmenter with the count labels,
    one of them (truck) not a PASCAL VOC class. The log goes to a file read while it runs."""
    folder = tmp_path_factory.mktemp("config")
    config = folder / "models.toml"
    config.write_text(
        f"[sources.driveway]\nlabels = {json.dumps(LABELS)}\nregions = {{{_toml_regions()}}}\n"
    )
    env = server_env(
        models_dir,
        runtime,
        model=f"{DEFAULT_MODEL},segmenter",
        models_config=str(config),
        node_id=NODE,
        mqtt_url=broker.url(),
        mqtt_sources="driveway:segmenter,yard:segmenter",
        mqtt_count_labels="person,car,truck",
    )
    process = ServerProcess(env, free_port(), log_path=folder / "server.log")
    process.wait_ready()
    wait_subscribed(process)
    yield process
    process.stop()


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[Recorder]:
    """A client of the broker that records what it hears."""
    recorder = Recorder(broker.anonymous_port)
    yield recorder
    recorder.close()


def _on(topic: str) -> Callable[[Received], bool]:
    return lambda message: message.topic == topic


def _configs(broker: Mosquitto, source: str, count: int) -> dict[str, dict[str, Any]]:
    watcher = Recorder(broker.anonymous_port)
    try:
        watcher.subscribe("homeassistant/+/+/config")
        retained = watcher.wait_for(
            lambda m: m.retain and f"_{source}_" in m.topic and bool(m.payload), count=count
        )
    finally:
        watcher.close()
    return {
        m.topic.split("/")[2]: {"component": m.topic.split("/")[1], **json.loads(m.payload)}
        for m in retained
    }


def _render(template: str, result: dict[str, Any]) -> float:
    """A value template as Home Assistant renders it (Jinja2's immutable sandbox, the result
    as value_json)."""
    environment = ImmutableSandboxedEnvironment(autoescape=True)
    return float(environment.from_string(template).render(value_json=result))


def test_segmenting_sources_are_announced_before_any_image(
    server: ServerProcess, broker: Mosquitto
) -> None:
    """driveway: a % sensor per listed label for the frame and for each region, the image
    entity and the event; yard (no table): the count labels' sensors, no region sensors."""
    driveway = _configs(broker, "driveway", 2 * 3 + 2)
    shares = [f"{label}_share" for label in LABELS]
    assert set(driveway) == {
        *(f"{ID}_driveway_{s}" for s in shares),
        *(f"{ID}_driveway_{region}_{s}" for region in REGIONS for s in shares),
        f"{ID}_driveway_picture",
        f"{ID}_driveway_segmented",
    }
    dog = driveway[f"{ID}_driveway_dog_share"]
    assert dog["component"] == "sensor" and dog["name"] == "driveway dog % of frame"
    assert dog["state_topic"] == f"{PREFIX}/result/driveway"
    assert dog["unit_of_measurement"] == "%" and dog["state_class"] == "measurement"
    assert dog["availability"][0]["topic"] == f"{PREFIX}/status"
    assert dog["device"]["identifiers"] == [f"edge-server-{NODE}"]
    in_lawn = driveway[f"{ID}_driveway_lawn_dog_share"]
    assert in_lawn["name"] == "driveway dog % of lawn"
    picture = driveway[f"{ID}_driveway_picture"]
    assert picture["component"] == "image"
    assert picture["image_topic"] == f"{PREFIX}/image/driveway"
    assert picture["content_type"] == "image/jpeg"
    assert "state_topic" not in picture and picture["availability"] == dog["availability"]
    event = driveway[f"{ID}_driveway_segmented"]
    assert event["component"] == "event" and event["event_types"] == ["segmented"]
    yard = _configs(broker, "yard", 5)
    assert set(yard) == {
        f"{ID}_yard_person_share",
        f"{ID}_yard_car_share",
        f"{ID}_yard_truck_share",
        f"{ID}_yard_picture",
        f"{ID}_yard_segmented",
    }


def test_a_label_the_segmenter_does_not_know_is_logged_once(server: ServerProcess) -> None:
    """yard lists truck, not a PASCAL VOC class: one warning naming the source, the label, the
    model and where to change it; driveway's labels are all known."""
    assert server.log_path is not None
    log_path = server.log_path

    def warned() -> list[str] | None:  # the sources are checked once connected
        lines = [line for line in log_path.read_text().splitlines() if "does not know" in line]
        return lines or None

    warnings = until(warned, "the unknown label's warning")
    log = log_path.read_text()
    assert len(warnings) == 1, log
    assert "MQTT source yard lists truck, which deeplabv3_mnv2_pascal_quant" in warnings[0]
    assert "[sources.yard] labels" in warnings[0]


def test_the_result_is_segments_answer_and_the_sensors_read_it(
    server: ServerProcess, broker: Mosquitto, recorder: Recorder, photo: Photo
) -> None:
    """The result's classes and regions equal /segment's for the same photo and regions; each
    sensor's template gives that label's % (0 when absent); the image topic gets the overlay,
    /segment's format=overlay picture; the event carries the fractions."""
    recorder.subscribe(
        f"{PREFIX}/result/driveway", f"{PREFIX}/image/driveway", f"{PREFIX}/event/driveway"
    )
    recorder.publish(f"{PREFIX}/classify/driveway", photo(DOG))
    result = json.loads(recorder.wait_for(_on(f"{PREFIX}/result/driveway"))[0].payload)
    (picture,) = recorder.wait_for(_on(f"{PREFIX}/image/driveway"))
    event = json.loads(recorder.wait_for(_on(f"{PREFIX}/event/driveway"))[0].payload)
    response = httpx.post(
        server.url + "/segment",
        params={"mask": "png", "regions": json.dumps(REGIONS)},
        files={"image": photo(DOG)},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    expected = response.json()
    assert result["model"]["name"] == SEGMENTER and "mask" not in result
    assert result["topic"] == f"{PREFIX}/classify/driveway"
    assert result["classes"] == expected["classes"]
    assert result["regions"] == expected["regions"]
    assert {c["label"] for c in result["classes"]} >= {"background", "dog"}
    assert event["event_type"] == "segmented"
    assert event["fractions"] == {c["label"]: c["fraction"] for c in expected["classes"]}

    configs = _configs(broker, "driveway", 2 * 3 + 2)
    frame = {c["label"]: c["fraction"] for c in result["classes"]}
    for label in LABELS:
        template = configs[f"{ID}_driveway_{label}_share"]["value_template"]
        assert _render(template, result) == round(frame.get(label, 0) * 100, 1)
    assert _render(configs[f"{ID}_driveway_dog_share"]["value_template"], result) > 10
    assert _render(configs[f"{ID}_driveway_person_share"]["value_template"], result) == 0
    for cover in result["regions"]:
        shares = {c["label"]: c["fraction"] for c in cover["classes"]}
        for label in LABELS:
            template = configs[f"{ID}_driveway_{cover['name']}_{label}_share"]["value_template"]
            assert _render(template, result) == round(shares.get(label, 0) * 100, 1)

    later = Recorder(broker.anonymous_port)  # the picture is retained for a later subscriber
    try:
        later.subscribe(f"{PREFIX}/image/driveway")
        (kept,) = later.wait_for(lambda m: m.retain)
    finally:
        later.close()
    assert kept.payload == picture.payload
    shown = Image.open(io.BytesIO(picture.payload))
    assert shown.format == "JPEG" and shown.size == (
        result["image"]["width"],
        result["image"]["height"],
    )
    drawn = httpx.post(
        server.url + "/segment",
        params={"format": "overlay"},
        files={"image": photo(DOG)},
        timeout=120,
    )
    assert drawn.headers["content-type"] == "image/jpeg"
    overlay = Image.open(io.BytesIO(drawn.content))
    difference = np.abs(np.asarray(shown, np.int16) - np.asarray(overlay, np.int16))
    assert difference.mean() < 1.0  # the same picture (JPEG rounding aside)


def test_a_bad_payload_on_a_segmenting_source_gets_its_problem(
    server: ServerProcess, recorder: Recorder
) -> None:
    """Text on a segmenting source: a 400 problem on its error topic, counted; no picture."""
    text = httpx.get(server.url + "/metrics").text
    before = metric(text, "edge_mqtt_classify_errors_total", status="400")
    recorder.subscribe(f"{PREFIX}/error/yard", f"{PREFIX}/image/yard")
    recorder.publish(f"{PREFIX}/classify/yard", b"this is not an image")
    problem = json.loads(recorder.wait_for(_on(f"{PREFIX}/error/yard"))[0].payload)
    assert problem["status"] == 400 and "not an image" in problem["detail"]
    assert problem["instance"] == f"{PREFIX}/classify/yard"
    text = httpx.get(server.url + "/metrics").text
    assert metric(text, "edge_mqtt_classify_errors_total", status="400") == before + 1
    assert not [m for m in recorder.messages if m.topic == f"{PREFIX}/image/yard"]


def test_bad_source_regions_stop_the_start(
    models_dir: Path, runtime: str, broker: Mosquitto, tmp_path: Path
) -> None:
    """A region corner outside the frame: exit 2 naming the source, the region and the fix."""
    config = tmp_path / "models.toml"
    config.write_text("[sources.driveway]\nregions = {parking = [[0, 0], [1.5, 0], [1, 1]]}\n")
    env = server_env(
        models_dir,
        runtime,
        model="segmenter",
        models_config=str(config),
        mqtt_url=broker.url(),
        mqtt_sources="driveway:segmenter",
    )
    process = ServerProcess(env, free_port())
    process.process.wait(timeout=60)
    assert process.stop() == 2
    assert "[sources.driveway] regions: region 'parking' has a corner (1.5, 0)" in process.log
    assert "fix" in process.log
