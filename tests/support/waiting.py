"""Waiting for something to happen, bounded only to stop a hang.

A test waits for an event (a metric reaching a count, a message arriving, a line printed, an
answer recorded), never for a fixed time, and never asserts how long anything took: on a busy
2-CPU CI machine any duration is a coin toss. The bound is generous and only turns a hang
into a failure that says what never happened. Latency claims live in the benchmarks, which
print them (docs/testing.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

# Seconds: far past anything a loaded machine takes, short enough to stop a hung test.
HANG = 120.0

T = TypeVar("T")


def until(
    condition: Callable[[], T | None], what: str, *, timeout: float = HANG, every: float = 0.05
) -> T:
    """The first truthy value `condition()` returns, polled every `every` seconds;
    AssertionError naming `what` if none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(every)
