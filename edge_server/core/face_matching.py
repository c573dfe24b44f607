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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


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
