"""Two models in one server: does a fast model wait in a slow one's queue while both are busy,
and does the default thread policy keep the cores busy as well as splitting them?

`python -m benchmarks.mixed` starts the real server twice, with the fast model (`tiny`) and the
slow one (`birds`): once at the defaults (each model an all-core interpreter beside one-thread
ones, chosen as each invoke starts by what else runs) and once with the CPUs split between the
models, one interpreter each (the policy before it: `EDGE_NUM_THREADS` = CPUs / 2,
`EDGE_REPLICAS=1`). Each run first measures the fast model alone, then 8 clients on each model
at once, and prints the ratios from that one run. How long each model's
requests waited for its interpreter comes from the server's own `queue` stage histogram: a fast
model queued behind the slow one's invokes would wait as long as the slow model's requests do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.load import Run, drive, drive_together, multipart_request
from benchmarks.servers import ServerProcess, free_port, get, python_command
from edge_server.core.threads import available_cpus

FAST, SLOW = "tiny", "birds"


def _p50(run: Run) -> float:
    return statistics.median(run.latencies_ms) if run.latencies_ms else float("nan")


def _throughput(run: Run) -> float:
    return len(run.latencies_ms) / run.wall_s if run.wall_s else 0.0


def _queue_seconds(port: int) -> dict[str, tuple[float, float]]:
    """(sum, count) of the `queue` stage per model, from the server's metrics."""
    _, body = get(port, "/metrics")
    found: dict[str, list[float]] = {}
    for line in body.decode().splitlines():
        for part, index in (("_sum{", 0), ("_count{", 1)):
            head = "edge_classify_stage_seconds" + part
            if line.startswith(head) and 'stage="queue"' in line:
                model = line.split('model="', 1)[1].split('"', 1)[0]
                found.setdefault(model, [0.0, 0.0])[index] = float(line.rsplit(" ", 1)[1])
    return {model: (total, count) for model, (total, count) in found.items()}


def _mean_wait_ms(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], model: str
) -> float:
    total = after[model][0] - before.get(model, (0.0, 0.0))[0]
    count = after[model][1] - before.get(model, (0.0, 0.0))[1]
    return 1000 * total / count if count else float("nan")


def measure(
    models_dir: Path, image: bytes, settings: dict[str, str], seconds: float
) -> dict[str, float]:
    """One server with these EDGE_ settings: the fast model alone at c=8, then both models at
    c=8 each."""
    port = free_port()
    env = {
        "EDGE_MODEL": f"{FAST},{SLOW}",
        "EDGE_MODELS_DIR": str(models_dir),
        "EDGE_LOG_LEVEL": "warning",
    }
    env.update(settings)
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
        before = _queue_seconds(port)
        mixed_fast, mixed_slow = drive_together(
            port, [(fast, 8), (slow, 8)], total=100_000, seconds=seconds
        )
        after = _queue_seconds(port)
    finally:
        server.stop()
    return {
        "fast_alone_p50_ms": _p50(alone),
        "fast_mixed_p50_ms": _p50(mixed_fast),
        "slow_mixed_p50_ms": _p50(mixed_slow),
        "mixed_throughput": _throughput(mixed_fast) + _throughput(mixed_slow),
        "fast_wait_ms": _mean_wait_ms(before, after, "mobilenet_v1_0.25_128_quant"),
        "slow_wait_ms": _mean_wait_ms(before, after, "mobilenet_v2_1.0_224_inat_bird_quant"),
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
    default = measure(args.models_dir, image, {}, args.seconds)
    split = measure(
        args.models_dir,
        image,
        {"EDGE_NUM_THREADS": str(max(1, cpus // 2)), "EDGE_REPLICAS": "1"},
        args.seconds,
    )
    print(f"{cpus} CPUs; {FAST} (fast) and {SLOW} (slow), 8 clients each; p50 and waits in ms")
    header = (
        "interpreters",
        "fast alone",
        "fast mixed",
        "slow mixed",
        "fast wait",
        "slow wait",
        "req/s mixed",
        "errors",
    )
    print(f"{header[0]:28}" + "".join(f"{h:>12}" for h in header[1:]))
    for name, m in (
        (f"default ({cpus}+{'+'.join(['1'] * cpus)} each)", default),
        (f"split ({max(1, cpus // 2)} thread(s), 1 each)", split),
    ):
        cells = (
            m["fast_alone_p50_ms"],
            m["fast_mixed_p50_ms"],
            m["slow_mixed_p50_ms"],
            m["fast_wait_ms"],
            m["slow_wait_ms"],
            m["mixed_throughput"],
            m["errors"],
        )
        print(f"{name:28}" + "".join(f"{c:>12.1f}" for c in cells))
    own_queue = default["fast_wait_ms"] / default["slow_wait_ms"]
    print(
        f"\nwhile both are busy, the fast model's wait for its interpreter / the slow one's: "
        f"{own_queue:.2f} ({'met' if own_queue <= 0.25 else 'missed'}: <= 0.25, it is not "
        "queued behind the slow model's invokes)"
    )
    dragged = default["fast_mixed_p50_ms"] / default["slow_mixed_p50_ms"]
    print(
        f"fast p50 / slow p50 while both are busy: {dragged:.2f} (the decode pool and the CPUs "
        "are shared; < 1: not dragged to the slow model's latency)"
    )
    gain = default["mixed_throughput"] / split["mixed_throughput"]
    print(
        f"mixed throughput, default / split: {gain:.2f} "
        f"({'met' if gain >= 0.95 else 'missed'}: >= 0.95, all-core interpreters cost no "
        "throughput while both models are busy)"
    )
    alone = default["fast_alone_p50_ms"] / split["fast_alone_p50_ms"]
    print(f"fast model alone at c=8, p50 default / split: {alone:.2f}")
    errors = default["errors"] + split["errors"]
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
