"""The threads that own a model's interpreters: one thread per interpreter, one FIFO for all.

The TFLite interpreter is not thread-safe, so each replica (an interpreter of the same model)
is used by its own thread only. Work waits in one arrival-ordered queue, so no request
overtakes an earlier one and none starves, and goes to a free replica as the process's cores
allow (`cores.Cores`):
- nothing else running anywhere: the all-core replica (a lone request gets every core);
- anything else running (another invoke of any model, a decode): a one-thread replica, if a
  core is free, so busy models share the cores without more invoke threads than cores;
- otherwise the work waits until a replica of its model is free and a core is given back
  anywhere in the process; a model with only an all-core interpreter takes it when its
  threads fit beside what runs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

from .cores import Cores, shared_cores

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Job(Generic[R]):
    work: Callable[[R, int], Any]
    future: Future[Any]


class Owners(Generic[R]):
    """One owner thread per resource (an interpreter); `submit` runs work on a free one.

    `threads` gives each resource's interpreter threads (default: one each); `cores` is the
    ledger of what runs in the process (default: the process's own).
    """

    def __init__(
        self,
        resources: Sequence[R],
        *,
        threads: Sequence[int] = (),
        cores: Cores | None = None,
        name: str = "edge-invoke",
    ) -> None:
        if not resources:
            raise ValueError("at least one resource is needed")
        self._threads = tuple(threads) or (1,) * len(resources)
        if len(self._threads) != len(resources):
            raise ValueError("one thread count per resource is needed")
        self._cores = cores or shared_cores()
        # A model with no one-thread replica takes its all-core one whenever its threads fit.
        self._has_narrow = any(t == 1 for t in self._threads)
        self._lock = threading.Lock()
        self._pending: deque[_Job[R]] = deque()
        self._inboxes: list[SimpleQueue[_Job[R] | None]] = [SimpleQueue() for _ in resources]
        self._idle = list(range(len(resources)))  # kept sorted: the lowest index is preferred
        self._closed = False
        self._threads_running = [
            threading.Thread(
                target=self._serve, args=(i, resource), name=f"{name}-{i}", daemon=True
            )
            for i, resource in enumerate(resources)
        ]
        for thread in self._threads_running:
            thread.start()
        self._cores.wait_with(self)

    def __len__(self) -> int:
        return len(self._threads_running)

    def submit(self, work: Callable[[R, int], T]) -> Future[T]:
        """Run `work(resource, replica index)` on a free owner thread, FIFO overall."""
        job: _Job[R] = _Job(work, Future())
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._pending.append(job)
            self._dispatch()
        return job.future

    def _claim(self) -> int | None:
        """The idle replica the next job runs on, its cores taken; None: it waits.

        Called with the lock held.
        """
        wide = next((i for i in self._idle if self._threads[i] > 1), None)
        narrow = next((i for i in self._idle if self._threads[i] == 1), None)
        cores = self._cores
        if wide is not None and cores.take(self._threads[wide], alone=True):
            return wide
        if narrow is not None and cores.take(1):
            return narrow
        if wide is not None and not self._has_narrow and cores.take(self._threads[wide]):
            return wide
        if self._closed:  # draining at shutdown: whatever is free, whatever runs
            chosen = narrow if narrow is not None else wide
            if chosen is not None:
                cores.take(self._threads[chosen], force=True)
            return chosen
        return None

    def wake(self) -> None:
        """Cores were given back somewhere in the process: start what waits, if it may."""
        with self._lock:
            self._dispatch()

    def _dispatch(self) -> None:
        """Hand waiting jobs, oldest first, to the replicas that may take them (lock held)."""
        while self._pending:
            index = self._claim()
            if index is None:
                return
            self._idle.remove(index)
            self._inboxes[index].put(self._pending.popleft())

    def _serve(self, index: int, resource: R) -> None:
        inbox = self._inboxes[index]
        job = inbox.get()
        while job is not None:
            if job.future.set_running_or_notify_cancel():  # False: cancelled while it waited
                try:
                    result = job.work(resource, index)
                except BaseException as exc:
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(result)
            del job  # no reference to a finished request's arrays while waiting for the next
            self._cores.give(self._threads[index])  # wakes every model waiting for a core
            with self._lock:
                self._idle.append(index)
                self._idle.sort()
                self._dispatch()
                if self._closed and index in self._idle:
                    self._idle.remove(index)
                    return
            job = inbox.get()

    def shutdown(self) -> None:
        """Run the queued work to its end, then stop every owner thread."""
        with self._lock:
            self._closed = True
            self._dispatch()
            idle, self._idle = self._idle, []
        for index in idle:
            self._inboxes[index].put(None)
        for thread in self._threads_running:
            if thread is not threading.current_thread():
                thread.join()
