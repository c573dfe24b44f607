"""A server's worker processes (dlib's, for faces), so that a test can end them too.

A server stopped with SIGTERM stops its workers itself; one killed (SIGKILL, or after not
stopping in time) cannot, and its workers keep its log pipe open, so reading the log would
wait for ever. These helpers end the workers by their process ids, read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from conftest import ServerProcess
from support.waiting import HANG


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill(server: ServerProcess) -> None:
    """SIGKILL the server, as a power cut would end it, then the workers it leaves behind."""
    left = descendants(server.process.pid)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    _end(left)


def stop(server: ServerProcess) -> int:
    """`server.stop()`, and the workers ended if the server had to be killed."""
    if server.process.poll() is None:
        left = descendants(server.process.pid)
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
        _end(left)
    return server.stop()


def _end(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
