"""Motion on a camera's grey frames: Frigate's "improved" method, in numpy.

The detector runs only where something moves, so motion must be cheap: each frame's luma is
resized (nearest neighbour: the resize is the first blur) to a small height (Frigate's default
100 px), its contrast stretched between the 4th and 96th percentiles (averaged over the last
50 frames without motion, so a flicker or a dark coat does not swing it), masked areas set to
0, blurred (3x3 Gaussian, sigma 1), and compared with a running average of the past frames.
Pixels that differ by more than `threshold` are dilated (3x3) and grouped into connected
regions; each region whose contour area exceeds `contour_area` is a motion box. The background
learns slowly (`frame_alpha`); a change that persists for 10 frames is averaged in too, so a
parked car stops moving.

Calibration: until less than 5 % of the frame moves in at most four boxes, and again when more
than `lightning_threshold` of it changes at once (lights switched on, IR mode, a cloud), the
detector is calibrating: it averages with alpha 0.2 and its boxes say nothing (a watcher should
not run the detector on them). Frigate uses OpenCV; without it, connected regions are found
from the runs of each row (a few dozen at 100 px high), which keeps a frame around a
millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .zones import Box, Polygon, raster

CONTRAST_HISTORY = 50  # frames whose percentiles are averaged (Frigate's)
PERSISTENT_FRAMES = 10  # frames of motion before the background learns it (Frigate's)
CALIBRATING_ALPHA = 0.2
_GAUSS = np.array([0.27406862, 0.45186276, 0.27406862], np.float32)  # sigma 1, radius 1


@dataclass(frozen=True)
class MotionOptions:
    """Frigate's motion settings and their defaults."""

    threshold: int = 30  # grey levels a pixel must change by (1-255)
    contour_area: int = 10  # pixels of the small frame a region must exceed
    frame_height: int = 100  # height the frame is resized to
    frame_alpha: float = 0.01  # how fast the background learns
    lightning_threshold: float = 0.8  # share of the frame whose change means recalibrate
    improve_contrast: bool = True


class Motion:
    """Motion boxes of one camera's frames, against the background it has learned."""

    def __init__(
        self,
        width: int,
        height: int,
        options: MotionOptions | None = None,
        masks: Sequence[Polygon] = (),
    ) -> None:
        self.options = options or MotionOptions()
        self.width, self.height = width, height
        small_h = max(1, min(height, self.options.frame_height))
        small_w = max(1, width * small_h // height)
        self.scale = (width / small_w, height / small_h)
        # Nearest-neighbour sampling: the centre pixel of each small pixel's cell.
        self._rows = ((np.arange(small_h) + 0.5) * height / small_h).astype(np.intp)
        self._cols = ((np.arange(small_w) + 0.5) * width / small_w).astype(np.intp)
        self._mask = raster(masks, small_w, small_h) if masks else None
        self._average: npt.NDArray[np.float32] | None = None
        # Filled from the first frame: starting from (0, 255), as Frigate does, the stretch
        # drifts over the first 50 frames and the whole picture looks as if it moved.
        self._contrast: npt.NDArray[np.float32] | None = None
        self._contrast_at = 0
        self._moving_frames = 0
        self.calibrating = True
        self.moving_share = 0.0  # of the small frame, in the last frame

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the small frame motion is found in."""
        return len(self._cols), len(self._rows)

    def detect(self, luma: npt.NDArray[np.uint8]) -> list[Box]:
        """The motion boxes of a frame's (H, W) luma, in the frame's pixels; none while
        calibrating. The frame must be the size the detector was made for."""
        if luma.shape != (self.height, self.width):
            raise ValueError(f"a {luma.shape} frame for a {self.height}x{self.width} camera")
        small = luma[np.ix_(self._rows, self._cols)].astype(np.float32)
        if self.options.improve_contrast:
            small = self._stretched(small)
        if self._mask is not None:
            small[self._mask] = 0.0  # as the average starts: masked pixels never differ
        blurred = blur(small)
        if self._average is None:
            # Frigate starts from black and needs some twenty frames of calibration (four
            # seconds at 5 fps, blind to whoever walks in meanwhile); the first frame is a
            # better start: calibration then ends as soon as two frames agree.
            self._average = blurred.copy()
        changed = np.abs(blurred - self._average) > self.options.threshold
        regions = components(dilate(changed))
        boxes: list[Box] = []
        total = 0
        sx, sy = self.scale
        for x0, y0, x1, y1, pixels in regions:
            # OpenCV's contour area runs through the border pixels' centres: a w x h block
            # of pixels is (w - 1)(h - 1), which this gives exactly for a rectangle; counting
            # pixels instead would make a dilated speck of noise (3x3 = 9) a region.
            area = max(0, pixels - (x1 - x0) - (y1 - y0) + 1)
            total += area
            if area > self.options.contour_area:
                boxes.append((int(x0 * sx), int(y0 * sy), int(x1 * sx), int(y1 * sy)))
        self.moving_share = total / blurred.size
        if self.moving_share < 0.05 and len(boxes) <= 4:
            self.calibrating = False
        if self.moving_share > self.options.lightning_threshold:
            self.calibrating = True
        alpha = CALIBRATING_ALPHA if self.calibrating else self.options.frame_alpha
        if boxes:
            self._moving_frames += 1
            if self._moving_frames >= PERSISTENT_FRAMES:
                self._average += alpha * (blurred - self._average)
        else:
            self._average += alpha * (blurred - self._average)
            self._moving_frames = 0
        return [] if self.calibrating else boxes

    def _stretched(self, small: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        low, high = np.percentile(small, (4, 96))
        # Learnt only while nothing moves: a dark coat walking in moves the 4th percentile,
        # and a stretch that follows it shifts every pixel of the picture past the threshold.
        if low < high and (self._moving_frames == 0 or self._contrast is None):
            if self._contrast is None:
                self._contrast = np.tile(np.array([low, high], np.float32), (CONTRAST_HISTORY, 1))
            self._contrast[self._contrast_at] = (low, high)
            self._contrast_at = (self._contrast_at + 1) % CONTRAST_HISTORY
        if self._contrast is None:
            return small
        low, high = (float(v) for v in self._contrast.mean(axis=0))
        if high <= low:
            return small
        stretched: npt.NDArray[np.float32] = (np.clip(small, low, high) - low) * np.float32(
            255.0 / (high - low)
        )
        return stretched


def blur(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A 3x3 Gaussian (sigma 1), separable, edges repeated."""
    padded = np.pad(image, 1, mode="edge")
    rows = _GAUSS[0] * padded[:, :-2] + _GAUSS[1] * padded[:, 1:-1] + _GAUSS[2] * padded[:, 2:]
    blurred: npt.NDArray[np.float32] = (
        _GAUSS[0] * rows[:-2] + _GAUSS[1] * rows[1:-1] + _GAUSS[2] * rows[2:]
    )
    return blurred


def dilate(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """A 3x3 dilation: a pixel is set when it or any of its eight neighbours is."""
    padded = np.pad(mask, 1)
    across = padded[:, :-2] | padded[:, 1:-1] | padded[:, 2:]
    return across[:-2] | across[1:-1] | across[2:]


def components(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int, int, int, int]]:
    """The 8-connected regions of a mask as (x0, y0, x1, y1, area): box corners (x1, y1
    exclusive) and pixel count, from the runs of set pixels in each row."""
    edges = np.diff(mask.astype(np.int8), axis=1, prepend=0, append=0)
    start_rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # row-major, so paired with the starts in order
    count = len(starts)
    if not count:
        return []
    rows = start_rows.tolist()
    first, last = starts.tolist(), ends.tolist()
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Runs of the previous row [above_from, above_to) against those of this row.
    above_from = above_to = 0
    i = 0
    while i < count:
        row = rows[i]
        j = i
        while j < count and rows[j] == row:
            j += 1
        if above_to > above_from and rows[above_from] == row - 1:
            k = above_from
            for n in range(i, j):
                # Skip runs above that end before this one starts (diagonals touch).
                while k < above_to and last[k] < first[n]:
                    k += 1
                m = k
                while m < above_to and first[m] <= last[n]:
                    a, b = root(n), root(m)
                    if a != b:
                        parent[a] = b
                    m += 1
        above_from, above_to = i, j
        i = j
    labels = np.fromiter((root(n) for n in range(count)), np.intp, count)
    unique, label_of = np.unique(labels, return_inverse=True)
    groups = len(unique)
    lengths = ends - starts
    x0 = np.full(groups, mask.shape[1], np.intp)
    y0 = np.full(groups, mask.shape[0], np.intp)
    x1 = np.zeros(groups, np.intp)
    y1 = np.zeros(groups, np.intp)
    area = np.zeros(groups, np.intp)
    np.minimum.at(x0, label_of, starts)
    np.minimum.at(y0, label_of, start_rows)
    np.maximum.at(x1, label_of, ends)
    np.maximum.at(y1, label_of, start_rows + 1)
    np.add.at(area, label_of, lengths)
    return list(zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), area.tolist(), strict=True))
