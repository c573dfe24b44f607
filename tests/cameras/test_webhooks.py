"""Webhooks: each camera event POSTed as JSON to real HTTP servers (stdlib, on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from edge_server.cameras.events import CameraEvent
from edge_server.cameras.webhooks import Webhooks

from conftest import free_port

# Cameras' I/O: the same whatever runtime runs the models, so run once (under LiteRT).
pytestmark = pytest.mark.lan

HANG = 30.0  # seconds before a test that waits for posts gives up


class _Receiver(http.server.ThreadingHTTPServer):
    """Records each POST's body; answers each request with the next status in `statuses`."""

    def __init__(self, statuses: list[int]) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses = statuses
        self.requests = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook?token=s3cret"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            index = self.server.requests
            self.server.requests += 1
            statuses = self.server.statuses
            status = statuses[index] if index < len(statuses) else 200
            if status == 200:
                assert self.headers["Content-Type"] == "application/json"
                self.server.bodies.append(json.loads(body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # the stdlib's name
        """Quiet."""


@contextmanager
def receiver(*statuses: int) -> Iterator[_Receiver]:
    server = _Receiver(list(statuses))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def event(kind: str, number: int) -> CameraEvent:
    after = {"id": f"1765070000.0-{number:06d}", "camera": "front", "label": "person"}
    return CameraEvent(
        type=kind,  # type: ignore[arg-type]  # one of the three, from the table
        before=after if kind != "new" else {},
        after=after,
        camera="front",
        label="person",
        snapshot=None,
    )


async def _until(condition: Any) -> None:
    async with asyncio.timeout(HANG):
        while not condition():
            await asyncio.sleep(0.02)


def _count(registry: CollectorRegistry, result: str) -> float:
    value = registry.get_sample_value("edge_camera_webhooks_total", {"result": result})
    return value or 0.0


def test_each_event_reaches_every_url_in_order() -> None:
    """new, update, end arrive at two receivers as Frigate's JSON, in the order they happened."""
    registry = CollectorRegistry()
    with receiver() as first, receiver() as second:

        async def run() -> None:
            hooks = Webhooks([first.url, second.url], registry)
            await hooks.start()
            for number, kind in enumerate(["new", "update", "end"]):
                hooks.on_event(event(kind, number))
            await _until(lambda: len(first.bodies) == 3 and len(second.bodies) == 3)
            await hooks.stop()

        asyncio.run(run())
        for bodies in (first.bodies, second.bodies):
            assert [body["type"] for body in bodies] == ["new", "update", "end"]
            assert set(bodies[0]) == {"type", "before", "after"}
            assert bodies[0]["after"]["camera"] == "front"
    assert _count(registry, "ok") == 6


def test_a_failing_post_is_retried_until_it_is_taken() -> None:
    """Two 503s, then 200: the event arrives once, counted ok, nothing failed."""
    registry = CollectorRegistry()
    with receiver(503, 503) as server:

        async def run() -> None:
            hooks = Webhooks([server.url], registry, backoff=0.01)
            await hooks.start()
            hooks.on_event(event("new", 1))
            # The count, not the body: the receiver keeps the body before its 200 is sent.
            await _until(lambda: _count(registry, "ok") == 1)
            await hooks.stop()

        asyncio.run(run())
    assert server.requests == 3
    assert len(server.bodies) == 1
    assert (_count(registry, "ok"), _count(registry, "failed")) == (1, 0)


def test_a_refused_body_is_not_retried() -> None:
    """A 400 means the receiver will refuse the same body again: one attempt, counted failed."""
    registry = CollectorRegistry()
    with receiver(400) as server:

        async def run() -> None:
            hooks = Webhooks([server.url], registry, backoff=0.01)
            await hooks.start()
            hooks.on_event(event("new", 1))
            await _until(lambda: _count(registry, "failed") == 1)
            await hooks.stop()

        asyncio.run(run())
    assert server.requests == 1


def test_a_dead_url_is_logged_once_per_interval_and_never_holds_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens at one URL: its events fail (counted, one log line without the token),
    and the other URL gets every event meanwhile."""
    registry = CollectorRegistry()
    dead = f"http://127.0.0.1:{free_port()}/hook?token=s3cret"
    with receiver() as alive, caplog.at_level(logging.WARNING, "edge_server.cameras"):

        async def run() -> None:
            hooks = Webhooks([dead, alive.url], registry, backoff=0.01, attempts=2)
            await hooks.start()
            for number in range(5):
                hooks.on_event(event("new", number))
            await _until(lambda: len(alive.bodies) == 5 and _count(registry, "failed") == 5)
            await hooks.stop()

        asyncio.run(run())
    lines = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "token=***" in lines[0] and "s3cret" not in lines[0]
    assert "2 attempt(s)" in lines[0]


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    """on_event returns at once even when the receiver stalls: what does not fit is dropped."""
    registry = CollectorRegistry()
    stall = threading.Event()

    class Stalling(_Handler):
        def do_POST(self) -> None:
            stall.wait(HANG)
            super().do_POST()

    server = _Receiver([])
    server.RequestHandlerClass = Stalling
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:

        async def run() -> None:
            hooks = Webhooks([server.url], registry, queue=2, timeout=HANG)
            await hooks.start()
            for number in range(6):  # one being posted, two queued, three dropped at most
                hooks.on_event(event("new", number))
                await asyncio.sleep(0)
            dropped = _count(registry, "dropped")
            stall.set()
            await _until(lambda: len(server.bodies) == 6 - dropped)
            await hooks.stop()
            assert dropped >= 3

        asyncio.run(run())
    finally:
        stall.set()
        server.shutdown()
        server.server_close()
        thread.join()
