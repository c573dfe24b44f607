"""Zones and masks: polygons on a camera's picture, in normalised (0-1) coordinates.

An object is in a zone when the bottom centre of its box (where it stands) lies inside the
zone's polygon, as Frigate decides it: a person walking past a doorstep zone is in it by their
feet, not by the head that overlaps it. Masks are polygons whose pixels motion ignores and
whose objects (by the same point) are not tracked. Normalised so a zone drawn once holds at
whatever resolution the stream arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]
Polygon = Sequence[Sequence[float]]  # [[x, y], ...], each 0-1
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


def contains(polygon: Polygon, x: float, y: float) -> bool:
    """Whether (x, y) (normalised) lies inside the polygon (even-odd rule, edges included
    on the left and top as ray casting counts them)."""
    inside = False
    count = len(polygon)
    for i in range(count):
        x0, y0 = polygon[i][0], polygon[i][1]
        x1, y1 = polygon[i - 1][0], polygon[i - 1][1]
        if (y0 > y) != (y1 > y):
            crossing = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            if x < crossing:
                inside = not inside
    return inside


def raster(polygons: Sequence[Polygon], width: int, height: int) -> npt.NDArray[np.bool_]:
    """An (height, width) array, True at the pixels whose centre lies in any polygon."""
    xs = (np.arange(width, dtype=np.float64) + 0.5) / width
    ys = (np.arange(height, dtype=np.float64) + 0.5) / height
    px, py = np.meshgrid(xs, ys)
    covered = np.zeros((height, width), dtype=np.bool_)
    for polygon in polygons:
        inside = np.zeros((height, width), dtype=np.bool_)
        count = len(polygon)
        for i in range(count):
            x0, y0 = float(polygon[i][0]), float(polygon[i][1])
            x1, y1 = float(polygon[i - 1][0]), float(polygon[i - 1][1])
            if y0 == y1:
                continue  # a horizontal edge crosses no horizontal ray
            spans = (y0 > py) != (y1 > py)
            crossing = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
            inside ^= spans & (px < crossing)
        covered |= inside
    return covered


def foot(box: Box, width: int, height: int) -> Point:
    """The bottom centre of a pixel box, normalised: where the object stands (the centre of
    its bottom row of pixels, so a box on the picture's edge is inside a zone drawn to it)."""
    x0, _, x1, y1 = box
    return ((x0 + x1) / 2 / width, (max(y1, 1) - 0.5) / height)


def zones_of(box: Box, zones: Mapping[str, Polygon], width: int, height: int) -> list[str]:
    """The zones whose polygon holds the box's bottom centre, in the zones' order."""
    x, y = foot(box, width, height)
    return [name for name, polygon in zones.items() if contains(polygon, x, y)]


def masked(box: Box, masks: Sequence[Polygon], width: int, height: int) -> bool:
    """Whether the box's bottom centre lies in a mask (the object is not tracked)."""
    x, y = foot(box, width, height)
    return any(contains(polygon, x, y) for polygon in masks)


def square_around(box: Box, width: int, height: int, *, scale: float = 1.35, least: int = 0) -> Box:
    """A square region centred on `box`, `scale` times its longer side and at least `least`
    pixels (the detector's input: a smaller region is only enlarged again), moved inside the
    picture and cut to it when the picture is smaller, as Frigate's regions are; the box
    itself when no square of the picture can hold it."""
    x0, y0, x1, y1 = box
    side = int(max(x1 - x0, y1 - y0) * scale)
    side = min(max(side, least, 1), width, height)
    if side < max(x1 - x0, y1 - y0):
        # No square of the picture holds the box (a wide one in a short picture): the box.
        return (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    left = min(max(cx - side // 2, 0), width - side)
    top = min(max(cy - side // 2, 0), height - side)
    return (left, top, left + side, top + side)
