"""MQTT when things go wrong: a killed service, a restarted broker, a wrong password, no extra."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from edge_server.config.settings import Settings

from conftest import ServerProcess, free_port, metric, server_env
from support.mosquitto import PASSWORD, Mosquitto, Received, Recorder, wait_subscribed
from support.waiting import HANG, until

pytestmark = pytest.mark.lan

Photo = Callable[[str], bytes]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto of the test's own (some tests kill it)."""
    broker = Mosquitto(tmp_path)
    yield broker
    broker.stop()


def _server(models_dir: Path, runtime: str, **settings: str) -> ServerProcess:
    server = ServerProcess(server_env(models_dir, runtime, **settings), free_port())
    server.wait_ready()
    return server


def _mqtt_health(server: ServerProcess, *, connected: bool) -> dict[str, object] | None:
    """/healthz's MQTT part when it says `connected` is as given, else None."""
    mqtt: dict[str, object] = httpx.get(server.url + "/healthz", timeout=HANG).json()["mqtt"]
    return mqtt if mqtt["connected"] is connected else None


def _refused_login(server: ServerProcess) -> str | None:
    """The metrics once they count a refused login, else None."""
    text = httpx.get(server.url + "/metrics", timeout=HANG).text
    return text if metric(text, "edge_mqtt_connect_failures_total", reason="auth") >= 1 else None


def _on(topic: str, payload: bytes | None = None) -> Callable[[Received], bool]:
    return lambda m: m.topic == topic and (payload is None or m.payload == payload)


def test_sigkill_makes_the_broker_publish_the_last_will_offline(
    models_dir: Path, runtime: str, broker: Mosquitto
) -> None:
    """Killed with SIGKILL, the service's Last Will `offline` reaches subscribers, retained."""
    watcher = Recorder(broker.anonymous_port)
    watcher.subscribe("edge-server/killed/status")
    server = _server(models_dir, runtime, node_id="killed", mqtt_url=broker.url())
    try:
        assert watcher.wait_for(_on("edge-server/killed/status", b"online"))
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=HANG)
        offline = watcher.wait_for(_on("edge-server/killed/status", b"offline"))
    finally:
        server.stop()
        watcher.close()
    assert offline, "no Last Will"
    late = Recorder(broker.anonymous_port)
    try:
        late.subscribe("edge-server/killed/status")
        retained = late.wait_for(lambda m: m.topic.endswith("/status") and m.retain)
    finally:
        late.close()
    assert retained and retained[0].payload == b"offline"


class HttpTraffic:
    """GET /healthz and POST /classify in a loop on a thread, recording every outcome."""

    def __init__(self, url: str, image: bytes) -> None:
        self.outcomes: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, image))

    def _run(self, url: str, image: bytes) -> None:
        with httpx.Client(base_url=url, timeout=HANG) as client:
            while not self._stop.is_set():
                for method, path in (("GET", "/healthz"), ("POST", "/classify")):
                    files = {"image": image} if method == "POST" else None
                    try:
                        self.outcomes.append(client.request(method, path, files=files).status_code)
                    except httpx.HTTPError as exc:
                        self.outcomes.append(type(exc).__name__)
                time.sleep(0.05)

    def __enter__(self) -> HttpTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_the_service_reconnects_after_the_broker_restarts_and_http_serves_throughout(
    models_dir: Path, runtime: str, broker: Mosquitto, photo: Photo
) -> None:
    """Broker killed and restarted: back online (resubscribed, re-announced), HTTP all 200."""
    server = _server(
        models_dir, runtime, node_id="phoenix", mqtt_url=broker.url(), mqtt_reconnect_max="2"
    )
    prefix = "edge-server/phoenix"
    try:
        wait_subscribed(server)
        first = Recorder(broker.anonymous_port)
        first.subscribe(f"{prefix}/result/cam")
        first.publish(f"{prefix}/classify/cam", photo("grace_hopper.jpg"))
        assert first.wait_for(_on(f"{prefix}/result/cam"))
        first.close()
        with HttpTraffic(server.url, photo("grace_hopper.jpg")) as traffic:
            broker.kill()
            down = until(lambda: _mqtt_health(server, connected=False), "the loss noticed")
            broker.start()
            second = Recorder(broker.anonymous_port)
            second.subscribe(f"{prefix}/status", f"{prefix}/result/cam", "homeassistant/#")
            online = second.wait_for(_on(f"{prefix}/status", b"online"))  # after resubscribing
            second.publish(f"{prefix}/classify/cam", photo("grace_hopper.jpg"))
            results = second.wait_for(_on(f"{prefix}/result/cam"))
            configs = second.wait_for(lambda m: m.topic.startswith("homeassistant/"), count=3)
            second.close()
            up = httpx.get(server.url + "/healthz").json()["mqtt"]
        failures = metric(
            httpx.get(server.url + "/metrics").text,
            "edge_mqtt_connect_failures_total",
            reason="lost",
        )
    finally:
        server.stop()
    # A graceful stop (SIGTERM) says `offline` itself, retained.
    after = Recorder(broker.anonymous_port)
    after.subscribe(f"{prefix}/status")
    said = after.wait_for(_on(f"{prefix}/status"))
    after.close()
    print(f"{len(traffic.outcomes)} HTTP answers while the broker was away")
    assert down["connected"] is False
    assert online, f"not online again:\n{server.log}"
    assert results and json.loads(results[0].payload)["predictions"][0]["label"] == (
        "military uniform"
    )
    assert len(configs) == 3 and all("phoenix" in m.topic for m in configs)
    assert up["connected"] is True
    assert failures >= 1
    assert traffic.outcomes and set(traffic.outcomes) == {200}
    assert said and said[0].payload == b"offline" and said[0].retain


def test_a_wrong_password_is_a_clear_log_line_and_a_metric_and_http_is_unaffected(
    models_dir: Path, runtime: str, broker: Mosquitto, photo: Photo
) -> None:
    """A refused login: an ERROR line naming EDGE_MQTT_URL, the auth metric; HTTP unaffected."""
    server = _server(
        models_dir, runtime, node_id="locked", mqtt_url=broker.url(password="not-" + PASSWORD)
    )
    try:
        text = until(
            lambda: _refused_login(server), "the refused login counted (edge_mqtt_connect_failures)"
        )
        answer = httpx.post(server.url + "/classify", files={"image": photo("grace_hopper.jpg")})
        health = httpx.get(server.url + "/healthz").json()
    finally:
        server.stop()
    assert metric(text, "edge_mqtt_connect_failures_total", reason="auth") >= 1
    assert metric(text, "edge_mqtt_connected") == 0
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["label"] == "military uniform"
    assert health["status"] == "ok" and health["mqtt"]["connected"] is False
    lines = [line for line in server.log.splitlines() if "MQTT" in line]
    assert any(
        line.startswith("ERROR") and "refused the login" in line and "EDGE_MQTT_URL" in line
        for line in lines
    ), server.log
    assert "not-" + PASSWORD not in server.log  # the password is never logged


def test_without_the_mqtt_extra_the_start_stops_with_the_fix(
    models_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """EDGE_MQTT_URL without aiomqtt installed: exit 2 before listening, with the pip command."""
    # Stand in for an environment without the extra: a package that cannot be imported.
    (tmp_path / "aiomqtt").mkdir()
    (tmp_path / "aiomqtt" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'aiomqtt'\", name='aiomqtt')\n"
    )
    env = server_env(models_dir, runtime, mqtt_url="mqtt://127.0.0.1:1")
    env["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "edge_server", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "MQTT extra is not installed" in done.stderr
    assert "pip install 'edge-server[mqtt]'" in done.stderr
    assert "Uvicorn running" not in done.stderr


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"mqtt_url": "http://broker:1883"}, "must start with mqtt:// or mqtts://"),
        ({"mqtt_url": "mqtt://:1883"}, "names no broker host"),
        ({"mqtt_url": "mqtt://broker:99999"}, "not a valid broker URL"),
        ({"mqtt_url": "mqtt://broker", "mqtt_topics": "cams/#/x"}, "'#' must be a whole level"),
        ({"mqtt_url": "mqtt://broker", "mqtt_prefix": "home/+"}, "cannot start topic names"),
        ({"frigate_url": "http://frigate:5000"}, "needs EDGE_MQTT_URL"),
        ({"mqtt_url": "mqtt://b", "frigate_url": "frigate:5000"}, "http:// or https:// URL"),
    ],
)
def test_bad_mqtt_settings_are_refused_with_the_reason(
    settings: dict[str, str], complaint: str
) -> None:
    """A malformed broker URL, topic filter or prefix, or a Frigate bridge without MQTT."""
    with pytest.raises(ValidationError, match=re.escape(complaint)):
        Settings(**settings)  # type: ignore[arg-type]  # strings, as from the environment


def test_a_bad_broker_url_stops_the_start_with_exit_2(models_dir: Path, runtime: str) -> None:
    """`serve` with an http:// broker URL: exit 2, the setting named, the password not shown."""
    done = subprocess.run(
        [sys.executable, "-m", "edge_server", "serve", "--port", str(free_port())],
        env=server_env(models_dir, runtime, mqtt_url="http://edge:hunter2@broker:1883"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "EDGE_MQTT_URL" in done.stderr and "mqtt://" in done.stderr
    assert "hunter2" not in done.stderr
