"""Tensor maths at the model's edges (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_server.core.quantization import (
    Quantization,
    dequantize,
    looks_like_probabilities,
    softmax,
    to_input,
    top_k,
)


def test_uint8_input_is_the_raw_pixels() -> None:
    """A uint8 model gets the pixels unchanged, with a batch axis."""
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    tensor = to_input(rgb, np.uint8, mean=127.5, std=127.5)
    assert tensor.shape == (1, 2, 2, 3)
    assert tensor.dtype == np.uint8
    assert np.array_equal(tensor[0], rgb)


def test_int8_input_is_shifted_by_128() -> None:
    """An int8 model gets pixel - 128, so 0 -> -128 and 255 -> 127."""
    rgb = np.array([[[0, 128, 255]]], dtype=np.uint8)
    tensor = to_input(rgb, np.int8, mean=0, std=1)
    assert tensor.dtype == np.int8
    assert tensor.reshape(-1).tolist() == [-128, 0, 127]


def test_float_input_is_normalised_with_mean_and_std() -> None:
    """A float model gets (pixel - mean) / std."""
    rgb = np.array([[[0, 127, 255]]], dtype=np.uint8)
    tensor = to_input(rgb, np.float32, mean=127.5, std=127.5)
    assert tensor.dtype == np.float32
    assert np.allclose(tensor.reshape(-1), [-1.0, -0.003921, 1.0], atol=1e-5)


def test_unsupported_input_dtype_is_refused() -> None:
    """Only uint8, int8 and float32 inputs are understood."""
    with pytest.raises(ValueError, match="int16"):
        to_input(np.zeros((1, 1, 3), np.uint8), np.int16, mean=0, std=1)


@pytest.mark.parametrize(
    ("raw", "quant", "expected"),
    [
        (np.array([[0, 128, 255]], np.uint8), Quantization(1 / 256, 0), [0.0, 0.5, 255 / 256]),
        (np.array([[-128, 0, 127]], np.int8), Quantization(1 / 256, -128), [0.0, 0.5, 255 / 256]),
        (np.array([[0.25, 0.75]], np.float32), Quantization(0.0, 0), [0.25, 0.75]),
    ],
)
def test_dequantize(raw: np.ndarray, quant: Quantization, expected: list[float]) -> None:
    """Outputs map to real values by (q - zero_point) * scale; unquantized pass through."""
    assert np.allclose(dequantize(raw, quant), expected)


def test_softmax_turns_logits_into_a_distribution() -> None:
    """Softmax sums to one, keeps the order and survives large logits."""
    probabilities = softmax(np.array([1000.0, 1001.0, 999.0], np.float32))
    assert np.isclose(probabilities.sum(), 1.0)
    assert probabilities.argmax() == 1
    assert looks_like_probabilities(probabilities)
    assert not looks_like_probabilities(np.array([2.0, -1.0, 0.5], np.float32))


def test_top_k_orders_by_score_then_index_and_applies_threshold() -> None:
    """Best first; equal scores by index; scores below the threshold are dropped."""
    scores = np.array([0.1, 0.3, 0.3, 0.05, 0.25], np.float32)
    assert [i for i, _ in top_k(scores, 3)] == [1, 2, 4]
    assert [i for i, _ in top_k(scores, 10, threshold=0.26)] == [1, 2]
    assert top_k(scores, 100) == sorted(top_k(scores, 100), key=lambda p: (-p[1], p[0]))
    assert len(top_k(scores, 100)) == 5


def test_top_k_tie_order_does_not_depend_on_k() -> None:
    """Among many equal scores, each k gives a prefix of the same index-ordered ranking."""
    scores = np.full(1001, 2 / 256, np.float32)
    scores[653] = 0.92
    rankings = [[i for i, _ in top_k(scores, k)] for k in (2, 3, 5, 10)]
    assert all(r == rankings[-1][: len(r)] for r in rankings)
    assert rankings[-1][:3] == [653, 0, 1]
