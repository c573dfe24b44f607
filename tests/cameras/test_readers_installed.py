"""A camera whose URL needs a reader package that is not installed stops the start."""

from __future__ import annotations

import pytest

from edge_server.cameras.registry import check_readers
from edge_server.config.cameras import CameraConfig
from edge_server.core.errors import StartupError

CAMERAS = {
    "front": CameraConfig(name="front", url="rtsp://user:secret@127.0.0.1:8554/sub"),
    "door": CameraConfig(name="door", url="http://127.0.0.1:81/stream"),
}


def test_an_rtsp_camera_without_pyav_stops_the_start_with_the_fix() -> None:
    """Without PyAV an RTSP camera is refused at start, naming the camera and the extra, and
    never its password."""
    with pytest.raises(StartupError) as refused:
        check_readers(CAMERAS, found=lambda package: package != "av")
    message = str(refused.value)
    assert "'front'" in message and "edge-server[cameras]" in message
    assert "secret" not in message


def test_an_http_camera_without_httpx_stops_the_start() -> None:
    """Without httpx an MJPEG or snapshot camera is refused at start."""
    with pytest.raises(StartupError, match=r"'door'.*httpx"):
        check_readers(CAMERAS, found=lambda package: package != "httpx")


def test_cameras_whose_readers_are_installed_or_disabled_start() -> None:
    """With the readers installed (as here), or the camera disabled, nothing is refused."""
    check_readers(CAMERAS)
    disabled = {"front": CAMERAS["front"].model_copy(update={"enabled": False})}
    check_readers(disabled, found=lambda package: False)
