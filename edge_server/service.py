"""The service every HTTP surface shares: settings, metrics, the model, and the classify pipeline.

Routes (the native API and any compatible one) only translate requests and answers; decoding,
queueing for the interpreter, ranking and timing happen here once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .classifier import Classifier
from .errors import NotReady
from .metrics import Metrics
from .schemas import ClassifyResponse, ImageInfo, ModelRef, Prediction, Timing
from .settings import Settings


@dataclass
class Service:
    """What the routes share: settings, metrics and the loaded model (None until ready)."""

    settings: Settings
    metrics: Metrics
    classifier: Classifier | None = None

    def ready_classifier(self) -> Classifier:
        """The loaded model, or 503 while there is none."""
        if self.classifier is None:
            raise NotReady("the model is not loaded yet", headers={"Retry-After": "1"})
        return self.classifier

    async def classify(
        self, data: bytes, *, top_k: int | None, threshold: float, started: float
    ) -> ClassifyResponse:
        """Decode (decode pool), invoke (owner thread, FIFO), rank and time one image.

        `started` is the request's arrival (time.perf_counter()), so `total` covers reading
        the upload too.
        """
        classifier = self.ready_classifier()
        settings = self.settings
        prepared, inference = await asyncio.wrap_future(
            classifier.prepare_and_submit(data, max_pixels=settings.max_image_pixels)
        )

        post_started = time.perf_counter()
        k = top_k if top_k is not None else settings.default_top_k
        predictions = [
            Prediction(label=label, index=i, score=min(1.0, max(0.0, score)))
            for i, label, score in classifier.rank(inference.raw, k, threshold)
        ]
        finished = time.perf_counter()
        timing = {
            "queue": inference.queue_ms,
            "decode": prepared.decode_ms,
            "preprocess": prepared.preprocess_ms,
            "inference": inference.inference_ms,
            "postprocess": (finished - post_started) * 1000,
            "total": (finished - started) * 1000,
        }
        self.metrics.observe_stages(timing)
        image, info = prepared.image, classifier.info
        return ClassifyResponse(
            model=ModelRef(name=info.name, sha256=info.sha256),
            predictions=predictions,
            image=ImageInfo(
                width=image.width,
                height=image.height,
                format=image.format,
                orientation_applied=image.orientation_applied,
            ),
            timing_ms=Timing(**{stage: round(ms, 3) for stage, ms in timing.items()}),
        )
