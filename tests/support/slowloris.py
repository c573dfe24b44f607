"""Slow clients from one host, as a child process: `python slowloris.py PORT SECONDS PER_KIND`.

Opens PER_KIND connections of each kind from 127.0.0.2 to 127.0.0.1:PORT, reopens each one
a second after the server closes it, prints `open` once every slot has tried its first
connection, stops SECONDS after that and prints what it saw as JSON. In its own process so
that its event loop does not delay the normal client it is tested beside.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections import Counter
from collections.abc import Callable

# The attacking host: another loopback address than the normal client's 127.0.0.1.
ATTACKER = "127.0.0.2"
KINDS = (
    # Headers a byte every two seconds (slowloris).
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


async def _slow_client(
    port: int, request: bytes, trickle: bool, stop: asyncio.Event, tried: Callable[[], None]
) -> Counter[str]:
    """One slot: connect, send `request`, then trickle or stall; again when closed. Calls
    `tried` once its first connection is open or has failed."""
    seen: Counter[str] = Counter()
    first = True
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0)), 5
            )
        except (OSError, TimeoutError):
            seen["connect failed"] += 1
            if first:
                first = False
                tried()
            await asyncio.sleep(1)
            continue
        seen["connected"] += 1
        if first:
            first = False
            tried()
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
        await asyncio.sleep(1)  # as slowloris does between rounds (15 s by default)
    return seen


async def attack(port: int, seconds: float, per_kind: int) -> Counter[str]:
    """Every slot of every kind, for `seconds` after each has tried to connect; what they
    saw, summed."""
    stop, all_tried = asyncio.Event(), asyncio.Event()
    waiting = len(KINDS) * per_kind

    def tried() -> None:
        nonlocal waiting
        waiting -= 1
        if not waiting:
            all_tried.set()

    slots = [
        asyncio.create_task(_slow_client(port, request, trickle, stop, tried))
        for request, trickle in KINDS
        for _ in range(per_kind)
    ]
    await all_tried.wait()  # each slot's first try ends within its 5 s connect timeout
    print("open", flush=True)
    await asyncio.sleep(seconds)
    stop.set()
    totals: Counter[str] = Counter()
    for seen in await asyncio.wait_for(asyncio.gather(*slots), 20):
        totals.update(seen)
    return totals


if __name__ == "__main__":
    port, seconds, per_kind = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(KINDS) * per_kind + 64
    if soft < wanted:
        if hard < wanted:
            sys.exit(f"needs {wanted} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    print(json.dumps(asyncio.run(attack(port, seconds, per_kind))))
