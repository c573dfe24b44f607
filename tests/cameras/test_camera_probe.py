"""`edge-server cameras probe URL` says what a real camera serves, credentials hidden."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from support.cameras import LOGIN
from support.cameras.clips import Clip
from support.cameras.mjpeg_server import MjpegServer
from support.cameras.rtsp import RtspServer
from support.cameras.snapshot_server import SnapshotServer

# Cameras' I/O: the same whatever runtime runs the models, so run once (under LiteRT).
pytestmark = pytest.mark.lan


def _probe(url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "edge_server", "cameras", "probe", url, "--timeout", "10", *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _json(url: str) -> dict[str, Any]:
    result = _probe(url, "--json")
    assert LOGIN[1] not in result.stdout + result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (0 if answer["ok"] else 1), result.stderr
    return answer


def test_probe_rtsp(rtsp_server: RtspServer, walk_clip: Clip) -> None:
    """An RTSP URL: H.264, the clip's size and rate, a login required, the password hidden."""
    answer = _json(rtsp_server.url())
    assert answer["ok"] is True
    assert (answer["kind"], answer["codec"]) == ("rtsp", "h264")
    assert (answer["width"], answer["height"]) == (walk_clip.width, walk_clip.height)
    assert answer["fps"] == pytest.approx(walk_clip.fps)
    assert answer["auth"] == "required"
    assert answer["url"] == rtsp_server.url().replace(LOGIN[1], "***")


def test_probe_mjpeg(mjpeg: MjpegServer, walk_clip: Clip) -> None:
    """An MJPEG URL: mjpeg, the clip's size, a measured rate near the camera's, no login."""
    answer = _json(mjpeg.url("/stream"))
    assert (answer["ok"], answer["kind"], answer["codec"]) == (True, "mjpeg", "mjpeg")
    assert (answer["width"], answer["height"]) == (walk_clip.width, walk_clip.height)
    assert answer["fps"] > 0 and answer["frames"] >= 3
    assert answer["auth"] == "none"


@pytest.mark.parametrize(
    ("path", "scheme"), [("/basic/capture", "basic"), ("/digest/capture", "digest")]
)
def test_probe_snapshot(snapshots: SnapshotServer, path: str, scheme: str) -> None:
    """A snapshot URL: the login scheme the camera asked for, and its size."""
    answer = _json(snapshots.url(path, LOGIN))
    assert (answer["ok"], answer["kind"], answer["auth"]) == (True, "snapshot", scheme)
    assert answer["width"] > 0


def test_probe_rejects_what_is_not_a_camera(mjpeg: MjpegServer, rtsp_server: RtspServer) -> None:
    """A web page or a wrong password exits 1 with the reason on stderr, password hidden."""
    page = _probe(mjpeg.url("/html"))
    assert page.returncode == 1 and "text/html" in page.stderr
    wrong = _probe(rtsp_server.url((LOGIN[0], "wrong-horse")))
    assert wrong.returncode == 1 and "refused" in wrong.stderr
    assert "wrong-horse" not in wrong.stderr + wrong.stdout


def test_probe_prints_a_summary(rtsp_server: RtspServer) -> None:
    """Without --json, the probe prints the redacted URL, kind, size, rate and login."""
    result = _probe(rtsp_server.url())
    assert result.returncode == 0, result.stderr
    assert "rtsp (h264)" in result.stdout and "640x360" in result.stdout
    assert "auth:  required" in result.stdout and LOGIN[1] not in result.stdout
