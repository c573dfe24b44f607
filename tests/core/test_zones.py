"""Zones and masks: the point an object stands on, inside or outside polygons."""

from __future__ import annotations

import numpy as np

from edge_server.core.zones import contains, masked, raster, zones_of

DOORSTEP = [(0.25, 0.5), (0.75, 0.5), (0.75, 1.0), (0.25, 1.0)]
TRIANGLE = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]


def test_points_inside_and_outside_a_polygon() -> None:
    """Ray casting puts points of a square and a triangle on the right side."""
    assert contains(DOORSTEP, 0.5, 0.75)
    assert not contains(DOORSTEP, 0.5, 0.25)
    assert not contains(DOORSTEP, 0.9, 0.75)
    assert contains(TRIANGLE, 0.2, 0.2)
    assert not contains(TRIANGLE, 0.8, 0.8)


def test_an_object_is_in_a_zone_by_its_feet() -> None:
    """A person whose head is over the doorstep but whose feet are not is not in it; one
    standing on it is, and so is one whose box reaches the picture's bottom edge."""
    zones = {"doorstep": DOORSTEP, "top": [(0.0, 0.0), (1.0, 0.0), (1.0, 0.4), (0.0, 0.4)]}
    assert zones_of((300, 80, 340, 140), zones, 640, 360) == ["top"]  # feet at 0.39
    assert zones_of((300, 100, 340, 300), zones, 640, 360) == ["doorstep"]
    assert zones_of((300, 200, 340, 360), zones, 640, 360) == ["doorstep"]
    assert zones_of((10, 200, 40, 300), zones, 640, 360) == []


def test_a_mask_raster_matches_the_point_test() -> None:
    """Each pixel of the raster is set exactly when its centre lies in the polygon."""
    mask = raster([TRIANGLE, DOORSTEP], 40, 30)
    for y in range(30):
        for x in range(40):
            cx, cy = (x + 0.5) / 40, (y + 0.5) / 30
            assert mask[y, x] == (contains(TRIANGLE, cx, cy) or contains(DOORSTEP, cx, cy))
    assert 0 < np.count_nonzero(mask) < mask.size
    assert masked((300, 200, 340, 300), [DOORSTEP], 640, 360)
