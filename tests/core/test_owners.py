"""Which interpreter an invoke takes: every core when the process is otherwise idle, one
thread while anything else runs, and never more invoke threads than cores, across models."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from edge_server.core.cores import Cores
from edge_server.core.owners import Owners

HANG = 10.0  # seconds: a generous bound that only stops a hung test

WIDE, NARROW, OTHER = "wide", "narrow", "other narrow"


def _held(
    gate: threading.Event, started: threading.Event | None = None
) -> Callable[[str, int], str]:
    """Work that reports which resource ran it, and waits at the gate first."""

    def work(resource: str, _: int) -> str:
        if started is not None:
            started.set()
        assert gate.wait(HANG)
        return resource

    return work


def _quick(resource: str, _: int) -> str:
    return resource


def _model(cores: Cores, *resources: tuple[str, int]) -> Owners[str]:
    return Owners([name for name, _ in resources], threads=[t for _, t in resources], cores=cores)


def _started(future: Future[str]) -> bool:
    return future.running() or future.done()


class Running:
    """One invoke held running on a model until released."""

    def __init__(self, owners: Owners[str]) -> None:
        self.gate, started = threading.Event(), threading.Event()
        self.future = owners.submit(_held(self.gate, started))
        assert started.wait(HANG)

    def release(self) -> str:
        self.gate.set()
        return self.future.result(HANG)


def test_a_lone_invoke_takes_every_core() -> None:
    """Nothing else running: the all-core replica, every time."""
    cores = Cores(2)
    owners = _model(cores, (WIDE, 2), (NARROW, 1), (OTHER, 1))
    try:
        assert [owners.submit(_quick).result(HANG) for _ in range(5)] == [WIDE] * 5
    finally:
        owners.shutdown()
    assert cores.running == 0


def test_a_running_decode_sends_the_invoke_to_one_thread() -> None:
    """A decode running elsewhere: one thread, the other core stays the decode's."""
    cores = Cores(2)
    owners = _model(cores, (WIDE, 2), (NARROW, 1))
    try:
        with cores.held():
            assert owners.submit(_quick).result(HANG) == NARROW
        assert owners.submit(_quick).result(HANG) == WIDE
    finally:
        owners.shutdown()


def test_two_models_busy_at_once_run_one_thread_each() -> None:
    """An invoke beside another model's one-thread invoke takes one thread too: two threads
    on two cores."""
    cores = Cores(2)
    first = _model(cores, (WIDE, 2), (NARROW, 1))
    second = _model(cores, (WIDE, 2), (NARROW, 1))
    try:
        with cores.held():  # so the first invoke starts on one thread
            busy = Running(first)
        assert cores.threads == 1
        assert second.submit(_quick).result(HANG) == NARROW
        assert busy.release() == NARROW
        assert second.submit(_quick).result(HANG) == WIDE  # idle again: every core
    finally:
        first.shutdown()
        second.shutdown()
    assert cores.running == 0


def test_no_invoke_starts_beside_an_all_core_one() -> None:
    """While one model's invoke has every core, another model's waits, then gets every core
    itself once they are given back."""
    cores = Cores(2)
    first = _model(cores, (WIDE, 2), (NARROW, 1))
    second = _model(cores, (WIDE, 2), (NARROW, 1))
    try:
        busy = Running(first)
        assert cores.threads == 2
        waiting = second.submit(_quick)
        assert cores.threads == 2 and not _started(waiting)  # claims are made in submit()
        assert busy.release() == WIDE
        assert waiting.result(HANG) == WIDE
    finally:
        first.shutdown()
        second.shutdown()
    assert cores.running == 0


def test_a_burst_never_has_more_invoke_threads_than_cores() -> None:
    """Three models, two cores: with two one-thread invokes running, the third model's waits
    in its FIFO and starts as soon as either gives its core back."""
    cores = Cores(2)
    models = [_model(cores, (WIDE, 2), (NARROW, 1)) for _ in range(3)]
    try:
        with cores.held():
            running = [Running(models[0]), Running(models[1])]
        assert cores.threads == 2
        first, second = models[2].submit(_quick), models[2].submit(_quick)
        assert cores.threads == 2 and not _started(first) and not _started(second)
        assert running[1].release() == NARROW
        assert first.result(HANG) == NARROW and second.result(HANG) == NARROW
        assert cores.threads <= 2
        assert running[0].release() == NARROW
    finally:
        for owners in models:
            owners.shutdown()
    assert cores.running == 0


def test_a_model_with_one_interpreter_takes_it_when_its_threads_fit() -> None:
    """EDGE_REPLICAS=1: the only (all-core) interpreter runs beside a decode, and after a
    one-thread invoke elsewhere gives its core back."""
    cores = Cores(2)
    other = _model(cores, (WIDE, 2), (NARROW, 1))
    only = _model(cores, (WIDE, 2))
    try:
        with cores.held():
            assert only.submit(_quick).result(HANG) == WIDE
            busy = Running(other)
        waiting = only.submit(_quick)
        assert not _started(waiting)
        busy.release()
        assert waiting.result(HANG) == WIDE
    finally:
        other.shutdown()
        only.shutdown()


def test_one_thread_replicas_alone_take_work_in_index_order() -> None:
    """EDGE_NUM_THREADS=1: every replica is a one-thread one; a lone invoke takes the first."""
    cores = Cores(2)
    owners = _model(cores, (NARROW, 1), (OTHER, 1))
    try:
        assert [owners.submit(_quick).result(HANG) for _ in range(3)] == [NARROW] * 3
    finally:
        owners.shutdown()


def test_failed_and_cancelled_work_leaves_the_ledger_even() -> None:
    """An exception or a cancelled wait never leaves a core counted as running."""
    cores = Cores(2)
    owners = _model(cores, (WIDE, 2), (NARROW, 1))
    gate = threading.Event()

    def fail(resource: str, _: int) -> str:
        raise RuntimeError(resource)

    try:
        with pytest.raises(RuntimeError, match=WIDE):
            owners.submit(fail).result(HANG)
        busy = owners.submit(_held(gate))
        queued = owners.submit(_quick)
        dropped = owners.submit(_quick)
        assert dropped.cancel()
        gate.set()
        assert busy.result(HANG) == WIDE
        assert queued.result(HANG) in (WIDE, NARROW)
    finally:
        gate.set()
        owners.shutdown()
    assert cores.running == 0


def test_shutdown_runs_queued_work_even_when_no_core_is_free() -> None:
    """Work queued behind busy cores still runs when the owners shut down."""
    cores = Cores(2)
    other = _model(cores, (WIDE, 2), (NARROW, 1))
    owners = _model(cores, (WIDE, 2), (NARROW, 1))
    try:
        busy = Running(other)
        queued = [owners.submit(_quick) for _ in range(3)]
        assert not any(_started(f) for f in queued)
        owners.shutdown()  # drains its queue although the other model holds every core
        assert all(f.result(HANG) in (WIDE, NARROW) for f in queued)
        busy.release()
    finally:
        other.shutdown()
    assert cores.running == 0
