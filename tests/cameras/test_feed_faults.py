"""Feeds under faults: a camera that dies and comes back, a wrong password, a web page, garbage
bytes, a camera that stalls mid-frame. Each is a clear state and reason, never a crash or a
stuck thread, and stop() always returns."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from edge_server.cameras.feed import (
    Feed,
    FeedOptions,
    FeedState,
    FeedStatus,
    feed_for,
    feed_metrics,
)

from support.cameras import LOGIN
from support.cameras.camera_process import CameraProcess
from support.cameras.clips import Clip
from support.cameras.mjpeg_server import MjpegServer
from support.cameras.rtsp import RtspServer, free_port
from support.cameras.snapshot_server import SnapshotServer
from support.waiting import HANG, until

# Cameras' I/O: the same whatever runtime runs the models, so run once (under LiteRT).
pytestmark = pytest.mark.lan

FAST = FeedOptions(open_timeout=5, read_timeout=2, watchdog=2, backoff=(0.1, 1.0))
CYCLES = 20


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class States:
    """The states a feed's listener saw, in order."""

    def __init__(self, feed: Feed) -> None:
        self.seen: list[FeedStatus] = []
        self._lock = threading.Lock()
        feed.add_listener(self._on)

    def _on(self, status: FeedStatus) -> None:
        with self._lock:
            self.seen.append(status)

    def count(self, state: FeedState) -> int:
        with self._lock:
            return sum(1 for s in self.seen if s.state == state)

    def since(self, index: int, state: FeedState) -> FeedStatus | None:
        """The first status in `state` seen after the first `index` ones."""
        with self._lock:
            return next((s for s in self.seen[index:] if s.state == state), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self.seen)

    def last(self) -> FeedStatus | None:
        with self._lock:
            return self.seen[-1] if self.seen else None


@contextmanager
def running(feed: Feed) -> Iterator[Feed]:
    """The feed started; stopped at the end, which must end its thread."""
    feed.start()
    try:
        yield feed
    finally:
        feed.stop(timeout=HANG)
        assert feed.status().state == FeedState.stopped
        assert not any(t.name == f"camera-{feed.name}" for t in threading.enumerate())


def _past(feed: Feed, state: FeedState) -> bool:
    return feed.status().state != state


def _reaches(feed: Feed, state: FeedState) -> FeedStatus:
    def reached() -> FeedStatus | None:
        status = feed.status()
        return status if status.state == state else None

    return until(reached, f"{feed.name} {state}")


def test_rtsp_server_killed_and_restarted(
    rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed and restarted 20 times, the RTSP feed reconnects each time, says so in its
    state, logs one line a change, and ends with the threads and files it started with."""
    caplog.set_level(logging.INFO, "edge_server")
    threads, fds = threading.active_count(), _open_fds()
    registry = CollectorRegistry()
    feed = feed_for("front", rtsp_server.url(), FAST, metrics=feed_metrics(registry))
    states = States(feed)
    with running(feed):
        _reaches(feed, FeedState.streaming)
        for cycle in range(1, CYCLES + 1):
            seen = len(states)
            rtsp_server.kill()
            lost = until(partial(states.since, seen, FeedState.reconnecting), f"lost {cycle}")
            assert lost.last_error is not None
            seen = len(states)
            rtsp_server.start()
            until(partial(states.since, seen, FeedState.streaming), f"streaming again {cycle}")
        status = feed.status()
    assert status.reconnects >= CYCLES
    labels = {"camera": "front"}
    assert registry.get_sample_value("edge_camera_reconnects_total", labels) == status.reconnects
    assert registry.get_sample_value("edge_camera_frames_read_total", labels) == status.frames_read
    failures = {"camera": "front", "kind": "unreachable"}
    assert (registry.get_sample_value("edge_camera_feed_failures_total", failures) or 0) >= CYCLES
    stopped = {"camera": "front", "state": "stopped"}
    assert registry.get_sample_value("edge_camera_feed_state", stopped) == 1
    lines = [r for r in caplog.records if r.getMessage().startswith("camera front:")]
    # streaming and reconnecting once a cycle (plus the first streaming and the stop); a
    # reconnect that failed again with another reason adds a line, never a line an attempt.
    assert 2 * CYCLES + 2 <= len(lines) <= 4 * CYCLES + 2, [r.getMessage() for r in lines]
    assert all(LOGIN[1] not in r.getMessage() for r in caplog.records)
    print(f"{CYCLES} cycles, {status.reconnects} reconnects, {len(lines)} log lines")
    until(lambda: threading.active_count() <= threads, "the feed's threads gone")
    assert _open_fds() <= fds


@pytest.mark.parametrize(
    ("kind", "path", "login"),
    [("mjpeg", "/stream", None), ("snapshot", "/digest/capture", LOGIN)],
)
def test_http_camera_killed_and_restarted(
    kind: str,
    path: str,
    login: tuple[str, str] | None,
    walk_jpegs: list[bytes],
    walk_clip: Clip,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Killed and restarted 20 times, the MJPEG feed and the snapshot feed (Digest, polled
    every 0.2 s) reconnect each time, log one line a change, and end with the threads and
    files they started with."""
    caplog.set_level(logging.INFO, "edge_server")
    camera = CameraProcess(kind, walk_jpegs, walk_clip.fps, tmp_path / kind)
    threads, fds = threading.active_count(), _open_fds()  # the camera's pipe is gone at the end
    camera.start()
    try:
        registry = CollectorRegistry()
        options = replace(FAST, snapshot_interval=0.2)
        feed = feed_for("door", camera.url(path, login), options, metrics=feed_metrics(registry))
        states = States(feed)
        with running(feed):
            _reaches(feed, FeedState.streaming)
            for cycle in range(1, CYCLES + 1):
                seen = len(states)
                camera.kill()
                lost = until(partial(states.since, seen, FeedState.reconnecting), f"lost {cycle}")
                assert lost.last_error is not None
                seen = len(states)
                camera.start()
                until(partial(states.since, seen, FeedState.streaming), f"streaming {cycle}")
            status = feed.status()
    finally:
        camera.kill()
    assert status.reconnects >= CYCLES
    labels = {"camera": "door"}
    assert registry.get_sample_value("edge_camera_reconnects_total", labels) == status.reconnects
    lines = [r for r in caplog.records if r.getMessage().startswith("camera door:")]
    assert 2 * CYCLES + 2 <= len(lines) <= 4 * CYCLES + 2, [r.getMessage() for r in lines]
    assert all(LOGIN[1] not in r.getMessage() for r in caplog.records)
    print(f"{kind}: {CYCLES} cycles, {status.reconnects} reconnects, {len(lines)} log lines")
    until(lambda: threading.active_count() <= threads, "the feed's threads gone")
    assert _open_fds() <= fds


def test_rtsp_camera_that_freezes_trips_the_watchdog(rtsp_server: RtspServer) -> None:
    """An RTSP camera that stops sending (frozen, its connection open) trips the watchdog:
    the feed goes `reconnecting` saying so, and streams again once the camera is back."""
    if not rtsp_server.running:
        rtsp_server.start()
    feed = feed_for("front", rtsp_server.url(), FAST)
    states = States(feed)
    with running(feed):
        _reaches(feed, FeedState.streaming)
        seen = len(states)
        rtsp_server.pause()
        try:
            frozen = until(partial(states.since, seen, FeedState.reconnecting), "watchdog")
        finally:
            rtsp_server.resume()
        seen = len(states)
        until(partial(states.since, seen, FeedState.streaming), "streaming again")
    assert frozen.last_error is not None and "watchdog" in frozen.last_error


def test_rtsp_wrong_password_is_unauthorized(rtsp_server: RtspServer) -> None:
    """A wrong RTSP password is the `unauthorized` state, its reason without the password."""
    if not rtsp_server.running:
        rtsp_server.start()
    feed = feed_for("front", rtsp_server.url(("viewer", "wrong-horse")), FAST)
    with running(feed):
        status = _reaches(feed, FeedState.unauthorized)
    assert status.last_error is not None and "refused" in status.last_error
    assert "wrong-horse" not in repr(status)


def test_rtsp_without_credentials_says_to_add_them(rtsp_server: RtspServer) -> None:
    """An RTSP camera asking for a login the URL lacks is `unauthorized`, saying to add one."""
    if not rtsp_server.running:
        rtsp_server.start()
    feed = feed_for("front", rtsp_server.url(("", "")).replace(":@", ""), FAST)
    with running(feed):
        status = _reaches(feed, FeedState.unauthorized)
    assert status.last_error is not None and "user and password" in status.last_error


def test_nothing_listening_is_reconnecting() -> None:
    """A camera that refuses connections keeps the feed reconnecting with the reason."""
    feed = feed_for("front", f"rtsp://127.0.0.1:{free_port()}/stream", FAST)
    with running(feed):
        until(lambda: feed.status().reconnects >= 2, "two reconnects")
        status = feed.status()
    assert status.state in (FeedState.reconnecting, FeedState.connecting)
    assert status.last_error is not None


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/html", "text/html"), ("/garbage", "not an MJPEG stream")],
)
def test_http_url_serving_no_video_is_failed(mjpeg: MjpegServer, path: str, reason: str) -> None:
    """A URL serving a web page or garbage bytes is the `failed` state with a reason, and
    counted as a failure of its kind."""
    registry = CollectorRegistry()
    feed = feed_for("door", mjpeg.url(path), FAST, metrics=feed_metrics(registry))
    with running(feed):
        status = _reaches(feed, FeedState.failed)
        failed = {"camera": "door", "state": "failed"}
        assert registry.get_sample_value("edge_camera_feed_state", failed) == 1
    assert status.last_error is not None and reason in status.last_error
    assert status.frames_read == 0
    kind = {"camera": "door", "kind": "not_a_stream"}
    assert (registry.get_sample_value("edge_camera_feed_failures_total", kind) or 0) >= 1


def test_camera_stalling_mid_frame_reconnects(mjpeg: MjpegServer) -> None:
    """An MJPEG camera that hangs in the middle of a frame trips the watchdog: the feed goes
    `reconnecting` saying it stalled, then streams again."""
    feed = feed_for("door", mjpeg.url("/stall"), FAST)
    states = States(feed)
    with running(feed):
        until(lambda: states.count(FeedState.reconnecting) >= 1, "reconnecting")
        stalled = next(s for s in states.seen if s.state == FeedState.reconnecting)
        until(lambda: states.count(FeedState.streaming) >= 2, "streaming again")
    assert stalled.last_error is not None and "stalled" in stalled.last_error
    assert stalled.frames_read >= mjpeg.stall_after


@pytest.mark.parametrize(
    ("path", "login", "reason"),
    [
        ("/basic/capture", ("viewer", "wrong-horse"), "refused"),
        ("/digest/capture", ("viewer", "wrong-horse"), "refused"),
        ("/digest/capture", None, "asks for a user and password"),
    ],
)
def test_snapshot_bad_login_is_unauthorized(
    snapshots: SnapshotServer, path: str, login: tuple[str, str] | None, reason: str
) -> None:
    """A snapshot URL refusing the login (Basic or Digest), or asking for one the URL lacks,
    is `unauthorized` with a reason that never shows the password."""
    feed = feed_for("garage", snapshots.url(path, login), FAST)
    with running(feed):
        status = _reaches(feed, FeedState.unauthorized)
    assert status.last_error is not None and reason in status.last_error
    assert "wrong-horse" not in repr(status)


def test_stop_returns_from_every_state(mjpeg: MjpegServer) -> None:
    """stop() returns and ends the thread whether the feed streams, waits to retry, or is
    blocked in a read; a second stop() is a no-op."""
    for path in ("/stream", "/stall", "/html"):
        feed = feed_for("door", mjpeg.url(path), FeedOptions(read_timeout=3, backoff=(5, 30)))
        feed.start()
        until(partial(_past, feed, FeedState.starting), f"{path} started")
        feed.stop(timeout=HANG)
        feed.stop(timeout=HANG)
        assert feed.status().state == FeedState.stopped
        assert not any(t.name == "camera-door" for t in threading.enumerate())
