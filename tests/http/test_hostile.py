"""Hostile and broken input: every bad request gets its 4xx and the server keeps serving."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ServerProcess, free_port, images_folder, metric, server_env
from support import variants
from support.hostile import BadRequest, corpus
from support.waiting import HANG

Photo = Callable[[str], bytes]
UPLOAD_LIMIT = 2_000_000
REQUEST_TIMEOUT = 3.0
CORPUS = corpus(images_folder(), UPLOAD_LIMIT)


@pytest.fixture(scope="module")
def hostile_server(models_dir: Path, runtime: str) -> Iterator[ServerProcess]:
    """A server with a 2 MB upload limit and a 3 s request deadline."""
    env = server_env(
        models_dir,
        runtime,
        max_upload_bytes=str(UPLOAD_LIMIT),
        request_timeout=str(REQUEST_TIMEOUT),
    )
    process = ServerProcess(env, free_port())
    process.wait_ready()
    yield process
    process.stop()


def test_corpus_is_large_and_distinct() -> None:
    """The corpus holds at least 30 distinct bad requests."""
    assert len(CORPUS) >= 30
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_bad_request_gets_problem_json_and_serving_continues(
    hostile_server: ServerProcess, photo: Photo, case: BadRequest
) -> None:
    """Each bad request: its status, problem+json with an actionable detail; then a good one."""
    with httpx.Client(base_url=hostile_server.url, timeout=30) as client:
        response = client.request(
            case.method,
            case.path,
            params=case.params,
            headers=case.headers,
            content=case.content,
            files=case.files,
            data=case.data,
        )
        assert response.status_code == case.status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == case.status
        assert case.detail in problem["detail"]
        assert len(problem["detail"]) > 8
        good = client.post("/classify", files={"image": photo("coffee.png")})
        assert good.status_code == 200
        assert good.json()["predictions"][0]["label"] == "espresso"


def test_animated_gif_is_classified_by_its_first_frame(
    hostile_server: ServerProcess, photo: Photo
) -> None:
    """An animated GIF is not refused: its first frame is classified."""
    first = variants.open_rgb(photo("parrot.jpg")).convert("P")
    second = variants.open_rgb(photo("coffee.png")).resize(first.size).convert("P")
    animated = variants.encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    response = httpx.post(hostile_server.url + "/classify", files={"image": animated}, timeout=30)
    assert response.status_code == 200
    assert response.json()["predictions"][0]["label"] == "macaw"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _read_response(sock: socket.socket) -> bytes:
    sock.settimeout(HANG)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def _stream_upload(url_port: int, total: int, *, chunked: bool) -> tuple[bytes, int]:
    """Send up to `total` bytes of body until the server answers; (answer, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", url_port))
    head = "POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    sock.sendall(head.encode())
    block = b"\xff" * (1 << 20)
    sent = 0
    try:
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sent += len(block)
    except OSError:  # the server answered 413 and closed the connection: the point
        pass
    answer = _read_response(sock)
    sock.close()
    return answer, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_200_mb_upload_is_refused_while_streaming(
    hostile_server: ServerProcess, chunked: bool
) -> None:
    """A 200 MB upload gets 413 after at most the limit is read; RSS grows by < 8 MB."""
    pid = hostile_server.process.pid
    before = _rss_kib(pid)
    answer, sent = _stream_upload(hostile_server.port, 200 << 20, chunked=chunked)
    after = _rss_kib(pid)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
    assert sent < 100 << 20  # refused long before the end
    assert after - before < 8 * 1024, (before, after)
    assert httpx.get(hostile_server.url + "/readyz").status_code == 200


def _upload_timeouts(server: ServerProcess) -> float:
    text = httpx.get(server.url + "/metrics", timeout=HANG).text
    return metric(text, "edge_classify_timeouts_total", phase="upload")


def test_client_that_stalls_mid_body_gets_408(hostile_server: ServerProcess) -> None:
    """A client that sends half its declared body and stops is answered 408 once the request's
    deadline (EDGE_REQUEST_TIMEOUT) passes, counted as an upload timeout."""
    before = _upload_timeouts(hostile_server)
    sock = socket.create_connection(("127.0.0.1", hostile_server.port))
    sock.sendall(
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 100000\r\n\r\n" + b"\xff" * 50_000
    )
    answer = _read_response(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert _upload_timeouts(hostile_server) == before + 1
    assert httpx.get(hostile_server.url + "/readyz").status_code == 200
