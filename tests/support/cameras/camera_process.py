"""The MJPEG or the snapshot test camera in a process of its own, so that a test can kill it
(SIGKILL: a camera losing power) and start it again on the same port, as `RtspServer` does
for GStreamer's RTSP server. In-process servers would not do: their threads and sockets are
the test process's own, which the leak checks count.

    python -m support.cameras.camera_process mjpeg|snapshot FOLDER FPS PORT

FOLDER holds the frames (0000.jpg, 0001.jpg, ...); the snapshot camera asks for LOGIN. The
process prints "ready" once it listens.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from . import LOGIN
from .mjpeg_server import MjpegServer
from .rtsp import free_port
from .snapshot_server import SnapshotServer

TESTS = Path(__file__).resolve().parents[2]  # where `support` is imported from


class CameraProcess:
    """An MJPEG stream (`/stream`) or snapshot URL (`/capture`, `/digest/capture`, ...) on
    http://127.0.0.1:<port>, served by a child process."""

    def __init__(self, kind: str, jpegs: list[bytes], fps: float, folder: Path) -> None:
        assert kind in ("mjpeg", "snapshot")
        self.kind, self.fps, self.folder = kind, fps, folder
        folder.mkdir(parents=True, exist_ok=True)
        for n, jpeg in enumerate(jpegs):
            (folder / f"{n:04d}.jpg").write_bytes(jpeg)
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    def url(self, path: str, login: tuple[str, str] | None = None) -> str:
        userinfo = f"{login[0]}:{login[1]}@" if login else ""
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the camera and wait until it listens."""
        assert self.process is None, "already running"
        command = [sys.executable, "-m", "support.cameras.camera_process", self.kind]
        command += [str(self.folder), str(self.fps), str(self.port)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready and self.process.stdout.readline().strip() == "ready":
                return
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"the {self.kind} camera stopped at start")
        self.kill()
        raise RuntimeError(f"the {self.kind} camera did not listen within {timeout} s")

    def kill(self) -> None:
        """Kill the camera at once (SIGKILL), if it runs."""
        if self.process is not None:
            self.process.kill()
            self.process.communicate(timeout=10)
            self.process = None


def main() -> None:
    kind, folder, fps, port = sys.argv[1:5]
    jpegs = [path.read_bytes() for path in sorted(Path(folder).glob("*.jpg"))]
    server: MjpegServer | SnapshotServer
    if kind == "mjpeg":
        server = MjpegServer(jpegs, float(fps), port=int(port))
    else:
        server = SnapshotServer(jpegs, float(fps), LOGIN, port=int(port))
    print("ready", flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
