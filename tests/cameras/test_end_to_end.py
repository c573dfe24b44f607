"""Cameras end to end, in one app: real cameras (GStreamer's RTSP server, an ESP32-style MJPEG
stream, a snapshot URL behind Digest auth), the real COCO detector, a real mosquitto heard by
paho, a stdlib webhook receiver, and Double Take's fetches through the HTTP API.

One app watches four cameras at once, as a user's would: `walk` (RTSP, the walk-in clip),
`still` (RTSP, the still scene with sensor noise), `door` (MJPEG of the walk-in clip) and
`garage` (its snapshots, Digest). In-process (no server process): what is checked is what
the app publishes and answers, which a process would only wrap. The tests read in order: the
still camera's 60 s without an event are checked last, after the others have run beside it.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.runtime import RuntimeChoice

from conftest import DETECTOR, SMALL_MODEL, free_port
from support.cameras import LOGIN
from support.cameras.clips import Clip, still_clip
from support.cameras.mjpeg_server import MjpegServer
from support.cameras.rtsp import RtspServer
from support.cameras.snapshot_server import SnapshotServer
from support.inprocess import in_process
from support.mosquitto import Mosquitto, Received, Recorder
from support.waiting import until

pytestmark = pytest.mark.lan

STILL_SECONDS = 60.0  # the still camera watched at least this long without an event
PREFIX = "edge-server/e2e"
FRIGATE_KEYS = {
    *("id", "camera", "frame_time", "label", "sub_label", "score", "top_score", "box", "area"),
    *("region", "current_zones", "entered_zones", "start_time", "end_time", "has_snapshot"),
    *("stationary", "active", "false_positive"),
}


@pytest.fixture(scope="module")
def still_server(images_dir: Path, clips_dir: Path) -> Iterator[RtspServer]:
    """The still scene with sensor noise over RTSP (no login), one server a module."""
    server = RtspServer(still_clip(images_dir, clips_dir), path="still")
    server.start()
    try:
        yield server
    finally:
        server.kill()


class _Hooks(http.server.ThreadingHTTPServer):
    """A webhook receiver: every POSTed JSON body, in arrival order."""

    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", free_port()), _HookHandler)


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: _Hooks

    def do_POST(self) -> None:  # the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # the stdlib's
        """Quiet."""


@dataclass
class World:
    """What the tests look at: the app's client, the broker's recorder, the hooks, the times."""

    http: httpx.Client
    recorder: Recorder
    hooks: _Hooks
    broker: Mosquitto
    started: float  # time.time() when the app had started


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    models_dir: Path,
    runtime: str,
    rtsp_server: RtspServer,
    still_server: RtspServer,
    mjpeg: MjpegServer,
    snapshots: SnapshotServer,
) -> Iterator[World]:
    """The app watching the four cameras, publishing to mosquitto and posting to the hooks."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    recorder = Recorder(broker.anonymous_port)
    recorder.subscribe("frigate/#", f"{PREFIX}/#", "homeassistant/#")
    hooks = _Hooks()
    hook_thread = threading.Thread(target=hooks.serve_forever, daemon=True)
    hook_thread.start()
    cameras = ",".join(
        [
            f"walk={rtsp_server.url()}",
            f"still={still_server.url()}",
            f"door={mjpeg.url()}",
            f"garage={snapshots.url('/digest/capture', login=LOGIN)}",
        ]
    )
    # The snapshot camera polled five times a second: at the default 1 s, the person's five
    # seconds in view would be five frames, too few to confirm it (ten scores' median).
    config = tmp_path_factory.mktemp("config") / "models.toml"
    config.write_text("[cameras.garage]\nsnapshot_interval = 0.2\n")
    settings = Settings(
        models_config=config,
        model=[DETECTOR, SMALL_MODEL],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        cameras=cameras,
        camera_events="frigate",
        camera_webhooks=[f"http://127.0.0.1:{hooks.server_address[1]}/hook"],
        mqtt_url=broker.url(),
        mqtt_prefix=PREFIX,
        node_id="e2e",
    )
    try:
        with in_process(create_app(settings)) as client:
            yield World(client, recorder, hooks, broker, time.time())
    finally:
        recorder.close()
        hooks.shutdown()
        hooks.server_close()
        hook_thread.join()
        broker.stop()


def _events(world: World, camera: str, label: str = "person") -> list[dict[str, Any]]:
    """The events published so far on frigate/events for one camera and label."""
    found = []
    for message in list(world.recorder.messages):
        if message.topic == "frigate/events":
            event = json.loads(message.payload)
            if event["after"]["camera"] == camera and event["after"]["label"] == label:
                found.append(event)
    return found


def _first_life(world: World, camera: str, what: str) -> tuple[str, list[dict[str, Any]]]:
    """The first person's id on `camera` and its events up to its `end` (waiting for it)."""

    def ended() -> tuple[str, list[dict[str, Any]]] | None:
        events = _events(world, camera)
        if not events:
            return None
        first = events[0]["after"]["id"]
        life = [e for e in events if e["after"]["id"] == first]
        ends = [n for n, e in enumerate(life) if e["type"] == "end"]
        return (first, life[: ends[0] + 1]) if ends else None  # a sub label may follow

    return until(ended, what)


def _people(world: World, jpeg: bytes) -> list[dict[str, Any]]:
    """The people the served detector finds in a JPEG (through POST /detect)."""
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    response = world.http.post(
        "/detect",
        params={"model": DETECTOR, "labels": "person", "min_score": "0.5"},
        content=jpeg,
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 200, response.text
    detections: list[dict[str, Any]] = response.json()["detections"]
    return detections


def _frame_zero(world: World, camera: str) -> float:
    """When the camera's current stream started: its last frame time minus the frames before
    it at the clip's rate (a stream paced in real time from the clip's start, read whole)."""
    status = _camera(world, camera)
    assert status["last_frame_time"] is not None
    fps = 10.0
    read: int = status["frames"]["read"]
    return float(status["last_frame_time"]) - (read - 1) / fps


def _camera(world: World, name: str) -> dict[str, Any]:
    cameras = world.http.get("/v1/cameras").json()["cameras"]
    found: dict[str, Any] = next(c for c in cameras if c["name"] == name)
    return found


def test_the_walk_in_person_is_one_event_updated_and_doubletake_fetches_show_it(
    world: World, walk_clip: Clip
) -> None:
    """On the RTSP walk-in clip: one `new` for the person after it appears (the delay is
    printed), `update`s, one `end`; while it is there, Double Take's version check and its
    two fetches answer JPEGs in which the detector finds the person."""
    assert walk_clip.person_in is not None
    new = until(lambda: [e for e in _events(world, "walk") if e["type"] == "new"], "walk: new")
    heard = time.time()
    # The stream's start from its steady rate (the server sends the first frames in a burst).
    zero = _frame_zero(world, "walk")
    event = new[0]["after"]
    print(
        f"\nwalk: new {heard - (zero + walk_clip.person_in):.2f} s after the person appeared "
        f"(frame_time {event['frame_time'] - (zero + walk_clip.person_in):+.2f} s, score "
        f"{event['score']:.2f})"
    )
    assert event["label"] == "person" and event["camera"] == "walk"
    assert event["top_score"] >= 0.7 and not event["false_positive"]
    assert set(event) >= FRIGATE_KEYS

    # Double Take, as on each Frigate event: the version, then the latest frame and the
    # event's snapshot cropped, both at h=500.
    version = world.http.get("/api/version")
    assert version.status_code == 200 and version.text.startswith("edge-server-")
    latest = world.http.get("/api/walk/latest.jpg", params={"h": "500"})
    assert latest.status_code == 200 and latest.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(latest.content)) as picture:
        assert picture.height == 360  # never enlarged: the stream is 360 rows
    assert _people(world, latest.content), "no person in latest.jpg"
    snapshot = until(
        lambda: (
            r
            if (
                r := world.http.get(f"/api/events/{event['id']}/snapshot.jpg?h=500&crop=1")
            ).status_code
            == 200
            else None
        ),
        "the event's snapshot",
    )
    assert snapshot.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(snapshot.content)) as picture:
        assert abs(picture.width - picture.height) <= 2  # the square around the person
    assert _people(world, snapshot.content), "no person in the cropped snapshot"

    first, life = _first_life(world, "walk", "walk: the person's end")
    kinds = [e["type"] for e in life]
    print(f"walk: {kinds.count('update')} updates between new and end")
    assert kinds[0] == "new" and kinds[-1] == "end"
    assert kinds.count("new") == 1 and kinds.count("end") == 1
    assert "update" in kinds
    ended = life[-1]["after"]
    assert ended["end_time"] is not None and not ended["active"]
    # One person, one event: no other person event began on the camera before it ended.
    others = [e for e in _events(world, "walk") if e["after"]["id"] != first]
    assert all(e["after"]["start_time"] > ended["end_time"] - 1 for e in others)


def test_the_retained_snapshot_shows_the_person(world: World) -> None:
    """frigate/walk/person/snapshot is retained: a client that subscribes later gets a JPEG
    in which the detector finds the person, and the count and motion beside it."""
    _first_life(world, "walk", "walk: the person's end")
    late = Recorder(world.broker.anonymous_port)
    try:
        late.subscribe("frigate/walk/#", f"{PREFIX}/walk/#")
        snapshot = late.wait_for(lambda m: m.topic == "frigate/walk/person/snapshot")
        assert snapshot and snapshot[0].retain
        assert _people(world, snapshot[0].payload), "no person in the retained snapshot"
        latest = late.wait_for(lambda m: m.topic == f"{PREFIX}/walk/snapshot")
        assert latest and latest[0].retain and latest[0].payload[:2] == b"\xff\xd8"
        count = late.wait_for(lambda m: m.topic == "frigate/walk/person")
        assert count and count[0].retain and count[0].payload.isdigit()
        motion = late.wait_for(lambda m: m.topic == "frigate/walk/motion")
        assert motion and motion[0].retain and motion[0].payload in (b"ON", b"OFF")
    finally:
        late.close()
    counts = [m.payload for m in world.recorder.messages if m.topic == "frigate/walk/person"]
    assert b"1" in counts and counts[-1] in (b"0", b"1")  # a person was counted


def test_webhooks_receive_the_same_events(world: World) -> None:
    """The webhook receiver gets the walk-in person's new and end as MQTT published them."""
    first, life = _first_life(world, "walk", "walk: the person's end")
    posted = until(
        lambda: [b for b in world.hooks.bodies if b["after"]["id"] == first and b["type"] == "end"],
        "the webhook's end",
    )
    assert posted[0] == life[-1]
    kinds = [b["type"] for b in world.hooks.bodies if b["after"]["id"] == first]
    assert kinds == [e["type"] for e in life]


@pytest.mark.parametrize("camera", ["door", "garage"])
def test_mjpeg_and_snapshot_cameras_see_the_person(world: World, camera: str) -> None:
    """The same clip as an ESP32-style MJPEG stream and as snapshots behind Digest auth: a
    `new` for the person, `update`s, then its `end`."""
    _, life = _first_life(world, camera, f"{camera}: the person's end")
    kinds = [e["type"] for e in life]
    print(f"\n{camera}: {kinds.count('update')} updates between new and end")
    assert kinds[0] == "new" and kinds.count("new") == 1 and kinds[-1] == "end"
    assert "update" in kinds


# Double Take's `update_sub_labels` request (api/src/util/frigate.util.js, axios 0.27): a POST
# of `{"subLabel": names}` as JSON with axios's headers, and no API key.
AXIOS = {
    "Accept": "application/json, text/plain, */*",
    "Content-Type": "application/json",
    "User-Agent": "axios/0.27.2",
}


def _double_take_names(world: World, event_id: str, body: dict[str, Any]) -> httpx.Response:
    data = json.dumps(body, separators=(",", ":"))  # JSON.stringify's form
    return world.http.post(f"/api/events/{event_id}/sub_label", content=data, headers=AXIOS)


def _updates_of(world: World, event_id: str) -> list[dict[str, Any]]:
    found = []
    for message in list(world.recorder.messages):
        if message.topic == "frigate/events":
            event = json.loads(message.payload)
            if event["after"]["id"] == event_id:
                found.append(event)
    return found


def test_double_take_names_a_live_person_and_the_name_stays(world: World) -> None:
    """Double Take's sub label request on a person still in view of the MJPEG camera: 200 as
    Frigate answers, an `update` carrying the name at once, the name kept by the object's
    later events up to its `end`, and in GET /api/events/<id>."""

    def in_view() -> str | None:
        events = _events(world, "door")
        ended = {e["after"]["id"] for e in events if e["type"] == "end"}
        live = [e["after"]["id"] for e in events if e["type"] == "new"]
        return next((i for i in reversed(live) if i not in ended), None)

    event_id = until(in_view, "door: a person in view")
    answer = _double_take_names(world, event_id, {"subLabel": "obama"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "message": f"Event {event_id} sub label set to obama"}
    named = until(
        lambda: [
            e
            for e in _updates_of(world, event_id)
            if e["type"] == "update" and e["after"]["sub_label"] == ["obama", None]
        ],
        "door: the named update",
    )
    assert named[0]["before"]["sub_label"] is None and named[0]["after"]["active"]
    end = until(
        lambda: [e for e in _updates_of(world, event_id) if e["type"] == "end"], "door: its end"
    )
    assert end[0]["after"]["sub_label"] == ["obama", None]
    assert world.http.get(f"/api/events/{event_id}").json()["sub_label"] == "obama"
    until(
        lambda: any(b["after"]["sub_label"] == ["obama", None] for b in list(world.hooks.bodies)),
        "the webhook's named update",
    )


def test_double_take_names_an_ended_event_with_a_score_and_clears_it(world: World) -> None:
    """On an ended event: the name and Frigate's subLabelScore go into the stored event and an
    `update` (still ended); "" clears it; an unknown event is a 404 problem and a body without
    subLabel or with a score above 1 a 422 problem."""
    first, _ = _first_life(world, "walk", "walk: the person's end")
    answer = _double_take_names(world, first, {"subLabel": "obama", "subLabelScore": 0.87})
    assert answer.status_code == 200, answer.text
    named = until(
        lambda: [
            e for e in _updates_of(world, first) if e["after"]["sub_label"] == ["obama", 0.87]
        ],
        "walk: the named update",
    )
    assert named[0]["type"] == "update" and not named[0]["after"]["active"]
    assert named[0]["after"]["end_time"] is not None
    assert world.http.get(f"/api/events/{first}").json()["sub_label"] == "obama"
    cleared = _double_take_names(world, first, {"subLabel": ""})
    assert cleared.json()["message"] == f"Event {first} sub label set to None"
    assert world.http.get(f"/api/events/{first}").json()["sub_label"] is None
    missing = _double_take_names(world, "1765070000.0-abcdef", {"subLabel": "obama"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "1765070000.0-abcdef" in missing.json()["detail"]
    for body in ({}, {"subLabel": "obama", "subLabelScore": 2}, {"subLabel": "x" * 101}):
        refused = _double_take_names(world, first, body)
        assert refused.status_code == 422, body
        assert refused.headers["content-type"] == "application/problem+json"


def test_classify_answers_while_the_cameras_run(world: World, images_dir: Path) -> None:
    """/classify keeps answering while four cameras are watched (no duration asserted)."""
    photo = (images_dir / "grace_hopper.jpg").read_bytes()
    for _ in range(5):
        response = world.http.post(
            "/classify",
            params={"model": SMALL_MODEL},
            content=photo,
            headers={"Content-Type": "image/jpeg"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["predictions"]
    assert all(c["frames"]["read"] > 0 for c in world.http.get("/v1/cameras").json()["cameras"])


def test_cameras_status_shows_each_camera_without_its_password(world: World) -> None:
    """GET /v1/cameras: every camera streaming, its rates and counters, the URL redacted."""

    def streaming() -> httpx.Response | None:
        response = world.http.get("/v1/cameras")
        cameras = response.json()["cameras"]
        ready = all(c["frames"]["analysed"] > 0 and c["state"] == "streaming" for c in cameras)
        return response if ready else None

    # The test clips end and the feeds reconnect: a moment when all four stream.
    response = until(streaming, "every camera streaming, a frame analysed")
    assert response.status_code == 200
    cameras = {c["name"]: c for c in response.json()["cameras"]}
    assert list(cameras) == ["walk", "still", "door", "garage"]
    for camera in cameras.values():
        assert camera["state"] == "streaming"
        assert LOGIN[1] not in json.dumps(camera)
        assert camera["fps"]["read"] > 0 and camera["last_frame_time"] is not None
        assert camera["frames"]["read"] >= camera["frames"]["analysed"] > 0
        assert camera["frames"]["decoded"] == camera["frames"]["read"]
        fps = camera["fps"]
        assert fps["dropped"] == pytest.approx(max(0.0, fps["read"] - fps["analysed"]), abs=0.02)
    assert cameras["walk"]["codec"] == "h264" and "***" in cameras["walk"]["url"]
    assert (cameras["walk"]["width"], cameras["walk"]["height"]) == (640, 360)
    assert LOGIN[1] not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/cameras/nope/latest.jpg",
        "/api/nope/latest.jpg",
        "/api/events/1765070000.0-abcdef",
        "/api/events/1765070000.0-abcdef/snapshot.jpg?h=500&crop=1",
    ],
)
def test_unknown_cameras_and_events_are_404_problems(world: World, path: str) -> None:
    """404 problem+json naming what is missing (and the cameras there are)."""
    response = world.http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "nope" in detail or "1765070000.0-abcdef" in detail
    if "nope" in path:
        assert "walk" in detail


def test_events_list_in_frigates_shape(world: World) -> None:
    """GET /api/events?camera=walk&label=person&limit=1: the newest walk person, Frigate's
    keys, the box as fractions of the frame; the latest frame with boxes at a height."""
    first, _ = _first_life(world, "walk", "walk: the person's end")
    listed = world.http.get("/api/events", params={"camera": "walk", "label": "person"}).json()
    assert first in [e["id"] for e in listed]
    newest = world.http.get("/api/events", params={"camera": "walk", "limit": "1"}).json()
    assert len(newest) == 1 and newest[0]["camera"] == "walk"
    entry = next(e for e in listed if e["id"] == first)
    assert entry["label"] == "person" and entry["has_snapshot"] and entry["end_time"]
    assert {"zones", "top_score", "start_time", "false_positive", "has_clip", "data"} <= set(entry)
    assert all(0 <= v <= 1 for v in entry["data"]["box"])
    assert world.http.get("/api/events", params={"camera": "still"}).json() == []
    boxed = world.http.get("/v1/cameras/walk/latest.jpg", params={"boxes": "1", "h": "180"})
    assert boxed.status_code == 200
    with Image.open(io.BytesIO(boxed.content)) as picture:
        assert picture.size == (320, 180)


def test_home_assistant_sees_each_camera(world: World) -> None:
    """Discovery configs for every camera: motion, person occupancy and count, the image."""
    for camera in ("walk", "still", "door", "garage"):
        unique = f"edge_server_e2e_camera_{camera}_"
        for component, key in [
            ("binary_sensor", "motion"),
            ("binary_sensor", "person_occupancy"),
            ("sensor", "person_count"),
            ("image", "snapshot"),
            ("event", "object"),
            ("sensor", "fps"),
            ("binary_sensor", "connected"),
        ]:
            topic = f"homeassistant/{component}/{unique}{key}/config"
            assert world.recorder.wait_for(_on(topic)), topic
    connected = world.recorder.wait_for(
        lambda m: m.topic == f"{PREFIX}/walk/diagnostics" and json.loads(m.payload)["connected"]
    )
    assert connected and json.loads(connected[0].payload)["state"] == "streaming"


def test_the_still_camera_gives_no_event_and_no_motion(world: World) -> None:
    """The still scene with sensor noise, watched for 60 s beside the others: no event, no
    motion ON, and motion OFF in its status."""
    remaining = world.started + STILL_SECONDS - time.time()
    if remaining > 0:
        time.sleep(remaining)  # the 60 s of watching the test is about, not a timing bound
    status = _camera(world, "still")
    print(f"\nstill: {status['frames']['analysed']} frames analysed, {status['fps']}")
    assert status["frames"]["analysed"] > 0
    assert status["motion"] is False
    published = [m for m in list(world.recorder.messages) if _about(m, "still")]
    assert not [m for m in published if m.topic == "frigate/events"]
    assert not [m for m in published if m.topic == "frigate/still/motion" and m.payload == b"ON"]
    assert world.http.get("/api/events", params={"camera": "still"}).json() == []


def _on(topic: str) -> Callable[[Received], bool]:
    """Whether a message is on `topic`."""
    return lambda message: message.topic == topic


def _about(message: Received, camera: str) -> bool:
    if message.topic == "frigate/events":
        return bool(json.loads(message.payload)["after"]["camera"] == camera)
    return message.topic.startswith(f"frigate/{camera}/")
