"""Motion on decoded H.264 frames of a noisy static scene and a person walking through it."""

from __future__ import annotations

import numpy as np
import pytest

from edge_server.core.motion import Motion, components

from support.cameras.clips import Clip
from support.decoded import Decoded, decoded

WIDTH, HEIGHT = 640, 360  # the clips'


@pytest.fixture(scope="module")
def static(still: Clip) -> Decoded:
    return decoded(still)


@pytest.fixture(scope="module")
def walk(walk_clip: Clip) -> Decoded:
    return decoded(walk_clip)


def _settled(motion: Motion, clip: Decoded) -> int:
    """Frames fed until calibration ends (the first frames of any clip)."""
    for n, luma in enumerate(clip.luma):
        motion.detect(luma)
        if not motion.calibrating:
            return n + 1
    raise AssertionError("motion never finished calibrating")


def _covered(boxes: list[tuple[int, int, int, int]], box: tuple[int, int, int, int]) -> float:
    """The share of `box` that the union of `boxes` covers."""
    canvas = np.zeros((HEIGHT, WIDTH), bool)
    for x0, y0, x1, y1 in boxes:
        canvas[y0:y1, x0:x1] = True
    bx0, by0, bx1, by1 = box
    return float(canvas[by0:by1, bx0:bx1].mean())


def test_a_noisy_static_scene_has_no_motion(static: Decoded) -> None:
    """Sensor noise through the codec moves nothing once calibrated (after a second's grace)."""
    motion = Motion(WIDTH, HEIGHT)
    settled = _settled(motion, static)
    moving = []
    for n in range(settled, len(static.luma)):
        boxes = motion.detect(static.luma[n])
        if boxes and n >= settled + static.fps:
            moving.append((n, boxes))
    assert settled < len(static.luma) // 2
    assert moving == []


def test_a_walking_person_is_inside_the_motion_boxes(walk: Decoded) -> None:
    """On every frame with at least half the person in view, the motion boxes cover most of
    the person's box; before the person enters, there are none."""
    motion = Motion(WIDTH, HEIGHT)
    start = _settled(motion, walk)
    shares = []
    for n in range(start, len(walk.luma)):
        boxes = motion.detect(walk.luma[n])
        person = walk.person(n)
        entered = walk.clip.person_in is not None and n / walk.fps >= walk.clip.person_in
        if not entered:
            assert boxes == [], f"motion at frame {n}, before the person"
        if person is not None and person[2] - person[0] >= 100:
            shares.append(_covered(boxes, person))
    assert len(shares) > 3 * walk.fps
    assert min(shares) > 0.8, shares


def test_a_mask_hides_the_motion_beneath_it(walk: Decoded) -> None:
    """A mask over the lower two thirds, where the person walks, leaves no box there."""
    masked = [[(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)]]
    motion = Motion(WIDTH, HEIGHT, masks=masked)
    start = _settled(motion, walk)
    for n in range(start, len(walk.luma)):
        for _, y0, _, _ in motion.detect(walk.luma[n]):
            assert y0 < 0.3 * HEIGHT + 4


def test_the_lights_going_on_recalibrates_instead_of_moving(static: Decoded) -> None:
    """A frame suddenly brighter all over (lights, IR) sets calibrating and gives no box; the
    detector settles again on the new light."""
    motion = Motion(WIDTH, HEIGHT)
    start = _settled(motion, static)
    brighter = [
        np.clip(luma.astype(np.int16) * 3 // 2 + 40, 0, 255).astype(np.uint8)
        for luma in static.luma
    ]
    assert motion.detect(brighter[start]) == []
    assert motion.calibrating
    for luma in brighter[start + 1 :]:
        motion.detect(luma)
    assert not motion.calibrating


def test_connected_regions_match_a_flood_fill() -> None:
    """The run-based labelling finds the same 8-connected regions (boxes and areas) as a
    plain flood fill, on random masks of several densities."""
    rng = np.random.default_rng(3)
    for density in (0.05, 0.2, 0.45, 0.6):
        mask = rng.random((37, 53)) < density
        assert sorted(components(mask)) == sorted(_flood(mask))


def _flood(mask: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    seen = np.zeros_like(mask)
    regions = []
    height, width = mask.shape
    for y in range(height):
        for x in range(width):
            if not mask[y, x] or seen[y, x]:
                continue
            stack, pixels = [(y, x)], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                pixels.append((cy, cx))
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if (
                            0 <= ny < height
                            and 0 <= nx < width
                            and mask[ny, nx]
                            and not seen[ny, nx]
                        ):
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            ys = [p[0] for p in pixels]
            xs = [p[1] for p in pixels]
            regions.append((min(xs), min(ys), max(xs) + 1, max(ys) + 1, len(pixels)))
    return regions
