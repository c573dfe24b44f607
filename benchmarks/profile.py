"""Where a request's time goes: py-spy on a real `edge-server serve` at concurrency 1.

    pip install py-spy
    python -m benchmarks.profile [--seconds 10] [--models-dir DIR] [--images DIR]

Starts the service, posts 1080p photos on one kept-alive connection (raw body, then
multipart) while py-spy samples the process, and prints each thread group's busy samples and
the event loop's heaviest frames, relative to the samples in `Interpreter.invoke` (so the
figures compare across machines and loads). Samples of threads waiting for work are left out.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import load, photos, servers

# Leaf frames of a thread waiting for work (py-spy cannot always tell it is idle).
_WAITS = (
    "thread.py:81)",  # ThreadPoolExecutor worker waiting for a job
    "owners.py:66)",  # an owner thread waiting for an invoke
    "owners.py:84)",
    "runners.py:118)",  # uvloop's run, inside which the C loop waits
    "selectors.py:468)",  # asyncio's loop waiting in epoll
)
_GROUPS = (("edge-invoke", "owner threads"), ("edge-decode", "decode threads"))


def _frame(text: str) -> str:
    """`function (path/file.py:line)` as `function (file.py)`."""
    return re.sub(r" \((?:.*/)?([^/:]+?)(?::\d+)?\)$", r" (\1)", text)


def summarize(collapsed: str, top: int = 15) -> str:
    """The report for py-spy's raw (collapsed-stack) output, relative to the invoke."""
    groups: collections.Counter[str] = collections.Counter()
    loop: collections.Counter[str] = collections.Counter()
    invoke = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count, frames = int(count_text), stack.split(";")
        if frames[-1].endswith(_WAITS):
            continue
        group = next((name for key, name in _GROUPS if key in frames[0]), None)
        if group is None:
            group = "event loop" if "MainThread" in frames[0] else "other threads"
        groups[group] += count
        if frames[-1].startswith("Interpreter.invoke "):
            invoke += count
        if group == "event loop":
            loop[_frame(frames[-1])] += count
    if not invoke:
        return "no samples in Interpreter.invoke: nothing was classified?"
    lines = [f"busy samples relative to Interpreter.invoke ({invoke} samples = 1.00):"]
    lines += [f"  {group:15} {count / invoke:5.2f}" for group, count in groups.most_common()]
    lines.append("event loop, where it was when sampled (self time), relative to the invoke:")
    lines += [f"  {count / invoke:5.3f}  {name}" for name, count in loop.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Profile the service; print the summary and where the raw samples are."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per body kind")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--images", type=Path, default=Path("../shared/images"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile.txt"))
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    pictures = [photos.open_rgb(p) for p in photos.sources(args.images)]
    jpegs = photos.make_set(pictures, photos.SIZES[1]).jpegs
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_MODELS_DIR=str(args.models_dir), EDGE_LOG_LEVEL="warning")
    port = servers.free_port()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    service = servers.ServerProcess.start(
        "service",
        servers.python_command("-m", "edge_server", "serve", "--port", str(port)),
        env,
        port,
        args.out.with_suffix(".log"),
    )
    try:
        duration = str(int(2 * args.seconds + 6))
        recorder = subprocess.Popen(  # noqa: S603 - py-spy on our own child process
            [
                *(py_spy, "record", "-p", str(service.process.pid), "-d", duration, "-r", "200"),
                *("-t", "--format", "raw", "-o", str(args.out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for build in (load.raw_request, load.multipart_request):
            requests = [build(port, "/classify", j) for j in jpegs]
            load.drive(port, requests, 1, total=20, seconds=2.0)
            load.drive(port, requests, 1, total=1 << 30, seconds=args.seconds)
        recorder.wait(timeout=float(duration) + 30)
    finally:
        service.stop()
    print(summarize(args.out.read_text()))
    print(f"\nraw samples: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
