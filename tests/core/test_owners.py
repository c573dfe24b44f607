"""Which interpreter an invoke takes: every core when the process is otherwise idle, one
thread while anything else runs, and never more invokes than replicas."""

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


def _running(future: Future[str]) -> bool:
    return future.running() or future.done()


def test_a_lone_invoke_takes_every_core() -> None:
    """Nothing else running: the all-core replica, every time."""
    cores = Cores()
    owners = _model(cores, (WIDE, 2), (NARROW, 1), (OTHER, 1))
    try:
        assert [owners.submit(_quick).result(HANG) for _ in range(5)] == [WIDE] * 5
    finally:
        owners.shutdown()
    assert cores.running == 0


def test_an_invoke_beside_another_models_takes_one_thread() -> None:
    """While another model's invoke runs, this model's invoke takes a one-thread replica."""
    cores = Cores()
    first = _model(cores, (WIDE, 2), (NARROW, 1))
    second = _model(cores, (WIDE, 2), (NARROW, 1))
    gate, started = threading.Event(), threading.Event()
    try:
        busy = first.submit(_held(gate, started))
        assert started.wait(HANG)
        assert second.submit(_quick).result(HANG) == NARROW
        gate.set()
        assert busy.result(HANG) == WIDE
        assert second.submit(_quick).result(HANG) == WIDE  # idle again: every core
    finally:
        gate.set()
        first.shutdown()
        second.shutdown()
    assert cores.running == 0


def test_a_running_decode_counts_as_busy() -> None:
    """A decode held in the ledger sends the invoke to a one-thread replica."""
    cores = Cores()
    owners = _model(cores, (WIDE, 2), (NARROW, 1))
    try:
        with cores.held():
            assert owners.submit(_quick).result(HANG) == NARROW
        assert owners.submit(_quick).result(HANG) == WIDE
    finally:
        owners.shutdown()


def test_a_burst_waits_for_one_thread_replicas_rather_than_oversubscribe() -> None:
    """With the one-thread replicas busy, the next invoke waits (FIFO) instead of starting
    the all-core replica beside them, and runs as soon as a replica frees."""
    cores = Cores()
    other = _model(cores, (WIDE, 2), (NARROW, 1))
    owners = _model(cores, (WIDE, 2), (NARROW, 1))
    gates = [threading.Event() for _ in range(3)]
    started = [threading.Event() for _ in range(3)]
    try:
        elsewhere = other.submit(_held(gates[0], started[0]))
        assert started[0].wait(HANG)
        narrow = owners.submit(_held(gates[1], started[1]))
        assert started[1].wait(HANG)
        waiting = owners.submit(_held(gates[2], started[2]))
        later = owners.submit(_quick)
        # Claims are counted when work is handed out, in submit(): two running, none added.
        assert cores.running == 2 and not _running(waiting) and not _running(later)
        gates[1].set()  # the one-thread replica frees: the oldest waiting invoke takes it
        assert started[2].wait(HANG)
        assert narrow.result(HANG) == NARROW
        assert not _running(later)  # behind the invoke that came first
        gates[2].set()
        assert waiting.result(HANG) == NARROW
        assert later.result(HANG) == NARROW  # the other model's invoke still runs
        gates[0].set()
        assert elsewhere.result(HANG) == WIDE
    finally:
        for gate in gates:
            gate.set()
        owners.shutdown()
        other.shutdown()
    assert cores.running == 0


def test_a_model_with_one_interpreter_runs_whatever_else_runs() -> None:
    """EDGE_REPLICAS=1: the only (all-core) interpreter never waits for an idle machine."""
    cores = Cores()
    owners = _model(cores, (WIDE, 2))
    try:
        with cores.held():
            assert owners.submit(_quick).result(HANG) == WIDE
    finally:
        owners.shutdown()


def test_one_thread_replicas_alone_take_work_in_index_order() -> None:
    """EDGE_NUM_THREADS=1: every replica is a one-thread one; a lone invoke takes the first."""
    cores = Cores()
    owners = _model(cores, (NARROW, 1), (OTHER, 1))
    try:
        assert [owners.submit(_quick).result(HANG) for _ in range(3)] == [NARROW] * 3
    finally:
        owners.shutdown()


def test_failed_and_cancelled_work_leaves_the_ledger_even() -> None:
    """An exception or a cancelled wait never leaves a core counted as running."""
    cores = Cores()
    owners = _model(cores, (WIDE, 2), (NARROW, 1))
    gate = threading.Event()

    def fail(resource: str, _: int) -> str:
        raise RuntimeError(resource)

    try:
        with pytest.raises(RuntimeError, match=WIDE):
            owners.submit(fail).result(HANG)
        busy = [owners.submit(_held(gate)) for _ in range(2)]
        dropped = owners.submit(_quick)
        assert dropped.cancel()
        gate.set()
        assert sorted(f.result(HANG) for f in busy) == [NARROW, WIDE]
    finally:
        gate.set()
        owners.shutdown()
    assert cores.running == 0


def test_shutdown_runs_queued_work_even_on_a_waiting_all_core_replica() -> None:
    """Work queued behind busy replicas still runs when the owners shut down."""
    cores = Cores()
    owners = _model(cores, (WIDE, 2), (NARROW, 1))
    gate = threading.Event()
    try:
        with cores.held():
            busy = owners.submit(_held(gate))
            queued = [owners.submit(_quick) for _ in range(3)]
            closing = threading.Thread(target=owners.shutdown)
            closing.start()
            gate.set()
            closing.join(HANG)
        assert not closing.is_alive()
        assert busy.result(HANG) == NARROW
        assert all(f.result(HANG) in (WIDE, NARROW) for f in queued)
    finally:
        gate.set()
    assert cores.running == 0
