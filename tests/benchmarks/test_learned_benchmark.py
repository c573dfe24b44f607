"""`python -m benchmarks.learned` runs end to end; its stored model and its turns are right."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.learned import (
    BASELINE,
    CLASSES,
    EMBEDDER_SHA256,
    QUICK,
    Seed,
    by_turn,
    model_lines,
)
from edge_server.serving import journal

from support.benchmarking import run_benchmark

NUMBER = r"(-?\d+(?:\.\d+)?)"


def _numbers(report: str, label: str) -> list[float]:
    """The numbers of the one report line starting with `label` (after its indent)."""
    [line] = [line for line in report.splitlines() if line.strip().startswith(label)]
    return [float(n) for n in re.findall(NUMBER, line.strip().removeprefix(label))]


def check_report(report: str) -> None:
    """The quick run's report: every section's figures present and consistent."""
    classes = f"{QUICK.classes} classes x {QUICK.examples} examples"
    for label in (classes, "1 class x 1 example (embedder)"):
        p50, p95, inference, postprocess = _numbers(report, label)
        assert 0 < p50 <= p95 and 0 < inference < p50 and 0 < postprocess < p50
    [ratio] = _numbers(report, "ratio of the p50s")
    baseline = _numbers(report, "1 class x 1 example (embedder)")[0]
    assert ratio == pytest.approx(_numbers(report, classes)[0] / baseline, rel=0.01)
    for label, requests in (("1 photo a request", QUICK.adds), ("16 photos a request", 2)):
        sent, total_s, per_example_ms = _numbers(report, label)
        assert sent == requests
        assert per_example_ms == pytest.approx(total_s * 1000 / QUICK.adds, abs=0.6)
    empty_mb, _ = _numbers(report, "empty data folder")
    stored = QUICK.stored_classes * QUICK.stored_examples
    stored_mb = _numbers(report, f"{QUICK.stored_classes} classes x {QUICK.stored_examples}")[-2]
    [added] = _numbers(report, f"added by {stored} stored examples")
    assert min(empty_mb, stored_mb) > 30
    assert added == pytest.approx(stored_mb - empty_mb, abs=0.16)  # each rounded to 0.1
    evaluation = report.split("4. edge-server learn evaluate FOLDER")[1].split("targets")[0]
    assert re.search(r"\d+(\.\d+)?%", evaluation), evaluation
    targets = re.findall(r"^  (met|MISSED) +(\S+) <= (\S+) (x|MB) ", report, re.MULTILINE)
    assert [(bound, unit) for _, _, bound, unit in targets] == [("1.05", "x"), ("25", "MB")]
    assert float(targets[0][1]) == pytest.approx(ratio, abs=0.001)
    assert float(targets[1][1]) == pytest.approx(added, abs=0.051)


def test_quick_run_prints_every_figure(models_dir: Path, images_dir: Path) -> None:
    """A quick run prints both p50s and their ratio, both adds, both RSS and evaluate's table."""
    output = run_benchmark(
        "benchmarks.learned",
        *("--quick", "--models-dir", str(models_dir), "--images-dir", str(images_dir)),
    )
    check_report(output)


def test_stored_model_reads_back_as_its_classes(images_dir: Path) -> None:
    """The written journal replays as every class's examples, each near its seed photo's."""
    with Image.open(images_dir / "grace_hopper.jpg") as picture, io.BytesIO() as out:
        picture.convert("RGB").resize((96, 112)).save(out, format="JPEG")
        thumbnail = out.getvalue()
    rng = np.random.default_rng(1)
    seeds = [Seed(f"s{i}", rng.integers(0, 200, 1024, dtype=np.uint8), thumbnail) for i in (0, 1)]
    contents = journal.replay(io.BytesIO(b"".join(model_lines("stored", seeds, 3, 20))))
    assert contents.header.embedder_sha256 == EMBEDDER_SHA256
    assert (contents.header.dim, contents.header.dtype) == (1024, "uint8")
    assert {label: len(rows) for label, rows in contents.classes.items()} == {
        "class_00": 20,
        "class_01": 20,
        "class_02": 20,
    }
    for label, source in (("class_00", seeds[0]), ("class_02", seeds[0]), ("class_01", seeds[1])):
        rows = contents.classes[label].astype(np.float64)
        assert np.abs(rows - source.embedding).mean() < 12  # the noise's, not another seed's


def test_turns_alternate_so_each_model_follows_the_other_equally() -> None:
    """Requests sent as A B B A A B B A are split back to their models, in order."""
    grouped = by_turn(list(range(8)))
    assert grouped == {CLASSES: [0, 3, 4, 7], BASELINE: [1, 2, 5, 6]}
