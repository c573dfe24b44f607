"""Which registered person a face descriptor is, and how sure: distances and calibration.

dlib's descriptors are trained so that two faces of one person lie within a Euclidean
distance of 0.6 of each other (99.38 % on LFW). A face is compared with every registered
descriptor and takes the nearest person (`nearest`); averaging each person's descriptors into
one (`Matching.mean`) was measured against it on the shared photos (docs: Who is at the door).

Confidence is the distance mapped linearly onto 0-1 so that 0 is 1.0 and the threshold
distance is exactly the confidence a client's default min_confidence asks for (DeepStack's
0.67 for /recognize): a face farther than the threshold from everyone, a stranger, scores
below the default and is answered `unknown`. DeepStack's own `(cos + 1) / 2` puts every pair
of different people in the shared photos between 0.87 and 0.94 on these descriptors, far above
0.67 (face descriptors never point far apart), which is why its users see strangers named.

The threshold is calibrated on the people registered (`calibrated_threshold`): a gallery
whose two closest different people are nearer than the threshold plus a margin has faces in
between that belong to neither with any certainty (a sibling, a look-alike), so the effective
threshold drops to the margin below that pair, but never below the widest pair of one
person's own photos (their photos must still match each other) nor below FLOOR of the
setting. It is never above the setting. Confidence is then anchored on the effective
threshold, which maps to the client's default min_confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

# The effective threshold is never below this fraction of the setting (a gallery of one photo
# a person, two of them alike, would otherwise drive it to nothing).
FLOOR = 2 / 3
# Up to this many descriptors in all, the closest different pair is over every two of them;
# above it, over each person's mean descriptor (1000 people: a 1000 x 1000 table). About
# 25 ms at the limit on one x86 core.
PAIRWISE_LIMIT = 1024


class Matching(StrEnum):
    """How a face is compared with a person's several descriptors."""

    nearest = "nearest"  # the nearest of them
    mean = "mean"  # their mean


@dataclass(frozen=True)
class Match:
    """The nearest person to one face and the distance to them ("" and inf: nobody)."""

    name: str
    distance: float


@dataclass(frozen=True)
class Calibration:
    """Distance to confidence: 1 at distance 0, `at_threshold` at `threshold`, linear, 0-1."""

    threshold: float  # the distance under which a face is the person
    at_threshold: float  # the confidence that distance maps to

    def confidence(self, distance: float) -> float:
        """The confidence of a face at `distance` from its nearest person."""
        if not np.isfinite(distance):
            return 0.0
        value = 1.0 - (1.0 - self.at_threshold) * distance / self.threshold
        return float(min(1.0, max(0.0, value)))


def distances(faces: Vectors, references: Vectors) -> npt.NDArray[np.float32]:
    """Euclidean distances [len(faces), len(references)] between two sets of descriptors."""
    a = np.asarray(faces, dtype=np.float32).reshape(-1, faces.shape[-1])
    b = np.asarray(references, dtype=np.float32).reshape(-1, a.shape[-1])
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    result: npt.NDArray[np.float32] = np.sqrt(np.clip(squared, 0.0, None)).astype(np.float32)
    return result


def nearest(
    faces: Vectors, people: Mapping[str, Vectors], matching: Matching = Matching.nearest
) -> list[Match]:
    """Each face's nearest person: by their nearest descriptor, or their mean's."""
    count = len(faces)
    names = [name for name, vectors in people.items() if len(vectors)]
    if not names or not count:
        return [Match("", float("inf"))] * count
    if matching is Matching.mean:
        references = np.stack([people[name].mean(axis=0) for name in names])
        owners = np.arange(len(names))
    else:
        references = np.concatenate([people[name] for name in names])
        owners = np.repeat(np.arange(len(names)), [len(people[name]) for name in names])
    table = distances(faces, references)
    best = table.argmin(axis=1)
    return [
        Match(names[int(owners[column])], float(table[row, column]))
        for row, column in enumerate(best)
    ]


@dataclass(frozen=True)
class Spread:
    """How close the registered people are to each other, and how far apart their own photos."""

    closest_different: float  # the nearest two descriptors of different people; inf: < 2 people
    widest_same: float  # the farthest two descriptors of one person; 0: nobody has two photos
    people: tuple[str, str] | None = None  # the closest different pair's names


def spread(people: Mapping[str, Vectors], limit: int = PAIRWISE_LIMIT) -> Spread:
    """The closest different-people pair and the widest same-person pair of a gallery; over
    `limit` descriptors in all, between people by their mean descriptors (a table of people,
    not of photos: the closest means, an estimate of the closest photos)."""
    names = [name for name, vectors in people.items() if len(vectors)]
    widest = 0.0
    for name in names:
        if len(people[name]) > 1:
            widest = max(widest, float(distances(people[name], people[name]).max()))
    if len(names) < 2:
        return Spread(math.inf, widest)
    if sum(len(people[name]) for name in names) <= limit:
        references = np.concatenate([people[name] for name in names])
        owners = np.repeat(np.arange(len(names)), [len(people[name]) for name in names])
    else:
        references = np.stack([people[name].mean(axis=0) for name in names])
        owners = np.arange(len(names))
    table = distances(references, references)
    table[owners[:, None] == owners[None, :]] = np.inf
    row, column = np.unravel_index(int(table.argmin()), table.shape)
    pair = (names[int(owners[row])], names[int(owners[column])])
    return Spread(float(table[row, column]), widest, pair)


def calibrated_threshold(threshold: float, gallery: Spread, margin: float) -> float:
    """The effective threshold: the setting, lowered to `margin` below the closest different
    registered people, but not below their widest same-person pair nor FLOOR of the setting."""
    lowest = max(gallery.widest_same, FLOOR * threshold)
    return float(min(threshold, max(gallery.closest_different - margin, lowest)))
