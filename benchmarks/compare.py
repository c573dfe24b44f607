"""Before and after in one run: this tree's service against another revision's, side by side.

    python -m benchmarks.compare --baseline REF [--rounds 3] [--sizes 640x480,1920x1080]
        [--model mobilenet_v2_1.0_224_quant,objects --paths /classify,/detect]

Both services start from the same models and settings; the baseline runs the package of git
revision REF (exported to a temporary folder). Each round drives one and then the other at
every size and concurrency, the order swapped every round, so load that drifts on a shared
machine falls on both alike. Prints p50 and throughput of each and their ratios (this / the
baseline): only the ratios are comparable across runs, never the absolute times. With several
`--paths`, every client sends each photo to each path in turn (a mixed load of a classifier
and a detector served together, say).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks import load, photos, servers
from benchmarks.stats import Summary, summarize
from edge_server.config.settings import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
THIS, BASE = "this", "baseline"


def export(ref: str, into: Path) -> Path:
    """The package of revision `ref`, unpacked into `into`; its folder for PYTHONPATH."""
    archive = into / "baseline.tar"
    with archive.open("wb") as sink:
        subprocess.run(  # noqa: S603 - git with our own arguments
            ["git", "archive", "--format=tar", ref, "edge_server", "models/catalog.json"],  # noqa: S607
            cwd=ROOT,
            stdout=sink,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def _start(name: str, env: dict[str, str], out: Path, cwd: Path) -> servers.ServerProcess:
    """A server of the package on env's PYTHONPATH. It runs in `cwd`, not in this checkout:
    `python -m` imports from the working folder before PYTHONPATH, which would make the
    baseline this tree."""
    port = servers.free_port()
    command = servers.python_command(
        "-m", "edge_server", "serve", "--host", "127.0.0.1", "--port", str(port)
    )
    return servers.ServerProcess.start(name, command, env, port, out / f"{name}.log", cwd=cwd)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(os.environ.get("EDGE_MODELS_DIR", "models"))
    )
    parser.add_argument("--images", type=Path, default=Path("../shared/images"))
    parser.add_argument("--sizes", default="640x480,1920x1080")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument(
        "--paths", default="/classify", help="routes each photo is posted to, comma-separated"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=80, help="per level and round, at most")
    parser.add_argument("--seconds", type=float, default=4.0, help="per level and round, at most")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    wanted = args.sizes.split(",")
    pictures = [photos.open_rgb(p) for p in photos.sources(args.images)]
    sets = [photos.make_set(pictures, s) for s in photos.SIZES if s.name in wanted]
    sizes = [s.size.name for s in sets]

    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_MODEL=args.model,
        EDGE_MODELS_DIR=str(args.models_dir.resolve()),
        EDGE_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    with tempfile.TemporaryDirectory() as folder:
        base_root = export(args.baseline, Path(folder))
        started: dict[str, servers.ServerProcess] = {}
        runs: dict[tuple[str, str, int], list[load.Run]] = {}
        try:
            neutral = Path(folder) / "run"  # holds no package of either tree
            neutral.mkdir()
            started[THIS] = _start(THIS, env, args.out.resolve(), neutral)
            started[BASE] = _start(
                BASE, {**env, "PYTHONPATH": str(base_root)}, args.out.resolve(), neutral
            )
            for name, server in started.items():
                served = servers.get_json(server.port, "/v1/models")["models"]
                threads = ", ".join(
                    f"{m['name']} {'+'.join(str(t) for t in m['replica_threads'])}" for m in served
                )
                print(f"{name}: {threads} threads", file=sys.stderr, flush=True)
            # Each server's requests, built once: they name its port.
            requests = {
                (name, s.size.name): [
                    load.multipart_request(server.port, path, j)
                    for j in s.jpegs
                    for path in args.paths.split(",")
                ]
                for name, server in started.items()
                for s in sets
            }
            for round_ in range(args.rounds):
                order = [THIS, BASE] if round_ % 2 == 0 else [BASE, THIS]
                for size, concurrency, name in itertools.product(sizes, levels, order):
                    run = _measure(started[name], requests[name, size], concurrency, args)
                    runs.setdefault((name, size, concurrency), []).append(run)
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for server in started.values():
                server.stop()
    print(
        f"this tree against {args.baseline}; EDGE_MODEL={args.model}, POST {args.paths}; "
        f"{args.rounds} rounds, order swapped each round"
    )
    print(
        f"{'size':>10} {'c':>2} {'p50 this':>9} {'p50 base':>9} {'p50 ratio':>9} "
        f"{'tput this':>9} {'tput base':>9} {'tput ratio':>10}"
    )
    for size, concurrency in itertools.product(sizes, levels):
        mine = _pooled(runs[THIS, size, concurrency])
        base = _pooled(runs[BASE, size, concurrency])
        print(
            f"{size:>10} {concurrency:>2} {mine.p50:9.2f} {base.p50:9.2f} "
            f"{mine.p50 / base.p50:9.3f} {mine.throughput:9.1f} {base.throughput:9.1f} "
            f"{mine.throughput / base.throughput:10.3f}"
        )
    return 0


def _measure(
    server: servers.ServerProcess, requests: list[bytes], concurrency: int, args: argparse.Namespace
) -> load.Run:
    """One level on one server: connections warmed (unmeasured), then the measured run."""
    load.drive(server.port, requests, concurrency, total=concurrency, seconds=args.seconds)
    run = load.drive(server.port, requests, concurrency, total=args.requests, seconds=args.seconds)
    if run.errors:
        raise RuntimeError(f"{server.name} answered {run.errors} requests with an error")
    return run


def _pooled(runs: list[load.Run]) -> Summary:
    """The rounds of one level on one server, as one sample."""
    return summarize(
        [ms for run in runs for ms in run.latencies_ms], sum(run.wall_s for run in runs)
    )


if __name__ == "__main__":
    raise SystemExit(main())
