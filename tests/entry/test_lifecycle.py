"""Life cycle: graceful shutdown, hot reload (HTTP and SIGHUP), inference faults."""

from __future__ import annotations

import asyncio
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.engine import Engine
from edge_server.core.errors import ReloadFailed
from edge_server.core.runtime import RuntimeChoice, create_interpreter, load_backend
from edge_server.serving.auth import ApiKeys
from edge_server.serving.catalog import load_catalog
from edge_server.serving.metrics import Metrics
from edge_server.serving.service import Service
from edge_server.serving.specs import model_specs

from conftest import DEFAULT_MODEL, SMALL_MODEL, ServerProcess, free_port, metric, server_env
from support import variants
from support.waiting import until

Photo = Callable[[str], bytes]
KEY = "reload-test-key-0123456789"


def test_sigterm_finishes_in_flight_requests_and_exits_0(
    models_dir: Path, runtime: str, photo: Photo
) -> None:
    """SIGTERM while 8 uploads are in flight: all 8 answered 200, then exit status 0."""
    server = ServerProcess(server_env(models_dir, runtime), free_port())
    server.wait_ready()
    body = variants.upscaled_jpeg(photo("parrot.jpg"), 3024, 4032)
    answered: list[float] = []

    def send(_: int) -> int:
        response = httpx.post(server.url + "/classify", files={"image": body}, timeout=60)
        answered.append(time.monotonic())
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, i) for i in range(8)]
        # Signal once all 8 are admitted or answered and some are still being handled.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = httpx.get(server.url + "/metrics").text
            admitted = metric(text, "edge_classify_admitted")
            done = metric(text, "edge_http_requests_total", route="/classify", status="200")
            if admitted + done >= 8:
                break
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        statuses = [f.result() for f in futures]
    status = server.process.wait(timeout=30)
    server.stop()
    assert admitted >= 1  # requests were in flight when the signal came
    assert statuses == [200] * 8
    assert max(answered) > signalled
    assert status == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz", timeout=2)


class Traffic:
    """Classifies a photo in a loop on a background thread and records every answer: at
    least one before the block runs, and one sent after it ended."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, body, headers))

    def _run(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                response = client.post(url + "/classify", files={"image": body}, headers=headers)
                sha = response.json()["model"]["sha256"] if response.status_code == 200 else ""
                self.answers.append((response.status_code, sha))

    def _answered(self, count: int) -> None:
        until(lambda: len(self.answers) >= count or not self._thread.is_alive(), "answers")
        assert len(self.answers) >= count, "the traffic thread stopped"

    def __enter__(self) -> Traffic:
        self._thread.start()
        self._answered(1)
        return self

    def __exit__(self, *exc: object) -> None:
        # The request in flight now may have been sent before the block's last step: the one
        # after it was not.
        self._answered(len(self.answers) + 2)
        self._stop.set()
        self._thread.join()


def test_http_reload_swaps_models_without_failing_a_request(
    models_copy: Path, runtime: str, photo: Photo
) -> None:
    """POST /v1/models/reload under traffic: zero failures; a broken file keeps the old model."""
    catalog = load_catalog()
    server = ServerProcess(server_env(models_copy, runtime, api_key=KEY), free_port())
    server.wait_ready()
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        with Traffic(server.url, photo("parrot.jpg"), auth) as traffic:
            swapped = httpx.post(
                server.url + "/v1/models/reload",
                json={"model": SMALL_MODEL},
                headers=auth,
                timeout=60,
            )
            broken = httpx.post(
                server.url + "/v1/models/reload",
                json={"model": "broken.tflite"},
                headers=auth,
                timeout=60,
            )
            outside = httpx.post(
                server.url + "/v1/models/reload", json={"model": "../../etc/passwd"}, headers=auth
            )
        models = httpx.get(server.url + "/v1/models", headers=auth).json()["models"]
    finally:
        server.stop()
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["models"][0]["sha256"] == catalog[SMALL_MODEL].sha256
    assert broken.status_code == 422
    assert "not a TFLite model" in broken.json()["detail"]
    assert f"still serving {SMALL_MODEL}" in broken.json()["detail"]
    assert outside.status_code == 422
    assert models[0]["sha256"] == catalog[SMALL_MODEL].sha256
    assert {status for status, _ in traffic.answers} == {200}
    shas = [sha for _, sha in traffic.answers]
    assert shas[0] == catalog[DEFAULT_MODEL].sha256 and shas[-1] == catalog[SMALL_MODEL].sha256


def test_sighup_reloads_a_replaced_model_file(
    models_copy: Path, runtime: str, photo: Photo
) -> None:
    """Replace the model file, send SIGHUP: the new sha256 serves, no request fails meanwhile."""
    catalog = load_catalog()
    current = models_copy / "current.tflite"
    shutil.copy(models_copy / catalog[DEFAULT_MODEL].file, current)
    server = ServerProcess(server_env(models_copy, runtime, model=str(current)), free_port())
    server.wait_ready()
    try:
        with Traffic(server.url, photo("coffee.png"), {}) as traffic:
            staged = models_copy / "staged.tflite"
            shutil.copy(models_copy / catalog[SMALL_MODEL].file, staged)
            staged.replace(current)
            server.process.send_signal(signal.SIGHUP)

            def swapped() -> dict[str, Any] | None:
                model: dict[str, Any] = httpx.get(server.url + "/v1/models").json()["models"][0]
                return model if model["sha256"] == catalog[SMALL_MODEL].sha256 else None

            model = until(swapped, "the replaced file served")
        reloads = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert model["sha256"] == catalog[SMALL_MODEL].sha256
    assert {status for status, _ in traffic.answers} == {200}
    assert 'edge_model_reloads_total{model="current",result="ok"} 1.0' in reloads


def test_reload_over_http_needs_keys(server: ServerProcess) -> None:
    """Without EDGE_API_KEY the reload endpoint is refused (403); SIGHUP is the local way."""
    response = httpx.post(server.url + "/v1/models/reload")
    assert response.status_code == 403
    assert "SIGHUP" in response.json()["detail"]


@pytest.fixture
def faulty_app(models_dir: Path, runtime: str) -> Iterator[tuple[httpx.Client, list[int]]]:
    """The real app and model served in-process, the interpreter made to fail once."""
    settings = Settings(
        models_dir=models_dir, runtime=RuntimeChoice(runtime), num_threads=1, replicas=1
    )
    spec = model_specs(settings)[0]
    loaded = spec.load()
    loaded.close()
    backend = load_backend(settings.runtime)
    interpreter = create_interpreter(backend, str(loaded.info.path), 1).interpreter
    real_invoke = interpreter.invoke
    failures = [1]

    class Faulty:
        """Delegates to the real interpreter, failing while `failures` is non-zero."""

        def __getattr__(self, name: str) -> object:
            return getattr(interpreter, name)

        def invoke(self) -> None:
            if failures[0]:
                failures[0] -= 1
                raise RuntimeError("Node number 12 (DEPTHWISE_CONV_2D) failed to invoke.")
            real_invoke()

    classifier = Engine(loaded.info, Faulty())  # type: ignore[arg-type]  # fault injection
    port = free_port()
    app = create_app(settings, models=[(spec, classifier)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        until(lambda: server.started or not thread.is_alive(), "uvicorn started")
        assert server.started, "uvicorn stopped before it started"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, failures
    finally:
        server.should_exit = True
        thread.join()


def test_an_inference_error_is_a_clear_500_and_the_next_request_works(
    faulty_app: tuple[httpx.Client, list[int]], photo: Photo
) -> None:
    """A runtime exception fails that request with problem+json 500; the service stays healthy."""
    client, failures = faulty_app
    failed = client.post("/classify", files={"image": photo("coffee.png")})
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert "DEPTHWISE_CONV_2D" in failed.json()["detail"]
    assert failures == [0]
    assert client.get("/readyz").status_code == 200
    ok = client.post("/classify", files={"image": photo("coffee.png")})
    assert ok.json()["predictions"][0]["label"] == "espresso"


def test_listeners_hear_of_a_swap_not_of_a_failed_reload(
    settings_for: Callable[..., Settings],
) -> None:
    """What describes the models (the mDNS TXT record) is told after a load, a reload that
    swapped and an unload, never after a failed reload."""
    settings = settings_for(DEFAULT_MODEL)
    service = Service(settings, Metrics(), ApiKeys.from_settings(settings))
    spec = model_specs(settings)[0]
    service.models.install(spec, spec.load())
    heard: list[list[str]] = []
    service.add_listener(lambda: heard.append(service.model_names()))

    async def changes() -> None:
        try:
            await service.reload(SMALL_MODEL)
            with pytest.raises(ReloadFailed):
                await service.reload("missing.tflite")
            await service.models.load("birds")
            await service.models.unload("birds")
        finally:
            await service.shutdown()

    asyncio.run(changes())
    birds = "mobilenet_v2_1.0_224_inat_bird_quant"
    assert heard == [[SMALL_MODEL], [SMALL_MODEL, birds], [SMALL_MODEL]]
