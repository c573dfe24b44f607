"""Classification's room in the data plane: the invoke of a classifier read into its answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .invocation import Invocation
from .schemas import ClassifyResponse, Prediction


def ranked(top_k: int, threshold: float) -> Callable[[Invocation], Awaitable[ClassifyResponse]]:
    """The reader of a classify answer: the `top_k` best classes scoring at least `threshold`."""

    async def read(invocation: Invocation) -> ClassifyResponse:
        ranked = invocation.engine.rank(invocation.inference.raw, top_k, threshold)
        # Built without validation (model_construct): every value is the engine's own, already
        # clamped and typed; validating five nested predictions is a tenth of a millisecond.
        predictions = [
            Prediction.model_construct(label=label, index=i, score=min(1.0, max(0.0, score)))
            for i, label, score in ranked
        ]
        return ClassifyResponse.model_construct(
            model=invocation.model,
            predictions=predictions,
            image=invocation.image,
            timing_ms=invocation.timed(),
        )

    return read
