"""The one place the MQTT surface calls the classify pipeline (the HTTP routes' own pipeline)."""

from __future__ import annotations

import asyncio
import time

from ..core.errors import DeadlineExceeded, TooLarge
from ..serving.schemas import ClassifyResponse
from ..serving.service import Service


async def classify(
    service: Service, data: bytes, *, model: str | None = None, top_k: int | None = None
) -> ClassifyResponse:
    """Classify one image with the same admission, limits and deadline as `POST /classify`.

    Raises the pipeline's ServiceError subclasses: Overloaded when EDGE_MAX_QUEUE requests
    (HTTP and MQTT together) are already being handled, BadImage, TooLarge, DeadlineExceeded...
    `model` None is the default model; a name that is not served raises NotFound.
    """
    settings = service.settings
    if len(data) > settings.max_upload_bytes:
        raise TooLarge(
            f"the image is {len(data)} bytes, over EDGE_MAX_UPLOAD_BYTES="
            f"{settings.max_upload_bytes}"
        )
    service.ready_classifier(model)  # NotFound (or NotReady) before taking an admission place
    started = time.perf_counter()
    async with service.admission():
        try:
            async with asyncio.timeout(settings.request_timeout):
                return await service.classify(
                    data, top_k=top_k, threshold=0.0, started=started, model=model
                )
        except TimeoutError:
            service.metrics.timeouts.labels("processing").inc()
            raise DeadlineExceeded(
                f"the image was not classified within {settings.request_timeout:g} s "
                "(EDGE_REQUEST_TIMEOUT)"
            ) from None
