"""Before and after in one run: this tree's service against another revision's, side by side.

    python -m benchmarks.compare --baseline REF [--rounds 3] [--sizes 640x480,1920x1080]

Both services start from the same models and settings; the baseline runs the package of git
revision REF (exported to a temporary folder). Each round drives one and then the other at
every size and concurrency, the order swapped every round, so load that drifts on a shared
machine falls on both alike. Prints p50 and throughput of each and their ratios (this / the
baseline): only the ratios are comparable across runs, never the absolute times.
"""

from __future__ import annotations

import argparse
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


def _start(name: str, env: dict[str, str], out: Path) -> servers.ServerProcess:
    port = servers.free_port()
    command = servers.python_command(
        "-m", "edge_server", "serve", "--host", "127.0.0.1", "--port", str(port)
    )
    return servers.ServerProcess.start(name, command, env, port, out / f"{name}.log")


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=80, help="per level and round, at most")
    parser.add_argument("--seconds", type=float, default=4.0, help="per level and round, at most")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    wanted = args.sizes.split(",")
    pictures = [photos.open_rgb(p) for p in photos.sources(args.images)]
    sets = [photos.make_set(pictures, s) for s in photos.SIZES if s.name in wanted]

    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_MODEL=args.model,
        EDGE_MODELS_DIR=str(args.models_dir.resolve()),
        EDGE_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    with tempfile.TemporaryDirectory() as folder:
        base_root = export(args.baseline, Path(folder))
        started = {
            THIS: _start(THIS, env, args.out),
            BASE: _start(BASE, {**env, "PYTHONPATH": str(base_root)}, args.out),
        }
        samples: dict[tuple[str, str, int], list[float]] = {}
        walls: dict[tuple[str, str, int], float] = {}
        try:
            for round_ in range(args.rounds):
                order = [THIS, BASE] if round_ % 2 == 0 else [BASE, THIS]
                for photo_set in sets:
                    for concurrency in levels:
                        for name in order:
                            server = started[name]
                            requests = [
                                load.multipart_request(server.port, "/classify", j)
                                for j in photo_set.jpegs
                            ]
                            load.drive(
                                server.port,
                                requests,
                                concurrency,
                                total=concurrency,
                                seconds=args.seconds,
                            )  # warm connections, unmeasured
                            run = load.drive(
                                server.port,
                                requests,
                                concurrency,
                                total=args.requests,
                                seconds=args.seconds,
                            )
                            if run.errors:
                                raise RuntimeError(f"{name} answered {run.errors} errors")
                            key = (name, photo_set.size.name, concurrency)
                            samples.setdefault(key, []).extend(run.latencies_ms)
                            walls[key] = walls.get(key, 0.0) + run.wall_s
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for server in started.values():
                server.stop()
    print(f"this tree against {args.baseline}; {args.rounds} rounds, order swapped each round")
    print(
        f"{'size':>10} {'c':>2} {'p50 this':>9} {'p50 base':>9} {'p50 ratio':>9} "
        f"{'tput this':>9} {'tput base':>9} {'tput ratio':>10}"
    )
    for photo_set in sets:
        for concurrency in levels:
            mine = _summary(samples, walls, (THIS, photo_set.size.name, concurrency))
            base = _summary(samples, walls, (BASE, photo_set.size.name, concurrency))
            print(
                f"{photo_set.size.name:>10} {concurrency:>2} {mine.p50:9.2f} {base.p50:9.2f} "
                f"{mine.p50 / base.p50:9.3f} {mine.throughput:9.1f} {base.throughput:9.1f} "
                f"{mine.throughput / base.throughput:10.3f}"
            )
    return 0


def _summary(
    samples: dict[tuple[str, str, int], list[float]],
    walls: dict[tuple[str, str, int], float],
    key: tuple[str, str, int],
) -> Summary:
    return summarize(samples[key], walls[key])


if __name__ == "__main__":
    raise SystemExit(main())
