"""The threshold calibrated on the registered people: lowered below two people who look alike,
never below a person's own photos' spread nor 2/3 of the setting, never above it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_server.core.face_matching import (
    FLOOR,
    Vectors,
    calibrated_threshold,
    distances,
    spread,
)


def _along(*offsets: float) -> Vectors:
    """Descriptors at these distances from the origin along the first axis (128 values)."""
    vectors = np.zeros((len(offsets), 128), dtype=np.float32)
    vectors[:, 0] = offsets
    return vectors


def test_spread_finds_the_closest_different_pair_and_the_widest_own_pair() -> None:
    """Two people 0.5 apart at their nearest photos, one with photos 0.3 apart."""
    people = {"a": _along(0.0, 0.3), "b": _along(0.8, 1.4), "c": _along(3.0)}
    gallery = spread(people)
    assert gallery.closest_different == pytest.approx(0.5)
    assert gallery.widest_same == pytest.approx(0.6)
    assert set(gallery.people or ()) == {"a", "b"}


def test_a_gallery_of_fewer_than_two_people_keeps_the_setting() -> None:
    """Nobody, or one person, leaves nothing to be confused with: the setting holds."""
    for people in ({}, {"a": _along(0.0, 0.2)}):
        gallery = spread(people)
        assert math.isinf(gallery.closest_different)
        assert calibrated_threshold(0.6, gallery, 0.05) == 0.6


def test_look_alikes_lower_the_threshold_to_the_margin_below_them() -> None:
    """Two people 0.55 apart: 0.50; people far apart: the setting, never above it."""
    close = spread({"a": _along(0.0), "b": _along(0.55)})
    assert calibrated_threshold(0.6, close, 0.05) == pytest.approx(0.5)
    far = spread({"a": _along(0.0), "b": _along(2.0)})
    assert calibrated_threshold(0.6, far, 0.05) == 0.6


def test_the_threshold_stays_above_a_persons_own_photos_and_the_floor() -> None:
    """Look-alikes 0.3 apart: not below the 0.45 between one person's photos, nor 2/3 x 0.6."""
    own = spread({"a": _along(0.0, -0.45), "b": _along(0.3)})
    assert calibrated_threshold(0.6, own, 0.05) == pytest.approx(0.45)
    single = spread({"a": _along(0.0), "b": _along(0.1)})
    assert calibrated_threshold(0.6, single, 0.05) == pytest.approx(FLOOR * 0.6)


def test_a_large_gallery_is_compared_by_each_persons_mean() -> None:
    """Over the pairwise limit the closest pair is between the people's mean descriptors."""
    rng = np.random.default_rng(7)
    people = {f"p{n}": rng.normal(size=(3, 128)).astype(np.float32) for n in range(20)}
    exact = spread(people)
    bounded = spread(people, limit=10)
    names = list(people)
    means = np.stack([people[n].mean(axis=0) for n in names])
    table = distances(means, means) + np.eye(len(names)) * 1e9
    assert bounded.closest_different == pytest.approx(float(table.min()), rel=1e-5)
    assert bounded.closest_different != pytest.approx(exact.closest_different)
    assert bounded.widest_same == pytest.approx(exact.widest_same)
