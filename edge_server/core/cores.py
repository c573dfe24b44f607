"""What the process's CPUs are doing now: how many invokes and decodes are running.

Every model has an all-core interpreter beside one-thread replicas (`engine.replica_threads`).
Which one an invoke takes depends on the rest of the process, not only on its own model: a
request that finds nothing else running gets every core; one that arrives while anything else
runs (another model's invoke, a decode) gets a one-thread replica, so that two busy models
share the cores instead of each starting a thread per core. XNNPACK's worker threads spin
while they wait for each other, so two all-core invokes on the same cores cost more than two
one-thread ones side by side.

One ledger serves the whole process (`shared_cores()`): the CPUs are shared by every model and
decoder in it, whichever service or tool loaded them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Cores:
    """A count of the invokes and decodes running now, taken and given back atomically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0

    @property
    def running(self) -> int:
        """How many invokes and decodes are running now."""
        return self._running

    def enter(self) -> bool:
        """Count one more running; True if nothing else was running (it has the machine)."""
        with self._lock:
            alone = self._running == 0
            self._running += 1
            return alone

    def leave(self) -> None:
        """Count one fewer running."""
        with self._lock:
            self._running -= 1

    def alone(self) -> bool:
        """Count one more running if and only if nothing else runs; True if it did."""
        with self._lock:
            if self._running:
                return False
            self._running = 1
            return True

    @contextmanager
    def held(self) -> Iterator[None]:
        """Counted as running for the length of the block (a decode)."""
        self.enter()
        try:
            yield
        finally:
            self.leave()


_SHARED = Cores()


def shared_cores() -> Cores:
    """The process's ledger, which every engine uses unless it is given its own."""
    return _SHARED
