"""The process's cores, handed out to invokes as they start: a thread budget for every model.

Every model has an all-core interpreter beside one-thread replicas (`engine.replica_threads`).
Which one an invoke takes, and whether it may start at all, depends on the whole process, not
only on its own model:
- a request that finds nothing else running (no invoke of any model, no decode) gets every
  core: the all-core interpreter;
- otherwise it takes a one-thread replica, if a core is free: the invokes running, of every
  model, never have more threads than the process has cores;
- no core free: it waits (in its model's FIFO) until an invoke anywhere gives its threads back.
XNNPACK's worker threads spin while they wait for each other, so two all-core invokes on the
same cores, or one beside a one-thread invoke, cost more than the same invokes one thread each.
Decodes run on their own pool (one thread per CPU); they count only as "something else is
running", so that a lone invoke never spreads over cores a decode is using.

One ledger serves the whole process (`shared_cores()`): the CPUs are shared by every model and
decoder in it, whichever service or tool loaded them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from .threads import available_cpus


class Waiter(Protocol):
    """Something that queues invokes for cores (a model's owner threads)."""

    def wake(self) -> None:
        """Cores were given back: hand out what waits, if it may start now."""


class Cores:
    """Invoke threads in use against the cores there are, and the decodes running."""

    def __init__(self, cores: int | None = None) -> None:
        self.capacity = max(1, cores if cores is not None else available_cpus())
        self._lock = threading.Lock()
        self._threads = 0  # invoke threads running
        self._decodes = 0
        # Called when threads are given back, so a model waiting for a core tries again.
        self._waiters: weakref.WeakSet[Waiter] = weakref.WeakSet()  # gone with their model

    @property
    def threads(self) -> int:
        """Invoke threads running now."""
        return self._threads

    @property
    def running(self) -> int:
        """Invoke threads and decodes running now (0: the process is idle)."""
        return self._threads + self._decodes

    def take(self, threads: int, *, alone: bool = False, force: bool = False) -> bool:
        """Take `threads` cores for an invoke if they are free; with `alone`, only if nothing
        at all is running; with `force`, whatever runs (a model with no other choice while
        shutting down). True if taken."""
        with self._lock:
            if not force:
                if alone and self._threads + self._decodes:
                    return False
                if self._threads and self._threads + threads > self.capacity:
                    return False
            self._threads += threads
            return True

    def give(self, threads: int) -> None:
        """Give back an invoke's cores, and let every model waiting for one try again."""
        with self._lock:
            self._threads -= threads
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.wake()

    def wait_with(self, waiter: Waiter) -> None:
        """`waiter.wake()` is called whenever cores are given back."""
        with self._lock:
            self._waiters.add(waiter)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Counted as a running decode for the length of the block."""
        with self._lock:
            self._decodes += 1
        try:
            yield
        finally:
            with self._lock:
                self._decodes -= 1


_SHARED: Cores | None = None
_SHARED_LOCK = threading.Lock()


def shared_cores() -> Cores:
    """The process's ledger, which every engine uses unless it is given its own."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = Cores()
        return _SHARED
