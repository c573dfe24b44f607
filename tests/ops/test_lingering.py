"""Answers given before an upload is read reach the client (lingering close), against one real
server: urllib, requests and httpx uploads to an unknown model, with a wrong key and over the
size limit, on the native, DeepStack and KServe routes; a 2 GB upload is cut off at the bound."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from edge_server.ops import connections

from conftest import SMALL_MODEL, ServerProcess, free_port, images_folder, metric, server_env

pytestmark = pytest.mark.lan

KEY = "linger-test-key-0123456789"
WRONG_KEY = "not-the-key-0123456789abcd"
LIMIT = 512 * 1024  # every upload below is over it, so every answer comes before its body
LINGER_BYTES = 16 * 1024 * 1024
BODY_TIMEOUT = 5.0
SIZES = (1_000_000, 5_000_000)
UPLOADS = 20
BIG = 2 * 1024**3
CHUNK = bytes(1 << 20)
# Peak RSS a 2 GB upload may add to a small one's: a body held in memory would add 2,000 MB.
MEMORY_SLACK = 10 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    """An upload and the answer it must get: its status, in the route's error shape."""

    path: str
    status: int

    @property
    def dialect(self) -> str:
        if self.path.startswith("/v1/vision/"):
            return "deepstack"
        return "kserve" if self.path.startswith("/v2/") else "problem"


SERVED_INFER = f"/v2/models/{SMALL_MODEL}/infer"
CASES = {
    "unknown model": [
        Case("/classify?model=nope", 404),
        Case("/v1/vision/custom/nope", 404),
        Case("/v1/vision/detection", 404),  # no detector is served
        Case("/v2/models/nope/infer", 404),
    ],
    "wrong key": [
        Case("/classify", 401),
        Case(SERVED_INFER, 401),
        # DeepStack clients send the key as a form field, so the form is read for it first
        # and refused for its size.
        Case("/v1/vision/scene", 413),
        Case(f"/v1/vision/custom/{SMALL_MODEL}", 413),
    ],
    "over the limit": [
        Case("/classify", 413),
        Case("/v1/vision/scene", 413),
        Case(f"/v1/vision/custom/{SMALL_MODEL}", 413),
        Case(SERVED_INFER, 413),
    ],
}

Answer = tuple[int, dict[str, str], bytes]
Client = Callable[[str, bytes, dict[str, str]], Answer]


def _urllib(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def _requests(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    # As Home Assistant's DeepStack clients call it: requests.post, a new session each time.
    response = requests.post(url, data=body, headers=headers, timeout=60)
    return response.status_code, dict(response.headers), response.content


def _httpx(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    response = httpx.post(url, content=body, headers=headers, timeout=60)
    return response.status_code, dict(response.headers), response.content


CLIENTS: dict[str, Client] = {"urllib": _urllib, "requests": _requests, "httpx": _httpx}


@pytest.fixture(scope="module")
def server(models_dir: Path, runtime: str) -> Iterator[ServerProcess]:
    """One server for the module: the small classifier, a key, a 512 KiB upload limit."""
    env = server_env(
        models_dir,
        runtime,
        model=SMALL_MODEL,
        api_key=KEY,
        max_upload_bytes=str(LIMIT),
        linger_bytes=str(LINGER_BYTES),
        body_timeout=str(BODY_TIMEOUT),
    )
    process = ServerProcess(env, free_port())
    process.wait_ready()
    yield process
    process.stop()


def _padded_photo(size: int) -> bytes:
    """A real photo followed by random bytes, `size` bytes in all."""
    photo = (images_folder() / "grace_hopper.jpg").read_bytes()
    return photo + os.urandom(size - len(photo))


@pytest.fixture(scope="module")
def uploads() -> dict[tuple[str, int], tuple[bytes, str]]:
    """(body, content type) of about each size: a multipart form, and a KServe JSON request."""
    made: dict[tuple[str, int], tuple[bytes, str]] = {}
    for size in SIZES:
        boundary = "lingering-upload-boundary"
        form = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        form += _padded_photo(size) + f"\r\n--{boundary}--\r\n".encode()
        made["form", size] = form, f"multipart/form-data; boundary={boundary}"
        encoded = base64.b64encode(_padded_photo(size * 3 // 4)).decode()
        tensor = {"name": "images", "shape": [1], "datatype": "BYTES", "data": [encoded]}
        made["json", size] = json.dumps({"inputs": [tensor]}).encode(), "application/json"
    return made


def _wrong_answer(case: Case, answer: Answer) -> str | None:
    """Why an answer is not the one the case expects (None: it is)."""
    status, headers, body = answer
    if status != case.status:
        return f"status {status}"
    lowered = {name.lower(): value for name, value in headers.items()}
    if "close" not in lowered.get("connection", "").lower():
        return "no Connection: close"
    try:
        document = json.loads(body)
    except ValueError:
        return f"body {body[:80]!r}"
    if case.dialect == "problem":
        good = lowered.get("content-type") == "application/problem+json" and (
            document.get("status") == status and document.get("detail")
        )
    elif case.dialect == "deepstack":
        good = document.get("success") is False and document.get("code") == status
    else:
        good = isinstance(document.get("error"), str)
    return None if good else f"body {document}"


def _closed(server: ServerProcess, reason: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    return metric(text, "edge_connections_closed_total", reason=reason)


def _discarded(server: ServerProcess) -> float:
    return metric(httpx.get(server.url + "/metrics").text, "edge_connections_discarded_bytes_total")


@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("client", list(CLIENTS))
def test_every_early_answer_reaches_the_client(
    server: ServerProcess,
    uploads: dict[tuple[str, int], tuple[bytes, str]],
    client: str,
    kind: str,
) -> None:
    """20 uploads each of 1 MB and 5 MB: every one gets its status and error body, none cut."""
    send = CLIENTS[client]
    cut, discarded = _closed(server, "linger_cut"), _discarded(server)
    wrong = []
    for size in SIZES:
        for number in range(UPLOADS):
            case = CASES[kind][number % len(CASES[kind])]
            body, content_type = uploads["json" if case.dialect == "kserve" else "form", size]
            key = WRONG_KEY if kind == "wrong key" else KEY
            headers = {"Content-Type": content_type, "X-API-Key": key}
            try:
                why = _wrong_answer(case, send(server.url + case.path, body, headers))
            except Exception as error:  # a lost answer: what the client saw instead
                why = repr(error)
            if why is not None:
                wrong.append((case.path, size, why))
    assert not wrong, f"{len(wrong)} of {2 * UPLOADS}: {wrong[:5]}"
    assert _closed(server, "linger_cut") == cut
    assert _discarded(server) > discarded


def _read_answer(sock: socket.socket) -> tuple[bytes, bool]:
    """What the server sent, and whether it was followed by EOF."""
    received = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return received, True
        received += data


def test_the_answer_is_followed_by_eof_while_the_rest_is_still_read(
    server: ServerProcess,
) -> None:
    """After an early 401 the server half-closes (answer, then EOF) and reads what follows."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(_head("/classify", WRONG_KEY, f"Content-Length: {5 * len(CHUNK)}"))
        sock.sendall(CHUNK)
        answer, eof = _read_answer(sock)
        sock.sendall(CHUNK * 4)  # the rest of the body, still taken
    assert answer.startswith(b"HTTP/1.1 401 ") and b"connection: close" in answer.lower()
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["status"] == 401
    assert eof


def test_a_client_that_stops_sending_is_closed_after_the_body_timeout(
    server: ServerProcess,
) -> None:
    """A client that has its answer and neither sends nor closes is closed (lingered) after
    EDGE_BODY_TIMEOUT; its next bytes are refused."""
    lingered = _closed(server, "lingered")
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(_head("/classify", WRONG_KEY, f"Content-Length: {5 * len(CHUNK)}"))
        sock.sendall(CHUNK)
        answer, eof = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 401 ") and eof
        deadline = time.monotonic() + BODY_TIMEOUT + 30  # stops a hang, not a measure
        while _closed(server, "lingered") == lingered and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _closed(server, "lingered") == lingered + 1
        assert isinstance(_send_until_refused(sock), (BrokenPipeError, ConnectionResetError))


def _send_until_refused(sock: socket.socket) -> OSError | None:
    """The error sending more gets (the first bytes may be taken before the reset is back)."""
    for _ in range(64):
        try:
            sock.sendall(CHUNK)
        except OSError as error:
            return error
    return None


def _head(path: str, key: str, framing: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
        f"Content-Type: image/jpeg\r\n{framing}\r\n\r\n"
    ).encode()


def _stream(server: ServerProcess, total: int, chunked: bool) -> tuple[int, bytes]:
    """Bytes of a `total`-byte upload the server took before cutting it off, and its answer."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    piece = b"%x\r\n%b\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(_head("/classify", KEY, framing))
        try:
            while sent < total:
                sock.sendall(piece)
                sent += len(CHUNK)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except TimeoutError:
            raise
        except OSError:  # cut off: the server closed with the rest unread
            pass
        try:
            answer = sock.recv(65536)
        except OSError:
            answer = b""
    return sent, answer


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_2_gb_upload_is_cut_off_at_the_bound_in_constant_memory(
    server: ServerProcess, chunked: bool
) -> None:
    """A 2 GB upload over the limit is read up to EDGE_LINGER_BYTES then cut off, and its
    peak RSS is within 10 MB of a 1 MB upload's."""
    pid = server.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS starts again from now
    small, answer = _stream(server, len(CHUNK), chunked)
    assert small == len(CHUNK) and answer.startswith(b"HTTP/1.1 413 ")
    after_small = _peak_rss(pid)
    cut = _closed(server, "linger_cut")
    sent, _ = _stream(server, BIG, chunked)
    after_big = _peak_rss(pid)
    print(f"taken {sent:,} of {BIG:,} bytes; peak RSS {after_small:,} -> {after_big:,}")
    # Read up to the bound (less the chunk being sent when cut), plus the sockets' buffers.
    assert LINGER_BYTES - len(CHUNK) <= sent < 4 * LINGER_BYTES
    assert _closed(server, "linger_cut") == cut + 1
    assert after_big - after_small < MEMORY_SLACK


class _Closing:
    """A connection in a table that records why it was closed."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def close_for(self, reason: str) -> None:
        self.reasons.append(reason)


def test_at_the_cap_a_waiting_connection_goes_before_a_lingering_one() -> None:
    """Past the cap, one waiting for headers is evicted first, then the oldest lingering one;
    with neither, the newcomer is refused."""
    limits = connections.ConnectionLimits(
        max_connections=2, header_timeout=1, body_timeout=1, linger_bytes=1, linger_timeout=1
    )
    table = connections.ConnectionTable(limits, connections.ConnectionMetrics(CollectorRegistry()))
    lingering, waiting, busy = _Closing(), _Closing(), _Closing()
    assert table.admit(lingering) and table.admit(waiting)
    table.lingering[lingering] = None
    table.waiting[waiting] = None
    assert table.admit(_Closing())
    assert (waiting.reasons, lingering.reasons) == (["evicted"], [])
    table.closed(waiting)
    assert table.admit(busy)
    assert lingering.reasons == ["evicted"]
    table.closed(lingering)
    assert not table.admit(_Closing())


async def _answer_after(app_reads: int, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    """What CloseEarlyAnswers sends when its app reads `app_reads` of two body chunks."""
    chunks: list[Message] = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": False},
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(app_reads):
            await receive()
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def receive() -> Message:
        return chunks.pop(0)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": headers}
    await connections.CloseEarlyAnswers(app)(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("reads", "headers", "closes"),
    [
        (0, [(b"content-length", b"2")], True),
        (1, [(b"transfer-encoding", b"chunked")], True),
        (2, [(b"content-length", b"2")], False),
        (0, [], False),
        (0, [(b"content-length", b"0")], False),
    ],
    ids=["unread", "half-read", "read", "no-body", "empty-body"],
)
def test_answers_before_the_end_of_the_body_say_connection_close(
    reads: int, headers: list[tuple[bytes, bytes]], closes: bool
) -> None:
    """An answer started before the app read the body's last chunk says Connection: close."""
    start = asyncio.run(_answer_after(reads, headers))[0]
    assert ((b"connection", b"close") in start["headers"]) is closes
