"""Server processes under test: started, timed to ready, measured for memory, stopped by PID."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READY_POLL_S = 0.01


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET to 127.0.0.1."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get_json(port: int, path: str) -> Any:
    """A GET answered with 200 and JSON."""
    status, body = get(port, path)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
    return json.loads(body)


@dataclass
class ServerProcess:
    """A server child process on 127.0.0.1 and how long it took to become ready."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float = float("nan")

    @classmethod
    def start(
        cls,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        port: int,
        log: Path,
        *,
        ready_path: str = "/readyz",
        timeout: float = 120.0,
        cwd: Path | None = None,
    ) -> ServerProcess:
        """Start the command and wait until `ready_path` answers 200 (timed from the start).

        `cwd`: where it runs (`python -m` imports a package from there before PYTHONPATH).
        """
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as sink:
            started = time.perf_counter()
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                list(command), env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd
            )
        server = cls(name, process, port, log)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')}"
                )
            try:
                if get(port, ready_path, timeout=1.0)[0] == 200:
                    server.ready_s = time.perf_counter() - started
                    return server
            except OSError:
                pass
            time.sleep(READY_POLL_S)
        server.stop()
        raise RuntimeError(f"{name} not ready after {timeout} s; see {log}")

    def memory_mb(self) -> dict[str, float]:
        """Resident memory now and at its peak (VmRSS, VmHWM), in MB."""
        fields: dict[str, float] = {}
        status = Path(f"/proc/{self.process.pid}/status")
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024  # kB -> MB
        return {"rss_mb": fields.get("VmRSS", 0.0), "peak_rss_mb": fields.get("VmHWM", 0.0)}

    def cpu_s(self) -> float:
        """CPU time (user + system) the process has used so far, in seconds."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int | None:
        """SIGTERM this process (and only it), then wait; SIGKILL if it hangs."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def machine_busy_s() -> float:
    """CPU time every process on the machine has used since boot (all CPUs), in seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def python_command(*args: str) -> list[str]:
    """This interpreter running a module with arguments."""
    return [sys.executable, *args]
