"""What one request may cost, on every surface (HTTP, KServe, DeepStack, MQTT, Frigate)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field


class LimitSettings(BaseModel):
    """Upload, image, batch and queue limits, and the request deadline."""

    max_upload_bytes: Annotated[int, Field(ge=1024)] = Field(
        20 * 1024 * 1024, description="Largest accepted request body."
    )
    max_image_pixels: Annotated[int, Field(ge=1)] = Field(
        50_000_000, description="Largest accepted image (width x height), read from its header."
    )
    min_image_side: Annotated[int, Field(ge=1)] = Field(
        16, description="Smallest accepted image side, in pixels."
    )
    max_batch_images: Annotated[int, Field(ge=1, le=256)] = Field(
        16, description="Most images in one POST /classify/batch request."
    )
    default_top_k: Annotated[int, Field(ge=1, le=100)] = Field(
        5, description="Predictions returned when the request names no top_k."
    )
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.4,
        description="Least score of an object a detector reports when the request names no "
        "min_score (DeepStack's default, and where Frigate stops reading).",
    )
    max_detections: Annotated[int, Field(ge=1, le=100)] = Field(
        20,
        description="Most objects one detection answers (Frigate's DeepStack plugin cannot "
        "take more than 20).",
    )
    max_queue: Annotated[int, Field(ge=1, le=10_000)] = Field(
        64, description="Classify requests admitted at once; more get 503 + Retry-After."
    )
    request_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        30.0, description="Seconds a classify request may take, upload included (504/408)."
    )
    decode_memory_mb: Annotated[int, Field(ge=16)] | None = Field(
        None,
        description="MiB that images being decoded may take at once; default: 40% of the "
        "memory limit (cgroup, else RAM), and room for the largest image allowed. Images wait "
        "a second for room, then get 503.",
    )
