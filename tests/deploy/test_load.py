"""The front door's load driver (deploy/load.py) against a real server process."""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import load
from conftest import ServerProcess, free_port

# The head of HAProxy 2.6's `/stats;csv` page, cut to the columns read, plus one of the others.
STATS_CSV = """# pxname,svname,qcur,wretr,wredis,status
edge,FRONTEND,,,,OPEN
pis,pi1,0,3,2,UP
pis,pi2,0,0,0,DOWN
pis,BACKEND,0,3,2,UP
"""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    status = load.main(list(argv))
    return status, json.loads(capsys.readouterr().out)


def test_counts_right_answers(
    server: ServerProcess, images_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every request answered 200 with the expected top label counts as ok, up to --requests."""
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, server.url, image, "military uniform", "--requests", "5")
    assert status == 0
    assert (summary["requests"], summary["ok"], summary["failed"]) == (5, 5, 0)
    assert summary["served_by"] == {"-": 5}  # no front door: no X-Served-By header


def test_counts_a_wrong_label_as_failed(
    server: ServerProcess, images_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 200 with another top label is a failure, named by the label it had."""
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, server.url, image, "tabby, tabby cat", "--requests", "2")
    assert status == 1
    assert summary["failures"] == {"label 'military uniform'": 2}


def test_counts_unanswered_requests(images_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening: each request is a failure with the reason, and the run still ends."""
    url = f"http://127.0.0.1:{free_port()}"
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, url, image, "x", "--requests", "3", "--pause", "0")
    assert status == 1
    assert summary["failures"] == {"no answer: ConnectionRefusedError": 3}
    assert (summary["cut_mid_answer"], summary["other_failed"]) == (0, 3)


# Misbehaving servers on 127.0.0.1: each reads a whole request, then ends the exchange its way.
BODY = b'{"predictions": [{"label": "military uniform", "score": 0.9}]}'


def _headers(length: int) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Served-By: bad\r\n"
        + f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
    )


def _cut_mid_body(conn: socket.socket) -> None:
    conn.sendall(_headers(len(BODY)) + BODY[:10])


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends a RST instead of a FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _invalid_json(conn: socket.socket) -> None:
    conn.sendall(_headers(9) + b"not json!")


class _Handler(socketserver.BaseRequestHandler):
    answer: Callable[[socket.socket], None]

    def handle(self) -> None:
        conn: socket.socket = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        type(self).answer(conn)


@pytest.fixture
def misbehaving() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A factory: the URL of a 127.0.0.1 server that ends every exchange with `answer`."""
    servers: list[socketserver.ThreadingTCPServer] = []

    def start(answer: Callable[[socket.socket], None]) -> str:
        handler = type("Handler", (_Handler,), {"answer": staticmethod(answer)})
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("answer", "kind", "cut"),
    [
        (_cut_mid_body, "cut mid-answer: IncompleteRead", 9),
        (_reset, "no answer: ConnectionResetError", 0),
        (_invalid_json, "invalid answer: JSONDecodeError", 0),
    ],
)
def test_counts_every_broken_exchange_by_kind_and_no_worker_dies(
    misbehaving: Callable[[Callable[[socket.socket], None]], str],
    answer: Callable[[socket.socket], None],
    kind: str,
    cut: int,
    images_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Cut body, reset, invalid JSON: every request failed by its kind, no worker lost, status 1."""
    image = str(images_dir / "grace_hopper.jpg")
    url = misbehaving(answer)
    argv = (url, image, "military uniform", "--requests", "9", "--concurrency", "3")
    status, summary = _run(capsys, *argv, "--pause", "0")
    assert status == 1
    assert (summary["requests"], summary["ok"], summary["failed"]) == (9, 0, 9)
    assert summary["failures"] == {kind: 9}
    assert (summary["cut_mid_answer"], summary["other_failed"]) == (cut, 9 - cut)
    assert summary["workers_lost"] == 0


def test_an_unexpected_exception_is_counted_and_the_worker_goes_on(
    images_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever an exchange raises is a failure named by its type; the workers keep going."""

    def broken(*_: object) -> tuple[str, str | None]:
        raise RuntimeError("a bug in the exchange")

    monkeypatch.setattr(load, "classify_once", broken)
    image = str(images_dir / "grace_hopper.jpg")
    argv = ("http://127.0.0.1:9", image, "x", "--requests", "6", "--concurrency", "2")
    status, summary = _run(capsys, *argv, "--pause", "0")
    assert status == 1
    assert summary["failures"] == {"unexpected: RuntimeError": 6}
    assert (summary["requests"], summary["workers_lost"]) == (6, 0)


def test_stop_file_ends_the_run(
    server: ServerProcess, images_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stop file that exists stops the load before any request; no request is a failure."""
    stop = tmp_path / "stop"
    stop.touch()
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, server.url, image, "x", "--stop-file", str(stop))
    assert status == 1
    assert summary["requests"] == 0


def test_reads_retries_and_redispatches_per_server() -> None:
    """HAProxy's CSV statistics give each server's retries and redispatches."""
    assert load.server_counters(STATS_CSV) == {
        "pi1": {"wretr": 3, "wredis": 2},
        "pi2": {"wretr": 0, "wredis": 0},
    }
