"""Invoke latency for 1..N interpreter threads on this device, and the count to use.

More threads is not always faster: on a busy or thermally limited board, or for a small model,
the extra threads only wait for each other, and every core they take is one less for decoding
the next request. The sweep measures; the recommendation is the fewest threads within a few
per cent of the fastest.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from .runtime import Backend, create_interpreter, zeros_for

log = logging.getLogger("edge_server")

TOLERANCE = 0.05  # a thread count within 5 % of the fastest p50 is as good, and cheaper
WARMUP_INVOKES = 2
MIN_INVOKES = 3
# EDGE_NUM_THREADS=auto at start-up: short, so a Pi 4 is ready within a second or two more.
AUTO_INVOKES = 20
AUTO_SECONDS = 0.25


def available_cpus() -> int:
    """The CPUs this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadTiming:
    """Invoke latency with one thread count."""

    threads: int
    p50_ms: float
    p95_ms: float
    invokes: int
    xnnpack: bool


def sweep(
    backend: Backend,
    model_path: str,
    max_threads: int,
    *,
    invokes: int = 50,
    seconds: float = 2.0,
) -> list[ThreadTiming]:
    """Time 1..max_threads threads, each on its own interpreter, up to `invokes` each.

    The interpreters take turns, one invoke each, so a load that comes and goes on the
    machine meanwhile falls on every thread count alike instead of on whichever ran then.
    `seconds` bounds each count's share of the time (at least MIN_INVOKES each).
    """
    counts = range(1, max_threads + 1)
    created = [create_interpreter(backend, model_path, n) for n in counts]
    for made in created:
        detail = made.interpreter.get_input_details()[0]
        made.interpreter.set_tensor(int(detail["index"]), zeros_for(detail))
        for _ in range(WARMUP_INVOKES):
            made.interpreter.invoke()
    samples: list[list[float]] = [[] for _ in created]
    deadline = time.perf_counter() + seconds * len(created)
    for turn in range(invokes):
        if turn >= MIN_INVOKES and time.perf_counter() > deadline:
            break
        for made, taken in zip(created, samples, strict=True):
            started = time.perf_counter()
            made.interpreter.invoke()
            taken.append((time.perf_counter() - started) * 1000)
    timings = []
    for n, made, taken in zip(counts, created, samples, strict=True):
        p50, p95 = (float(v) for v in np.percentile(taken, [50, 95]))
        timings.append(ThreadTiming(n, p50, p95, len(taken), made.xnnpack))
    return timings


def recommend(timings: list[ThreadTiming], tolerance: float = TOLERANCE) -> ThreadTiming:
    """The fewest threads whose p50 is within `tolerance` of the fastest p50."""
    fastest = min(t.p50_ms for t in timings)
    return min(
        (t for t in timings if t.p50_ms <= fastest * (1 + tolerance)), key=lambda t: t.threads
    )


def auto_threads(backend: Backend, model_path: str, max_threads: int) -> int:
    """The thread count for EDGE_NUM_THREADS=auto, from a short sweep (logged)."""
    timings = sweep(backend, model_path, max_threads, invokes=AUTO_INVOKES, seconds=AUTO_SECONDS)
    chosen = recommend(timings)
    log.info(
        "EDGE_NUM_THREADS=auto: %d threads (invoke p50 by threads: %s)",
        chosen.threads,
        ", ".join(f"{t.threads}: {t.p50_ms:.1f} ms" for t in timings),
    )
    return chosen.threads
