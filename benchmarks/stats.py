"""Summaries of latency samples (pure functions)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Latency percentiles (ms), mean, throughput, and the CPU time each item cost."""

    count: int
    p50: float
    p95: float
    p99: float
    mean: float
    throughput: float  # per second
    cpu_ms: float | None = None  # CPU time per item (all threads of the measured process)
    others_cpus: float | None = None  # CPUs other processes kept busy meanwhile (noise)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def timed(work: Callable[[], object], repeats: int, seconds: float) -> Summary:
    """Time calls of `work`: up to `repeats` calls or `seconds` of calls (at least 3)."""
    samples: list[float] = []
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return summarize(samples, cpu_s=time.process_time() - cpu_started)


def timed_in_turns(
    works: list[Callable[[], object]], repeats: int, seconds: float
) -> list[Summary]:
    """Time several kinds of work one call each in turn, so drifting load falls on all alike.

    Up to `repeats` calls of each or `seconds` in all (at least 3 each). CPU time is this
    process's, per kind.
    """
    samples: list[list[float]] = [[] for _ in works]
    cpu = [0.0 for _ in works]
    deadline = time.perf_counter() + seconds
    for turn in range(repeats):
        if turn >= 3 and time.perf_counter() > deadline:
            break
        for i, work in enumerate(works):
            cpu_started, started = time.process_time(), time.perf_counter()
            work()
            samples[i].append((time.perf_counter() - started) * 1000)
            cpu[i] += time.process_time() - cpu_started
    return [summarize(taken, cpu_s=spent) for taken, spent in zip(samples, cpu, strict=True)]


def summarize(
    samples_ms: list[float], wall_s: float | None = None, cpu_s: float | None = None
) -> Summary:
    """Percentiles of the samples; throughput is count / wall time, else 1000 / mean.

    Serial work has no wall time to speak of: one at a time, its throughput is 1 / mean. CPU
    time per item is far steadier than wall time on a shared machine, so it is kept too.
    """
    if not samples_ms:
        raise ValueError("no samples")
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    mean = float(values.mean())
    throughput = len(values) / wall_s if wall_s else 1000.0 / mean
    cpu_ms = cpu_s * 1000 / len(values) if cpu_s is not None else None
    return Summary(len(values), p50, p95, p99, mean, throughput, cpu_ms)
