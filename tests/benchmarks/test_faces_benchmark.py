"""`python -m benchmarks.faces` runs end to end (without its server part, which needs
DeepStack's face route) and its margins and memory figure are computed right."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks.faces import Described, margins, pair_distances
from edge_server.core.face_matching import Matching

from support.benchmarking import run_benchmark


def test_the_benchmark_prints_the_distance_tables(
    models_dir: Path, images_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """The smoke run prints both descriptor inputs' rows with the aligned gap positive, both
    matchings telling every held-out photo apart, the calibration, the Pi 4 bound and the
    memory a person."""
    report = run_benchmark(
        "benchmarks.faces",
        "--smoke",
        "--skip-server",
        "--models-dir",
        str(models_dir),
        "--images-dir",
        str(images_dir),
        "--runtime",
        runtime,
        "--out",
        str(tmp_path),
    )
    [aligned] = [line for line in report.splitlines() if line.startswith("| aligned chip")]
    assert float(aligned.rsplit("|", 2)[1]) > 0
    assert "| plain crop, resized |" in report
    for matching in ("nearest", "mean"):
        [row] = [line for line in report.splitlines() if line.startswith(f"| {matching} |")]
        assert row.rstrip(" |").endswith("10/10")
    assert re.search(r"threshold 0\.6 -> 0\.670", report)
    assert "upper bound" in report and "KiB of memory a person" in report
    assert list(tmp_path.glob("faces-*.json"))


def _described(person: str, value: float) -> Described:
    vector = np.zeros(128, np.float32)
    vector[0] = value
    return Described(person, f"{person}{value}", vector, vector)


def test_pairs_and_margins_on_hand_made_descriptors() -> None:
    """Pairs split by person (the stranger is never a same-person pair); a held-out photo's
    margin is the nearest other person's distance less its own."""
    photos = [
        _described("a", 0.0),
        _described("a", 0.2),
        _described("a", 0.4),
        _described("b", 1.0),
        _described("b", 1.2),
        _described("strangers", 3.0),
    ]
    same, different = pair_distances(photos, aligned=True)
    assert sorted(same) == pytest.approx([0.2, 0.2, 0.2, 0.4])
    assert len(different) == 15 - 4
    # a's first photo, registered as a's other two: nearest own 0.2, nearest of b 1.0.
    assert margins(photos, Matching.nearest)[0] == pytest.approx(0.8)
    assert margins(photos, Matching.mean)[0] == pytest.approx(1.1 - 0.3)
