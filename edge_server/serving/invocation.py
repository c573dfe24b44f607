"""One upload decoded and invoked on one model: what a task reads its answer from.

The data plane (`Service.answer`) does what every task shares once: it names the model that
answers, leases it, decodes the upload and invokes the model (the decode pool, the owner
threads), and times it. What a task does with the invoke's output is the task's own room: a
reader turns an `Invocation` into that task's answer (`serving/segmenting.py` for "which pixels
are what"), so a new task adds a reader, a route, and nothing in `Service`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ..core.engine import Engine, Inference, Prepared
from ..core.memory import MemoryBudget
from ..core.region import Region
from .schemas import ImageInfo, ModelRef, Timing

T = TypeVar("T")


class Offload(Protocol):
    """Runs CPU-heavy work off the event loop and awaits its result."""

    def __call__(self, work: Callable[[], T], /) -> Awaitable[T]: ...


@dataclass(frozen=True)
class Invocation:
    """A decoded upload, the invoke of one leased model on it, and how to finish the answer."""

    engine: Engine
    data: bytes  # the upload as sent (a picture answer decodes it again at full size)
    prepared: Prepared
    inference: Inference
    region: Region | None  # the part of the upright image that was fitted, if not all of it
    started: float  # the request's arrival (time.perf_counter())
    read_started: float  # when reading the output began: the `postprocess` stage starts here
    memory: MemoryBudget  # what a large result (a full-size mask) is charged to
    offload: Offload  # a full-size mask or picture is built there, not on the event loop
    timing: Callable[[Invocation], Timing]  # the stages so far, recorded in the metrics

    @property
    def model(self) -> ModelRef:
        """Which model answered."""
        info = self.engine.info
        return ModelRef(name=info.name, sha256=info.sha256)

    @property
    def image(self) -> ImageInfo:
        """The upload as decoded, and how it was fitted."""
        image = self.prepared.image
        return ImageInfo(
            width=image.width,
            height=image.height,
            format=image.format,
            orientation_applied=image.orientation_applied,
            resize=self.prepared.resize.value,
        )

    def timed(self) -> Timing:
        """The stage times up to now (call last, once the answer is built)."""
        return self.timing(self)


def offloader(pool: Executor) -> Offload:
    """Work run on `pool` (the decode pool: CPU-bound, bounded, in arrival order), awaited
    from the event loop."""

    def run(work: Callable[[], T]) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(pool, work)

    return run
