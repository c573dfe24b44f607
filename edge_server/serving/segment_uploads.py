"""An image already in memory (an MQTT payload) segmented, and the picture shown beside its
answer (Home Assistant's MQTT image entity).

The same limits, admission and deadline as `POST /segment`, through the data plane's one entry
(`Service.run`) and segmentation's own reader (`segmenting.segmented`), asked for the mask:
the picture is built from it, off the event loop and charged to the decode memory budget.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from ..core.detection import Task
from ..core.errors import TooLarge
from ..core.imaging import ResizeMode
from ..core.segmentation import Polygon
from . import segmenting
from .schemas import SegmentResponse
from .service import Service

# The media type of every picture `picture` makes (Home Assistant's image entity is told it).
PICTURE_TYPE = "image/png"


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
    read = segmenting.segmented(segmenting.SegmentOptions(mask=True, regions=regions))

    async def upload() -> bytes:
        return data

    async def work(image: bytes) -> SegmentResponse:
        return await service.answer(
            Task.segmentation, image, read, started=started, model=model, resize=resize
        )

    answer = await service.run(upload, work, started=started)
    return answer.model_copy(update={"mask": None}), picture(answer)


def picture(answer: SegmentResponse) -> Picture:
    """What an answer looks like: its class map as a palette PNG in PASCAL VOC's colours (the
    answer must carry its mask)."""
    assert answer.mask is not None, "picture() needs an answer asked for its mask"
    return Picture(base64.b64decode(answer.mask.data), PICTURE_TYPE)
