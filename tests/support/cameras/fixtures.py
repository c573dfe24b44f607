"""Fixtures for the camera tests (a plugin of tests/conftest.py): clips made once a session,
and real servers serving them (GStreamer's RTSP server, an ESP32-like MJPEG server, a
snapshot server with Basic and Digest auth), each started once a module, all on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cameras import LOGIN, mjpeg_server, snapshot_server
from support.cameras.clips import Clip, clip_jpegs, still_clip, walk_in_clip
from support.cameras.rtsp import RtspServer


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for this session's clips."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def walk_clip(images_dir: Path, clips_dir: Path) -> Clip:
    """640x360 at 10 fps, 12 s: the person slides in at 3 s and is gone at 8 s."""
    return walk_in_clip(images_dir, clips_dir)


@pytest.fixture(scope="session")
def still(images_dir: Path, clips_dir: Path) -> Clip:
    """640x360 at 10 fps, 12 s of the still scene with sensor noise."""
    return still_clip(images_dir, clips_dir)


@pytest.fixture(scope="session")
def walk_jpegs(walk_clip: Clip) -> list[bytes]:
    """The walk-in clip's frames as JPEGs."""
    return clip_jpegs(walk_clip)


@pytest.fixture(scope="module")
def rtsp_server(walk_clip: Clip) -> Iterator[RtspServer]:
    """The walk-in clip over RTSP with Basic auth (LOGIN), one server a module."""
    server = RtspServer(walk_clip, path="cam/sub", login=LOGIN)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def mjpeg(walk_jpegs: list[bytes], walk_clip: Clip) -> Iterator[mjpeg_server.MjpegServer]:
    """The walk-in clip as an ESP32-style MJPEG stream, one server a module."""
    with mjpeg_server.serving(walk_jpegs, walk_clip.fps) as server:
        yield server


@pytest.fixture(scope="module")
def snapshots(walk_jpegs: list[bytes], walk_clip: Clip) -> Iterator[snapshot_server.SnapshotServer]:
    """The walk-in clip's current frame at /capture (open, Basic, Digest), one a module."""
    with snapshot_server.serving(walk_jpegs, walk_clip.fps, LOGIN) as server:
        yield server
