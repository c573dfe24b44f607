"""Tensor maths at the model's edges: pixels to input tensors, raw outputs to scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# TFLite requires a quantized softmax output to use this scale, so an output quantized
# with it is already a probability distribution.
SOFTMAX_OUTPUT_SCALE = 1.0 / 256.0


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = (q - zero_point) * scale; scale 0 = none."""

    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


def to_input(
    rgb: npt.NDArray[np.uint8], dtype: type[np.generic], *, mean: float, std: float
) -> npt.NDArray[np.generic]:
    """Turn HxWx3 pixels into a 1xHxWx3 input tensor of the model's dtype.

    Quantized image models take raw pixels (their input quantization already encodes the
    normalisation), shifted by 128 for int8; float models take (pixel - mean) / std.
    """
    batch = rgb[np.newaxis, ...]
    if dtype == np.uint8:
        return np.ascontiguousarray(batch)
    if dtype == np.int8:
        return (batch.astype(np.int16) - 128).astype(np.int8)
    if dtype == np.float32:
        return ((batch.astype(np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)
    raise ValueError(f"unsupported input dtype {np.dtype(dtype).name}")


def dequantize(raw: npt.NDArray[np.generic], quantization: Quantization) -> npt.NDArray[np.float32]:
    """Real values of an output tensor, flattened."""
    values = raw.reshape(-1).astype(np.float32)
    if not quantization.quantized:
        return values
    return (values - np.float32(quantization.zero_point)) * np.float32(quantization.scale)


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Numerically stable softmax."""
    shifted = np.exp(logits - logits.max())
    result: npt.NDArray[np.float32] = (shifted / shifted.sum()).astype(np.float32)
    return result


def looks_like_probabilities(values: npt.NDArray[np.float32]) -> bool:
    """Whether values form a distribution (non-negative, summing to about 1)."""
    return bool(values.min() >= 0.0 and abs(float(values.sum()) - 1.0) < 0.05)


def top_k(
    scores: npt.NDArray[np.float32], k: int, threshold: float = 0.0
) -> list[tuple[int, float]]:
    """The k best (index, score) pairs at or above threshold, best first; ties by index.

    A stable sort of all scores (microseconds for 1001 classes) keeps tied scores, common in
    quantized outputs, in index order whatever k is; argpartition would pick among them freely.
    """
    k = max(0, min(k, scores.size))
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order if scores[i] >= threshold]
