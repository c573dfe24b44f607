"""Slow clients and many connections: a server limited to 1,024 open files keeps serving."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from edge_server.filelimit import connection_cap

from conftest import ServerProcess, free_port, metric, server_env

Photo = Callable[[str], bytes]

# More than the server's open-file limit, from this one client.
FILE_LIMIT = 1024
PER_KIND = 400
ATTACK_SECONDS = 12.0


def _open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def _slow_client(
    port: int, request: bytes, trickle: bool, stop: asyncio.Event
) -> Counter[str]:
    """One slot of the attack: connect, send `request`, then trickle or stall; again when closed."""
    seen: Counter[str] = Counter()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except (OSError, TimeoutError):
            seen["connect failed"] += 1
            await asyncio.sleep(0.5)
            continue
        seen["connected"] += 1
        answer = b""
        try:
            writer.write(request)
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), 2)
                except TimeoutError:
                    if trickle:
                        writer.write(b"x")  # one more byte of a header that never ends
                    continue
                if not data:
                    seen["closed by server"] += 1
                    break
                answer += data
        except OSError:
            seen["reset"] += 1
        finally:
            writer.close()
        if answer.startswith(b"HTTP/1.1 503"):
            seen["503"] += 1
        await asyncio.sleep(0.5)  # as slowloris does between rounds
    return seen


async def _attack_and_probe(
    server: ServerProcess, image: bytes
) -> tuple[Counter[str], list[tuple[str, int, float]]]:
    stop = asyncio.Event()
    kinds = (
        # Headers a byte at a time (slowloris).
        (b"GET /readyz HTTP/1.1\r\nHost: edge\r\nX-Slow: ", True),
        # A body that stops after its first bytes.
        (
            b"POST /classify HTTP/1.1\r\nHost: edge\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n\xff\xd8\xff",
            False,
        ),
        # A finished request, then an idle keep-alive.
        (b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n", False),
    )
    attackers = [
        asyncio.create_task(_slow_client(server.port, request, trickle, stop))
        for request, trickle in kinds
        for _ in range(PER_KIND)
    ]
    answers: list[tuple[str, int, float]] = []
    await asyncio.sleep(2)  # every slow connection open
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        deadline = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < deadline:
            for name in ("readyz", "classify"):
                started = time.monotonic()
                if name == "readyz":
                    call = client.get("/readyz")
                else:
                    call = client.post("/classify", files={"image": image})
                response = await asyncio.wait_for(call, 20)
                answers.append((name, response.status_code, time.monotonic() - started))
            await asyncio.sleep(0.3)
    stop.set()
    totals: Counter[str] = Counter()
    for seen in await asyncio.wait_for(asyncio.gather(*attackers), 20):
        totals.update(seen)
    return totals, answers


@pytest.mark.slow
def test_slow_connections_beyond_the_file_limit_do_not_stop_the_service(
    models_dir: Path, runtime: str, photo: Photo, tmp_path: Path
) -> None:
    """1,200 slow connections (trickled headers, stalled bodies, idle keep-alives) against a
    1,024-file server: /readyz and /classify answered in < 2 s, log < 1 MB, fds back after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * PER_KIND + 256
    if soft < wanted:
        assert hard >= wanted, f"this test needs {wanted} open files; hard limit is {hard}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    env = server_env(
        models_dir,
        runtime,
        log_level="info",
        header_timeout="5",
        body_timeout="5",
        keep_alive_timeout="5",
    )
    log = tmp_path / "server.log"
    server = ServerProcess(env, free_port(), open_files=FILE_LIMIT, log_path=log)
    try:
        server.wait_ready()
        image = photo("grace_hopper.jpg")
        assert httpx.post(server.url + "/classify", files={"image": image}).status_code == 200
        baseline = _open_files(server.process.pid)
        log_before = log.stat().st_size
        totals, answers = asyncio.run(_attack_and_probe(server, image))
        log_growth = log.stat().st_size - log_before
        # The attackers hung up; what they left behind closes by the timeouts.
        deadline = time.monotonic() + 10
        while _open_files(server.process.pid) > baseline and time.monotonic() < deadline:
            time.sleep(0.2)
        after = _open_files(server.process.pid)
        text = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    print(totals, f"log +{log_growth} bytes, fds {baseline} -> {after}")
    assert totals["connected"] > FILE_LIMIT
    slow = [(name, status, round(s, 2)) for name, status, s in answers if s >= 2]
    assert not slow, slow
    assert {status for name, status, _ in answers if name == "readyz"} == {200}
    assert {status for name, status, _ in answers if name == "classify"} == {200}
    assert log_growth < 1_000_000
    assert "Traceback" not in server.log
    assert after <= baseline, (baseline, after)
    for reason in ("header_timeout", "body_timeout"):
        assert metric(text, "edge_connections_closed_total", reason=reason) > 0, reason


@pytest.mark.parametrize(
    ("wanted", "file_limit", "in_use", "cap"),
    [
        (1000, 1024, 10, 1024 - 10 - 2 * 128 - 64),
        (1000, 8192, 10, 1000),
        (1000, resource.RLIM_INFINITY, 10, 1000),
        (1000, 300, 10, 1),
    ],
)
def test_connections_are_capped_below_the_open_file_limit(
    wanted: int, file_limit: int, in_use: int, cap: int
) -> None:
    """The cap leaves room for files in use, two accept bursts and a reserve."""
    assert connection_cap(wanted, file_limit, in_use, backlog=128) == cap


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    """A process started with 1,024 soft and 4,096 hard runs with 4,096."""
    code = (
        "import resource; from edge_server.filelimit import raise_open_files; "
        "print(raise_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))

    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=limit, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["4096", "4096"]
