"""The floor, measured in-process: the model alone, the whole pipeline serially, and preprocessing.

The pipeline is the service's own code (`Engine.prepare` and `rank`) with the interpreter
called on the measuring thread: no HTTP, no queue, no thread hop, one request at a time.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from edge_server.core.engine import Engine
from edge_server.core.runtime import Interpreter

TOP_K = 5


def invoke_alone(interpreter: Interpreter, classifier: Engine) -> Callable[[], object]:
    """One invoke on a fixed input."""
    spec = classifier.info.input
    interpreter.set_tensor(spec.index, np.zeros(spec.shape, dtype=spec.dtype))
    return interpreter.invoke


def pipeline(
    interpreter: Interpreter, classifier: Engine, jpegs: Sequence[bytes], max_pixels: int
) -> Callable[[], object]:
    """Decode, preprocess, invoke and rank the next photo, all on the calling thread."""
    turn = iter(range(1 << 62))
    source, target = classifier.info.input.index, classifier.info.output.index

    def one() -> object:
        data = jpegs[next(turn) % len(jpegs)]
        prepared = classifier.prepare(data, max_pixels=max_pixels)
        interpreter.set_tensor(source, prepared.tensor)
        interpreter.invoke()
        return classifier.rank(interpreter.get_tensor(target), TOP_K)

    return one


def service_preprocess(
    classifier: Engine, jpegs: Sequence[bytes], max_pixels: int
) -> Callable[[], object]:
    """The service's decode and preprocess of the next photo (draft decode, fit, tensor)."""
    turn = iter(range(1 << 62))

    def one() -> object:
        return classifier.prepare(jpegs[next(turn) % len(jpegs)], max_pixels=max_pixels)

    return one


def naive_preprocess(jpegs: Sequence[bytes], size: tuple[int, int]) -> Callable[[], object]:
    """What the naive server does: full-size decode, RGB, bilinear resize, array."""
    turn = iter(range(1 << 62))

    def one() -> Any:
        data = jpegs[next(turn) % len(jpegs)]
        picture = Image.open(io.BytesIO(data)).convert("RGB")
        return np.asarray(picture.resize(size, Image.Resampling.BILINEAR))[np.newaxis]

    return one
