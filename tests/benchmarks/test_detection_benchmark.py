"""`python -m benchmarks.detection` runs end to end; its figures come from the right numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.detection import (
    CLASSIFY,
    DETECT,
    FRAME,
    HD,
    HTTP_ONLY,
    REST,
    Case,
    Compared,
    FrigateRun,
    Side,
    evaluate,
    http_stages,
)
from benchmarks.stats import Summary
from edge_server.core.detection import Task

from conftest import DETECTOR, SMALL_MODEL
from support.benchmarking import run_benchmark


def test_smoke_run_writes_table_and_json(
    models_dir: Path, images_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """A smoke run against a detector and a classifier measures every figure."""
    output = run_benchmark(
        "benchmarks.detection",
        *("--smoke", "--model", f"{DETECTOR},{SMALL_MODEL}", "--runtime", runtime),
        *("--models-dir", str(models_dir), "--images", str(images_dir), "--out", str(tmp_path)),
    )
    assert "targets (ratios from this run):" in output
    [report] = tmp_path.glob("detection-*.json")
    document = json.loads(report.read_text())
    assert set(document["c1"]) == {HD, FRAME, CLASSIFY}
    assert set(document["throughput"]) == {HD, FRAME}
    assert set(document["throughput"][FRAME]) == {"1", "4"}
    assert document["frigate"]["requests"] == 5
    assert document["frigate"]["errors"] == 0
    assert len(document["targets"]) == 5
    assert all(isinstance(t["met"], bool) for t in document["targets"])


def test_http_stages_split_the_round_trip() -> None:
    """The app's time outside the stages and HTTP's outside the app add up to the latency."""
    body = json.dumps(
        {
            "timing_ms": {
                "queue": 0.5,
                "decode": 2.0,
                "preprocess": 1.5,
                "inference": 30.0,
                "postprocess": 0.5,
                "total": 36.0,
            }
        }
    ).encode()
    stages = http_stages(body, latency_ms=38.0)
    assert stages[REST] == pytest.approx(1.5)
    assert stages[HTTP_ONLY] == pytest.approx(2.0)
    assert sum(stages.values()) == pytest.approx(38.0)


def _side(latencies: list[float]) -> Side:
    side = Side()
    for ms in latencies:
        side.add(ms, {})
    return side


def _level(throughput: float) -> Summary:
    return Summary(10, 10.0, 10.0, 10.0, 10.0, throughput)


def test_targets_divide_the_named_figures() -> None:
    """c1: HTTP p50 over in-process p50 (<= 1.10); throughput: c4 over c1 (>= 1.3)."""
    case = Case(FRAME, Task.detection, DETECT, b"jpeg")
    compared = Compared(case, in_process=_side([10, 10, 10]), http=_side([11, 11, 12]))
    targets = evaluate([compared], {FRAME: {1: _level(20.0), 4: _level(25.0)}})
    assert [(round(t.value or 0, 3), t.met) for t in targets] == [(1.1, True), (1.25, False)]


def test_frigate_counts_answers_later_than_its_timeout() -> None:
    """Over budget: every round trip past 0.1 s, timed out or not; the share uses medians."""
    run = FrigateRun([40.0, 60.0, 100.5, 150.0], timed_out=1, errors=0, inference_ms=[30, 30, 36])
    assert run.over_budget() == 2
    assert run.invoke_share() == pytest.approx(30 / 80.25)
