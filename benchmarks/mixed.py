"""Two models in one server: is a fast model's latency its own while a slow one is busy, and
does splitting the CPUs between the models' interpreter threads pay?

`python -m benchmarks.mixed` starts the real server twice, with the fast model (`tiny`) and the
slow one (`birds`): once with the default thread split (the CPUs shared between the models) and
once with every model given every CPU. Each run first measures the fast model alone, then 8
clients on each model at once, and prints the ratios from that one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.load import Run, drive, drive_together, multipart_request
from benchmarks.servers import ServerProcess, free_port, python_command
from edge_server.settings import available_cpus

FAST, SLOW = "tiny", "birds"


def _p50(run: Run) -> float:
    return statistics.median(run.latencies_ms) if run.latencies_ms else float("nan")


def _throughput(run: Run) -> float:
    return len(run.latencies_ms) / run.wall_s if run.wall_s else 0.0


def measure(
    models_dir: Path, image: bytes, threads: int | None, seconds: float
) -> dict[str, float]:
    """One server: the fast model alone at c=8, then both models at c=8 each."""
    port = free_port()
    env = {
        "EDGE_MODEL": f"{FAST},{SLOW}",
        "EDGE_MODELS_DIR": str(models_dir),
        "EDGE_LOG_LEVEL": "warning",
    }
    if threads is not None:
        env["EDGE_NUM_THREADS"] = str(threads)
    log = Path(tempfile.mkdtemp(prefix="edge-mixed-")) / "server.log"
    server = ServerProcess.start(
        "service",
        python_command("-m", "edge_server", "serve", "--port", str(port)),
        {**_base_env(), **env},
        port,
        log,
    )
    try:
        fast = [multipart_request(port, f"/classify?model={FAST}", image)]
        slow = [multipart_request(port, f"/classify?model={SLOW}", image)]
        drive(port, fast + slow, 2, total=20, seconds=5)  # warm both
        alone = drive(port, fast, 8, total=100_000, seconds=seconds)
        mixed_fast, mixed_slow = drive_together(
            port, [(fast, 8), (slow, 8)], total=100_000, seconds=seconds
        )
    finally:
        server.stop()
    return {
        "fast_alone_p50_ms": _p50(alone),
        "fast_mixed_p50_ms": _p50(mixed_fast),
        "slow_mixed_p50_ms": _p50(mixed_slow),
        "mixed_throughput": _throughput(mixed_fast) + _throughput(mixed_slow),
        "errors": float(alone.errors + mixed_fast.errors + mixed_slow.errors),
    }


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}


def main(argv: list[str] | None = None) -> int:
    """Measure both thread policies in one run and print the ratios."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mixed", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--image", type=Path, default=Path("../shared/images/parrot.jpg"))
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    args = parser.parse_args(argv)
    image = args.image.read_bytes()
    cpus = available_cpus()
    split = measure(args.models_dir, image, None, args.seconds)
    every = measure(args.models_dir, image, cpus, args.seconds)
    print(f"{cpus} CPUs; {FAST} (fast) and {SLOW} (slow), 8 clients each; p50 in ms")
    print(
        f"{'threads per model':28} {'fast alone':>10} {'fast mixed':>10} {'slow mixed':>10} "
        f"{'req/s mixed':>11} {'errors':>6}"
    )
    for name, m in (
        (f"split ({max(1, cpus // 2)} each, default)", split),
        (f"every CPU ({cpus} each)", every),
    ):
        print(
            f"{name:28} {m['fast_alone_p50_ms']:>10.1f} {m['fast_mixed_p50_ms']:>10.1f} "
            f"{m['slow_mixed_p50_ms']:>10.1f} {m['mixed_throughput']:>11.1f} {m['errors']:>6.0f}"
        )
    own_queue = split["fast_mixed_p50_ms"] / split["slow_mixed_p50_ms"]
    print(
        f"\nfast p50 / slow p50 while both are busy: {own_queue:.2f} "
        f"({'met' if own_queue <= 0.5 else 'missed'}: <= 0.5, the fast model keeps its own queue)"
    )
    gain = split["mixed_throughput"] / every["mixed_throughput"]
    print(
        f"mixed throughput, split / every CPU: {gain:.2f} "
        f"({'met' if gain >= 0.95 else 'missed'}: >= 0.95, the split costs nothing)"
    )
    errors = split["errors"] + every["errors"]
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
