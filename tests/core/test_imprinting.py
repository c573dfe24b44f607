"""Imprinted classes on the real embedding extractor: Coral's cat/dog/hotdog photos, open set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_server.core.imprinting import (
    DEFAULT_THRESHOLD,
    UNKNOWN,
    Vector,
    answer,
    calibrated_threshold,
    class_mean,
    class_means,
    few_shot_accuracy,
    few_shot_unknown,
    head,
    normalized,
)

from support.detections import interpreter_class

EXTRACTOR = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
TRAIN = {
    "cat": ["cat_train_0"],
    "dog": ["dog_train_0"],
    "hotdog": ["hotdog_train_0", "hotdog_train_1"],
}


@pytest.fixture(scope="module")
def embed(models_dir: Path, images_dir: Path) -> Callable[[Path], Vector]:
    """The extractor run by hand: the whole photo squashed to 224x224 (Pillow BILINEAR)."""
    interpreter = interpreter_class()(model_path=str(models_dir / EXTRACTOR), num_threads=2)
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    (output,) = interpreter.get_output_details()

    def run(path: Path) -> Vector:
        picture = Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
        interpreter.set_tensor(source["index"], np.asarray(picture, np.uint8)[None])
        interpreter.invoke()
        return np.asarray(interpreter.get_tensor(output["index"]), np.float32).reshape(-1)

    return run


@pytest.fixture(scope="module")
def learned(embed: Callable[[Path], Vector], images_dir: Path) -> dict[str, list[Vector]]:
    """Coral's training photos, embedded."""
    folder = images_dir / "imprinting"
    return {label: [embed(folder / f"{n}.bmp") for n in names] for label, names in TRAIN.items()}


def test_corals_test_photos_come_back_as_their_classes(
    embed: Callable[[Path], Vector], learned: dict[str, list[Vector]], images_dir: Path
) -> None:
    """Each *_test_0 photo is its own class, above the calibrated threshold."""
    means = class_means(learned)
    threshold = calibrated_threshold(learned)
    assert 0.49 < threshold.value < 0.61 and threshold.rule.startswith("midpoint")
    for label in TRAIN:
        best, score = answer(
            embed(images_dir / "imprinting" / f"{label}_test_0.bmp"), means, threshold.value
        )[0]
        assert best == label and score > threshold.value


@pytest.mark.parametrize("photo", ["grace_hopper.jpg", "parrot.jpg"])
def test_a_photo_of_something_else_is_unknown(
    embed: Callable[[Path], Vector], learned: dict[str, list[Vector]], images_dir: Path, photo: str
) -> None:
    """A person and a parrot are none of cat, dog or hotdog: `unknown` comes first."""
    threshold = calibrated_threshold(learned).value
    ranked = answer(embed(images_dir / photo), class_means(learned), threshold)
    assert ranked[0][0] == UNKNOWN and ranked[0][1] < threshold
    assert {label for label, _ in ranked[1:]} == set(TRAIN)


def test_the_rules_with_few_examples() -> None:
    """One class: the default; one example per class: the highest cross cosine plus a margin."""
    a, b = np.array([1.0, 0.0, 0.0], np.float32), np.array([0.6, 0.8, 0.0], np.float32)
    assert calibrated_threshold({"a": [a]}).value == DEFAULT_THRESHOLD
    single = calibrated_threshold({"a": [a], "b": [b]})
    assert single.value == pytest.approx(0.68) and "+ 0.08" in single.rule
    assert np.allclose(class_mean([a * 3, a]), a)
    assert not normalized(np.zeros(4)).any()


def test_few_shot_measures_on_corals_photos(
    embed: Callable[[Path], Vector], images_dir: Path
) -> None:
    """Leave-one-out on Coral's 7 photos: both methods 100 % with one example a class; the
    unknown share is a fraction; the same numbers on every call (draws in a fixed order)."""
    folder = images_dir / "imprinting"
    names = sorted(p.stem for p in folder.glob("*.bmp"))
    embeddings = np.stack([embed(folder / f"{n}.bmp") for n in names])
    labels = [n.split("_")[0] for n in names]
    for method in ("mean", "nearest"):
        assert few_shot_accuracy(embeddings, labels, 1, method, trials=5) == 1.0
    unknown = few_shot_unknown(embeddings, labels, 1, trials=5)
    assert 0.0 <= unknown <= 1.0
    assert few_shot_unknown(embeddings, labels, 1, trials=5) == unknown
    shuffled = list(reversed(range(len(labels))))
    again = few_shot_accuracy(embeddings[shuffled], [labels[i] for i in shuffled], 2, "mean")
    assert again == few_shot_accuracy(
        embeddings[shuffled], [labels[i] for i in shuffled], 2, "mean"
    )


def test_a_head_puts_unknown_first_exactly_under_the_threshold() -> None:
    """Head.scores: probabilities over unknown and the classes; unknown wins only when no
    class's cosine reaches the threshold."""
    learned = head({"a": np.array([[1.0, 0.0]]), "b": np.array([[0.0, 1.0]])}, 0.8)
    assert learned.labels == [UNKNOWN, "a", "b"]
    near_a = learned.scores(np.array([0.95, 0.31]))
    assert near_a.argmax() == 1 and near_a.sum() == pytest.approx(1.0)
    between = learned.scores(np.array([0.7, 0.7]))  # cosine 0.707 to each: under 0.8
    assert between.argmax() == 0
