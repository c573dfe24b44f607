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

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
UNKNOWN = "unknown"
# Used while no two classes exist to compare: between the 0.35-0.55 unrelated photos score
# and the 0.62-0.74 of a class's own photos on the reference extractor.
DEFAULT_THRESHOLD = 0.58
_FLOOR, _CEILING = 0.3, 0.95  # a calibrated threshold stays within these
# Cosines become scores as softmax(SCALE * cosine), with `unknown` at SCALE * threshold: the
# scaled cosine of face recognition (CosFace, ArcFace) and of Coral's imprinted models. 30
# turns a cosine 0.1 above every other into a score of about 0.95, and one just at the
# threshold into 0.5 against `unknown`.
SCALE = 30.0
# With this many values or more, the calibration takes percentiles instead of the extremes,
# so one odd photo among many does not move the threshold.
_ROBUST_FROM = 20
Method = Literal["mean", "nearest"]


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


def unit_rows(embeddings: npt.NDArray[Any]) -> Matrix:
    """Each row (one embedding) as a float32 unit vector (zero rows stay zero)."""
    matrix = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, np.float32(1.0))).astype(np.float32, copy=False)


def class_mean(examples: Sequence[Vector] | npt.NDArray[Any]) -> Vector:
    """A class's imprinted weight: the normalised mean of its normalised embeddings."""
    return normalized(unit_rows(np.asarray(examples)).mean(axis=0))


def class_means(classes: Mapping[str, Sequence[Vector] | npt.NDArray[Any]]) -> dict[str, Vector]:
    """Each class's imprinted weight."""
    return {label: class_mean(examples) for label, examples in classes.items() if len(examples)}


def cosines(query: npt.NDArray[Any], means: Mapping[str, Vector]) -> list[tuple[str, float]]:
    """(label, cosine) of the query to each class, best first."""
    unit = normalized(query)
    scored = [(label, float(np.dot(unit, mean))) for label, mean in means.items()]
    return sorted(scored, key=lambda pair: -pair[1])


def calibrated_threshold(classes: Mapping[str, Sequence[Vector] | npt.NDArray[Any]]) -> Threshold:
    """The open-set threshold, from the examples.

    `within`: the leave-one-out cosine of each example to the mean of the rest of its class
    (classes of two examples or more), the lowest; `between`: the cosine of each example to
    the mean of every other class, the highest. Both are what a query meets: its own class's
    mean, and the others'. The threshold is their midpoint. From 20 values on, the 5th and
    95th percentiles stand for the extremes. With one example per class there is no `within`:
    `between` plus a margin; with one class, the default.
    """
    # One class's float rows at a time: 10,000 stored examples as float32 would be 41 MB.
    present = {label: rows for label, rows in classes.items() if len(rows)}
    if len(present) < 2:
        return Threshold(DEFAULT_THRESHOLD, "default: fewer than two classes")
    sums = {label: unit_rows(np.asarray(rows)).sum(axis=0) for label, rows in present.items()}
    means = np.stack([normalized(total) for total in sums.values()])
    within: list[npt.NDArray[np.float32]] = []
    between: list[npt.NDArray[np.float32]] = []
    for c, (label, raw) in enumerate(present.items()):
        rows = unit_rows(np.asarray(raw))
        others = np.delete(means, c, axis=0)
        between.append((rows @ others.T).max(axis=1))
        if len(rows) >= 2:
            # The rest of the class sums to (sum - row); its cosine to the row, without a loop.
            total = sums[label]
            dots = rows @ total
            rest = np.sqrt(np.maximum(float(total @ total) - 2 * dots + 1, 1e-12))
            within.append((dots - 1) / rest)
    high = _extreme(np.concatenate(between), 95)
    if not within:
        value = high + 0.08
        rule = f"highest cosine between classes ({high:.3f}) + 0.08"
    else:
        low = _extreme(np.concatenate(within), 5)
        value = (low + high) / 2
        rule = (
            f"midpoint of the lowest cosine within a class ({low:.3f}) and the "
            f"highest between classes ({high:.3f})"
        )
    return Threshold(round(min(_CEILING, max(_FLOOR, value)), 4), rule)


def _extreme(values: npt.NDArray[np.float32], percentile: float) -> float:
    """The min (percentile < 50) or max of few values; the percentile of many."""
    if len(values) >= _ROBUST_FROM:
        return float(np.percentile(values, percentile))
    return float(values.min() if percentile < 50 else values.max())


def answer(
    query: npt.NDArray[Any], means: Mapping[str, Vector], threshold: float
) -> list[tuple[str, float]]:
    """The classes best first, `unknown` first when the best is under the threshold."""
    ranked = cosines(query, means)
    if not ranked or ranked[0][1] < threshold:
        return [(UNKNOWN, ranked[0][1] if ranked else 0.0), *ranked]
    return ranked


@dataclass(frozen=True)
class Head:
    """A learned model's classifier: one imprinted weight per class and the threshold.

    `scores` of an embedding are probabilities over `labels`, `unknown` first:
    softmax(SCALE * [threshold, cosine to each class]), so `unknown` is the top label exactly
    when no class's cosine reaches the threshold.
    """

    classes: tuple[str, ...]
    means: Matrix  # (classes, dim), unit rows
    threshold: Threshold

    @property
    def labels(self) -> list[str]:
        """`unknown`, then the classes: the order of `scores`."""
        return [UNKNOWN, *self.classes]

    def scores(self, embedding: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Probabilities over `labels` for one raw embedding."""
        logits = np.empty(len(self.classes) + 1, dtype=np.float32)
        logits[0] = self.threshold.value
        logits[1:] = self.means @ normalized(embedding)
        logits *= SCALE
        logits -= logits.max()
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(), dtype=np.float32)


def head(
    classes: Mapping[str, npt.NDArray[Any]], threshold: float | None = None, *, dim: int = 0
) -> Head:
    """The head learned from each class's examples (raw embeddings, one per row), in order.

    `threshold`: the model's own setting; None calibrates it from the examples.
    """
    present = {label: rows for label, rows in classes.items() if len(rows)}
    means = (
        np.stack([class_mean(rows) for rows in present.values()])
        if present
        else np.zeros((0, dim), np.float32)
    )
    calibrated = (
        calibrated_threshold(present)
        if threshold is None
        else Threshold(threshold, "set for this model")
    )
    return Head(tuple(present), means.astype(np.float32), calibrated)


def predict(
    query: Matrix, train: Matrix, train_labels: npt.NDArray[Any], method: Method
) -> npt.NDArray[Any]:
    """Top-1 class of each (unit) query row: nearest class mean, or nearest single example."""
    if method == "nearest":
        return np.asarray(train_labels[np.argmax(query @ train.T, axis=1)])
    classes = np.unique(train_labels)
    means = np.stack([class_mean(train[train_labels == c]) for c in classes])
    return np.asarray(classes[np.argmax(query @ means.T, axis=1)])


def few_shot_accuracy(
    embeddings: npt.NDArray[Any],
    labels: Sequence[str],
    shots: int,
    method: Method,
    *,
    trials: int = 20,
    seed: int = 0,
) -> float:
    """Top-1 accuracy with `shots` examples per class, each photo held out in turn.

    For each photo, `shots` other photos of each class (fewer if a class has fewer) are drawn
    at random, `trials` times, and the photo is classified among the classes with them.
    """
    units, names = unit_rows(embeddings), np.asarray(labels)
    hits = [
        predict(units[held : held + 1], units[chosen], names[chosen], method)[0] == names[held]
        for held, chosen in _draws(names, shots, trials, seed)
    ]
    return sum(hits) / len(hits) if hits else float("nan")


def few_shot_unknown(
    embeddings: npt.NDArray[Any],
    labels: Sequence[str],
    shots: int,
    *,
    trials: int = 20,
    seed: int = 0,
) -> float:
    """How often a held-out photo of a learned class would be answered `unknown`: its best
    cosine to the class means under the threshold calibrated from the drawn examples (the
    same draws as `few_shot_accuracy`)."""
    units, names = unit_rows(embeddings), np.asarray(labels)
    misses = []
    for held, chosen in _draws(names, shots, trials, seed):
        classes = {str(c): units[chosen][names[chosen] == c] for c in np.unique(names[chosen])}
        means = np.stack([class_mean(rows) for rows in classes.values()])
        threshold = calibrated_threshold(classes).value
        misses.append(float((means @ units[held]).max()) < threshold)
    return sum(misses) / len(misses) if misses else float("nan")


def _draws(
    names: npt.NDArray[Any], shots: int, trials: int, seed: int
) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """(held-out photo, the photos drawn to learn from) of each trial, reproducibly."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(names.tolist()))  # sorted: draws must not follow hash order
    everyone = np.arange(len(names))
    for held in range(len(names)):
        pool = [np.flatnonzero((names == c) & (everyone != held)) for c in classes]
        pool = [rows for rows in pool if len(rows)]
        if not any(names[held] == names[rows[0]] for rows in pool):
            continue  # a class of one photo cannot be learned without it
        for _ in range(trials):
            yield (
                held,
                np.concatenate(
                    [rng.choice(rows, min(shots, len(rows)), replace=False) for rows in pool]
                ),
            )
