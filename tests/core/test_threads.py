"""Choosing interpreter threads on the device: the sweep, the recommendation, `auto`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_server.config.settings import Settings
from edge_server.core.threads import ThreadTiming, available_cpus, recommend
from edge_server.serving.specs import model_specs

from conftest import SMALL_MODEL


def _timing(threads: int, p50: float) -> ThreadTiming:
    return ThreadTiming(threads, p50, p50 * 1.1, 10, xnnpack=True)


@pytest.mark.parametrize(
    ("p50s", "chosen"),
    [
        ([10.0, 5.0, 4.0, 3.9], 3),  # 4.0 is within 5 % of 3.9: one core fewer, as fast
        ([10.0, 5.0, 4.0, 3.0], 4),
        ([5.0, 6.0, 7.0, 8.0], 1),  # a busy or small device: more threads only wait
    ],
    ids=["plateau", "scales", "slower-with-more"],
)
def test_recommendation_is_the_fewest_threads_near_the_fastest(
    p50s: list[float], chosen: int
) -> None:
    """The fewest threads whose p50 is within 5 % of the fastest."""
    timings = [_timing(n, p50) for n, p50 in enumerate(p50s, start=1)]
    assert recommend(timings).threads == chosen


def test_bench_command_times_each_thread_count(models_dir: Path, runtime: str) -> None:
    """`edge-server bench --json` gives p50/p95 for 1..N threads, XNNPACK and a choice."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_server",
            "bench",
            "--json",
            "--model",
            SMALL_MODEL,
            "--models-dir",
            str(models_dir),
            "--runtime",
            runtime,
            "--max-threads",
            "2",
            "--invokes",
            "5",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert [t["threads"] for t in answer["threads"]] == [1, 2]
    assert all(0 < t["p50_ms"] <= t["p95_ms"] for t in answer["threads"])
    assert answer["recommended_threads"] in (1, 2)
    if answer["backend"] == "ai-edge-litert":
        assert answer["xnnpack"] is True


def test_auto_threads_picks_a_count_at_load(settings_for: Callable[..., Settings]) -> None:
    """EDGE_NUM_THREADS=auto loads with a measured count between 1 and the CPUs available."""
    settings = settings_for(SMALL_MODEL, num_threads="auto")
    assert settings.num_threads == "auto"
    loaded = model_specs(settings)[0].load()
    loaded.close()
    assert 1 <= loaded.info.num_threads <= available_cpus()


@pytest.mark.parametrize("value", ["0", "65", "fast"])
def test_num_threads_is_a_count_or_auto(value: str) -> None:
    """Anything but 1..64 or `auto` is refused."""
    with pytest.raises(ValueError, match="num_threads"):
        Settings.model_validate({"num_threads": value})
