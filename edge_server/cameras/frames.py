"""A frame read from a camera: its grey plane at once, its colours only when asked.

Motion is found on grey pixels, and most frames go no further. Converting each to RGB would
add 7-22 % to every H.264 decode and 1.5-4x to every JPEG decode (1080p to 640x480,
docs/cameras.md). So a reader hands over the luma it already has (the decoder's
Y plane, or a JPEG decoded straight to grey) and a function that makes the RGB array, run
once, on demand.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image

from .streams import Picture


def once(make: Callable[[], npt.NDArray[np.uint8]]) -> Callable[[], npt.NDArray[np.uint8]]:
    """`make`, run on the first call only (under a lock: a watcher and an HTTP request may
    both ask for one frame's colours); later calls return the same array."""
    lock = threading.Lock()
    made: list[npt.NDArray[np.uint8]] = []

    def cached() -> npt.NDArray[np.uint8]:
        with lock:
            if not made:
                array = make()
                array.flags.writeable = False  # shared by every caller
                made.append(array)
            return made[0]

    return cached


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One frame of a feed. Arrays are read-only: several readers share one frame."""

    number: int  # frames read from this feed since start (1, 2, ...)
    time: float  # time.time() when it was read
    width: int
    height: int
    luma: npt.NDArray[np.uint8]  # (H, W) grey: what motion reads
    rgb: Callable[[], npt.NDArray[np.uint8]]  # (H, W, 3), made on the first call, cached
    encoded: bytes | None = field(default=None, repr=False)  # the camera's own JPEG, if any

    def jpeg(self, quality: int = 85) -> bytes:
        """The frame as JPEG: the camera's own bytes when it sent a JPEG (no re-encoding),
        else the RGB encoded at `quality`."""
        if self.encoded is not None:
            return self.encoded
        buffer = io.BytesIO()
        Image.fromarray(self.rgb(), "RGB").save(buffer, "JPEG", quality=quality)
        return buffer.getvalue()


def frame_of(number: int, picture: Picture, *, at: float | None = None) -> Frame:
    """Frame `number` of a feed from a reader's picture (its arrays made read-only, its RGB
    made once)."""
    luma = picture.luma
    luma.flags.writeable = False
    height, width = luma.shape[:2]
    return Frame(
        number=number,
        time=time.time() if at is None else at,
        width=width,
        height=height,
        luma=luma,
        rgb=once(picture.rgb),
        encoded=picture.encoded,
    )
