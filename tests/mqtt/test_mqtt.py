"""MQTT with a real broker (Debian's mosquitto), a real server process and a real client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_server.mqtt.topics import source_name

from conftest import SMALL_MODEL, ServerProcess, free_port, metric, server_env
from support.mosquitto import PASSWORD, Mosquitto, Received, Recorder, wait_subscribed
from support.waiting import HANG

pytestmark = pytest.mark.lan

Photo = Callable[[str], bytes]
NODE = "mqtt-test"
PREFIX = f"edge-server/{NODE}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the module: an anonymous listener and one with a password file."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


def _mqtt_server(models_dir: Path, runtime: str, **settings: str) -> ServerProcess:
    """A server process once its MQTT session has subscribed."""
    server = ServerProcess(server_env(models_dir, runtime, **settings), free_port())
    server.wait_ready()
    wait_subscribed(server)
    return server


@pytest.fixture(scope="module")
def mqtt_server(
    models_dir: Path, runtime: str, broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server on the password listener, MQTT 5, a camera topic pattern, a small queue,
    a 1 MB size limit, and a source `squashed` with its own fit."""
    config = tmp_path_factory.mktemp("models") / "models.toml"
    config.write_text('[sources.squashed]\nresize = "squash"\n')
    server = _mqtt_server(
        models_dir,
        runtime,
        node_id=NODE,
        mqtt_url=broker.url(password=PASSWORD),
        mqtt_protocol="5",
        mqtt_topics="cameras/+/snapshot",
        mqtt_max_pending="4",
        max_upload_bytes="1000000",
        models_config=str(config),
    )
    yield server
    server.stop()


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[Recorder]:
    """A plain MQTT 3.1.1 client on the anonymous listener."""
    client = Recorder(broker.anonymous_port)
    yield client
    client.close()


def _on(topic: str) -> Callable[[Received], bool]:
    return lambda message: message.topic == topic


def _metrics(server: ServerProcess) -> str:
    return httpx.get(server.url + "/metrics", timeout=HANG).text


def test_an_image_published_to_the_classify_topic_is_answered_on_the_result_topic(
    mqtt_server: ServerProcess, broker: Mosquitto, recorder: Recorder, photo: Photo
) -> None:
    """grace_hopper.jpg on classify/door: `military uniform` retained on result/door, an event."""
    recorder.subscribe(f"{PREFIX}/result/door", f"{PREFIX}/event/door")
    recorder.publish(f"{PREFIX}/classify/door", photo("grace_hopper.jpg"))
    results = recorder.wait_for(_on(f"{PREFIX}/result/door"))
    events = recorder.wait_for(_on(f"{PREFIX}/event/door"))
    assert results and events
    answer = json.loads(results[0].payload)
    assert answer["predictions"][0]["label"] == "military uniform"
    assert answer["topic"] == f"{PREFIX}/classify/door"
    assert answer["model"]["name"] == "mobilenet_v2_1.0_224_quant"
    assert set(answer) >= {"model", "predictions", "image", "timing_ms", "topic"}
    event = json.loads(events[0].payload)
    assert event["event_type"] == "classified" and event["label"] == "military uniform"
    # Retained: a client subscribing later gets the last answer at once.
    late = Recorder(broker.anonymous_port)
    try:
        late.subscribe(f"{PREFIX}/result/door")
        retained = late.wait_for(lambda m: m.topic.endswith("/result/door") and m.retain)
    finally:
        late.close()
    assert retained and json.loads(retained[0].payload)["predictions"][0]["label"] == (
        "military uniform"
    )


def test_an_extra_topic_pattern_is_classified_under_its_own_source(
    mqtt_server: ServerProcess, recorder: Recorder, photo: Photo
) -> None:
    """An EDGE_MQTT_TOPICS match is classified under a source named from its topic."""
    topic = "cameras/porch/snapshot"
    source = source_name(topic)
    assert source.startswith("cameras_porch_snapshot-")
    recorder.subscribe(f"{PREFIX}/result/{source}")
    recorder.publish(topic, photo("grace_hopper.jpg"))
    results = recorder.wait_for(_on(f"{PREFIX}/result/{source}"))
    assert results
    answer = json.loads(results[0].payload)
    assert answer["topic"] == topic
    assert answer["predictions"][0]["label"] == "military uniform"


def test_a_source_with_its_own_fit_is_answered_with_it(
    mqtt_server: ServerProcess, recorder: Recorder, photo: Photo
) -> None:
    """`[sources.squashed] resize = "squash"`: that source's answer is squashed (and says so),
    another source of the same model gets the model's own centre crop."""
    recorder.subscribe(f"{PREFIX}/result/squashed", f"{PREFIX}/result/hall")
    recorder.publish(f"{PREFIX}/classify/squashed", photo("grace_hopper.jpg"))
    recorder.publish(f"{PREFIX}/classify/hall", photo("grace_hopper.jpg"))
    squashed = json.loads(recorder.wait_for(_on(f"{PREFIX}/result/squashed"))[0].payload)
    hall = json.loads(recorder.wait_for(_on(f"{PREFIX}/result/hall"))[0].payload)
    assert squashed["image"]["resize"] == "squash" and hall["image"]["resize"] == "center-crop"
    # The manifest's squashed score; the crop cuts the uniform's sides and scores lower.
    assert squashed["predictions"][0]["score"] == pytest.approx(0.91, abs=0.02)
    assert hall["predictions"][0]["score"] < squashed["predictions"][0]["score"] - 0.1


def test_a_bad_payload_publishes_a_problem_and_is_counted(
    mqtt_server: ServerProcess, recorder: Recorder, photo: Photo
) -> None:
    """Text on a classify topic: a 400 problem on the error topic, counted; the service goes on."""
    before = metric(_metrics(mqtt_server), "edge_mqtt_classify_errors_total", status="400")
    recorder.subscribe(f"{PREFIX}/error/bad", f"{PREFIX}/result/bad")
    recorder.publish(f"{PREFIX}/classify/bad", b"this is not an image")
    problems = recorder.wait_for(_on(f"{PREFIX}/error/bad"))
    assert problems
    problem = json.loads(problems[0].payload)
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert "not an image" in problem["detail"]
    assert problem["instance"] == f"{PREFIX}/classify/bad"
    after = metric(_metrics(mqtt_server), "edge_mqtt_classify_errors_total", status="400")
    assert after == before + 1
    recorder.publish(f"{PREFIX}/classify/bad", photo("grace_hopper.jpg"))
    assert recorder.wait_for(_on(f"{PREFIX}/result/bad"))
    response = httpx.post(mqtt_server.url + "/classify", files={"image": photo("grace_hopper.jpg")})
    assert response.status_code == 200


def test_an_image_over_the_size_limit_is_refused_with_413(
    mqtt_server: ServerProcess, recorder: Recorder
) -> None:
    """A payload over EDGE_MAX_UPLOAD_BYTES: 413 on the error topic, as HTTP would answer."""
    recorder.subscribe(f"{PREFIX}/error/big")
    recorder.publish(f"{PREFIX}/classify/big", b"\xff\xd8" + b"\0" * 1_100_000)
    problems = recorder.wait_for(_on(f"{PREFIX}/error/big"))
    assert problems
    problem = json.loads(problems[0].payload)
    assert problem["status"] == 413 and "EDGE_MAX_UPLOAD_BYTES=1000000" in problem["detail"]


def test_mqtt5_response_topic_and_correlation_data_are_honoured(
    mqtt_server: ServerProcess, broker: Mosquitto, photo: Photo
) -> None:
    """An MQTT 5 request's response topic gets the answer, with its correlation data."""
    client = Recorder(broker.anonymous_port, v5=True)
    try:
        client.subscribe("replies/me")
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = "replies/me"
        properties.CorrelationData = b"request-42"
        client.publish(f"{PREFIX}/classify/asker", photo("grace_hopper.jpg"), properties=properties)
        replies = client.wait_for(_on("replies/me"))
    finally:
        client.close()
    assert replies
    assert replies[0].correlation == b"request-42"
    assert json.loads(replies[0].payload)["predictions"][0]["label"] == "military uniform"


def test_discovery_configs_describe_the_source_and_are_resent_after_a_birth_message(
    mqtt_server: ServerProcess, broker: Mosquitto, recorder: Recorder, photo: Photo
) -> None:
    """Three retained discovery configs per source, complete; re-sent on Home Assistant's birth."""
    recorder.subscribe(f"{PREFIX}/result/garden")
    recorder.publish(f"{PREFIX}/classify/garden", photo("grace_hopper.jpg"))
    assert recorder.wait_for(_on(f"{PREFIX}/result/garden"))

    watcher = Recorder(broker.anonymous_port)
    try:
        watcher.subscribe("homeassistant/+/+/config")
        ids = {f"edge_server_mqtt_test_garden_{e}" for e in ("label", "score", "classified")}

        def garden(message: Received) -> bool:
            return message.topic.split("/")[2] in ids

        retained = watcher.wait_for(lambda m: garden(m) and m.retain, count=3)
        assert len(retained) == 3
        configs = {m.topic: json.loads(m.payload) for m in retained}
        watcher.publish("homeassistant/status", b"online")
        fresh = watcher.wait_for(lambda m: garden(m) and not m.retain, count=3)
    finally:
        watcher.close()
    assert {m.topic for m in fresh} == set(configs)

    label = configs["homeassistant/sensor/edge_server_mqtt_test_garden_label/config"]
    score = configs["homeassistant/sensor/edge_server_mqtt_test_garden_score/config"]
    event = configs["homeassistant/event/edge_server_mqtt_test_garden_classified/config"]
    assert label["state_topic"] == f"{PREFIX}/result/garden"
    assert "[:255]" in label["value_template"]
    assert label["json_attributes_topic"] == f"{PREFIX}/result/garden"
    for key in ("score", "top_k", "model"):
        assert f"'{key}'" in label["json_attributes_template"]
    assert score["unit_of_measurement"] == "%" and score["state_class"] == "measurement"
    assert event["state_topic"] == f"{PREFIX}/event/garden"
    assert event["event_types"] == ["classified"]
    for config in (label, score, event):
        assert config["unique_id"] == config["unique_id"].strip() and config["name"]
        assert config["availability"] == [
            {
                "topic": f"{PREFIX}/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ]
        assert config["origin"]["name"] == "edge-server" and config["origin"]["sw_version"]
        device = config["device"]
        assert device["identifiers"] == [f"edge-server-{NODE}"]
        assert device["model"] == "mobilenet_v2_1.0_224_quant"
        assert device["sw_version"] == config["origin"]["sw_version"]
        assert device["configuration_url"] == f"http://127.0.0.1:{mqtt_server.port}/"
        assert "object_id" not in config  # deprecated by Home Assistant
    assert len({c["unique_id"] for c in (label, score, event)}) == 3


def test_availability_is_online_and_healthz_says_connected(
    mqtt_server: ServerProcess, recorder: Recorder
) -> None:
    """A retained `online` on <prefix>/status; /healthz reports the broker without password."""
    recorder.subscribe(f"{PREFIX}/status")
    status = recorder.wait_for(_on(f"{PREFIX}/status"))
    assert status and status[0].payload == b"online" and status[0].retain
    health = httpx.get(mqtt_server.url + "/healthz").json()
    assert health["mqtt"]["connected"] is True and health["mqtt"]["prefix"] == PREFIX
    assert PASSWORD not in json.dumps(health) and "edge@127.0.0.1" in health["mqtt"]["broker"]
    assert metric(_metrics(mqtt_server), "edge_mqtt_connected") == 1


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _total(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels (any other labels)."""
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def test_a_flood_of_images_is_bounded_counted_and_does_not_starve_http(
    mqtt_server: ServerProcess, recorder: Recorder, photo: Photo
) -> None:
    """1,000 x 600 KB images at once: bounded RSS, each answered or counted, HTTP served."""
    image = photo("parrot.jpg")
    pid = mqtt_server.process.pid
    before = _metrics(mqtt_server)
    baseline = _rss_mib(pid)
    peak = [baseline]
    http_statuses: list[int] = []
    flooding = threading.Event()
    flooding.set()

    def sample() -> None:
        while flooding.is_set():
            peak[0] = max(peak[0], _rss_mib(pid))
            time.sleep(0.01)

    def browse() -> None:
        with httpx.Client(base_url=mqtt_server.url, timeout=HANG) as client:
            while flooding.is_set():
                answer = client.post("/classify", files={"image": photo("grace_hopper.jpg")})
                http_statuses.append(answer.status_code)

    threads = [threading.Thread(target=sample), threading.Thread(target=browse)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(1000):
            recorder.publish(f"{PREFIX}/classify/flood", image, qos=0)
        deadline = time.monotonic() + HANG
        while time.monotonic() < deadline:
            after = _metrics(mqtt_server)
            received = _total(after, "edge_mqtt_messages_received_total", kind="classify") - (
                _total(before, "edge_mqtt_messages_received_total", kind="classify")
            )
            handled = sum(
                _total(after, name, **labels) - _total(before, name, **labels)
                for name, labels in (
                    ("edge_mqtt_messages_published_total", {"kind": "result"}),
                    ("edge_mqtt_classify_errors_total", {}),
                    ("edge_mqtt_messages_dropped_total", {"kind": "classify"}),
                )
            )
            if received == 1000 and handled == 1000:
                break
    finally:
        flooding.clear()
        for thread in threads:
            thread.join()
    dropped = _total(after, "edge_mqtt_messages_dropped_total", reason="queue_full") - _total(
        before, "edge_mqtt_messages_dropped_total", reason="queue_full"
    )
    results = _total(after, "edge_mqtt_messages_published_total", kind="result") - _total(
        before, "edge_mqtt_messages_published_total", kind="result"
    )
    print(
        f"flood: {results:.0f} classified, {dropped:.0f} dropped, RSS {baseline:.0f} -> "
        f"peak {peak[0]:.0f} MiB, {len(http_statuses)} HTTP answers during the flood"
    )
    assert mqtt_server.process.poll() is None
    assert received == 1000 and handled == 1000
    assert dropped > 0 and results > 0
    assert peak[0] - baseline < 150  # 1,000 x 600 KB were sent; 4 are held at most
    assert http_statuses and set(http_statuses) == {200}


def test_mqtts_with_the_brokers_ca_file_connects_and_classifies(
    models_dir: Path, runtime: str, tmp_path: Path, photo: Photo
) -> None:
    """mqtts:// with EDGE_MQTT_CA_FILE naming the broker's CA: connected, images answered."""
    broker = Mosquitto(tmp_path, tls=True)
    server = None
    try:
        server = _mqtt_server(
            models_dir,
            runtime,
            node_id="tls",
            mqtt_url=f"mqtts://localhost:{broker.tls_port}",
            mqtt_ca_file=str(broker.ca_file),
        )
        client = Recorder(broker.anonymous_port)
        client.subscribe("edge-server/tls/status", "edge-server/tls/result/cam")
        online = client.wait_for(lambda m: m.payload == b"online")
        client.publish("edge-server/tls/classify/cam", photo("grace_hopper.jpg"))
        results = client.wait_for(_on("edge-server/tls/result/cam"))
        client.close()
        health = httpx.get(server.url + "/healthz").json()["mqtt"]
    finally:
        if server is not None:
            server.stop()
        broker.stop()
    assert online and results
    assert health == {
        "connected": True,
        "broker": f"mqtts://localhost:{broker.tls_port}",
        "prefix": "edge-server/tls",
    }
    assert json.loads(results[0].payload)["predictions"][0]["label"] == "military uniform"


def test_after_a_model_reload_the_configs_name_the_new_model(
    models_dir: Path, runtime: str, broker: Mosquitto, photo: Photo
) -> None:
    """POST /v1/models/reload to another model: the next result re-announces, naming it."""
    key = "mqtt-reload-test-key-0123456789"
    server = _mqtt_server(
        models_dir, runtime, node_id="reloads", mqtt_url=broker.url(), api_key=key
    )
    watcher = Recorder(broker.anonymous_port)
    try:
        watcher.subscribe("edge-server/reloads/result/cam", "homeassistant/sensor/+/config")
        watcher.publish("edge-server/reloads/classify/cam", photo("grace_hopper.jpg"))
        assert watcher.wait_for(_on("edge-server/reloads/result/cam"))
        reloaded = httpx.post(
            server.url + "/v1/models/reload",
            json={"model": SMALL_MODEL},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert reloaded.status_code == 200, reloaded.text
        watcher.publish("edge-server/reloads/classify/cam", photo("grace_hopper.jpg"))

        def names_small_model(message: Received) -> bool:
            config = json.loads(message.payload) if message.topic.startswith("home") else {}
            return "reloads_cam_label" in message.topic and (
                config.get("device", {}).get("model") == SMALL_MODEL
            )

        renamed = watcher.wait_for(names_small_model)
    finally:
        watcher.close()
        server.stop()
    assert renamed
