"""Classes learned from a few photos: weight imprinting on an embedding model's outputs.

An embedding model (MobileNet without its classifier) turns a photo into a vector; photos of one
thing point the same way. Imprinting (Qi et al., CVPR 2018; Coral's imprinting engine) learns a
class as the normalised mean of its examples' L2-normalised embeddings, and scores a photo by
its cosine to each class. The extractor used here has no L2 normalisation inside and ends in
ReLU6 and an average pool, so every component is non-negative and even unrelated photos score
0.35-0.55: a photo unlike every class is told apart by a threshold calibrated from the examples
themselves (`calibrated_threshold`), not by a fixed number.

Pure functions on numpy arrays; storage, the model file and the HTTP surface are elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
UNKNOWN = "unknown"
# Used while no two classes exist to compare: between the 0.35-0.55 unrelated photos score
# and the 0.62-0.74 of a class's own photos on the reference extractor.
DEFAULT_THRESHOLD = 0.58
_FLOOR, _CEILING = 0.3, 0.95  # a calibrated threshold stays within these


@dataclass(frozen=True)
class Threshold:
    """The open-set threshold and the rule that gave it (reported to users)."""

    value: float
    rule: str


def normalized(embedding: npt.NDArray[Any]) -> Vector:
    """The embedding as a float32 unit vector (a zero vector stays zero)."""
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def class_mean(examples: Sequence[Vector]) -> Vector:
    """A class's imprinted weight: the normalised mean of its normalised embeddings."""
    return normalized(np.mean([normalized(e) for e in examples], axis=0))


def class_means(classes: Mapping[str, Sequence[Vector]]) -> dict[str, Vector]:
    """Each class's imprinted weight."""
    return {label: class_mean(examples) for label, examples in classes.items() if examples}


def cosines(query: npt.NDArray[Any], means: Mapping[str, Vector]) -> list[tuple[str, float]]:
    """(label, cosine) of the query to each class, best first."""
    unit = normalized(query)
    scored = [(label, float(np.dot(unit, mean))) for label, mean in means.items()]
    return sorted(scored, key=lambda pair: -pair[1])


def calibrated_threshold(classes: Mapping[str, Sequence[Vector]]) -> Threshold:
    """The open-set threshold, from the examples.

    `within`: the lowest leave-one-out cosine of an example to the mean of the rest of its class
    (classes of two examples or more); `between`: the highest cosine between examples of
    different classes. The threshold is their midpoint. With one example per class there is no
    `within`: `between` plus a margin; with one class, the default.
    """
    units = {label: [normalized(e) for e in examples] for label, examples in classes.items()}
    units = {label: vectors for label, vectors in units.items() if vectors}
    within = [
        float(np.dot(vector, class_mean(vectors[:i] + vectors[i + 1 :])))
        for vectors in units.values()
        if len(vectors) >= 2
        for i, vector in enumerate(vectors)
    ]
    labels = list(units)
    between = [
        float(np.dot(a, b))
        for i, first in enumerate(labels)
        for second in labels[i + 1 :]
        for a in units[first]
        for b in units[second]
    ]
    if not between:
        return Threshold(DEFAULT_THRESHOLD, "default: fewer than two classes")
    if not within:
        value = max(between) + 0.08
        rule = f"highest cosine between classes ({max(between):.3f}) + 0.08"
    else:
        value = (min(within) + max(between)) / 2
        rule = (
            f"midpoint of the lowest cosine within a class ({min(within):.3f}) and the "
            f"highest between classes ({max(between):.3f})"
        )
    return Threshold(round(min(_CEILING, max(_FLOOR, value)), 4), rule)


def answer(
    query: npt.NDArray[Any], means: Mapping[str, Vector], threshold: float
) -> list[tuple[str, float]]:
    """The classes best first, `unknown` first when the best is under the threshold."""
    ranked = cosines(query, means)
    if not ranked or ranked[0][1] < threshold:
        return [(UNKNOWN, ranked[0][1] if ranked else 0.0), *ranked]
    return ranked
