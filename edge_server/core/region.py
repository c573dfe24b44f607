"""A region of interest: the part of an upright photo to classify, in normalised coordinates.

Normalised (0..1) rather than pixels so that a camera's fixed zone ("the doorstep") stays the
same whatever resolution or reduced JPEG decode scale the picture arrives at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from .errors import BadRequest

_FORMAT = "crop=x0,y0,x1,y1 with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (e.g. crop=0.25,0,0.75,1)"


@dataclass(frozen=True)
class Region:
    """A box from (x0, y0) top-left to (x1, y1) bottom-right, as fractions of width and height."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def smallest_fraction(self) -> float:
        """The box's shorter side as a fraction of the picture's side it lies along."""
        return min(self.x1 - self.x0, self.y1 - self.y0)

    def pixel_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of a width x height picture, at least 1x1."""
        left = min(int(self.x0 * width), width - 1)
        top = min(int(self.y0 * height), height - 1)
        right = max(round(self.x1 * width), left + 1)
        bottom = max(round(self.y1 * height), top + 1)
        return left, top, right, bottom


def parse_region(text: str) -> Region:
    """A region from `x0,y0,x1,y1`; BadRequest (400) when malformed, out of range or empty."""
    parts = text.split(",")
    if len(parts) != 4:
        raise BadRequest(f"crop {text!r} does not have four numbers; use {_FORMAT}")
    try:
        x0, y0, x1, y1 = (float(part) for part in parts)
    except ValueError as exc:
        raise BadRequest(
            f"crop {text!r} holds something that is not a number; use {_FORMAT}"
        ) from exc
    values = (x0, y0, x1, y1)
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise BadRequest(f"crop {text!r} is outside the picture; use {_FORMAT}")
    if x0 >= x1 or y0 >= y1:
        raise BadRequest(f"crop {text!r} is an empty box; use {_FORMAT}")
    return Region(x0, y0, x1, y1)


def crop(picture: Image.Image, region: Region) -> Image.Image:
    """The part of the picture inside the region."""
    return picture.crop(region.pixel_box(picture.width, picture.height))
