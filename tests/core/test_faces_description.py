"""dlib's descriptors in worker processes: the crop sent to a worker, a worker's call waiting
for a core of the budget, aligned chips against plain crops; and matching on hand-made
vectors."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from edge_server.core.cores import Cores
from edge_server.core.face_description import CROP_FACE_SIDE, Describer, FaceCrop, crop_for
from edge_server.core.face_matching import Matching, distances, nearest

# Face boxes (left, top, right, bottom) the full-range detector gives these photos.
BOXES = {
    "obama/obama.jpg": (356, 132, 638, 415),
    "obama/obama2.jpg": (141, 272, 487, 618),
    "biden/biden2.jpg": (395, 252, 904, 760),
}


@pytest.fixture(scope="module")
def budget() -> Cores:
    """A one-core budget of the describer's own, so the test can hold that core."""
    return Cores(1)


@pytest.fixture(scope="module")
def describer(models_dir: Path, budget: Cores) -> Iterator[Describer]:
    """dlib's two models in one worker process, warmed."""
    worker = Describer(
        models_dir / "shape_predictor_5_face_landmarks.dat",
        models_dir / "dlib_face_recognition_resnet_model_v1.dat",
        workers=1,
        cores=budget,
    )
    worker.warm()
    yield worker
    worker.close()


def _crop(images_dir: Path, name: str) -> FaceCrop:
    picture = ImageOps.exif_transpose(Image.open(images_dir / "faces" / name)).convert("RGB")
    return crop_for(picture, BOXES[name])


def test_a_crop_keeps_a_margin_and_shrinks_a_large_face(images_dir: Path) -> None:
    """A 509 px face is sent scaled to CROP_FACE_SIDE with half its size around it; a small
    face is sent at its own size."""
    crop = _crop(images_dir, "biden/biden2.jpg")
    left, top, right, bottom = crop.box
    assert max(right - left, bottom - top) == pytest.approx(CROP_FACE_SIDE, abs=1)
    assert left == pytest.approx(CROP_FACE_SIDE / 2, abs=2)
    small = crop_for(Image.new("RGB", (400, 300)), (100, 100, 140, 150))
    assert small.box == (20, 25, 60, 75) and small.pixels.shape == (101, 81, 3)


def test_aligned_descriptors_separate_people(describer: Describer, images_dir: Path) -> None:
    """Two photos of one person are within dlib's 0.6; two people are farther."""
    vectors = describer.describe_now([_crop(images_dir, name) for name in BOXES])
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    table = distances(vectors, vectors)
    assert table[0, 1] < 0.6 < min(table[0, 2], table[1, 2])


def test_a_plain_crop_gives_another_descriptor(describer: Describer, images_dir: Path) -> None:
    """DeepStack's plain resized crop is a different input from the aligned chip."""
    crop = [_crop(images_dir, "obama/obama.jpg")]
    aligned = describer.describe_now(crop)
    plain = describer.describe_now(crop, aligned=False)
    assert float(distances(aligned, plain)[0, 0]) > 0.05


def test_a_description_waits_for_a_core_of_the_budget(
    describer: Describer, budget: Cores, images_dir: Path
) -> None:
    """With the budget's only core taken (an invoke running), a description does not start
    until it is given back; then it finishes and gives its own core back."""
    assert budget.take(1)
    try:
        pending = describer.describe([_crop(images_dir, "obama/obama.jpg")])
        time.sleep(0.5)  # ample for a warm worker's 60 ms, had it not waited
        assert not pending.done()
    finally:
        budget.give(1)
    assert pending.result(timeout=60).shape == (1, 128)
    assert budget.threads == 0


def test_nearest_takes_a_persons_closest_descriptor_or_their_mean() -> None:
    """Nearest: the closest single descriptor wins; mean: each person's average does."""
    a = np.zeros((2, 128), np.float32)
    a[0, 0], a[1, 0] = 0.0, 2.0  # person a: two far-apart photos (mean at 1.0)
    b = np.zeros((1, 128), np.float32)
    b[0, 0] = 0.7
    face = np.zeros((1, 128), np.float32)
    face[0, 0] = 0.1
    [by_nearest] = nearest(face, {"a": a, "b": b})
    [by_mean] = nearest(face, {"a": a, "b": b}, Matching.mean)
    assert by_nearest.name == "a" and by_nearest.distance == pytest.approx(0.1)
    assert by_mean.name == "b" and by_mean.distance == pytest.approx(0.6)
    [nobody] = nearest(face, {})
    assert (nobody.name, nobody.distance) == ("", float("inf"))


def _workers() -> list[int]:
    """This process's dlib worker processes (spawned children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if parent == os.getpid() and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


def test_a_killed_worker_is_replaced_and_the_face_still_described(
    describer: Describer, images_dir: Path
) -> None:
    """SIGKILL to a dlib worker (the OOM killer's way): the next description starts new
    workers and answers, and the dead one is gone."""
    crop = [_crop(images_dir, "obama/obama.jpg")]
    before = describer.describe_now(crop)
    [worker] = _workers()
    os.kill(worker, signal.SIGKILL)
    after = describer.describe_now(crop)
    assert float(distances(before, after)[0, 0]) < 1e-5
    assert worker not in _workers()
