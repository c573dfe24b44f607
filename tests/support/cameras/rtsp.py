"""The test RTSP server (rtsp_server.py, run by the system's python3) as an object a fixture
starts, kills and restarts on one port."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import time
from pathlib import Path

from .clips import Clip

SCRIPT = Path(__file__).with_name("rtsp_server.py")
PYTHON = "/usr/bin/python3"  # Debian's python3-gi; the venv has no GStreamer bindings


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RtspServer:
    """GStreamer's RTSP server serving one clip at rtsp://127.0.0.1:<port>/<path>."""

    def __init__(
        self, clip: Clip, *, path: str = "stream", login: tuple[str, str] | None = None
    ) -> None:
        self.clip = clip
        self.path = path
        self.login = login
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.log = clip.path.with_name(f"rtsp-{self.port}.log")

    def url(self, login: tuple[str, str] | None = None) -> str:
        """The stream's URL, with `login` (default: the server's own) as its userinfo."""
        user = login or self.login
        userinfo = f"{user[0]}:{user[1]}@" if user else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}/{self.path}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it listens (it prints "ready")."""
        assert self.process is None, "already running"
        command = [PYTHON, str(SCRIPT), str(self.clip.path), str(self.port), self.path]
        command += list(self.login or ())
        # GStreamer's warnings go to a file: a pipe nobody reads would fill and block it.
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        # Restarted at once on the port a killed server held: GLib's listener sets SO_REUSEADDR.
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.strip() == "ready":
                    return
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"the RTSP server stopped: {self.log.read_text().strip()}")
        self.kill()
        raise RuntimeError(f"the RTSP server did not listen within {timeout} s")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL: a camera losing power), if it runs."""
        if self.process is not None:
            self.process.kill()  # SIGKILL ends a paused process too
            self.process.communicate(timeout=10)
            self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): its connections stay open and nothing comes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill the server and start it again on the same port."""
        self.kill()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
