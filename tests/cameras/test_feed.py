"""Feeds read real frames from real cameras: RTSP (GStreamer's server), an ESP32-style MJPEG
stream and snapshot URLs with Basic and Digest auth, all on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from edge_server.cameras.feed import Feed, FeedOptions, FeedState, feed_for, feed_metrics

from support.cameras import LOGIN
from support.cameras.clips import Clip
from support.cameras.mjpeg_server import MjpegServer
from support.cameras.rtsp import RtspServer
from support.cameras.snapshot_server import SnapshotServer
from support.waiting import HANG, until

# Cameras' I/O: the same whatever runtime runs the models, so run once (under LiteRT).
pytestmark = pytest.mark.lan

FAST = FeedOptions(open_timeout=10, read_timeout=5, watchdog=5, backoff=(0.2, 2.0))


def _read(feed: Feed, count: int) -> list[int]:
    """The numbers of `count` successive frames taken from a started feed."""
    numbers: list[int] = []
    last = 0
    while len(numbers) < count:
        frame = feed.latest(after=last, timeout=HANG)
        assert frame is not None, f"no frame after {last}: {feed.status()}"
        numbers.append(frame.number)
        last = frame.number
    return numbers


def test_rtsp_feed_reads_the_clip(rtsp_server: RtspServer, walk_clip: Clip) -> None:
    """An RTSP feed streams H.264 frames of the clip's size: grey luma now, RGB on demand."""
    feed = feed_for("front", rtsp_server.url(), FAST)
    feed.start()
    try:
        numbers = _read(feed, 5)
        frame = feed.latest(after=0, timeout=HANG)
        assert frame is not None
        status = feed.status()
    finally:
        feed.stop()
    assert numbers == sorted(set(numbers))
    assert (frame.width, frame.height) == (walk_clip.width, walk_clip.height)
    assert frame.luma.shape == (walk_clip.height, walk_clip.width)
    assert frame.luma.dtype == np.uint8 and not frame.luma.flags.writeable
    rgb = frame.rgb()
    assert rgb.shape == (walk_clip.height, walk_clip.width, 3)
    assert frame.rgb() is rgb  # converted once
    # The luma is the picture's brightness: close to the RGB's own grey.
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    assert abs(float(grey.mean()) - float(frame.luma.mean())) < 12
    assert frame.jpeg()[:2] == b"\xff\xd8"
    assert status.state == FeedState.streaming
    assert status.codec == "h264"
    assert (status.width, status.height) == (walk_clip.width, walk_clip.height)
    assert status.frames_read >= 5
    assert LOGIN[1] not in status.url and "***" in status.url
    assert feed.status().state == FeedState.stopped


def test_mjpeg_feed_reads_the_esp32_framing(mjpeg: MjpegServer, walk_clip: Clip) -> None:
    """An MJPEG feed reads the ESP32 CameraWebServer's multipart parts as frames, keeping the
    camera's own JPEG bytes."""
    feed = feed_for("door", mjpeg.url("/stream"), FAST)
    feed.start()
    try:
        _read(feed, 5)
        frame = feed.latest(timeout=HANG)
        status = feed.status()
    finally:
        feed.stop()
    assert frame is not None
    assert frame.luma.shape == (walk_clip.height, walk_clip.width)
    assert frame.rgb().shape == (walk_clip.height, walk_clip.width, 3)
    assert frame.encoded is not None and frame.jpeg() == frame.encoded
    assert (status.state, status.codec) == (FeedState.streaming, "mjpeg")


@pytest.mark.parametrize("path", ["/capture", "/basic/capture", "/digest/capture"])
def test_snapshot_feed_polls_over_keep_alive(
    snapshots: SnapshotServer, walk_clip: Clip, path: str
) -> None:
    """A snapshot URL is polled on one keep-alive connection, with Basic or Digest auth from
    the URL's userinfo."""
    connections = snapshots.connections
    options = FeedOptions(
        open_timeout=10, read_timeout=5, backoff=(0.2, 2.0), snapshot_interval=0.1
    )
    feed = feed_for("garage", snapshots.url(path, LOGIN), options)
    feed.start()
    try:
        _read(feed, 4)
        status = feed.status()
    finally:
        feed.stop()
    assert (status.state, status.codec) == (FeedState.streaming, "jpeg snapshots")
    assert (status.width, status.height) == (walk_clip.width, walk_clip.height)
    # One connection for the polls (Digest's challenge is answered on the same one).
    assert snapshots.connections - connections == 1
    assert LOGIN[1] not in status.url


def test_latest_keeps_only_the_newest_frame(mjpeg: MjpegServer) -> None:
    """A reader slower than the camera gets the newest frame; those it skipped are counted
    as dropped, not queued."""
    feed = feed_for("door", mjpeg.url("/stream"), FAST)
    feed.start()
    try:
        first = feed.latest(timeout=HANG)
        assert first is not None
        until(lambda: feed.status().frames_read >= first.number + 4, "four more frames")
        second = feed.latest(after=first.number, timeout=HANG)
        status = feed.status()
    finally:
        feed.stop()
    assert second is not None
    assert second.number >= first.number + 4
    assert status.frames_dropped >= second.number - first.number - 1
    assert (
        feed.latest(after=second.number, timeout=0.1) is None
        or feed.status().state == FeedState.stopped
    )


def test_feed_metrics_count_frames_and_forget_a_camera(mjpeg: MjpegServer) -> None:
    """The feed's frames and state are in its metrics; forget() drops the camera's series."""
    registry = CollectorRegistry()
    metrics = feed_metrics(registry)
    feed = feed_for("door", mjpeg.url("/stream"), FAST, metrics=metrics)
    feed.start()
    try:
        _read(feed, 3)
        streaming = {"camera": "door", "state": "streaming"}
        assert registry.get_sample_value("edge_camera_feed_state", streaming) == 1
    finally:
        feed.stop()
    read = registry.get_sample_value("edge_camera_frames_read_total", {"camera": "door"})
    assert read == feed.status().frames_read >= 3
    metrics.forget("door")
    metrics.forget("never-configured")
    assert registry.get_sample_value("edge_camera_frames_read_total", {"camera": "door"}) is None
