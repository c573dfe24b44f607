"""An image already in memory (an MQTT payload) segmented, and the picture shown beside its
answer (Home Assistant's MQTT image entity).

The same limits, admission and deadline as `POST /segment`, through the data plane's one entry
(`Service.run`) and segmentation's own reader (`segmenting.segmented`); the picture is the
overlay `format=overlay` answers (`segmenting.picture_of`), drawn from the same invoke, off
the event loop and charged to the decode memory budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..core.detection import Task
from ..core.errors import TooLarge
from ..core.imaging import ResizeMode
from ..core.overlay import Picture as PictureKind
from ..core.segmentation import Polygon
from . import segmenting
from .invocation import Invocation
from .schemas import SegmentResponse
from .service import Service

# The media type of every picture `picture` makes (Home Assistant's image entity is told it).
PICTURE_TYPE = PictureKind.overlay.media_type


@dataclass(frozen=True)
class Picture:
    """An image to show as it is sent: its bytes and their media type."""

    data: bytes
    content_type: str


async def segment_upload(
    service: Service,
    data: bytes,
    *,
    model: str | None = None,
    regions: tuple[Polygon, ...] = (),
    resize: ResizeMode | None = None,
) -> tuple[SegmentResponse, Picture]:
    """Segment an image already in memory: the answer (its classes and, with `regions`, what
    covers each) without the mask, and the picture of what was found.

    Raises the pipeline's ServiceError subclasses as `Service.classify_upload` does: TooLarge
    over EDGE_MAX_UPLOAD_BYTES and a model not served (404) or of another task (400) before
    an admission place is taken; a centre crop is a 400 (a segmenter sees the whole frame).
    """
    limit = service.settings.max_upload_bytes
    if len(data) > limit:
        raise TooLarge(f"the image is {len(data)} bytes, over EDGE_MAX_UPLOAD_BYTES={limit}")
    service.model_for(Task.segmentation, model)
    segmenting.check_fit(resize)
    started = time.perf_counter()
    answer_of = segmenting.segmented(segmenting.SegmentOptions(regions=regions))
    overlay = segmenting.PictureRequest(PictureKind.overlay)

    async def read(invocation: Invocation) -> tuple[SegmentResponse, Picture]:
        drawn = await segmenting.picture_of(invocation, overlay)
        return await answer_of(invocation), Picture(drawn, PICTURE_TYPE)

    async def upload() -> bytes:
        return data

    async def work(image: bytes) -> tuple[SegmentResponse, Picture]:
        return await service.answer(
            Task.segmentation, image, read, started=started, model=model, resize=resize
        )

    return await service.run(upload, work, started=started)
