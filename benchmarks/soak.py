"""Load generator: N concurrent clients for T seconds against a real server process.

Prints throughput, latency percentiles, answers by status, transport errors and the server's RSS
(at start, after the first minute and at the end). Not a test: it prints numbers for a person.

    python benchmarks/soak.py --clients 16 --duration 60
    python benchmarks/soak.py --clients 200 --duration 30 --max-queue 8
    python benchmarks/soak.py --clients 8 --duration 600      # soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    """What the clients saw."""

    latencies: dict[int, list[float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def client(
    url: str, body: bytes, until: float, tally: Tally, http: httpx.AsyncClient
) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            response = await http.post(url + "/classify", files={"image": ("photo.jpg", body)})
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        tally.latencies.setdefault(response.status_code, []).append(time.perf_counter() - started)
        tally.statuses[response.status_code] += 1
        if response.status_code == 503:
            await asyncio.sleep(float(response.headers.get("retry-after", "1")) / 10)


async def sample_rss(pid: int, until: float, samples: list[tuple[float, float]]) -> None:
    start = time.monotonic()
    while time.monotonic() < until:
        samples.append((time.monotonic() - start, rss_mib(pid)))
        await asyncio.sleep(1)


async def run(url: str, pid: int, body: bytes, clients: int, duration: float) -> dict[str, object]:
    tally = Tally()
    samples: list[tuple[float, float]] = []
    until = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.monotonic()
        await asyncio.gather(
            sample_rss(pid, until, samples),
            *(client(url, body, until, tally, http) for _ in range(clients)),
        )
        elapsed = time.monotonic() - started
        server_side = _server_side_ms(await http.get(url + "/metrics"))
    after_minute = next((rss for t, rss in samples if t >= 60), samples[-1][1])
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": sum(tally.statuses.values()),
        "throughput_per_s": round(tally.statuses[200] / elapsed, 1),
        "latency_ms_by_status": {
            status: {f"p{q}": round(percentile(values, q) * 1000, 1) for q in (50, 95, 99)}
            for status, values in sorted(tally.latencies.items())
        },
        "server_side_mean_ms_by_status": server_side,
        "statuses": dict(sorted(tally.statuses.items())),
        "transport_errors": dict(tally.errors),
        "rss_mib": {
            "start": round(samples[0][1], 1),
            "after_first_minute": round(after_minute, 1),
            "end": round(rss_mib(pid), 1),
            "max": round(max(rss for _, rss in samples), 1),
        },
    }


def _server_side_ms(metrics: httpx.Response) -> dict[str, float]:
    """Mean time the server spent on /classify by status, from its duration histogram.

    With hundreds of clients in one process on a small machine, the load generator's own
    scheduling shows up in client-side latency; this is the server's share alone.
    """
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in metrics.text.splitlines():
        if not line.startswith("edge_http_request_duration_seconds_") or '/classify"' not in line:
            continue
        name, _, value = line.rpartition(" ")
        status = name.split('status="')[1].split('"')[0]
        if name.startswith("edge_http_request_duration_seconds_sum"):
            sums[status] = float(value)
        elif name.startswith("edge_http_request_duration_seconds_count"):
            counts[status] = float(value)
    return {s: round(sums[s] / counts[s] * 1000, 2) for s in sorted(counts) if counts[s]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_MODELS_DIR=str(args.models_dir),
        EDGE_LOG_LEVEL="warning",
        EDGE_MAX_QUEUE=str(args.max_queue),
        EDGE_HOST="127.0.0.1",
        EDGE_PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_server", "serve"], env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not become ready in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--max-queue", type=int, default=64, help="EDGE_MAX_QUEUE of the server")
    parser.add_argument(
        "--image", type=Path, default=ROOT.parent / "shared/images/grace_hopper.jpg"
    )
    parser.add_argument("--models-dir", type=Path, default=ROOT.parent / "shared/models")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    process, url = start_server(args)
    try:
        result = asyncio.run(
            run(url, process.pid, args.image.read_bytes(), args.clients, args.duration)
        )
    finally:
        process.send_signal(signal.SIGTERM)
        result_exit = process.wait(timeout=30)
    result["server_exit_status"] = result_exit
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
