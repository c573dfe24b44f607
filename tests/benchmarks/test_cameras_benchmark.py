"""`python -m benchmarks.cameras` runs end to end and prints each of its figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.benchmarking import run_benchmark

# A minute and more of RTSP cameras watched in process and through a server: the run proves the
# benchmark works, which needs no second runtime (run once, under LiteRT, with the LAN tests).
pytestmark = pytest.mark.lan


def test_smoke_run_prints_every_figure(models_dir: Path, images_dir: Path, runtime: str) -> None:
    """A smoke run measures the CPU of both clips, a new event's latency, motion per frame and
    classify beside 0, 2 and 4 cameras, in process and through a server watching RTSP."""
    output = run_benchmark(
        "benchmarks.cameras",
        *("--smoke", "--http", "--runtime", runtime),
        *("--models-dir", str(models_dir), "--images", str(images_dir)),
    )
    for kind in ("idle", "busy"):
        for protocol in ("RTSP", "MJPEG"):
            line = rf"640x480 {kind} {protocol} *: decode +[\d.]+ %, decode \+ analysis +[\d.]+ %"
            assert re.search(line, output), output
        assert re.search(rf"640x480 {kind} MJPEG/RTSP: decode [\d.]+x", output), output
    assert re.search(r"new after the person's first frame: -?\d+\.\d\d s", output), output
    assert re.search(r"640x480 busy: +\d+\.\d\d ms", output)
    for count in (0, 2, 4):
        assert len(re.findall(rf"{count} cameras: p50 +[\d.]+ ms \([\d.]+x\), p95", output)) == 2
    analysed = [int(n) for n in re.findall(r"frames analysed (\d+)", output)]
    assert analysed[0] == 0 and analysed[1] > 0 and analysed[2] > 0, output
