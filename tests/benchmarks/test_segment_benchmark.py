"""`python -m benchmarks.segment_http` runs end to end; its figures come from the right numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.detection import Case, Compared, Side, Usage
from benchmarks.segment_http import HD, MASK, OVERLAY, PLAIN, TWELVE, VARIANTS, Costs, evaluate
from edge_server.core.detection import Task

from support.benchmarking import run_benchmark


def test_smoke_run_writes_table_and_json(
    models_dir: Path, images_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """A smoke run against the segmenter measures every figure, each answer without an error."""
    output = run_benchmark(
        "benchmarks.segment_http",
        *("--smoke", "--model", "segmenter", "--runtime", runtime),
        *("--models-dir", str(models_dir), "--images", str(images_dir), "--out", str(tmp_path)),
    )
    assert "targets (ratios from this run):" in output
    [report] = tmp_path.glob("segment-http-*.json")
    document = json.loads(report.read_text())
    assert document["models"][0]["task"] == "segmentation"
    assert document["c1"]["in_process"]["count"] >= 2 and document["c1"]["http"]["count"] >= 2
    assert set(document["pictures"]) == {HD, TWELVE}
    assert set(document["pictures"][TWELVE]) >= set(VARIANTS)
    assert set(document["throughput"]) == {"1", "2"}
    [target] = document["targets"]
    assert isinstance(target["met"], bool)


def _side(latencies: list[float]) -> Side:
    side = Side()
    for ms in latencies:
        side.add(ms, {})
    return side


def test_the_target_divides_http_by_in_process() -> None:
    """c1: HTTP p50 over in-process p50, met at 1.10 and missed past it."""
    case = Case(HD, Task.segmentation, "/segment", b"jpeg")
    met = Compared(case, in_process=_side([100, 100, 100]), http=_side([109, 110, 111]))
    missed = Compared(case, in_process=_side([100, 100, 100]), http=_side([111, 112, 113]))
    assert [(round(t.value or 0, 3), t.met) for t in evaluate(met)] == [(1.1, True)]
    assert [t.met for t in evaluate(missed)] == [False]


def test_picture_costs_are_p50_differences_from_the_json_answer() -> None:
    """What the mask and the overlay add is their p50 minus the plain answer's."""
    costs = Costs(
        HD,
        1000,
        {PLAIN: [60.0, 61.0, 62.0], MASK: [68.0, 69.0, 70.0], OVERLAY: [90.0, 95.0, 99.0]},
        {v: Usage(1.0, 0.3, 0.0, 0.0) for v in VARIANTS},
    )
    assert costs.added_ms(MASK) == pytest.approx(8.0)
    assert costs.added_ms(OVERLAY) == pytest.approx(34.0)
    assert costs.summary(PLAIN).cpu_ms == pytest.approx(100.0)
