"""What the connection and memory defences cost: the service with and without them, in turns.

    python -m benchmarks.defences [--models-dir DIR] [--images DIR] [--rounds N]

Two servers of the same app run side by side: `edge-server serve` (header and body timers,
the connection cap, the throttled log, the decode memory budget and the allocator's mmap
threshold) and the same app under plain uvicorn with none of them (`--bare`, below). Each
concurrency level (1 and 8) sends the same photos to both in alternating turns, so drifting
load on a shared machine falls on both alike, and prints the ratios of their figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks import load, photos, servers
from edge_server.config.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8)


def _bare() -> int:
    """Serve the app as uvicorn does by default: no defences (the baseline)."""
    import uvicorn

    from edge_server.app import create_app

    settings = Settings()
    app = create_app(settings)  # its lifespan loads the models
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.defences")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(os.environ.get("EDGE_MODELS_DIR", "models"))
    )
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    parser.add_argument("--rounds", type=int, default=6, help="turns per concurrency level")
    parser.add_argument("--seconds", type=float, default=3.0, help="per turn")
    args = parser.parse_args(argv)
    if args.bare:
        return _bare()

    sets = {s.size.name: s for s in photos.photo_sets(args.images)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_MODELS_DIR=str(args.models_dir), EDGE_LOG_LEVEL="warning")
    started = []
    try:
        for name, command in (
            ("defended", servers.python_command("-m", "edge_server", "serve")),
            ("bare", servers.python_command("-m", "benchmarks.defences", "--bare")),
        ):
            port = servers.free_port()
            log = ROOT / "benchmarks" / "results" / f"defences-{name}.log"
            started.append(
                servers.ServerProcess.start(
                    name, command, {**env, "EDGE_PORT": str(port)}, port, log
                )
            )
        print(f"{'photo':>10} {'c':>2} {'figure':>16} {'defended':>10} {'bare':>10} {'ratio':>6}")
        for size in ("1920x1080", "4032x3024"):
            jpegs = sets[size].jpegs
            for concurrency in CONCURRENCY:
                _compare(started, size, jpegs, concurrency, args.rounds, args.seconds)
    finally:
        for server in started:
            server.stop()
    return 0


def _compare(
    started: list[servers.ServerProcess],
    size: str,
    jpegs: tuple[bytes, ...],
    concurrency: int,
    rounds: int,
    seconds: float,
) -> None:
    latencies: dict[str, list[float]] = {s.name: [] for s in started}
    requests: dict[str, int] = {s.name: 0 for s in started}
    wall: dict[str, float] = {s.name: 0.0 for s in started}
    cpu: dict[str, float] = {s.name: 0.0 for s in started}
    for turn in range(rounds):
        # Alternate who goes first, so neither always follows the other's after-effects.
        order = started if turn % 2 == 0 else started[::-1]
        for server in order:
            bodies = [load.multipart_request(server.port, "/classify", j) for j in jpegs]
            before = server.cpu_s()
            run = load.drive(server.port, bodies, concurrency, total=10_000, seconds=seconds)
            cpu[server.name] += server.cpu_s() - before
            if run.errors:
                raise RuntimeError(f"{server.name}: {run.errors} requests failed")
            latencies[server.name] += run.latencies_ms
            requests[server.name] += len(run.latencies_ms)
            wall[server.name] += run.wall_s
    figures = {
        name: {
            "p50 ms": float(np.percentile(latencies[name], 50)),
            "p95 ms": float(np.percentile(latencies[name], 95)),
            "images/s": requests[name] / wall[name],
            "CPU ms/image": cpu[name] * 1000 / requests[name],
        }
        for name in latencies
    }
    for figure in ("p50 ms", "p95 ms", "images/s", "CPU ms/image"):
        ours, base = figures["defended"][figure], figures["bare"][figure]
        print(
            f"{size:>10} {concurrency:>2} {figure:>16} {ours:>10.1f} {base:>10.1f} "
            f"{ours / base:>6.3f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
