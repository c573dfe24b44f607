"""The benchmark runs end to end, and its targets are computed from the right figures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks.fidelity import Agreement
from benchmarks.stats import Summary, summarize
from benchmarks.targets import HD, NAIVE, PHONE, SERVICE, SERVICE_RAW, Measurements, evaluate

from conftest import SMALL_MODEL
from support.benchmarking import run_benchmark


def test_smoke_run_writes_table_json_and_chart(
    models_dir: Path, images_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """`python -m benchmarks --smoke` measures everything and evaluates every target."""
    output = run_benchmark(
        "benchmarks",
        *("--smoke", "--model", SMALL_MODEL, "--runtime", runtime),
        *("--models-dir", str(models_dir), "--images", str(images_dir), "--out", str(tmp_path)),
        timeout=600,
    )
    assert "targets (ratios from this run):" in output
    [report] = tmp_path.glob("bench-*.json")
    document = json.loads(report.read_text())
    assert set(document["http"]) == {SERVICE, SERVICE_RAW, NAIVE}
    for server in (SERVICE, NAIVE):
        assert set(document["http"][server]) == {"640x480", HD, PHONE}
        assert set(document["http"][server][PHONE]) == {"1", "2", "4", "8"}
    assert set(document["http"][SERVICE_RAW]) == {HD}
    assert set(document["accuracy"]) == {HD, PHONE}
    assert all(a["variants"] == 8 for a in document["accuracy"].values())  # one photo
    assert len(document["targets"]) == 16
    assert all(isinstance(t["met"], bool) for t in document["targets"])
    assert document["memory_mb"][SERVICE]["peak_rss_mb"] > 0
    if importlib.util.find_spec("matplotlib") is not None:
        assert report.with_suffix(".png").stat().st_size > 10_000


def _flat(p50: float, throughput: float, p99: float | None = None) -> Summary:
    return Summary(10, p50, p50, p99 if p99 is not None else p50, p50, throughput)


def test_targets_are_ratios_of_the_named_figures() -> None:
    """Each target divides the figures the issue names, and compares with its bound."""
    m = Measurements(
        invoke=_flat(5, 200),
        pipeline={HD: _flat(10, 100), PHONE: _flat(30, 33)},
        service_preprocess={HD: _flat(3, 0), PHONE: _flat(10, 0)},
        naive_preprocess={HD: _flat(10, 0), PHONE: _flat(50, 0)},
        http={
            SERVICE: {
                HD: {1: _flat(10.5, 95), 4: _flat(20, 150, p99=40), 8: _flat(40, 140)},
                PHONE: {4: _flat(60, 50, p99=66), 8: _flat(120, 40, p99=150)},
            },
            SERVICE_RAW: {HD: {1: _flat(11.5, 87)}},
            NAIVE: {PHONE: {8: _flat(800, 10, p99=1000)}},
        },
        ready_s={SERVICE: 1.5},
        memory_mb={SERVICE: {"peak_rss_mb": 160.0}},
        accuracy={
            HD: Agreement(32, 30, 1, max_change=0.05, noise_max_change=0.1),
            PHONE: Agreement(32, 31, 0, max_change=0.12, noise_max_change=0.1),
        },
    )
    got = {t.name: (round(t.value or 0, 3), t.met) for t in evaluate(m)}
    assert list(got.values()) == [
        (1.05, True),  # c1 service p50 / pipeline p50, multipart
        (1.15, False),  # the same, raw body
        (1.4, True),  # c8 HD throughput / serial
        (1.212, False),  # c8 12 MP throughput / serial
        (2.0, False),  # c4 HD p99 / p50
        (1.1, True),  # c4 12 MP p99 / p50
        (4.0, True),  # throughput vs naive
        (0.15, True),  # p99 vs naive
        (0.2, True),  # 12 MP preprocessing
        (0.3, True),  # HD preprocessing
        (1.0, False),  # HD top-1 changes where the margin is >= 0.05
        (0.5, True),  # HD largest score change / noise floor's
        (0.0, True),  # 12 MP top-1 changes
        (1.2, False),  # 12 MP largest score change / noise floor's
        (160.0, False),  # RSS
        (1.5, True),  # ready
    ]


def test_a_missing_figure_leaves_its_target_unjudged() -> None:
    """Without the measurements a target needs, it is reported as n/a, never as met."""
    [first, *_] = evaluate(Measurements(invoke=_flat(5, 200)))
    assert first.value is None and first.met is None


@pytest.mark.parametrize(
    ("wall_s", "throughput"), [(None, 100.0), (0.5, 8.0)], ids=["serial", "concurrent"]
)
def test_throughput_is_serial_or_from_wall_time(wall_s: float | None, throughput: float) -> None:
    """Serial samples give 1000 / mean per second; concurrent ones count / wall time."""
    summary = summarize([10.0, 10.0, 10.0, 10.0], wall_s, cpu_s=0.02)
    assert summary.throughput == pytest.approx(throughput)
    assert summary.cpu_ms == pytest.approx(5.0)
