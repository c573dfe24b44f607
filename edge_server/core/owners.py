"""The threads that own a model's interpreters: one thread per interpreter, one FIFO for all.

The TFLite interpreter is not thread-safe, so each replica (an interpreter of the same model)
is used by its own thread only. Work goes to the first free replica, preferring the lowest
index (the one with the most threads, fastest for a lone request); while all are busy, work
waits in one arrival-ordered queue, so no request overtakes an earlier one and none starves.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Job(Generic[R]):
    work: Callable[[R, int], Any]
    future: Future[Any]


class Owners(Generic[R]):
    """One owner thread per resource (an interpreter); `submit` runs work on a free one."""

    def __init__(self, resources: Sequence[R], *, name: str = "edge-invoke") -> None:
        if not resources:
            raise ValueError("at least one resource is needed")
        self._lock = threading.Lock()
        self._pending: deque[_Job[R]] = deque()
        self._inboxes: list[SimpleQueue[_Job[R] | None]] = [SimpleQueue() for _ in resources]
        self._idle = list(range(len(resources)))  # kept sorted: the lowest index is preferred
        self._closed = False
        self._threads = [
            threading.Thread(
                target=self._serve, args=(i, resource), name=f"{name}-{i}", daemon=True
            )
            for i, resource in enumerate(resources)
        ]
        for thread in self._threads:
            thread.start()

    def __len__(self) -> int:
        return len(self._threads)

    def submit(self, work: Callable[[R, int], T]) -> Future[T]:
        """Run `work(resource, replica index)` on the first free owner thread, FIFO overall."""
        job: _Job[R] = _Job(work, Future())
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            if self._idle:
                self._inboxes[self._idle.pop(0)].put(job)
            else:
                self._pending.append(job)
        return job.future

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
            with self._lock:
                if self._pending:
                    job = self._pending.popleft()
                    continue
                if self._closed:
                    return
                self._idle.append(index)
                self._idle.sort()
            job = inbox.get()

    def shutdown(self) -> None:
        """Run the queued work to its end, then stop every owner thread."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for index in idle:
            self._inboxes[index].put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
