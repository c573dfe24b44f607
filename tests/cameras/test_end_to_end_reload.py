"""Cameras in a real server process: SIGHUP re-reads the camera configuration and restarts
only what changed; a camera whose detector is not served stops the start with the fix.

A process because both are about the process: a signal, and an exit status with a message.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import DETECTOR, SMALL_MODEL, ServerProcess, free_port, server_env
from support.cameras.clips import still_clip
from support.cameras.rtsp import RtspServer
from support.mosquitto import Mosquitto, Received, Recorder
from support.waiting import HANG, until

pytestmark = pytest.mark.lan


@pytest.fixture(scope="module")
def still_server(images_dir: Path, clips_dir: Path) -> Iterator[RtspServer]:
    """The still scene over RTSP: cameras that cost their decode and nothing more."""
    server = RtspServer(still_clip(images_dir, clips_dir), path="still")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _cameras(server: ServerProcess) -> dict[str, dict[str, Any]]:
    response = httpx.get(server.url + "/v1/cameras", timeout=HANG)
    assert response.status_code == 200, response.text
    return {c["name"]: c for c in response.json()["cameras"]}


def _tables(url: str, **cameras: dict[str, Any]) -> str:
    lines = []
    for name, fields in cameras.items():
        lines.append(f"[cameras.{name}]")
        lines.append(f'url = "{url}"')
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def test_sighup_restarts_only_the_cameras_that_changed(
    tmp_path: Path, models_dir: Path, runtime: str, still_server: RtspServer
) -> None:
    """Before: a, b, c. After the edit and SIGHUP: a untouched (its frames keep counting from
    where they were), b gone (its Home Assistant entities, its retained topics on the broker
    and its metrics too), c restarted with its new fps, d started and announced."""
    config = tmp_path / "models.toml"
    url = still_server.url()
    config.write_text(_tables(url, a={}, b={}, c={"fps": 5}))
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    recorder = Recorder(broker.anonymous_port)
    prefix = "edge-server/reload"
    recorder.subscribe("homeassistant/#", f"{prefix}/#")
    env = server_env(
        models_dir,
        runtime,
        model=f"{DETECTOR},{SMALL_MODEL}",
        models_config=str(config),
        log_level="info",
        mqtt_url=broker.url(),
        node_id="reload",
    )
    server = ServerProcess(env, free_port())
    motion = "homeassistant/binary_sensor/edge_server_reload_camera_{}_motion/config"
    try:
        server.wait_ready()
        assert recorder.wait_for(lambda m: m.topic == motion.format("b") and m.payload != b"")
        assert recorder.wait_for(
            lambda m: m.topic == f"{prefix}/b/diagnostics" and m.payload != b""
        )
        until(
            lambda: all(c["frames"]["read"] > 5 for c in _cameras(server).values()),
            "a, b and c streaming",
        )
        before = _cameras(server)
        assert list(before) == ["a", "b", "c"]
        config.write_text(_tables(url, a={}, c={"fps": 2}, d={}))
        server.process.send_signal(signal.SIGHUP)
        until(lambda: list(_cameras(server)) == ["a", "c", "d"], "the cameras after SIGHUP")
        until(lambda: _cameras(server)["d"]["frames"]["read"] > 0, "d streaming")
        after = _cameras(server)
        # a kept its feed: its counters went on from before; c's feed is new.
        assert after["a"]["frames"]["read"] > before["a"]["frames"]["read"]
        assert after["c"]["frames"]["read"] < after["a"]["frames"]["read"]
        assert after["a"]["state"] == "streaming"
        metrics = httpx.get(server.url + "/metrics", timeout=HANG).text
        assert 'edge_camera_frames_read_total{camera="d"}' in metrics
        assert 'camera="b"' not in metrics  # a removed camera's series go with it
        # b's entities are removed (an empty retained config), d's announced.
        assert recorder.wait_for(lambda m: m.topic == motion.format("b") and m.payload == b"")
        assert recorder.wait_for(lambda m: m.topic == motion.format("d") and m.payload != b"")
        # b's retained topics are cleared (an empty retained payload): counts, snapshots,
        # motion and diagnostics.
        for level in ("diagnostics", "motion", "all", "person", "person/snapshot", "snapshot"):
            assert recorder.wait_for(_cleared(f"{prefix}/b/{level}")), level
        emptied = {m.topic for m in recorder.messages if m.payload == b""}
        assert emptied and all(
            "_camera_b_" in topic or topic.startswith(f"{prefix}/b/") for topic in emptied
        )
        # So the broker keeps nothing of b: a new subscriber is given a's, c's and d's retained
        # diagnostics (sent together on subscribing) and none of b's topics.
        fresh = Recorder(broker.anonymous_port)
        try:
            fresh.subscribe(f"{prefix}/#")
            for name in "acd":
                assert fresh.wait_for(_on(f"{prefix}/{name}/diagnostics")), name
            kept = sorted(m.topic for m in fresh.messages if m.topic.startswith(f"{prefix}/b/"))
            assert kept == []
        finally:
            fresh.close()
    finally:
        server.stop()
        recorder.close()
        broker.stop()
    assert "cameras reloaded: 1 unchanged, 2 stopped, 2 started" in server.log


def _on(topic: str) -> Callable[[Received], bool]:
    """Whether a message is on `topic`."""
    return lambda message: message.topic == topic


def _cleared(topic: str) -> Callable[[Received], bool]:
    """Whether a message is the empty payload that clears `topic`'s retained message."""
    return lambda message: message.topic == topic and message.payload == b""


def test_a_camera_without_a_served_detector_stops_the_start(
    models_dir: Path, runtime: str, still_server: RtspServer
) -> None:
    """Only a classifier served and a camera configured: exit 2, the problem and the fix."""
    env = server_env(models_dir, runtime, model=SMALL_MODEL, cameras=f"a={still_server.url()}")
    server = ServerProcess(env, free_port())
    code = server.process.wait(timeout=HANG)
    server.stop()
    assert code == 2, server.log
    assert "camera 'a' needs a detection model and none is served" in server.log
    assert "fix:" in server.log


def test_frigate_events_beside_the_frigate_bridge_stop_the_start(
    models_dir: Path, runtime: str, still_server: RtspServer
) -> None:
    """Our events on frigate/events while the bridge reads a real Frigate's there: exit 2."""
    env = server_env(
        models_dir,
        runtime,
        model=DETECTOR,
        cameras=f"a={still_server.url()}",
        camera_events="frigate",
        mqtt_url="mqtt://127.0.0.1:1",
        frigate_url="http://127.0.0.1:5000",
    )
    server = ServerProcess(env, free_port())
    code = server.process.wait(timeout=HANG)
    server.stop()
    assert code == 2, server.log
    assert "EDGE_CAMERA_EVENTS=frigate publishes" in server.log
    assert "fix: keep EDGE_CAMERA_EVENTS=edge" in server.log
