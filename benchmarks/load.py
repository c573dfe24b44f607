"""A closed-loop HTTP load generator: N connections, each sending its next upload on an answer.

Requests are built once as bytes and written to kept-alive sockets with asyncio streams, so the
client costs the shared CPUs far less than the servers it measures (an HTTP library would
re-encode the multipart body for every request). Only for servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Run:
    """What one concurrency level produced."""

    latencies_ms: list[float]
    wall_s: float
    errors: int
    bodies: list[bytes] = field(default_factory=list)  # with keep_bodies: one per latency


def multipart_request(port: int, path: str, image: bytes, field: str = "image") -> bytes:
    """A complete HTTP/1.1 POST of one image as a multipart form (what `curl -F` sends)."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="{field}"; filename="photo.jpg"\r\n'.encode(),
            b"Content-Type: image/jpeg\r\n\r\n",
            image,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def raw_request(port: int, path: str, image: bytes) -> bytes:
    """A complete HTTP/1.1 POST of one image as the raw body (`curl --data-binary`)."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(image)}\r\n"
        "\r\n"
    )
    return head.encode() + image


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response (Content-Length framed, as both servers answer)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _worker(
    port: int,
    requests: Sequence[bytes],
    start: int,
    budget: itertools.count[int],
    total: int,
    deadline: float,
    run: list[float],
    errors: list[int],
    bodies: list[bytes] | None,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        turn = start
        while next(budget) < total and time.perf_counter() < deadline:
            request = requests[turn % len(requests)]
            turn += 1
            sent = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status, body = await _answer(reader)
            run.append((time.perf_counter() - sent) * 1000)
            if bodies is not None:
                bodies.append(body)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()
        await writer.wait_closed()


async def _drive(
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    total: int,
    seconds: float,
    keep_bodies: bool = False,
) -> Run:
    latencies: list[float] = []
    errors: list[int] = []
    bodies: list[bytes] | None = [] if keep_bodies else None
    budget = itertools.count()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _worker(port, requests, i, budget, total, deadline, latencies, errors, bodies)
            for i in range(concurrency)
        )
    )
    return Run(latencies, time.perf_counter() - started, len(errors), bodies or [])


def drive(
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    *,
    total: int,
    seconds: float,
    keep_bodies: bool = False,
) -> Run:
    """Send up to `total` requests over `concurrency` connections, stopping after `seconds`.

    With `keep_bodies` the answers' bodies are kept too, in the order of the latencies.
    """
    return asyncio.run(_drive(port, requests, concurrency, total, seconds, keep_bodies))


def drive_together(
    port: int, groups: Sequence[tuple[Sequence[bytes], int]], *, total: int, seconds: float
) -> list[Run]:
    """Several closed loops at once (each its requests and connections), one Run per group."""

    async def all_groups() -> list[Run]:
        return list(
            await asyncio.gather(
                *(_drive(port, requests, n, total, seconds) for requests, n in groups)
            )
        )

    return asyncio.run(all_groups())
