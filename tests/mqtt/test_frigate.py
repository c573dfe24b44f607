"""The Frigate bridge: events through a real broker, Frigate's HTTP API from a local stand-in.

Frigate itself cannot run here (it needs cameras, ffmpeg and its own detector), so a small
HTTP server answers its two documented routes: `GET /api/events/<id>/snapshot.jpg` (the event's
best snapshot as JPEG) and `POST /api/events/<id>/sub_label` (JSON `{"subLabel", "subLabelScore"}`,
answered `{"success": true, "message": ...}`). The events are real MQTT messages in Frigate's
documented `frigate/events` shape.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_server.client import Client
from edge_server.mqtt.frigate import parse_event, wanted

from conftest import ServerProcess, free_port, metric, server_env
from support.mosquitto import Mosquitto, Recorder, wait_subscribed
from support.waiting import HANG, until

pytestmark = pytest.mark.lan

Photo = Callable[[str], bytes]
BIRD_MODEL = "mobilenet_v2_1.0_224_inat_bird_quant"
NODE = "feeder-pi"


@dataclass
class FrigateStandIn:
    """Frigate's snapshot and sub label routes on 127.0.0.1, recording each request."""

    snapshot: bytes
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, body)
    port: int = 0

    def __post_init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # stdlib's name
                pass

            def do_GET(self) -> None:  # http.server's naming
                stand_in.requests.append(("GET", self.path, None))
                if self.path.split("?")[0].endswith("/snapshot.jpg"):
                    self._answer(200, stand_in.snapshot, "image/jpeg")
                else:
                    self._answer(404, b'{"success": false}', "application/json")

            def do_POST(self) -> None:  # http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append(("POST", self.path, body))
                event_id = self.path.split("/")[3]
                message = f"Event {event_id} sub label set to {body['subLabel']}"
                self._answer(200, json.dumps({"success": True, "message": message}).encode())

            def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def event(kind: str, event_id: str, camera: str, label: str, frame_time: float) -> bytes:
    """A `frigate/events` message in Frigate's documented shape (the fields it always sends)."""
    tracked = {
        "id": event_id,
        "camera": camera,
        "frame_time": frame_time,
        "snapshot": {
            "frame_time": frame_time,
            "box": [415, 489, 528, 700],
            "area": 12728,
            "region": [260, 446, 660, 846],
            "score": 0.77546,
            "attributes": [],
        },
        "label": label,
        "sub_label": None,
        "top_score": 0.8,
        "false_positive": False,
        "start_time": 1700000000.0,
        "end_time": None,
        "score": 0.79,
        "box": [424, 500, 536, 712],
        "area": 23744,
        "ratio": 2.11,
        "region": [264, 450, 667, 853],
        "current_zones": [],
        "entered_zones": [],
        "thumbnail": None,
        "has_snapshot": True,
        "has_clip": True,
        "stationary": False,
        "motionless_count": 0,
        "position_changes": 1,
        "attributes": {},
    }
    return json.dumps({"type": kind, "before": tracked, "after": tracked}).encode()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto of the test's own."""
    broker = Mosquitto(tmp_path)
    yield broker
    broker.stop()


@pytest.fixture
def frigate(photo: Photo) -> Iterator[FrigateStandIn]:
    """The stand-in, serving parrot.jpg as every event's snapshot."""
    stand_in = FrigateStandIn(photo("parrot.jpg"))
    yield stand_in
    stand_in.close()


@pytest.fixture
def bridge(
    models_dir: Path, runtime: str, broker: Mosquitto, frigate: FrigateStandIn
) -> Iterator[ServerProcess]:
    """A server on the ImageNet and bird models with the bridge on (its default model: `birds`),
    following camera `feeder`."""
    server = ServerProcess(
        server_env(
            models_dir,
            runtime,
            model="objects,imagenet,birds",  # a detector first: the bridge still classifies
            node_id=NODE,
            mqtt_url=broker.url(),
            frigate_url=frigate.url,
            frigate_cameras="feeder",
            frigate_min_score="0.5",
        ),
        free_port(),
    )
    server.wait_ready()
    wait_subscribed(server)
    yield server
    server.stop()


def _outcomes(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=HANG).text
    names = ("classified", "unchanged", "ignored", "failed")
    return {name: metric(text, "edge_frigate_events_total", outcome=name) for name in names}


def test_a_bird_event_is_named_once_and_written_back_as_a_sub_label(
    bridge: ServerProcess, broker: Mosquitto, frigate: FrigateStandIn
) -> None:
    """A bird event: one fetch, the species as sub label; unchanged, person, elsewhere: nothing."""
    watcher = Recorder(broker.anonymous_port)
    result_topic = f"edge-server/{NODE}/result/feeder"
    watcher.subscribe(result_topic)
    watcher.publish("frigate/events", event("new", "1700000000.1-abc123", "feeder", "bird", 10.5))
    results = watcher.wait_for(lambda m: m.topic == result_topic)
    watcher.publish(
        "frigate/events", event("update", "1700000000.1-abc123", "feeder", "bird", 10.5)
    )
    watcher.publish("frigate/events", event("new", "1700000001.2-def456", "feeder", "person", 11))
    watcher.publish("frigate/events", event("new", "1700000002.3-ghi789", "driveway", "bird", 12))

    def settled() -> dict[str, float] | None:
        outcomes = _outcomes(bridge)
        return outcomes if outcomes["unchanged"] >= 1 and outcomes["ignored"] >= 2 else None

    outcomes = until(settled, "the update counted unchanged, the person and the camera ignored")
    watcher.close()

    assert outcomes == {"classified": 1, "unchanged": 1, "ignored": 2, "failed": 0}
    gets = [path for method, path, _ in frigate.requests if method == "GET"]
    posts = [(path, body) for method, path, body in frigate.requests if method == "POST"]
    assert gets == ["/api/events/1700000000.1-abc123/snapshot.jpg?crop=1&quality=95"]
    assert len(posts) == 1
    path, body = posts[0]
    assert path == "/api/events/1700000000.1-abc123/sub_label"
    assert body["subLabel"] == "Ara macao (Scarlet Macaw)"
    assert 0.5 <= body["subLabelScore"] <= 1
    assert results
    answer = json.loads(results[0].payload)
    assert answer["predictions"][0]["label"] == "Ara macao (Scarlet Macaw)"
    assert answer["model"]["name"] == BIRD_MODEL
    assert answer["topic"] == "frigate/events"
    assert answer["frigate"] == {
        "event_id": "1700000000.1-abc123",
        "camera": "feeder",
        "label": "bird",
        "sub_label": "Ara macao (Scarlet Macaw)",
    }


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "not a Frigate event message"),
        (b'{"type": "new"}', "not a Frigate event message"),
        (b'{"type": "new", "after": {"id": "../../x", "camera": "c", "label": "bird"}}', "id"),
    ],
)
def test_malformed_frigate_messages_are_refused_with_a_reason(payload: bytes, problem: str) -> None:
    """Not JSON, no `after`, or an id that could escape the URL path: ValueError saying why."""
    with pytest.raises(ValueError, match=problem):
        parse_event(payload)


def test_which_events_the_bridge_takes() -> None:
    """Configured cameras (empty = all) and labels decide; the snapshot time is the change key."""
    bird = parse_event(event("update", "1.2-a", "feeder", "bird", 3.5))
    assert bird.snapshot_key == 3.5 and bird.type == "update"
    assert wanted(bird, {"feeder"}, {"bird"})
    assert wanted(bird, set(), {"bird"})
    assert not wanted(bird, {"driveway"}, {"bird"})
    assert not wanted(parse_event(event("new", "1.2-b", "feeder", "person", 1)), set(), {"bird"})


def test_which_cat_a_learned_model_names_and_never_unknown(
    models_dir: Path, runtime: str, broker: Mosquitto, photo: Photo, images_dir: Path
) -> None:
    """EDGE_FRIGATE_MODEL a learned model: a cat event's snapshot of our cat is written back
    as its sub label; a snapshot that is none of its classes (`unknown`) writes nothing."""
    key = "frigate-learned-key-0123456789"
    stand_in = FrigateStandIn(photo("chelsea.png"))
    with tempfile.TemporaryDirectory() as data_dir:
        server = ServerProcess(
            server_env(
                models_dir,
                runtime,
                model="tiny",
                node_id=NODE,
                data_dir=data_dir,
                api_key=key,
                mqtt_url=broker.url(),
                frigate_url=stand_in.url,
                frigate_cameras="garden",
                frigate_labels="cat",
                frigate_model="our_pets",
                frigate_min_score="0.5",
            ),
            free_port(),
        )
        try:
            server.wait_ready()
            wait_subscribed(server)
            client = Client(server.url, api_key=key)
            folder = images_dir / "imprinting"
            client.learn("our_pets", "tabby", [(folder / "cat_train_0.bmp").read_bytes()])
            client.learn("our_pets", "rex", [(folder / "dog_train_0.bmp").read_bytes()])
            watcher = Recorder(broker.anonymous_port)
            watcher.publish(
                "frigate/events", event("new", "1700000005.1-cat001", "garden", "cat", 5)
            )
            until(lambda: _outcomes(server)["classified"] >= 1, "the first cat classified")
            stand_in.snapshot = photo("grace_hopper.jpg")
            watcher.publish(
                "frigate/events", event("new", "1700000006.1-who002", "garden", "cat", 6)
            )
            until(lambda: _outcomes(server)["classified"] >= 2, "the second event classified")
            watcher.close()
        finally:
            server.stop()
            stand_in.close()
    posts = [(path, body) for method, path, body in stand_in.requests if method == "POST"]
    assert _snapshots_fetched(stand_in) == 2
    assert len(posts) == 1, posts
    path, body = posts[0]
    assert path == "/api/events/1700000005.1-cat001/sub_label"
    assert body["subLabel"] == "tabby" and 0.5 <= body["subLabelScore"] <= 1


def _snapshots_fetched(stand_in: FrigateStandIn) -> int:
    return sum(1 for method, _, _ in stand_in.requests if method == "GET")
