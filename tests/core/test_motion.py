"""Motion on decoded H.264 frames of a noisy static scene and a person walking through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_server.core.motion import Motion, components

from support.clips import HEIGHT, WIDTH, Clip, make_clip


@pytest.fixture(scope="module")
def static(images_dir: Path) -> Clip:
    return make_clip(images_dir, seconds=8, person=False)


@pytest.fixture(scope="module")
def walk(images_dir: Path) -> Clip:
    return make_clip(images_dir, seconds=14, person=True)


def _settled(motion: Motion, clip: Clip) -> int:
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


def test_a_noisy_static_scene_has_no_motion(static: Clip) -> None:
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


def test_a_walking_person_is_inside_the_motion_boxes(walk: Clip) -> None:
    """On every frame with the person at least half in view, the motion boxes cover most of
    the person's box; before the person enters, there are none."""
    motion = Motion(WIDTH, HEIGHT)
    start = _settled(motion, walk)
    assert walk.appears is not None and walk.leaves is not None
    first, last = round(walk.appears * walk.fps), round(walk.leaves * walk.fps)
    shares = []
    for n in range(start, last):
        boxes = motion.detect(walk.luma[n])
        person = walk.person_boxes[n]
        if n < first and person is None:
            assert boxes == [], f"motion at frame {n}, before the person"
        if n >= first and person is not None:
            shares.append(_covered(boxes, person))
    assert len(shares) > 3 * walk.fps
    assert min(shares) > 0.8, shares


def test_a_mask_hides_the_motion_beneath_it(walk: Clip) -> None:
    """A mask over the lower two thirds, where the person walks, leaves no box there."""
    masked = [[(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)]]
    motion = Motion(WIDTH, HEIGHT, masks=masked)
    start = _settled(motion, walk)
    for n in range(start, len(walk.luma)):
        for _, y0, _, _ in motion.detect(walk.luma[n]):
            assert y0 < 0.3 * HEIGHT + 4


def test_the_lights_going_on_recalibrates_instead_of_moving(static: Clip) -> None:
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
