"""Faces described as 128 values by dlib: landmarks in the found box, an aligned chip, the
ResNet descriptor; two faces are the same person when their descriptors are close.

dlib's 5-point shape predictor finds the eye corners and the nose in the detector's box;
`get_face_chip` turns and scales the face onto a 150 x 150 chip (padding 0.25) the way the
descriptor was trained; `compute_face_descriptor` gives the vector. A plain crop of the box,
resized (DeepStack's way, `aligned=False`), is kept for the comparison the benchmark prints.

dlib holds the GIL for the whole of a call (about 55 ms for a descriptor on one x86 core; a
thread running it stops every other Python thread, the event loop included), so the work runs
in worker processes, each with its own copy of the models. The thread that waits for a worker
first takes a core of the process's budget (`cores.Cores`), so an invoke of any model that
starts meanwhile counts it and takes a one-thread interpreter or waits: faces never run more
threads beside /classify's invokes than the machine has cores.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from .cores import Cores, shared_cores
from .errors import InferenceFailed

log = logging.getLogger("edge_server")

CHIP_SIDE = 150  # the descriptor's input, as dlib's example and face_recognition use it
CHIP_PADDING = 0.25
DIMENSIONS = 128
# A face is sent to a worker in a crop around its box, scaled so the box is at most this many
# pixels wide: the chip shows the face ~100 px wide, so more pixels only cost the copy.
CROP_FACE_SIDE = 256
CROP_MARGIN = 0.5  # of the box's size on each side: the chip's padding and a turned head


@dataclass(frozen=True)
class FaceCrop:
    """The part of a picture around one face, and the face's box in its pixels."""

    pixels: npt.NDArray[np.uint8]  # H x W x 3 RGB
    box: tuple[int, int, int, int]  # left, top, right, bottom


def crop_for(picture: Image.Image, box: tuple[float, float, float, float]) -> FaceCrop:
    """The crop a worker gets for the face in `box` (left, top, right, bottom, pixels of
    `picture`): the box with a margin, scaled down so the face is at most CROP_FACE_SIDE."""
    left, top, right, bottom = box
    width, height = max(1.0, right - left), max(1.0, bottom - top)
    x0 = max(0, int(left - CROP_MARGIN * width))
    y0 = max(0, int(top - CROP_MARGIN * height))
    x1 = min(picture.width, int(right + CROP_MARGIN * width) + 1)
    y1 = min(picture.height, int(bottom + CROP_MARGIN * height) + 1)
    region = picture.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    scale = min(1.0, CROP_FACE_SIDE / max(width, height))
    if scale < 1.0:
        size = (max(1, round(region.width * scale)), max(1, round(region.height * scale)))
        region = region.resize(size, Image.Resampling.BILINEAR)
    placed = (
        round((left - x0) * scale),
        round((top - y0) * scale),
        round((right - x0) * scale),
        round((bottom - y0) * scale),
    )
    return FaceCrop(np.asarray(region.convert("RGB"), dtype=np.uint8), placed)


class Describer:
    """dlib's two models in worker processes, each call holding a core of the budget."""

    def __init__(
        self,
        landmarks: Path,
        descriptor: Path | None,
        *,
        workers: int,
        cores: Cores | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self._cores = cores or shared_cores()
        # No descriptor: the workers only align (`chips`, for a TFLite embedder).
        self._models = (str(landmarks), "" if descriptor is None else str(descriptor))
        self._processes = self._pool()
        self._pool_lock = threading.Lock()
        self._waiters = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="edge-face")
        self._freed = threading.Condition()
        self._cores.wait_with(self)

    def _pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the service has threads (owners, decoders, the event loop) whose
        # locks a forked child would inherit held.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=self._models,
        )

    def warm(self) -> None:
        """Start every worker and load the models in each (a first request would wait ~1 s)."""
        blank = FaceCrop(np.zeros((64, 64, 3), dtype=np.uint8), (16, 16, 48, 48))
        work = _describe if self._models[1] else _chip
        for future in [self._processes.submit(work, blank, True) for _ in range(self.workers)]:
            future.result()

    def describe(self, crops: Sequence[FaceCrop], *, aligned: bool = True) -> Future[Any]:
        """The descriptors ([len(crops), 128] float32) of each crop's face, on the workers."""
        return self._waiters.submit(self._run, list(crops), aligned)

    def chips(self, crops: Sequence[FaceCrop]) -> Future[Any]:
        """The aligned chips ([len(crops), 150, 150, 3] uint8) of each crop's face, on the
        workers: what a TFLite embedder describes in place of dlib's descriptor."""
        return self._waiters.submit(self._run, list(crops), True, _chip)

    def describe_now(
        self, crops: Sequence[FaceCrop], *, aligned: bool = True
    ) -> npt.NDArray[np.float32]:
        """`describe`, waited for (for tools and benchmarks)."""
        result: npt.NDArray[np.float32] = self.describe(crops, aligned=aligned).result()
        return result

    def _run(
        self, crops: list[FaceCrop], aligned: bool, work: Callable[..., Any] | None = None
    ) -> npt.NDArray[Any]:
        work = work or _describe
        if not crops:
            if work is _chip:
                return np.zeros((0, CHIP_SIDE, CHIP_SIDE, 3), dtype=np.uint8)
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        self._take()
        try:
            pool = self._processes
            try:
                vectors = self._each(pool, crops, aligned, work)
            except BrokenProcessPool:
                # A worker was killed (the OOM killer, a signal): new workers, one more try.
                vectors = self._each(self._replaced(pool), crops, aligned, work)
        except BrokenProcessPool as exc:
            raise InferenceFailed("dlib's worker processes stopped; see the log") from exc
        except Exception as exc:  # dlib's own errors, raised in the worker
            log.exception("describing a face failed")
            raise InferenceFailed(f"describing a face failed: {exc}") from exc
        finally:
            self._cores.give(1)
        stacked = np.stack(vectors)
        return stacked if work is _chip else stacked.astype(np.float32)

    @staticmethod
    def _each(
        pool: ProcessPoolExecutor,
        crops: list[FaceCrop],
        aligned: bool,
        work: Callable[..., Any],
    ) -> list[npt.NDArray[Any]]:
        # One face at a time per core: a worker holds the GIL of its own process only.
        return [pool.submit(work, crop, aligned).result() for crop in crops]

    def _replaced(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """New workers in place of a broken pool (once, whichever thread finds it broken)."""
        with self._pool_lock:
            if self._processes is broken:
                log.error("a dlib worker process died; starting new ones")
                self._processes = self._pool()
                broken.shutdown(wait=False, cancel_futures=True)
            return self._processes

    def _take(self) -> None:
        with self._freed:
            while not self._cores.take(1):
                self._freed.wait(timeout=1.0)

    def wake(self) -> None:
        """Cores were given back (`cores.Waiter`): a worker waiting for one tries again."""
        with self._freed:
            self._freed.notify_all()

    def close(self) -> None:
        """Finish what is queued and stop the workers."""
        self._waiters.shutdown(wait=True)
        self._processes.shutdown(wait=True, cancel_futures=True)


# --- in a worker process ---------------------------------------------------------------------

_MODELS: tuple[Any, Any] | None = None


def _load(landmarks: str, descriptor: str) -> None:
    global _MODELS
    import dlib

    _follow_parent()

    net = dlib.face_recognition_model_v1(descriptor) if descriptor else None
    _MODELS = (dlib.shape_predictor(landmarks), net)


def _follow_parent(every: float = 1.0) -> None:
    """End this worker when the server that started it is gone.

    A SIGKILLed server cannot stop its pool, and a worker left behind holds ~100 MB and the
    server's stdout. The parent's death re-parents the worker, so its parent id changes; a
    daemon thread notices within `every` seconds. (PR_SET_PDEATHSIG would follow the thread that
    spawned the worker, not the process.)
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)

    threading.Thread(target=watch, name="edge-face-parent", daemon=True).start()


def _describe(crop: FaceCrop, aligned: bool) -> npt.NDArray[np.float32]:
    import dlib

    assert _MODELS is not None, "the worker's initializer loads the models"
    predictor, net = _MODELS
    return describe_face(predictor, net, dlib, crop, aligned=aligned)


def _chip(crop: FaceCrop, aligned: bool = True) -> npt.NDArray[np.uint8]:
    import dlib

    assert _MODELS is not None, "the worker's initializer loads the models"
    return aligned_chip(_MODELS[0], dlib, crop)


def aligned_chip(predictor: Any, dlib: Any, crop: FaceCrop) -> npt.NDArray[np.uint8]:
    """One face's 150 x 150 chip, turned and scaled on dlib's five landmarks."""
    pixels = np.ascontiguousarray(crop.pixels)
    left, top, right, bottom = crop.box
    shape = predictor(pixels, dlib.rectangle(left, top, right, bottom))
    chip = dlib.get_face_chip(pixels, shape, size=CHIP_SIDE, padding=CHIP_PADDING)
    return np.asarray(chip, dtype=np.uint8)


def describe_face(
    predictor: Any, net: Any, dlib: Any, crop: FaceCrop, *, aligned: bool = True
) -> npt.NDArray[np.float32]:
    """One face's descriptor: landmarks, aligned chip, ResNet (or, not `aligned`, the box
    cropped and resized to the chip's size, DeepStack's way)."""
    pixels = np.ascontiguousarray(crop.pixels)
    left, top, right, bottom = crop.box
    if aligned:
        shape = predictor(pixels, dlib.rectangle(left, top, right, bottom))
        chip = dlib.get_face_chip(pixels, shape, size=CHIP_SIDE, padding=CHIP_PADDING)
    else:
        box = Image.fromarray(pixels).crop((left, top, right, bottom))
        chip = np.asarray(box.resize((CHIP_SIDE, CHIP_SIDE), Image.Resampling.BILINEAR))
    return np.asarray(net.compute_face_descriptor(np.ascontiguousarray(chip)), dtype=np.float32)
