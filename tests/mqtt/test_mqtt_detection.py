"""MQTT sources mapped to models: detection results, Home Assistant count sensors declared
before any image, the device's status sensor; with a real mosquitto and a real server process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_server.client import Client

from conftest import DEFAULT_MODEL, DETECTOR, ServerProcess, free_port, server_env
from support.mosquitto import Mosquitto, Received, Recorder, wait_subscribed

pytestmark = pytest.mark.lan

Photo = Callable[[str], bytes]
NODE = "detect-test"
PREFIX = f"edge-server/{NODE}"
ID = "edge_server_detect_test"
LEARNED_PREFIX = "edge-server/learned-test"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the module."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def detecting_mqtt_server(
    models_dir: Path, runtime: str, broker: Mosquitto
) -> Iterator[ServerProcess]:
    """The classifier as default and the detector, front_door and a camera topic mapped to it."""
    env = server_env(
        models_dir,
        runtime,
        model=f"{DEFAULT_MODEL},objects",
        node_id=NODE,
        mqtt_url=broker.url(),
        mqtt_topics="cams/+/snapshot",
        mqtt_sources="front_door:objects,cams/yard/snapshot:objects",
        mqtt_count_labels="person,kite",
    )
    server = ServerProcess(env, free_port())
    server.wait_ready()
    wait_subscribed(server)
    yield server
    server.stop()


def _on(topic: str) -> Callable[[Received], bool]:
    return lambda message: message.topic == topic


def test_declared_sources_are_announced_before_any_image(
    detecting_mqtt_server: ServerProcess, broker: Mosquitto
) -> None:
    """Count sensors per listed label, an objects count, the event and the status sensor."""
    watcher = Recorder(broker.anonymous_port)
    try:
        watcher.subscribe("homeassistant/+/+/config")
        retained = watcher.wait_for(lambda m: m.retain and "front_door" in m.topic, count=4)
        status = watcher.wait_for(lambda m: m.retain and m.topic.endswith("_service_status/config"))
    finally:
        watcher.close()
    configs = {m.topic.split("/")[2]: json.loads(m.payload) for m in retained}
    assert set(configs) == {
        f"{ID}_front_door_{e}" for e in ("person_count", "kite_count", "objects_count", "detected")
    }
    person = configs[f"{ID}_front_door_person_count"]
    assert person["state_topic"] == f"{PREFIX}/result/front_door"
    assert "selectattr('label', 'eq', 'person')" in person["value_template"]
    assert configs[f"{ID}_front_door_detected"]["event_types"] == ["detected"]
    diagnostic = json.loads(status[0].payload)
    assert diagnostic["state_topic"] == f"{PREFIX}/status"
    assert diagnostic["entity_category"] == "diagnostic"
    assert diagnostic["device_class"] == "connectivity" and "availability" not in diagnostic


def test_a_mapped_source_is_detected_and_others_classified(
    detecting_mqtt_server: ServerProcess, broker: Mosquitto, photo: Photo
) -> None:
    """front_door and the yard camera get detections; another source the default classifier."""
    recorder = Recorder(broker.anonymous_port)
    try:
        recorder.subscribe(f"{PREFIX}/result/+", f"{PREFIX}/event/+")
        recorder.publish(f"{PREFIX}/classify/front_door", photo("kite_and_cold.jpg"))
        recorder.publish("cams/yard/snapshot", photo("parrot.jpg"))
        recorder.publish(f"{PREFIX}/classify/hall", photo("grace_hopper.jpg"))
        door = recorder.wait_for(_on(f"{PREFIX}/result/front_door"))
        door_event = recorder.wait_for(_on(f"{PREFIX}/event/front_door"))
        yard = recorder.wait_for(lambda m: m.topic.startswith(f"{PREFIX}/result/cams_yard"))
        hall = recorder.wait_for(_on(f"{PREFIX}/result/hall"))
    finally:
        recorder.close()
    answer = json.loads(door[0].payload)
    assert answer["model"]["name"] == DETECTOR
    assert sorted({d["label"] for d in answer["detections"]}) == ["kite", "person"]
    assert answer["topic"] == f"{PREFIX}/classify/front_door"
    event = json.loads(door_event[0].payload)
    assert event["event_type"] == "detected"
    assert event["labels"] == {"person": 7, "kite": 3} and event["count"] == 10
    assert json.loads(yard[0].payload)["detections"][0]["label"] == "bird"
    assert json.loads(hall[0].payload)["predictions"][0]["label"] == "military uniform"


def test_a_source_mapped_to_a_model_not_served_stops_the_start(
    models_dir: Path, runtime: str, broker: Mosquitto
) -> None:
    """EDGE_MQTT_SOURCES naming a model that is not served: exit 2 naming the source and fix."""
    env = server_env(models_dir, runtime, mqtt_url=broker.url(), mqtt_sources="garage:garage_door")
    server = ServerProcess(env, free_port())
    server.process.wait(timeout=60)
    assert server.stop() == 2
    assert "garage" in server.log and "garage_door" in server.log
    assert "EDGE_MQTT_SOURCES" in server.log


def test_learned_models_answer_sources_and_name_each_object(
    models_dir: Path,
    runtime: str,
    broker: Mosquitto,
    photo: Photo,
    images_dir: Path,
    tmp_path: Path,
) -> None:
    """garage mapped to a learned model and garden to the detector + a learned model: the
    garage answer is the learned class, the garden's cat gets the learned sub label."""
    key = "mqtt-learned-key-0123456789"
    env = server_env(
        models_dir,
        runtime,
        model="tiny,objects",
        node_id="learned-test",  # not the module server's: it hears its own topics
        data_dir=str(tmp_path),
        api_key=key,
        mqtt_url=broker.url(),
        mqtt_sources="garden:objects+our_pets,garage:garage_door",
    )
    server = ServerProcess(env, free_port())
    server.wait_ready()
    try:
        wait_subscribed(server)
        client = Client(server.url, api_key=key)
        folder = images_dir / "imprinting"
        for model in ("our_pets", "garage_door"):
            client.learn(model, "tabby", [(folder / "cat_train_0.bmp").read_bytes()])
            client.learn(model, "rex", [(folder / "dog_train_0.bmp").read_bytes()])
        recorder = Recorder(broker.anonymous_port)
        try:
            recorder.subscribe(f"{LEARNED_PREFIX}/result/+")
            recorder.publish(f"{LEARNED_PREFIX}/classify/garden", photo("chelsea.png"))
            recorder.publish(
                f"{LEARNED_PREFIX}/classify/garage", (folder / "dog_test_0.bmp").read_bytes()
            )
            garden = recorder.wait_for(_on(f"{LEARNED_PREFIX}/result/garden"))
            garage = recorder.wait_for(_on(f"{LEARNED_PREFIX}/result/garage"))
        finally:
            recorder.close()
    finally:
        server.stop()
    found = json.loads(garden[0].payload)
    assert found["model"]["name"] == DETECTOR and found["classifier"]["name"] == "our_pets"
    (cat,) = [d for d in found["detections"] if d["label"] == "cat"]
    assert cat["sub_label"] == "tabby" and 0.5 < cat["sub_score"] <= 1
    answer = json.loads(garage[0].payload)
    assert answer["model"]["name"] == "garage_door"
    assert answer["predictions"][0]["label"] == "rex"
