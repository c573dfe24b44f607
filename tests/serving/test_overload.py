"""Overload and time: bounded admission, per-request deadlines, abandoned requests not run."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_server.core.errors import Overloaded
from edge_server.serving.auth import ApiKeys
from edge_server.serving.metrics import Metrics
from edge_server.serving.service import Service

from conftest import ServerProcess, free_port, metric, server_env
from support import variants

Photo = Callable[[str], bytes]


def _big_jpeg(photo: Photo) -> bytes:
    return variants.upscaled_jpeg(photo("parrot.jpg"), 3024, 4032)


def _post_all(url: str, body: bytes, count: int) -> list[httpx.Response]:
    def send(_: int) -> httpx.Response:
        return httpx.post(url + "/classify", files={"image": body}, timeout=60)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(send, range(count)))


def test_a_full_queue_answers_503_with_retry_after_at_once(
    models_dir: Path, runtime: str, photo: Photo
) -> None:
    """With EDGE_MAX_QUEUE=2 and 40 concurrent 12 MP uploads: only 200s and quick 503s."""
    server = ServerProcess(server_env(models_dir, runtime, max_queue="2"), free_port())
    server.wait_ready()
    try:
        responses = _post_all(server.url, _big_jpeg(photo), 40)
        text = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200, 503], statuses
    refused = [r for r in responses if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    assert "EDGE_MAX_QUEUE=2" in refused[0].json()["detail"]
    assert all(
        r.json()["predictions"][0]["label"] == "macaw" for r in responses if r.status_code == 200
    )
    assert metric(text, "edge_classify_rejected_total") == len(refused)
    assert metric(text, "edge_classify_queue_limit") == 2


def test_requests_over_the_deadline_get_504(models_dir: Path, runtime: str, photo: Photo) -> None:
    """With EDGE_REQUEST_TIMEOUT=0.2 s, 30 concurrent 12 MP uploads: late ones get 504."""
    server = ServerProcess(server_env(models_dir, runtime, request_timeout="0.2"), free_port())
    server.wait_ready()
    try:
        responses = _post_all(server.url, _big_jpeg(photo), 30)
        text = httpx.get(server.url + "/metrics").text
        after = httpx.get(server.url + "/readyz")
    finally:
        server.stop()
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 408, 504}, statuses
    late = [r for r in responses if r.status_code == 504]
    assert late, statuses
    assert "EDGE_REQUEST_TIMEOUT" in late[0].json()["detail"]
    assert metric(text, "edge_classify_timeouts_total", phase="processing") == len(late)
    assert after.status_code == 200


def test_requests_of_clients_that_left_are_not_run(
    models_dir: Path, runtime: str, photo: Photo
) -> None:
    """20 clients upload a 12 MP photo and hang up at once: most are never invoked."""
    server = ServerProcess(server_env(models_dir, runtime), free_port())
    server.wait_ready()
    body = _big_jpeg(photo)
    head = (
        "POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        sockets = []
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(head + body)
            sockets.append(sock)
        for sock in sockets:
            sock.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = httpx.get(server.url + "/metrics").text
            if metric(text, "edge_classify_admitted") == 0 and (
                metric(text, "edge_classify_abandoned_total") > 0
            ):
                break
            time.sleep(0.2)
        ok = httpx.post(server.url + "/classify", files={"image": photo("coffee.png")})
    finally:
        server.stop()
    abandoned = metric(text, "edge_classify_abandoned_total")
    invokes = metric(text, "edge_model_invokes_total")
    assert abandoned >= 10, text
    # One overlap is possible: a client detected gone while its invoke was already running.
    assert invokes <= 20 - abandoned + 1
    assert ok.status_code == 200


def test_one_client_address_leaves_an_eighth_of_the_queue_to_others(
    settings_for: Callable[..., Any],
) -> None:
    """With EDGE_MAX_QUEUE=16 a host holds 14 places and its 15th request gets 503 at once;
    another host still gets in."""
    settings = settings_for(max_queue=16)
    service = Service(settings, Metrics(), ApiKeys.from_settings(settings))

    async def scenario() -> str:
        async with AsyncExitStack() as held:
            for _ in range(14):
                await held.enter_async_context(service.admission("192.0.2.7"))
            with pytest.raises(Overloaded) as refused:
                await held.enter_async_context(service.admission("192.0.2.7"))
            await held.enter_async_context(service.admission("192.0.2.8"))
        async with service.admission("192.0.2.7"):  # places are given back
            pass
        return refused.value.detail

    detail = asyncio.run(scenario())
    assert "EDGE_MAX_QUEUE=16 less an eighth kept for other hosts" in detail
